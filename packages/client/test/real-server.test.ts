import type { ScaledWebSocketServer } from '@wscale/core';
import { delay, until } from '@wscale/core/testing';
import { settle, WireTap } from '@wscale/test-support';
import { afterEach, describe, expect, it } from 'vitest';
import { ServerError, type WelcomeInfo } from '../src/index.js';
import { closeAll, openClient, stateOf, texts } from './helpers/clients.js';
import { Cluster, urlOf } from './helpers/cluster.js';
import { FakeNetwork } from './helpers/fake-network.js';

/** End to end: the client against real `ScaledWebSocketServer` nodes on a memory broker. */

let cluster = new Cluster();
afterEach(async () => {
  await closeAll();
  await cluster.close();
  cluster = new Cluster();
});

const offsets = (seen: { messages: Array<{ meta: { offset?: number } }> }) =>
  seen.messages.map((m) => m.meta.offset);
const range = (from: number, to: number) =>
  Array.from({ length: to - from + 1 }, (_, i) => from + i);

describe('against ScaledWebSocketServer', () => {
  it('resumes on another node after a dropped connection and gets what it missed exactly once, in order', async () => {
    const [a, b] = (await cluster.start(2)) as [ScaledWebSocketServer, ScaledWebSocketServer];
    let target = a;
    const network = new FakeNetwork();
    const tap = new WireTap();
    const { client, seen } = openClient(() => urlOf(target), {
      network,
      backoffBaseMs: 10,
      WebSocket: tap.WebSocket,
    });
    const resumes: WelcomeInfo[] = [];
    client.on('resume', (info) => resumes.push(info));
    await stateOf(client, 'open');
    expect(seen.welcomes[0]).toMatchObject({ resumed: false, reason: 'new', node: 'node-1' });
    await client.join('chat');
    for (const n of [1, 2, 3]) await b.to('chat').send(`m${n}`);
    await until(() => seen.messages.length === 3, 3000, 'm1..m3');

    // The connection dies (the node drops it) while the device is offline; the load balancer
    // will send the client to node 2 next time.
    network.set(false);
    target = b;
    const clientId = client.clientId!;
    a.clients.get(clientId)!.terminate();
    await stateOf(client, 'reconnecting');
    await until(() => a.clients.size === 0, 3000, 'node 1 to see the drop');
    for (const n of [4, 5, 6]) await a.to('chat').send(`m${n}`);

    network.set(true);
    await until(() => resumes.length === 1, 3000, 'the resume');
    await b.to('chat').send('m7');
    await settle(() => seen.messages.length >= 7, 3000, 'm4..m7');
    expect(resumes[0]).toMatchObject({
      resumed: true,
      clientId,
      node: 'node-2',
      rooms: { chat: { recovered: true, o: 6 } },
    });
    expect(client.node).toBe('node-2');
    expect(client.clientId).toBe(clientId);
    // What the server sent, before the client dropped anything it had seen: no offset twice.
    expect(tap.offsets('chat')).toEqual(range(1, 7));
    expect(texts(seen)).toEqual(range(1, 7).map((n) => `m${n}`));
    expect(offsets(seen)).toEqual(range(1, 7));
    expect(seen.messages.every((m) => m.meta.room === 'chat')).toBe(true);
  });

  it('moves off a draining node at once and loses nothing of a room written to all along', async () => {
    const [a, b] = (await cluster.start(2)) as [ScaledWebSocketServer, ScaledWebSocketServer];
    let target = a;
    const tap = new WireTap();
    const { client, seen } = openClient(() => urlOf(target), {
      restartJitterMs: 30,
      backoffBaseMs: 30,
      WebSocket: tap.WebSocket,
    });
    await stateOf(client, 'open');
    await client.join('chat');
    target = b;

    let sent = 0;
    let sending = true;
    const sender = (async () => {
      while (sending) {
        await b.to('chat').send(`m${++sent}`);
        await delay(3);
      }
    })();
    try {
      await until(() => seen.messages.length >= 5, 3000, 'live messages');
      cluster.nodes.splice(cluster.nodes.indexOf(a), 1);
      await a.close(); // closes its clients with 1012
      await until(() => client.node === 'node-2' && client.state === 'open', 3000, 'the move');
      const moved = sent;
      await until(() => seen.messages.length >= moved + 5, 3000, 'messages after the move');
    } finally {
      sending = false;
      await sender;
    }
    await settle(() => seen.messages.length >= sent, 3000, 'every message');
    expect(tap.offsets('chat')).toEqual(range(1, sent));
    expect(seen.closes[0]).toMatchObject({ code: 1012, reconnecting: true });
    expect(seen.welcomes.at(-1)).toMatchObject({
      resumed: true,
      rooms: { chat: { recovered: true } },
    });
    expect(texts(seen)).toEqual(range(1, sent).map((n) => `m${n}`));
    expect(offsets(seen)).toEqual(range(1, sent));
  });

  it('a drain lets the handlers under way finish: a message sent before reaches its room, a request its reply, and what is sent meanwhile goes to the next node', async () => {
    let release!: () => void;
    const slow = new Promise<void>((resolve) => {
      release = resolve;
    });
    let asked = 0;
    const [a, b] = (await cluster.start(2, {
      onRequest: async (_client, data) => {
        asked++;
        await slow; // a payment provider taking its time
        return `done ${data}`;
      },
    })) as [ScaledWebSocketServer, ScaledWebSocketServer];
    const handled: string[] = [];
    for (const node of [a, b]) {
      node.on('connection', (client) => {
        client.on('message', async (text) => {
          handled.push(`${node.nodeId} ${text}`);
          if (text === 'before') await slow; // a database write taking its time
          await node.to('chat-room').send(`relayed ${text}`);
        });
      });
    }
    let target = a;
    const { client: writer } = openClient(() => urlOf(target), {
      restartJitterMs: 30,
      backoffBaseMs: 30,
    });
    const { client: reader, seen } = openClient(urlOf(b));
    await Promise.all([stateOf(writer, 'open'), stateOf(reader, 'open')]);
    await reader.join('chat-room');

    await writer.send('before'); // taken by node-1's handler, which is still at it
    const reply = writer.request('question');
    await until(() => asked === 1, 3000, 'the request to reach its handler');
    target = b;
    const draining = a.close();
    const framesIn = a.stats.messagesIn;
    const during = writer.send('during the drain');
    await until(() => a.stats.messagesIn > framesIn, 3000, 'the drained node to read it');
    release();

    expect(await reply).toBe('done question');
    await during;
    await draining;
    cluster.nodes.splice(cluster.nodes.indexOf(a), 1);
    await settle(() => seen.messages.length >= 2, 3000, 'both relayed');
    expect(texts(seen).sort()).toEqual(['relayed before', 'relayed during the drain']);
    expect(handled).toEqual(['node-1 before', 'node-2 during the drain']);
    expect(asked).toBe(1);
  });

  it('requests, joins and binary frames', async () => {
    const [a, b] = (await cluster.start(2)) as [ScaledWebSocketServer, ScaledWebSocketServer];
    const { client, seen } = openClient(urlOf(a), { pingIntervalMs: 20, pongTimeoutMs: 200 });
    expect(await client.request('hello')).toBe('HELLO');
    expect(await client.request(Uint8Array.from([1, 2, 3]))).toEqual(Uint8Array.from([3, 2, 1]));
    await expect(client.request('boom')).rejects.toMatchObject({ code: 'HANDLER_FAILED' });
    const refused = await client.join('secret').catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(ServerError);
    expect(refused).toMatchObject({ code: 'FORBIDDEN' });

    await client.join('chat-x');
    expect(client.position('chat-x')).toEqual({ offset: 0, epoch: expect.any(String) });
    await b.to('chat-x').send(Buffer.from([7, 8]));
    await b.client(client.clientId!).send('direct');
    await until(() => seen.messages.length === 2, 3000, 'two messages');
    expect(seen.messages[0]!.data).toEqual(Uint8Array.from([7, 8]));
    expect(seen.messages[0]!.meta).toMatchObject({ room: 'chat-x', offset: 1 });
    expect(seen.messages[1]).toEqual({ data: 'direct', meta: {} });

    const got: Array<string | Buffer> = [];
    a.clients.get(client.clientId!)!.on('message', (data) => got.push(data));
    client.send('text up');
    client.send(Uint8Array.from([5]));
    await until(() => got.length === 2, 3000, 'messages up');
    expect(got[0]).toBe('text up');
    expect([...(got[1] as Buffer)]).toEqual([5]);

    await client.leave('chat-x');
    expect(client.rooms).toEqual([]);
    expect(seen.left).toEqual(['chat-x']);
    // Pings every 20 ms were answered all along.
    expect(seen.closes).toEqual([]);
  });

  it('a session resumed elsewhere closes the older client with 4409, which stays closed', async () => {
    const [a, b] = (await cluster.start(2)) as [ScaledWebSocketServer, ScaledWebSocketServer];
    const first = openClient(urlOf(a), { backoffBaseMs: 10 });
    await stateOf(first.client, 'open');
    await first.client.join('chat');
    const second = openClient(urlOf(b), { resume: first.client.snapshot()! });
    await stateOf(second.client, 'open');
    expect(second.client.clientId).toBe(first.client.clientId);
    await stateOf(first.client, 'closed');
    expect(first.seen.closes).toEqual([
      { code: 4409, reason: expect.any(String), reconnecting: false },
    ]);
    await delay(100);
    expect(first.client.state).toBe('closed');
    expect(second.client.state).toBe('open');
    expect(second.client.rooms).toEqual(['chat']);
  });
});
