import type { ScaledWebSocketServer } from '@wscale/core';
import { delay, until } from '@wscale/core/testing';
import { afterEach, describe, expect, it } from 'vitest';
import type { WelcomeInfo } from '../src/index.js';
import { closeAll, openClient, stateOf, texts } from './helpers/clients.js';
import { Cluster, urlOf } from './helpers/cluster.js';
import { FakeNetwork } from './helpers/fake-network.js';

/** Direct messages kept per session (`directHistory`), as a client sees them. */

let cluster = new Cluster();
afterEach(async () => {
  await closeAll();
  await cluster.close();
  cluster = new Cluster();
});

describe('kept direct messages', () => {
  it('sent while the client reconnects arrive after the resume, once, in order, with no room', async () => {
    const [a, b] = (await cluster.start(2, { directHistory: cluster.history })) as [
      ScaledWebSocketServer,
      ScaledWebSocketServer,
    ];
    let target = a;
    const network = new FakeNetwork();
    const { client, seen } = openClient(() => urlOf(target), { network, backoffBaseMs: 10 });
    const welcomes: WelcomeInfo[] = [];
    client.on('welcome', (info) => welcomes.push(info));
    await stateOf(client, 'open');
    const id = client.clientId!;
    await b.client(id).send('d1');
    await until(() => seen.messages.length === 1, 2000, 'd1');

    network.set(false);
    target = b;
    a.clients.get(id)!.terminate();
    await stateOf(client, 'reconnecting');
    for (const text of ['d2', 'd3']) await a.client(id).send(text);
    network.set(true);
    await until(() => welcomes.length === 2, 3000, 'the resume');
    await b.client(id).send('d4');
    await until(() => seen.messages.length >= 4, 3000, 'd2..d4');
    await delay(100); // a duplicate would be here by now
    expect(texts(seen)).toEqual(['d1', 'd2', 'd3', 'd4']);
    expect(seen.messages.every((m) => m.meta.room === undefined)).toBe(true);
    expect(welcomes[1]).toMatchObject({ resumed: true, rooms: {}, direct: { recovered: true } });
    expect(client.rooms).toEqual([]);
  });
});
