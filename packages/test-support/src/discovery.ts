import { type Broker, ScaledWebSocketServer } from '@wscale/core';
import { expect } from 'vitest';
import { WebSocket } from 'ws';

/**
 * Two nodes run with a client each in `room`; five newcomers start one after another, each on a
 * broker of its own from `broker()`: once ready, each must know both running nodes, and a query
 * made at once must ask (and hear from) both.
 */
export async function expectRunningNodesKnownOnReady(
  broker: () => Broker & { close(): Promise<void> },
): Promise<void> {
  const startNode = async (nodeId: string) => {
    const own = broker();
    const wss = new ScaledWebSocketServer({ port: 0, host: '127.0.0.1', nodeId, broker: own });
    wss.on('error', () => undefined);
    await wss.ready();
    return Object.assign(wss, {
      stop: async () => {
        await wss.close();
        await own.close();
      },
    });
  };
  const running = [await startNode('running-1'), await startNode('running-2')];
  const sockets: WebSocket[] = [];
  try {
    for (const node of running) {
      const joined = new Promise<void>((resolve) => {
        node.once('connection', (client) => void client.join('room').then(resolve));
      });
      sockets.push(new WebSocket(`ws://127.0.0.1:${node.address()!.port}/`));
      await joined;
    }
    for (let round = 1; round <= 5; round++) {
      const newcomer = await startNode(`newcomer-${round}`);
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
}
