import { ScaledWebSocketServer } from '@wscale/core';
import { until } from '@wscale/core/testing';
import { RedisBroker, RedisHistory, RedisStateStore } from '@wscale/redis';
import { describeRedis, RedisServer } from '@wscale/test-support';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { standalone } from './helpers/clients.js';

/** A node with its broker, state store and history on one Redis, not started. */
function nodeOn(server: RedisServer) {
  const redis = standalone(server);
  const broker = new RedisBroker({ redis });
  const stateStore = new RedisStateStore({ redis });
  const history = new RedisHistory({ redis });
  const wss = new ScaledWebSocketServer({
    port: 0,
    host: '127.0.0.1',
    broker,
    stateStore,
    sessionSecret: 'a secret of sixteen bytes or more',
    history: [{ rooms: 'chat:*', store: history }],
  });
  return { broker, stateStore, history, wss };
}

describeRedis('wss.health() on Redis', () => {
  let server: RedisServer;
  beforeAll(async () => {
    server = await RedisServer.launch();
  });
  afterAll(() => server?.destroy());

  it('reports the broker, state store and history down while Redis is, and draining first', async () => {
    const { broker, stateStore, history, wss } = nodeOn(server);
    try {
      expect((await wss.health()).ready).toBe(false); // not started yet
      await wss.ready();
      expect(await wss.health()).toEqual({
        ready: true,
        listening: true,
        draining: false,
        broker: 'ready',
        stateStore: 'ok',
        history: 'ok',
        nodes: [],
        connections: 0,
      });

      await server.stop();
      await until(() => wss.brokerStatus !== 'ready', 5000, 'the broker noticing');
      const down = await wss.health({ timeoutMs: 500 });
      expect(down).toMatchObject({ stateStore: 'down', history: 'down' });
      expect(down.broker).not.toBe('ready');
      // Shared stores down fail every node alike: the node stays ready for its clients.
      expect(down.ready).toBe(true);

      await server.start();
      await until(async () => (await wss.health()).stateStore === 'ok', 10_000, 'store back');
      await until(() => wss.brokerStatus === 'ready', 10_000, 'broker back');

      const closed = wss.close();
      expect(await wss.health()).toMatchObject({ ready: false, draining: true });
      await closed;
    } finally {
      await wss.close();
      await Promise.all([broker.close(), stateStore.close(), history.close()]);
    }
  });

  it('reports the stores down while Redis answers reads but refuses writes (out of memory)', async () => {
    const admin = new Redis(standalone(server));
    const { broker, stateStore, history, wss } = nodeOn(server);
    try {
      await wss.ready();
      expect(await wss.health()).toMatchObject({ stateStore: 'ok', history: 'ok' });
      // No session could be saved and no message kept, though every read still answers.
      await admin.config('SET', 'maxmemory-policy', 'noeviction');
      await admin.config('SET', 'maxmemory', '1');
      await expect(admin.set('wscale-test:write', '1')).rejects.toThrow(/OOM/);
      const full = await wss.health();
      expect(full).toMatchObject({ broker: 'ready', stateStore: 'down', history: 'down' });
      await admin.config('SET', 'maxmemory', '0');
      expect(await wss.health()).toMatchObject({ stateStore: 'ok', history: 'ok' });
    } finally {
      await admin.config('SET', 'maxmemory', '0');
      admin.disconnect();
      await wss.close();
      await Promise.all([broker.close(), stateStore.close(), history.close()]);
    }
  });

  it('answers within timeoutMs with the stores down while Redis hangs, and ok once it answers', async () => {
    const redis = standalone(server);
    // Longer than the whole test: only health()'s own timeout can answer in time.
    const commandTimeoutMs = 30_000;
    const stateStore = new RedisStateStore({ redis, commandTimeoutMs });
    const history = new RedisHistory({ redis, commandTimeoutMs });
    const wss = new ScaledWebSocketServer({
      port: 0,
      host: '127.0.0.1',
      stateStore,
      sessionSecret: 'a secret of sixteen bytes or more',
      history: [{ rooms: 'chat:*', store: history }],
    });
    const pid = server.pid!;
    try {
      await wss.ready();
      expect(await wss.health()).toMatchObject({ stateStore: 'ok', history: 'ok' });
      process.kill(pid, 'SIGSTOP');
      const started = performance.now();
      const hung = await wss.health({ timeoutMs: 300 });
      const tookMs = performance.now() - started;
      expect(hung).toMatchObject({ stateStore: 'down', history: 'down', ready: true });
      // Bounded by its timeout (with room for a loaded machine), not by the commands' 30 s.
      expect(tookMs).toBeGreaterThanOrEqual(250);
      expect(tookMs).toBeLessThan(5000);
      process.kill(pid, 'SIGCONT');
      await until(
        async () => (await wss.health()).stateStore === 'ok',
        10_000,
        'the store answering again',
      );
      expect(await wss.health()).toMatchObject({ stateStore: 'ok', history: 'ok' });
    } finally {
      process.kill(pid, 'SIGCONT');
      await wss.close();
      await Promise.all([stateStore.close(), history.close()]);
    }
  }, 30_000);
});
