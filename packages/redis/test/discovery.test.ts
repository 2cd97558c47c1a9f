import { RedisBroker } from '@wscale/redis';
import { describeRedis, expectRunningNodesKnownOnReady, RedisServer } from '@wscale/test-support';
import { afterAll, beforeAll, it } from 'vitest';
import { standalone } from './helpers/clients.js';

describeRedis('a node joining a cluster on Redis', () => {
  let server: RedisServer;
  beforeAll(async () => {
    server = await RedisServer.launch();
  });
  afterAll(() => server?.destroy());

  it('knows the nodes already running once ready: a query made at once asks every one of them', () =>
    expectRunningNodesKnownOnReady(() => new RedisBroker({ redis: standalone(server) })));
});
