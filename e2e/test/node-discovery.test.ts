import { ScaledWebSocketServer } from '@wscale/core';
import { until } from '@wscale/core/testing';
import { RedisBroker } from '@wscale/redis';
import { RedisServer, redisAvailable } from '@wscale/test-support';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

/** Far longer than the test: only the answers to a node's hello can make the nodes known. */
const HEARTBEAT_MS = 60_000;

/**
 * What troubleshooting.md tells a user to check: after `ready()`, the other nodes answer the new
 * node's hello within a broker round trip (each answer a `nodeUp`), without waiting for heartbeats.
 */
describe.skipIf(!redisAvailable())('nodes finding each other on Redis', () => {
  let redis: RedisServer;
  beforeAll(async () => {
    redis = await RedisServer.launch();
  });
  afterAll(() => redis?.destroy());

  it('lists the other nodes within a broker round trip of ready(), each with nodeUp', async () => {
    const brokers: RedisBroker[] = [];
    const start = (nodeId: string) => {
      const broker = new RedisBroker({ redis: redis.url });
      brokers.push(broker);
      const node = new ScaledWebSocketServer({
        noServer: true,
        nodeId,
        broker,
        nodeHeartbeatMs: HEARTBEAT_MS,
      });
      const up: string[] = [];
      node.on('nodeUp', (id) => up.push(id));
      return { node, up };
    };
    const first = start('first');
    const second = start('second');
    try {
      await first.node.ready();
      await second.node.ready();
      await until(
        () => first.node.nodes.includes('second') && second.node.nodes.includes('first'),
        2000,
        'the nodes to know each other',
      );
      expect(first.up).toEqual(['second']);
      expect(second.up).toEqual(['first']);
    } finally {
      await Promise.all([first.node.close(), second.node.close()]);
      await Promise.all(brokers.map((broker) => broker.close()));
    }
  });
});
