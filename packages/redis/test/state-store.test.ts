import { StateStoreError } from '@wscale/core';
import { stateStoreSuite, until } from '@wscale/core/testing';
import { RedisStateStore } from '@wscale/redis';
import { describeRedis, RedisClusterFixture, RedisServer } from '@wscale/test-support';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { closingWith, clusterClient, standalone } from './helpers/clients.js';

const runner = { describe, it, afterEach };

describeRedis('RedisStateStore on standalone Redis', () => {
  let server: RedisServer;
  beforeAll(async () => {
    server = await RedisServer.launch();
  });
  afterAll(() => server?.destroy());

  stateStoreSuite(runner, {
    create: ({ ttlMs }) => new RedisStateStore({ redis: standalone(server), ttlMs }),
  });

  it('keeps a record five minutes after its last write by default', async () => {
    const store = new RedisStateStore({ redis: standalone(server), keyPrefix: 'ttl-default:' });
    try {
      await store.set('session', 'kept');
      const ttl = Number(await server.cli('pttl', 'ttl-default:state:{session}'));
      expect(ttl).toBeGreaterThan(290_000);
      expect(ttl).toBeLessThanOrEqual(300_000);
    } finally {
      await store.close();
    }
  });

  it('keeps applications with different key prefixes apart', async () => {
    const a = new RedisStateStore({ redis: standalone(server), keyPrefix: 'app-a:' });
    const b = new RedisStateStore({ redis: standalone(server), keyPrefix: 'app-b:' });
    try {
      await a.set('session', 'of a');
      expect(await b.get('session')).toBeUndefined();
      await b.set('session', 'of b');
      expect((await a.get('session'))?.value).toBe('of a');
      expect(await server.cli('--scan', '--pattern', 'app-a:*')).toBe('app-a:state:{session}');
      const ttl = Number(await server.cli('pttl', 'app-a:state:{session}'));
      expect(ttl).toBeGreaterThan(290_000);
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });

  it('never rejects a write Redis answered in time because this process was busy when the answer came', async () => {
    const store = new RedisStateStore({ redis: standalone(server), commandTimeoutMs: 200 });
    try {
      const first = await store.set('busy', 'one');
      const written = store.set('busy', 'two', { ifVersion: first! });
      // Written to the connection, answered by Redis at once; this process is then busy (a long
      // synchronous task) past the timeout before it reads the answer.
      await Promise.resolve();
      await Promise.resolve();
      const busyUntil = performance.now() + 400;
      while (performance.now() < busyUntil);
      const version = await written;
      expect(await store.get('busy')).toEqual({ value: 'two', version });
    } finally {
      await store.close();
    }
  });

  it('rejects with StateStoreError, within a bounded time, while Redis is down', async () => {
    const store = new RedisStateStore({ redis: standalone(server), commandTimeoutMs: 1000 });
    try {
      await store.set('outage', 'before');
      await server.stop();
      const started = Date.now();
      const errors = await Promise.all(
        [
          store.get('outage'),
          store.set('outage', 'during'),
          store.set('outage', 'x', { ifVersion: null }),
          store.delete('outage'),
        ].map((call) =>
          call.then(
            () => undefined,
            (error: unknown) => error,
          ),
        ),
      );
      for (const error of errors) {
        expect(error).toBeInstanceOf(StateStoreError);
        expect((error as StateStoreError).code).toBe('STATE_STORE_FAILED');
      }
      expect(Date.now() - started).toBeLessThan(2500);
      await server.start();
      // The server restarted empty (no persistence): the store works again, with nothing in it.
      await until(
        () =>
          store.get('outage').then(
            (value) => value === undefined,
            () => false,
          ),
        10_000,
        'the store to answer again',
      );
      expect(await store.set('outage', 'after')).toEqual(expect.any(String));
    } finally {
      await server.start();
      await store.close();
    }
  }, 20_000);
});

describeRedis('RedisStateStore on Redis Cluster', () => {
  let cluster: RedisClusterFixture;
  beforeAll(async () => {
    cluster = await RedisClusterFixture.launch();
  });
  afterAll(() => cluster?.destroy());

  stateStoreSuite(runner, {
    create: ({ ttlMs }) => {
      const client = clusterClient(cluster);
      return closingWith(new RedisStateStore({ redis: client, ttlMs }), client);
    },
  });
});
