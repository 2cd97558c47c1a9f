import { ScaledWebSocketServer } from '@wscale/core';
import { RedisBroker } from '@wscale/redis';
import { describeRedis, RedisServer } from '@wscale/test-support';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { standalone } from './helpers/clients.js';

/** A node on `server`'s Redis, started; closing it closes its broker too. */
async function startNode(server: RedisServer, nodeId: string) {
  const broker = new RedisBroker({ redis: standalone(server) });
  const wss = new ScaledWebSocketServer({ port: 0, host: '127.0.0.1', nodeId, broker });
  wss.on('error', () => undefined);
  await wss.ready();
  return Object.assign(wss, {
    stop: async () => {
      await wss.close();
      await broker.close();
    },
  });
}

describeRedis('a node joining a cluster on Redis', () => {
  let server: RedisServer;
  beforeAll(async () => {
    server = await RedisServer.launch();
  });
  afterAll(() => server?.destroy());

  it('knows the nodes already running once ready: a query made at once asks every one of them', async () => {
    const running = [await startNode(server, 'running-1'), await startNode(server, 'running-2')];
    const sockets: WebSocket[] = [];
    try {
      for (const node of running) {
        const joined = new Promise<void>((resolve) => {
          node.once('connection', (client) => void client.join('room').then(resolve));
        });
        const socket = new WebSocket(`ws://127.0.0.1:${node.address()!.port}/`);
        sockets.push(socket);
        await joined;
      }
      for (let round = 1; round <= 5; round++) {
        const newcomer = await startNode(server, `newcomer-${round}`);
        try {
          expect([...newcomer.nodes].sort()).toEqual(['running-1', 'running-2']);
          const { clients, missing } = await newcomer.fetchClients('room');
          expect(missing).toEqual([]);
          expect(clients.map((client) => client.nodeId).sort()).toEqual(['running-1', 'running-2']);
        } finally {
          await newcomer.stop();
        }
      }
    } finally {
      for (const socket of sockets) socket.terminate();
      await Promise.all(running.map((node) => node.stop()));
    }
  });
});
