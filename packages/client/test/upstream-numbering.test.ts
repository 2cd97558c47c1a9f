import type { MessageInfo, ScaledWebSocketServer } from '@wscale/core';
import { delay } from '@wscale/core/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { closeAll, openClient, stateOf } from './helpers/clients.js';
import { Cluster, urlOf } from './helpers/cluster.js';

/** How `@wscale/client` numbers what it sends, against real nodes on a memory broker. */

let cluster = new Cluster();
afterEach(async () => {
  await closeAll();
  await cluster.close();
  cluster = new Cluster();
});

function hear(node: ScaledWebSocketServer) {
  const heard: Array<{ text: string; info: MessageInfo }> = [];
  node.on('connection', (client) => {
    client.on('message', (text, _binary, info) => heard.push({ text: String(text), info }));
  });
  return heard;
}

describe('upstream numbering', () => {
  it('a client given a saved session numbers on after welcome.s: nothing it sends is dropped', async () => {
    const [a, b] = await cluster.start(2);
    const heard = [...[a!, b!].map(hear)];
    const first = openClient(urlOf(a!));
    await stateOf(first.client, 'open');
    for (const text of ['m1', 'm2', 'm3']) await first.client.send(text);
    const saved = first.client.snapshot()!;

    // Another client (a reloaded page) takes the session over: it has never sent anything.
    const second = openClient(urlOf(b!), { resume: saved });
    expect(second.client.state).toBe('resuming');
    const queued = second.client.send('q1'); // numbered before the welcome says where to go on
    await stateOf(second.client, 'open');
    await queued;
    await second.client.send('n1');
    await delay(50);
    expect(second.client.state).toBe('open');
    const all = heard.flat();
    expect(all.map((h) => h.text)).toEqual(['m1', 'm2', 'm3', 'q1', 'n1']);
    expect(new Set(all.map((h) => h.info.id)).size).toBe(5);
  });

  it('a client given an older snapshot of its session numbers on after welcome.s, with nothing queued', async () => {
    const [a, b] = await cluster.start(2);
    const heard = [...[a!, b!].map(hear)];
    const first = openClient(urlOf(a!));
    await stateOf(first.client, 'open');
    await first.client.send('m1');
    // Saved on a `pagehide` whose page came back (the back-forward cache) and went on sending...
    const stale = first.client.snapshot()!;
    for (const text of ['m2', 'm3']) await first.client.send(text);
    // ...then died without saving again: the reload resumes from the older snapshot.
    const second = openClient(urlOf(b!), { resume: stale });
    await stateOf(second.client, 'open');
    const closes: number[] = [];
    second.client.on('close', ({ code }) => closes.push(code));
    await second.client.send('n1');
    await second.client.send('n2');
    expect(second.client.state).toBe('open');
    expect(closes).toEqual([]);
    const all = heard.flat();
    expect(all.map((h) => h.text)).toEqual(['m1', 'm2', 'm3', 'n1', 'n2']);
    expect(new Set(all.map((h) => h.info.id)).size).toBe(5);
  });
});
