import type { AddressInfo } from 'node:net';
import { ScaledWebSocketServer } from '@wscale/core';
import { RedisBroker } from '@wscale/redis';
import { RedisServer, redisAvailable } from '@wscale/test-support';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { createApp } from '../src/app.js';

/** Two wscale nodes on a real Redis, and the publishing service on the same Redis. */
describe.skipIf(!redisAvailable())('a service that publishes without holding sockets', () => {
  let redis: RedisServer;
  const brokers: RedisBroker[] = [];
  const nodes: ScaledWebSocketServer[] = [];
  let base = '';
  let close: () => Promise<void> = async () => undefined;

  beforeAll(async () => {
    redis = await RedisServer.launch();
    const broker = () => {
      const created = new RedisBroker({ redis: `redis://127.0.0.1:${redis.port}` });
      brokers.push(created);
      return created;
    };
    for (const nodeId of ['node-1', 'node-2']) {
      const node = new ScaledWebSocketServer({
        port: 0,
        host: '127.0.0.1',
        nodeId,
        broker: broker(),
      });
      node.on('connection', async (client) => {
        await client.join('lobby');
        client.send(JSON.stringify({ type: 'hello', id: client.id }));
      });
      nodes.push(node);
    }
    await Promise.all(nodes.map((node) => node.ready()));
    const { app } = createApp({ broker: broker() });
    const server = app.listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    close = () => new Promise((resolve) => server.close(() => resolve()));
  });

  afterAll(async () => {
    await close();
    await Promise.all(nodes.map((node) => node.close()));
    await Promise.all(brokers.map((broker) => broker.close()));
    await redis?.destroy();
  });

  /** A client of one node: its id, then everything it receives. */
  async function connect(node: ScaledWebSocketServer) {
    const ws = new WebSocket(`ws://127.0.0.1:${(node.address() as AddressInfo).port}/`);
    const received: Array<{ type: string; text?: string }> = [];
    const id = await new Promise<string>((resolve) => {
      ws.on('message', (data) => {
        const message = JSON.parse(String(data));
        if (message.type === 'hello') resolve(message.id);
        else received.push(message);
      });
    });
    return { ws, id, received };
  }

  const post = (path: string, body: unknown) =>
    fetch(`${base}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });

  it('POST to a room reaches its members on every node; POST to a client reaches that one', async () => {
    const [a, b] = [await connect(nodes[0]!), await connect(nodes[1]!)];
    try {
      expect((await post('/rooms/lobby/messages', { text: 'deploy finished' })).status).toBe(202);
      expect(
        (await post(`/clients/${b.id}/messages`, { text: 'your report is ready' })).status,
      ).toBe(202);
      const deadline = Date.now() + 5000;
      while (a.received.length + b.received.length < 3 && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      await new Promise((resolve) => setTimeout(resolve, 200)); // nothing more should come
      expect(a.received.map((m) => m.text)).toEqual(['deploy finished']);
      expect(b.received.map((m) => m.text)).toEqual(['deploy finished', 'your report is ready']);
      expect((await post('/rooms/no%20spaces/messages', { text: 'x' })).status).toBe(400);
    } finally {
      a.ws.terminate();
      b.ws.terminate();
    }
  });
});
