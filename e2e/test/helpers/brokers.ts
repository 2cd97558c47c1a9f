import {
  RedisServer,
  redisAvailable,
  type SingleNats,
  skipWithoutNats,
  startNatsServer,
} from '@wscale/test-support';
import { afterAll, beforeAll, describe } from 'vitest';

/** The broker a block of node-process tests runs on, started for the block. */
export interface BrokerUnderTest {
  /** `'redis'` or `'nats'`: a prefix for node ids and titles. */
  readonly name: 'redis' | 'nats';
  /** The env a node process needs to reach the broker; call it inside tests and hooks. */
  env(): Record<string, string>;
  /** The Redis server on Redis, `undefined` on NATS; call it inside tests and hooks. */
  redis(): RedisServer | undefined;
}

/**
 * Declares `body` twice, as `"<title>, on Redis"` and `"<title>, on NATS"`, each with a server of
 * its own started before and stopped after the block; a block is skipped when its server is not
 * installed.
 */
export function describeOnEachBroker(title: string, body: (broker: BrokerUnderTest) => void): void {
  describe.skipIf(!redisAvailable())(`${title}, on Redis`, () => {
    let redis: RedisServer;
    beforeAll(async () => {
      redis = await RedisServer.launch();
    });
    afterAll(() => redis.destroy());
    body({
      name: 'redis',
      env: () => ({ BROKER: 'redis', REDIS_URL: `redis://127.0.0.1:${redis.port}` }),
      redis: () => redis,
    });
  });

  describe.skipIf(skipWithoutNats())(`${title}, on NATS`, () => {
    let nats: SingleNats;
    beforeAll(async () => {
      nats = await startNatsServer();
    });
    afterAll(() => nats.close());
    body({
      name: 'nats',
      env: () => ({ BROKER: 'nats', NATS_URL: nats.server.url }),
      redis: () => undefined,
    });
  });
}
