import { until } from '@wscale/core/testing';
import { RedisHistory, RedisStateStore } from '@wscale/redis';
import {
  type Closers,
  describeRedis,
  leftSession,
  outageClient,
  outageNode,
  RedisServer,
} from '@wscale/test-support';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { standalone } from './helpers/clients.js';

/**
 * A Redis that restarts with its data (`appendfsync always`) still starts a new epoch of every
 * room's log (see the package README): a client that comes back across the restart is given
 * what the new log holds from its start, as a member that stayed is.
 */
describeRedis('a resume across a restart of a Redis that keeps its data', () => {
  let redis: RedisServer;
  const closers: Closers = [];
  beforeAll(async () => {
    redis = await RedisServer.launch(() => ['--appendonly', 'yes', '--appendfsync', 'always']);
  });
  afterEach(async () => {
    for (const close of closers.splice(0).reverse()) await close();
  });
  afterAll(() => redis?.destroy());

  it('replays the new log from its start to a client that was away, as the members that stayed were given it', async () => {
    const stateStore = new RedisStateStore({ redis: standalone(redis) });
    const history = new RedisHistory({ redis: standalone(redis) });
    const node = await outageNode(stateStore, history, closers);
    const stayed = outageClient(node, closers);
    await until(() => stayed.client.rooms.includes('feed'), 5000, 'the member that stays');
    const { saved } = await leftSession(node, closers, 'before');
    await until(() => stayed.texts.length === 1, 5000, 'the first message');

    await redis.stop();
    await redis.start();
    for (const text of ['after 1', 'after 2']) await node.to('feed').send(text);
    await until(() => stayed.texts.length === 3, 10_000, 'the new log at the member that stayed');
    expect(stayed.texts).toEqual(['before', 'after 1', 'after 2']);

    const back = outageClient(node, closers, saved);
    await until(() => back.texts.length === 2, 10_000, 'the new log replayed');
    expect(back.welcomes[0]).toMatchObject({ resumed: true });
    expect(back.welcomes[0]!.rooms.feed).toMatchObject({
      recovered: false,
      reason: 'epoch-changed',
    });
    await node.to('feed').send('after 3');
    await until(() => back.texts.length === 3, 5000, 'the next message');
    expect(back.texts).toEqual(['after 1', 'after 2', 'after 3']);
  });
});
