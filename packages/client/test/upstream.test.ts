import { MemoryStateStore, type MessageInfo, type ScaledWebSocketServer } from '@wscale/core';
import { delay, until } from '@wscale/core/testing';
import { afterEach, describe, expect, it } from 'vitest';
import {
  type ClientError,
  DisconnectedError,
  MessageTooLargeError,
  QueueFullError,
  type WelcomeInfo,
} from '../src/index.js';
import { closeAll, openClient, stateOf } from './helpers/clients.js';
import { Cluster, switchableStore, urlOf } from './helpers/cluster.js';

/** What a client sends survives its connection: against real nodes on a memory broker. */

let cluster = new Cluster();
afterEach(async () => {
  await closeAll();
  await cluster.close();
  cluster = new Cluster();
});

/** Every message the nodes' application hears, with the node it came through. */
function hear(nodes: ScaledWebSocketServer[]) {
  const heard: Array<{ node: string; text: string; info: MessageInfo }> = [];
  for (const node of nodes) {
    node.on('connection', (client) => {
      client.on('message', (text, _binary, info) => {
        heard.push({ node: node.nodeId, text: String(text), info });
      });
    });
  }
  return heard;
}

describe('upstream delivery', () => {
  it('send() resolves once the server application has the message', async () => {
    const [node] = await cluster.start(1);
    const heard = hear([node!]);
    const { client } = openClient(urlOf(node!));
    await stateOf(client, 'open');
    await client.send('hello');
    expect(heard.map((h) => h.text)).toEqual(['hello']);
    expect(heard[0]!.info).toEqual({ id: `${client.clientId}:1`, redelivered: false });
  });

  it('refuses a message larger than the server takes, before sending it: the connection stays', async () => {
    const max = 4096;
    const [node] = await cluster.start(1, { maxPayload: max });
    const heard = hear([node!]);
    const { client } = openClient(urlOf(node!));
    const closes: number[] = [];
    client.on('close', ({ code }) => closes.push(code));
    await stateOf(client, 'open');
    // Whether a text is let through (then sent) or refused.
    const fits = (text: string) => {
      try {
        void client.send(text).catch(() => undefined);
        return true;
      } catch (error) {
        if (!(error instanceof MessageTooLargeError)) throw error;
        expect(error).toMatchObject({ code: 'MESSAGE_TOO_LARGE', maxBytes: max });
        expect(error.bytes).toBeGreaterThan(max);
        return false;
      }
    };
    expect(fits('x'.repeat(max))).toBe(false);
    // Characters JSON escapes, and characters of several bytes, count as they are written.
    expect(fits('\u0001'.repeat(700))).toBe(false); // 4200 bytes escaped
    expect(fits('é'.repeat(2100))).toBe(false); // 4200 bytes of UTF-8
    expect(() => client.send(new Uint8Array(max))).toThrow(MessageTooLargeError);
    await expect(client.request('y'.repeat(max))).rejects.toThrow(MessageTooLargeError);
    let longest = 'x'.repeat(max - 200);
    while (fits(`${longest}x`)) longest += 'x';
    await client.send('after');
    await until(() => heard.some((h) => h.text === 'after'), 2000, 'the last message');
    // Everything it let through was taken, up to within the envelope's numbers of the limit (it
    // counts a message as if its number were the highest, sent again).
    expect(heard.map((h) => h.text).slice(0, -1)).toEqual(
      Array.from({ length: longest.length - (max - 200) }, (_, i) => 'x'.repeat(max - 199 + i)),
    );
    expect(longest.length).toBeGreaterThan(max - 64);
    expect(closes).toEqual([]);
    expect(client.state).toBe('open');
  });

  it('refuses what it queued before the limit was known, once a welcome tells it, and sends the rest', async () => {
    const [node] = await cluster.start(1, { maxPayload: 1000 });
    const heard = hear([node!]);
    const { client } = openClient(urlOf(node!));
    expect(client.state).toBe('connecting');
    const sends = [client.send('small 1'), client.send('x'.repeat(5000)), client.send('small 2')];
    const outcomes = await Promise.allSettled(sends);
    expect(outcomes.map((outcome) => outcome.status)).toEqual([
      'fulfilled',
      'rejected',
      'fulfilled',
    ]);
    expect((outcomes[1] as PromiseRejectedResult).reason).toBeInstanceOf(MessageTooLargeError);
    expect(heard.map((h) => h.text)).toEqual(['small 1', 'small 2']);
    expect(client.state).toBe('open');
  });

  it('refuses what waits for a node whose limit is lower than the one it was sent under', async () => {
    const [a] = await cluster.start(1, { maxPayload: 4000 });
    // (`start` answers with every node of the cluster.)
    const b = (await cluster.start(1, { maxPayload: 1000 })).at(-1);
    const heard = hear([a!, b!]);
    let target = a!;
    let away: Promise<void> = Promise.resolve();
    const { client } = openClient(() => away.then(() => urlOf(target)), { backoffBaseMs: 10 });
    await stateOf(client, 'open');
    let back!: () => void;
    away = new Promise((resolve) => {
      back = resolve;
    });
    target = b!;
    a!.clients.get(client.clientId!)!.terminate();
    await until(() => client.state !== 'open', 3000, 'the drop');
    const large = client.send('x'.repeat(2500)); // fits a's limit, queued while away
    const small = client.send('small');
    back();
    await expect(large).rejects.toBeInstanceOf(MessageTooLargeError);
    await small;
    expect(heard.map((h) => h.text)).toEqual(['small']);
    expect(client.state).toBe('open');
  });

  it('does not send again what went out to a node whose limit was higher: its fate is unknown', async () => {
    // Node a's store view can fail: it hands the message on and records nothing, as if it died.
    const dying = switchableStore(cluster.stateStore);
    const [a] = await cluster.start(1, { maxPayload: 4000, stateStore: dying.stateStore });
    const b = (await cluster.start(1, { maxPayload: 1000 })).at(-1);
    const heard = hear([a!, b!]);
    let target = a!;
    const { client } = openClient(() => urlOf(target), { backoffBaseMs: 10 });
    await stateOf(client, 'open');
    const onA = a!.clients.get(client.clientId!)!;
    onA.on('message', () => {
      dying.down = true;
      onA.terminate();
    });
    target = b!;
    const large = client.send('x'.repeat(2500));
    await expect(large).rejects.toBeInstanceOf(DisconnectedError);
    await client.send('small');
    expect(heard.map((h) => [h.node, h.text.length])).toEqual([
      ['node-1', 2500],
      ['node-2', 5],
    ]);
  });

  it('maxUnacknowledged bounds what waits for acknowledgement, and frees as the server acknowledges', async () => {
    const [node] = await cluster.start(1);
    const heard = hear([node!]);
    const { client } = openClient(urlOf(node!), { maxUnacknowledged: 2 });
    expect(client.state).toBe('connecting');
    const waiting = [client.send('a'), client.send('b')]; // queued until the welcome
    expect(() => client.send('c')).toThrow(QueueFullError);
    expect(() => client.send('c')).toThrow('2 messages and requests wait for acknowledgement');
    await expect(client.request('r')).rejects.toThrow(QueueFullError);
    await stateOf(client, 'open');
    await Promise.all(waiting);
    await client.send('d');
    expect(heard.map((h) => h.text)).toEqual(['a', 'b', 'd']);
  });

  it('messages written while the connection dies arrive once each, in order, on the next node', async () => {
    const [a, b] = await cluster.start(2);
    const heard = hear([a!, b!]);
    let target = a!;
    const { client } = openClient(() => urlOf(target), { backoffBaseMs: 10 });
    await stateOf(client, 'open');
    const sent: Promise<void>[] = [];
    for (let n = 1; n <= 20; n++) sent.push(client.send(`m${n}`));
    // Node a drops the connection once it handed some on, before its receipt goes out; the client
    // comes back through the balancer on node b and sends again what was not acknowledged.
    await until(() => heard.length > 0, 2000, 'node a to hand some on');
    target = b!;
    a!.clients.get(client.clientId!)!.terminate();
    for (let n = 21; n <= 40; n++) sent.push(client.send(`m${n}`));
    await Promise.all(sent);
    await delay(100); // a late duplicate would show up by now
    const texts = heard.map((h) => h.text);
    expect(texts).toEqual(Array.from({ length: 40 }, (_, i) => `m${i + 1}`));
    expect(heard.every((h) => !h.info.redelivered)).toBe(true);
    expect(new Set(heard.map((h) => h.node)).size).toBe(2);
    expect(client.node).toBe('node-2');
  });

  it('a request in flight when the connection dies is answered after the resume', async () => {
    const [a, b] = await cluster.start(2);
    let target = a!;
    const { client } = openClient(() => urlOf(target), { backoffBaseMs: 10 });
    await stateOf(client, 'open');
    const reply = client.request('shout');
    target = b!;
    a!.clients.get(client.clientId!)!.terminate();
    expect(await reply).toBe('SHOUT');
    expect(client.node).toBe('node-2');
  });
});

describe('what went out when its session ends', () => {
  it('a session that could not be resumed sends nothing again: what went out rejects DisconnectedError, each message is heard once', async () => {
    const [node] = await cluster.start(1);
    const heard = hear([node!]);
    let away: Promise<void> = Promise.resolve();
    const { client, seen } = openClient(
      async () => {
        await away;
        return urlOf(node!);
      },
      { backoffBaseMs: 10 },
    );
    await stateOf(client, 'open');
    const first = client.clientId!;
    const outcomes: string[] = [];
    const sent = Array.from({ length: 20 }, (_, n) =>
      client.send(`m${n + 1}`).then(
        () => 'ok',
        (error: ClientError) => error.code,
      ),
    );
    const asked = client.request('shout').then(
      (reply) => `reply ${String(reply)}`,
      (error: ClientError) => error.code,
    );
    // The node drops the connection before its receipts; the session is gone when the client
    // comes back (expired, say, after a laptop slept).
    await until(() => heard.length > 0, 2000, 'the node to hand some on');
    let back!: () => void;
    away = new Promise((resolve) => {
      back = resolve;
    });
    node!.clients.get(first)!.terminate();
    await until(() => client.state !== 'open', 2000, 'the drop');
    await cluster.stateStore.delete(`wscale:session:${first}`);
    back();
    await until(() => seen.welcomes.length === 2, 3000, 'a new session');
    expect(seen.welcomes[1]).toMatchObject({ resumed: false });
    outcomes.push(...(await Promise.all(sent)), await asked);
    await client.send('after');
    await delay(100); // a late repeat would show up by now
    // Nothing went out twice: what the node heard before the drop, once, then the new session's.
    const texts = heard.map((h) => h.text);
    expect(new Set(texts).size).toBe(texts.length);
    expect(texts.at(-1)).toBe('after');
    expect(heard.at(-1)!.info).toEqual({ id: `${client.clientId}:1`, redelivered: false });
    // Each send settled: acknowledged, or told its outcome is unknown.
    expect(
      outcomes.every(
        (outcome) => ['ok', 'DISCONNECTED'].includes(outcome) || outcome === 'reply SHOUT',
      ),
    ).toBe(true);
    expect(outcomes).toContain('DISCONNECTED');
  });

  it('close() rejects a message that went out and was not acknowledged with DisconnectedError: the node may have it', async () => {
    const [node] = await cluster.start(1);
    const heard = hear([node!]);
    const { client } = openClient(urlOf(node!));
    await stateOf(client, 'open');
    const codeOf = (promise: Promise<unknown>) =>
      promise.then(
        () => 'ok',
        (error: ClientError) => error.code,
      );
    const bye = codeOf(client.send('bye')); // out at once, its receipt still to come
    void client.close();
    expect(await bye).toBe('DISCONNECTED');
    await until(() => heard.length === 1, 2000, 'the node to hear it');
    expect(heard[0]!.text).toBe('bye');
  });
});

describe('upstream delivery while the session store is down', () => {
  it('a session kept through a store outage numbers on: every message heard once, every id new', async () => {
    const outage = switchableStore(new MemoryStateStore({ ttlMs: 60_000 }));
    const [a, b] = await cluster.start(2, { stateStore: outage.stateStore });
    const heard = hear([a!, b!]);
    let target = a!;
    const welcomes: WelcomeInfo[] = [];
    const { client } = openClient(() => urlOf(target), { backoffBaseMs: 10 });
    client.on('welcome', (info) => welcomes.push(info));
    await stateOf(client, 'open');
    for (const text of ['m1', 'm2', 'm3']) await client.send(text);
    a!.clients.get(client.clientId!)!.terminate();
    await until(() => welcomes.length === 2, 3000, 'the resume');
    expect(welcomes[1]).toMatchObject({ resumed: true });

    // The store goes down; the next connection keeps the session but cannot read it.
    outage.down = true;
    target = b!;
    a!.clients.get(client.clientId!)!.terminate();
    await until(() => welcomes.length === 3, 3000, 'a welcome without the store');
    expect(welcomes[2]).toMatchObject({ resumed: false, reason: 'unavailable' });
    expect(welcomes[2]!.clientId).toBe(welcomes[0]!.clientId);
    for (const text of ['x1', 'x2', 'x3']) await client.send(text);

    // The store is back; the session resumes where its record left it.
    outage.down = false;
    target = a!;
    b!.clients.get(client.clientId!)!.terminate();
    await until(() => welcomes.length === 4, 3000, 'the resume after the outage');
    await client.send('x4');
    await delay(100);
    expect(heard.map((h) => h.text)).toEqual(['m1', 'm2', 'm3', 'x1', 'x2', 'x3', 'x4']);
    expect(new Set(heard.map((h) => h.info.id)).size).toBe(heard.length);
  });
});
