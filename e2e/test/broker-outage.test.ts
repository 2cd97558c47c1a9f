import type { Broker, BrokerStatus, ScaledWebSocketServer } from '@wscale/core';
import { ScaledWebSocketServer as Server } from '@wscale/core';
import { until } from '@wscale/core/testing';
import { NatsBroker } from '@wscale/nats';
import { RedisBroker } from '@wscale/redis';
import {
  RedisServer,
  redisAvailable,
  type SingleNats,
  skipWithoutNats,
  startNatsServer,
} from '@wscale/test-support';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';

/** A raw client of a node, in room "live". */
async function member(server: ScaledWebSocketServer) {
  const received: string[] = [];
  const joined = new Promise<void>((resolve) => {
    server.once('connection', (client) => void client.join('live').then(resolve));
  });
  const ws = new WebSocket(`ws://127.0.0.1:${server.address()!.port}/`);
  ws.on('message', (data) => received.push(String(data)));
  await joined;
  return { ws, received };
}

/**
 * The broker service dies while a room is being broadcast to, then comes back: the nodes stay up,
 * keep serving their own clients, report the outage, and broadcasts across nodes flow again.
 */
function outage(
  makeBroker: () => Broker,
  service: { stop(): Promise<void>; start(): Promise<void> },
) {
  it('keeps the nodes up through a broker outage and flows again after it', async () => {
    const brokers = [makeBroker(), makeBroker()];
    const nodes = brokers.map(
      (broker, i) => new Server({ port: 0, host: '127.0.0.1', nodeId: `n${i}`, broker }),
    );
    const statuses: BrokerStatus[] = [];
    nodes[1]!.on('brokerStatus', (status) => statuses.push(status));
    for (const node of nodes) node.on('error', () => undefined);
    await Promise.all(nodes.map((node) => node.ready()));
    const [a, b] = [await member(nodes[0]!), await member(nodes[1]!)];
    try {
      await nodes[0]!.to('live').send('before');
      await until(() => b.received.includes('before'), 5000, 'cross-node delivery');

      await service.stop();
      await until(() => statuses.some((s) => s !== 'ready'), 15_000, 'the outage to be reported');
      // The node still serves its own clients while the broker is away.
      const during = nodes[1]!.to('live').send('local during outage');
      await until(() => b.received.includes('local during outage'), 2000, 'local delivery');

      await service.start();
      await until(() => brokers.every((br) => br.status === 'ready'), 30_000, 'ready again');
      // Sent while the broker was away, it waited in the bounded queue and went out: it resolves.
      await expect(during).resolves.toBeUndefined();
      await until(
        async () => {
          await nodes[0]!.to('live').send('after');
          return b.received.includes('after');
        },
        15_000,
        'cross-node delivery after the outage',
      );
      expect(a.received).toContain('after');
      expect(nodes.every((node) => node.stats.connections === 1)).toBe(true);
    } finally {
      a.ws.terminate();
      b.ws.terminate();
      await Promise.all(nodes.map((node) => node.close()));
    }
  }, 90_000);
}

describe.skipIf(!redisAvailable())('Redis outage under ScaledWebSocketServer', () => {
  let redis: RedisServer;
  const brokers: Broker[] = [];
  beforeAll(async () => {
    redis = await RedisServer.launch();
  });
  afterAll(async () => {
    for (const broker of brokers) await broker.close();
    await redis.destroy();
  });
  outage(
    () => {
      const broker = new RedisBroker({ redis: `redis://127.0.0.1:${redis.port}` });
      brokers.push(broker);
      return broker;
    },
    { stop: () => redis.stop(), start: () => redis.start() },
  );
});

describe.skipIf(skipWithoutNats())('NATS outage under ScaledWebSocketServer', () => {
  let nats: SingleNats;
  const brokers: Broker[] = [];
  beforeAll(async () => {
    nats = await startNatsServer();
  });
  afterAll(async () => {
    for (const broker of brokers) await broker.close();
    await nats.close();
  });
  outage(
    () => {
      const broker = new NatsBroker({ servers: nats.server.url });
      brokers.push(broker);
      return broker;
    },
    { stop: () => nats.server.kill(), start: () => nats.server.start() },
  );
});
