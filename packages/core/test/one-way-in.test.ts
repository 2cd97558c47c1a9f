import { WscaleClient } from '@wscale/client';
import { MemoryStateStore, type ScaledWebSocketServer } from '@wscale/core';
import { until } from '@wscale/core/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { TestCluster } from './helpers/nodes.js';
import { V1Peer } from './helpers/v1-client.js';

const cluster = new TestCluster();
afterEach(() => cluster.closeAll());

/** Nodes sharing one state store and secret, so a session resumes on any of them. */
function startNodes(count: number): Promise<ScaledWebSocketServer[]> {
  return cluster.start(count, {
    stateStore: new MemoryStateStore({ ttlMs: 30_000 }),
    sessionSecret: 'a-test-secret-of-enough-bytes',
  });
}

/** What the obvious application code hears: one `connection` handler, one `message` listener. */
function listen(node: ScaledWebSocketServer) {
  const heard: Array<{ client: string; text: string; resumed: boolean }> = [];
  node.on('connection', (client) => {
    client.on('message', (text) => {
      heard.push({ client: client.id, text: String(text), resumed: client.resumed });
    });
  });
  return heard;
}

describe('one way in: every client, new or resumed, comes through `connection`', () => {
  it('a resumed wscale.v1 client reaches the connection handler, and what it sends is heard', async () => {
    const [a, b] = await startNodes(2);
    listen(a!);
    const heardOnB = listen(b!);
    const first = await V1Peer.connect(a!);
    expect(a!.clients.get(first.welcome.client)?.resumed).toBe(false);
    first.peer.ws.terminate();
    await until(() => a!.clients.size === 0, 2000, 'node a to see the drop');

    const second = await V1Peer.connect(b!, { session: first.welcome.session });
    expect(second.welcome.resumed).toBe(true);
    const resumed = b!.clients.get(first.welcome.client)!;
    expect(resumed.resumed).toBe(true);
    expect(resumed.recovery).toEqual({ recovered: true, rooms: {} });

    second.peer.send({ t: 'msg', d: 'typed after the resume' });
    await until(() => heardOnB.length === 1, 2000, 'the message on node b');
    expect(heardOnB).toEqual([
      { client: first.welcome.client, text: 'typed after the resume', resumed: true },
    ]);
  });

  it('messages sent while the connection handler awaits reach the listener it attaches, in order', async () => {
    const [node] = await startNodes(1);
    let release!: () => void;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const heard: string[] = [];
    node!.on('connection', async (client) => {
      await gate; // e.g. a join or a database lookup
      client.on('message', (text) => heard.push(String(text)));
    });

    const raw = await cluster.connect(node!);
    for (const n of [1, 2, 3]) raw.ws.send(`raw ${n}`);
    const { peer } = await V1Peer.connect(node!);
    for (const n of [1, 2, 3]) peer.send({ t: 'msg', d: `v1 ${n}` });
    // Both clients' frames are on the node before anyone listens.
    peer.send({ t: 'ping' });
    await peer.next('pong');
    expect(heard).toEqual([]);

    release();
    await until(() => heard.length === 6, 2000, 'six messages');
    expect(heard.filter((text) => text.startsWith('raw'))).toEqual(['raw 1', 'raw 2', 'raw 3']);
    expect(heard.filter((text) => text.startsWith('v1'))).toEqual(['v1 1', 'v1 2', 'v1 3']);

    raw.ws.send('raw 4');
    await until(() => heard.length === 7, 2000, 'a live message');
    expect(heard.at(-1)).toBe('raw 4');
  });

  it('more messages than are kept while the handler awaits: none acknowledged and dropped, all heard in order', async () => {
    const [node] = await startNodes(1);
    let release!: () => void;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const heard: Array<{ text: string; redelivered: boolean }> = [];
    node!.on('connection', async (client) => {
      await gate;
      client.on('message', (text, _binary, { redelivered }) => {
        heard.push({ text: String(text), redelivered });
      });
    });
    const client = new WscaleClient(`ws://127.0.0.1:${node!.address()!.port}/`, {
      WebSocket,
      backoffBaseMs: 20,
      network: false,
    });
    const closes: number[] = [];
    client.on('close', ({ code }) => closes.push(code));
    try {
      await until(() => client.state === 'open', 2000, 'the client open');
      // What a resume sends at once: more than the node keeps for a listener still to come.
      const texts = Array.from({ length: 400 }, (_, i) => `m${i + 1}`);
      const sent = texts.map((text) => client.send(text));
      // The node takes what it keeps and closes (1013) rather than acknowledge one it would drop;
      // the client sends the rest again on its next connection.
      await until(() => closes.includes(1013) && client.state === 'open', 5000, 'the reconnect');
      release();
      await Promise.all(sent);
      await until(() => heard.length === texts.length, 5000, 'every message');
      expect(heard.map((h) => h.text)).toEqual(texts);
      expect(heard.filter((h) => h.redelivered)).toEqual([]);
    } finally {
      await client.close();
    }
  });

  it('keeps at most some 4 MiB for a listener still to come, however large the messages', async () => {
    const [node] = await startNodes(1);
    let release!: () => void;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    let heardBytes = 0;
    let heard = 0;
    node!.on('connection', async (client) => {
      await gate;
      client.on('message', (data) => {
        heard++;
        heardBytes += data.length;
      });
    });
    const raw = await cluster.connect(node!);
    const big = 'x'.repeat(1_000_000);
    for (let i = 0; i < 12; i++) raw.ws.send(big);
    raw.ws.send('last');
    // The node has read them all once it answers a ping sent after them.
    raw.ws.ping();
    await new Promise((resolve) => raw.ws.once('pong', resolve));
    release();
    await until(() => heard > 0, 2000, 'the kept messages');
    await new Promise((resolve) => setImmediate(resolve));
    expect(heardBytes).toBeLessThanOrEqual(4 * 1024 * 1024 + big.length);
    expect(heard).toBeLessThan(12);
  });
});
