import { type BrokerStatus, BrokerUnavailableError, WscaleError } from '@wscale/core';
import { brokerSuite, delay, until } from '@wscale/core/testing';
import { RedisBroker, RedisHistory } from '@wscale/redis';
import { describeRedis, RedisClusterFixture, RedisServer } from '@wscale/test-support';
import { Cluster } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { closingWith, clusterClient, standalone } from './helpers/clients.js';
import { moveSlot, ownerAndOther, slotOwner } from './helpers/cluster-slots.js';

const runner = { describe, it, afterEach };

describeRedis('RedisBroker on standalone Redis', () => {
  let server: RedisServer;
  beforeAll(async () => {
    server = await RedisServer.launch();
  });
  afterAll(() => server?.destroy());

  brokerSuite(runner, {
    create: () => new RedisBroker({ redis: standalone(server) }),
    outage: { stop: () => server.stop(), start: () => server.start() },
  });

  it('rides out a crash under steady publishing: reports it, resubscribes, flows again', async () => {
    const [a, b] = [
      new RedisBroker({ redis: standalone(server) }),
      new RedisBroker({ redis: standalone(server) }),
    ];
    const statuses: BrokerStatus[] = [];
    const received: number[] = [];
    let sent = 0;
    let publishing = true;
    const failures: unknown[] = [];
    try {
      await until(() => a.status === 'ready' && b.status === 'ready', 5000, 'ready');
      b.on('status', (status) => statuses.push(status));
      await b.subscribe('steady', (payload) => received.push(Number(Buffer.from(payload))));
      const publisher = (async () => {
        while (publishing) {
          const n = ++sent;
          await a.publish('steady', Buffer.from(String(n))).catch((error) => failures.push(error));
          await new Promise((resolve) => setTimeout(resolve, 2));
        }
      })();
      await until(() => received.length >= 20, 5000, 'messages before the crash');
      await server.stop();
      await until(() => b.status === 'reconnecting' && a.status === 'reconnecting', 5000, 'outage');
      const sentBeforeRestart = sent;
      await server.start();
      await until(() => a.status === 'ready' && b.status === 'ready', 15_000, 'ready again');
      const sentAfterReady = sent;
      await until(() => received.some((n) => n > sentAfterReady), 5000, 'messages after restart');
      publishing = false;
      await publisher;
      expect(sentBeforeRestart).toBeGreaterThan(0);
      expect(statuses).toEqual(['reconnecting', 'ready']);
      // Every failure is typed; what arrives is in publish order, never twice.
      for (const failure of failures) expect(failure).toBeInstanceOf(WscaleError);
      for (let i = 1; i < received.length; i++)
        expect(received[i]).toBeGreaterThan(received[i - 1]!);
    } finally {
      publishing = false;
      await server.start();
      await Promise.all([a.close(), b.close()]);
    }
  }, 40_000);

  it('queues publishes while Redis is down, up to maxQueuedPublishes, and rejects past it', async () => {
    // The publisher comes back well after the subscriber has resubscribed (pub/sub keeps nothing
    // for a subscriber that is not there yet).
    const a = new RedisBroker({
      redis: { ...standalone(server), retryStrategy: () => 1500 },
      maxQueuedPublishes: 3,
    });
    const b = new RedisBroker({ redis: standalone(server) });
    try {
      const got: string[] = [];
      await b.subscribe('queued', (payload) => got.push(String(Buffer.from(payload))));
      await until(() => a.status === 'ready', 5000, 'ready');
      await server.stop();
      await until(() => a.status === 'reconnecting', 5000, 'the outage');
      const settled: string[] = [];
      const queued = ['q1', 'q2', 'q3'].map((text) =>
        a.publish('queued', Buffer.from(text)).then(() => settled.push(text)),
      );
      // The fourth does not fit: it fails at once, typed, and is never sent.
      await expect(a.publish('queued', Buffer.from('q4'))).rejects.toBeInstanceOf(
        BrokerUnavailableError,
      );
      expect(settled).toEqual([]);
      await server.start();
      await until(() => b.status === 'ready', 10_000, 'the subscriber back');
      await Promise.all(queued);
      expect(settled).toEqual(['q1', 'q2', 'q3']);
      await until(() => got.length >= 3, 10_000, 'the queued messages');
      await delay(200);
      expect(got).toEqual(['q1', 'q2', 'q3']);
    } finally {
      await server.start();
      await Promise.all([a.close(), b.close()]);
    }
  }, 30_000);

  it('sends what was queued while Redis was down pipelined, in order, each once', async () => {
    /** Counts the publishes out at once: a queue drained one per round trip never has two. */
    class CountingBroker extends RedisBroker {
      out = 0;
      mostOut = 0;
      protected override publishTopic(topic: string, payload: Uint8Array): Promise<unknown> {
        this.mostOut = Math.max(this.mostOut, ++this.out);
        return super.publishTopic(topic, payload).finally(() => this.out--);
      }
    }
    // The publisher comes back after the subscriber has resubscribed (pub/sub keeps nothing).
    const a = new CountingBroker({ redis: { ...standalone(server), retryStrategy: () => 1500 } });
    const b = new RedisBroker({ redis: standalone(server) });
    const count = 1000;
    try {
      const got: number[] = [];
      await b.subscribe('drained', (payload) => got.push(Number(Buffer.from(payload))));
      await until(() => a.status === 'ready', 5000, 'ready');
      await server.stop();
      await until(() => a.status === 'reconnecting', 5000, 'the outage');
      const published = Array.from({ length: count }, (_, i) =>
        a.publish('drained', Buffer.from(String(i + 1))),
      );
      expect(a.queued).toBe(count);
      await server.start();
      await until(() => b.status === 'ready', 10_000, 'the subscriber back');
      await Promise.all(published);
      await until(() => got.length >= count, 10_000, 'the queued messages');
      await delay(200);
      expect(got).toEqual(Array.from({ length: count }, (_, i) => i + 1));
      expect(a.queued).toBe(0);
      // Pipelined, in bounded batches.
      expect(a.mostOut).toBeGreaterThan(1);
      expect(a.mostOut).toBeLessThanOrEqual(256);
    } finally {
      await server.start();
      await Promise.all([a.close(), b.close()]);
    }
  }, 30_000);

  // Past ioredis's `disconnectTimeout` (2 s) the hung connection's socket is destroyed, and what
  // it had written may never reach Redis: then only the copies sent again arrive.
  it.each([0, 2500])(
    'goes reconnecting while Redis hangs, and delivers what it published meanwhile once, in order (hung %i ms more)',
    async (hangMs) => {
      const a = new RedisBroker({ redis: standalone(server), commandTimeoutMs: 300 });
      const b = new RedisBroker({ redis: standalone(server) });
      const pid = server.pid!;
      try {
        const got: string[] = [];
        await b.subscribe('hung', (payload) => got.push(Buffer.from(payload).toString()));
        await until(() => a.status === 'ready', 5000, 'ready');
        // Thousands of publishes out at once: every one answered, none failed by the timeout (the
        // line of commands out compacting while some are out: command-deadlines.test.ts).
        await Promise.all(
          Array.from({ length: 3000 }, (_, i) => a.publish('hung', Buffer.from(`before ${i}`))),
        );
        await until(() => got.length === 3000, 10_000, 'the first publishes');
        const statuses: string[] = [];
        a.on('status', (status) => statuses.push(status));
        // The connection stays open and Redis answers nothing: only the timeout can tell.
        process.kill(pid, 'SIGSTOP');
        const settled: string[] = [];
        const publish = (text: string) =>
          a.publish('hung', Buffer.from(text)).then(
            () => settled.push(text),
            (error: unknown) => settled.push(`${text} failed: ${String(error)}`),
          );
        const unanswered = Array.from({ length: 50 }, (_, i) => publish(`during ${i}`));
        await until(() => a.status === 'reconnecting', 3000, 'the hang noticed');
        const queued = Array.from({ length: 10 }, (_, i) => publish(`queued ${i}`));
        // None failed: all of them wait for Redis, in their order.
        await until(() => a.queued === 60, 3000, 'every publish queued');
        expect(settled).toEqual([]);
        await delay(hangMs);
        process.kill(pid, 'SIGCONT');
        await Promise.all([...unanswered, ...queued]);
        const expected = [
          ...Array.from({ length: 50 }, (_, i) => `during ${i}`),
          ...Array.from({ length: 10 }, (_, i) => `queued ${i}`),
        ];
        // Each resolved (none failed); the order they reach Redis in is the subscriber's to see.
        expect([...settled].sort()).toEqual([...expected].sort());
        await until(() => got.length >= 3060, 10_000, 'every publish of the hang');
        await delay(200);
        expect(got.slice(3000)).toEqual(expected);
        expect(a.status).toBe('ready');
        expect(statuses).toEqual(['reconnecting', 'ready']);
      } finally {
        process.kill(pid, 'SIGCONT');
        await Promise.all([a.close(), b.close()]);
      }
    },
    30_000,
  );

  it('tells a later outage by its own error, not by the hang before it', async () => {
    const a = new RedisBroker({ redis: standalone(server), commandTimeoutMs: 300 });
    const pid = server.pid!;
    const seen: string[] = [];
    try {
      await until(() => a.status === 'ready', 5000, 'ready');
      a.on('status', (status, error) => seen.push(`${status}: ${error?.message ?? ''}`));
      process.kill(pid, 'SIGSTOP');
      const hung = a.publish('t', Buffer.from('x')).catch(() => undefined);
      await until(() => a.status === 'reconnecting', 3000, 'the hang noticed');
      process.kill(pid, 'SIGCONT');
      await hung;
      await until(() => a.status === 'ready', 10_000, 'ready after the hang');
      expect(seen[0]).toMatch(/^reconnecting: Redis did not answer a publish within 300 ms/);
      seen.length = 0;
      await server.stop();
      await until(() => a.status !== 'ready', 5000, 'the outage');
      expect(seen[0]).toMatch(/^reconnecting: ./);
      expect(seen[0]).not.toMatch(/did not answer a publish/);
    } finally {
      if (server.pid === pid) process.kill(pid, 'SIGCONT');
      else await server.start();
      await a.close();
    }
  }, 30_000);

  it('is ready for good once Redis answers: what the hang failed is not taken for a second hang', async () => {
    // The hung connection's socket is destroyed 100 ms after the hang is noticed: what it had
    // out is failed by that close, and nothing Redis answers later settles it.
    const redis = { ...standalone(server), disconnectTimeout: 100 };
    const a = new RedisBroker({ redis, commandTimeoutMs: 400 });
    const b = new RedisBroker({ redis: standalone(server) });
    const pid = server.pid!;
    try {
      const got: string[] = [];
      await b.subscribe('spread', (payload) => got.push(Buffer.from(payload).toString()));
      await until(() => a.status === 'ready', 5000, 'ready');
      const statuses: string[] = [];
      a.on('status', (status) => statuses.push(status));
      process.kill(pid, 'SIGSTOP');
      // Sent over the whole timeout: their deadlines fall after the reconnect, when the
      // connection that took them is closed and they are failed by that, not by a new hang.
      const sent: Promise<void>[] = [];
      for (let i = 0; i < 16; i++) {
        sent.push(a.publish('spread', Buffer.from(`m${i}`)));
        if (a.status === 'ready') await delay(25);
      }
      await until(() => a.status === 'reconnecting', 3000, 'the hang noticed');
      // Hung on past the socket's destruction; back before the last publishes' deadlines.
      await delay(200);
      process.kill(pid, 'SIGCONT');
      await Promise.all(sent);
      await until(() => got.length >= 16, 10_000, 'every publish');
      // Past every deadline of the publishes the hang held.
      await delay(600);
      expect(got).toEqual(Array.from({ length: 16 }, (_, i) => `m${i}`));
      expect(statuses).toEqual(['reconnecting', 'ready']);
      expect(a.status).toBe('ready');
    } finally {
      process.kill(pid, 'SIGCONT');
      await Promise.all([a.close(), b.close()]);
    }
  }, 30_000);

  it('counts a publish Redis refuses as refused, not as a hang: the broker stays ready', async () => {
    await server.cli('acl', 'setuser', 'no-pub', 'on', '>pw', '~*', '&wscale:{allowed}', '+@all');
    const a = new RedisBroker({
      redis: { ...standalone(server), username: 'no-pub', password: 'pw' },
      commandTimeoutMs: 300,
    });
    try {
      await until(() => a.status === 'ready', 5000, 'ready');
      const statuses: string[] = [];
      a.on('status', (status) => statuses.push(status));
      await expect(a.publish('forbidden', Buffer.from('x'))).rejects.toThrow(
        BrokerUnavailableError,
      );
      // Past its deadline too: the refused publish is never failed again as unanswered.
      await delay(600);
      expect(statuses).toEqual([]);
      await a.publish('allowed', Buffer.from('y'));
    } finally {
      await a.close();
      await server.cli('acl', 'deluser', 'no-pub');
    }
  });

  it('keeps its own channels apart from another channelPrefix', async () => {
    const a = new RedisBroker({ redis: standalone(server), channelPrefix: 'one:' });
    const b = new RedisBroker({ redis: standalone(server), channelPrefix: 'two:' });
    try {
      const got: string[] = [];
      await a.subscribe('t', (payload) => got.push(`a:${Buffer.from(payload)}`));
      await b.subscribe('t', (payload) => got.push(`b:${Buffer.from(payload)}`));
      expect(await server.cli('pubsub', 'channels', '*')).toContain('one:{t}');
      await a.publish('t', Buffer.from('x'));
      await b.publish('t', Buffer.from('y'));
      await until(() => got.length >= 2, 5000, 'both messages');
      expect(got.sort()).toEqual(['a:x', 'b:y']);
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });
});

describeRedis('RedisBroker on Redis Cluster (sharded pub/sub)', () => {
  let cluster: RedisClusterFixture;
  beforeAll(async () => {
    cluster = await RedisClusterFixture.launch();
  });
  afterAll(() => cluster?.destroy());

  const open = () => {
    const client = clusterClient(cluster);
    return closingWith(new RedisBroker({ redis: client }), client);
  };

  brokerSuite(runner, { create: open });

  it('is down, saying why, while a shard refuses a channel (ACL SETUSER), and hears it again once allowed', async () => {
    // A user of our own on every shard (ACLs are per server), then one loses the channel.
    for (const server of cluster.servers) {
      await server.cli('acl', 'setuser', 'app', 'on', '>secret', 'allchannels', '+@all');
    }
    const clients = [0, 1].map(
      () => new Cluster(cluster.nodes, { redisOptions: { username: 'app', password: 'secret' } }),
    );
    const [a, b] = clients.map((client) => closingWith(new RedisBroker({ redis: client }), client));
    const owner = await slotOwner(cluster, 'wscale:{acl-news}');
    try {
      await until(() => a!.status === 'ready' && b!.status === 'ready', 5000, 'ready');
      const got: string[] = [];
      await b!.subscribe('acl-news', (payload) => got.push(String(Buffer.from(payload))));
      await a!.publish('acl-news', Buffer.from('before'));
      await until(() => got.includes('before'), 5000, 'the message before');
      const seen: string[] = [];
      b!.on('status', (status, error) => seen.push(`${status}: ${error?.message ?? ''}`));
      await owner.cli('acl', 'setuser', 'app', 'resetchannels', '&wscale:{other}');
      await until(() => seen.some((line) => line.startsWith('down: NOPERM')), 10_000, 'down, why');
      await owner.cli('acl', 'setuser', 'app', 'allchannels');
      await until(() => b!.status === 'ready', 10_000, 'ready again');
      await a!.publish('acl-news', Buffer.from('after'));
      await until(() => got.includes('after'), 5000, 'the message after');
      expect(got).toEqual(['before', 'after']);
    } finally {
      await owner.cli('acl', 'setuser', 'app', 'allchannels');
      await Promise.all([a!.close(), b!.close()]);
    }
  });

  it('subscribes only on the shard that owns the topic', async () => {
    const [a, b] = [open(), open()];
    try {
      const got: string[] = [];
      const topics = ['alpha', 'beta', 'gamma', 'delta'];
      for (const topic of topics) {
        await b.subscribe(topic, (payload, t) => got.push(`${t}=${Buffer.from(payload)}`));
      }
      for (const topic of topics) {
        const channel = `wscale:{${topic}}`;
        const counts = await Promise.all(
          cluster.servers.map(async (server) =>
            Number((await server.cli('pubsub', 'shardnumsub', channel)).split('\n')[1]),
          ),
        );
        const owner = await slotOwner(cluster, channel);
        expect(counts).toEqual(cluster.servers.map((server) => (server === owner ? 1 : 0)));
      }
      await Promise.all(topics.map((topic) => a.publish(topic, Buffer.from(topic))));
      await until(() => got.length >= topics.length, 5000, 'every topic');
      expect(got.sort()).toEqual(topics.map((topic) => `${topic}=${topic}`).sort());
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });

  it('publishes and hears on the shard channels ioredis prefixes with its keyPrefix', async () => {
    // ioredis counts a shard channel as a key: with `keyPrefix` it subscribes `app:wscale:{t}`.
    const clients = [0, 1].map(() => new Cluster(cluster.nodes, { keyPrefix: 'app:' }));
    const [a, b] = clients.map((client) => closingWith(new RedisBroker({ redis: client }), client));
    const history = new RedisHistory({ redis: clients[0]! });
    try {
      const got: string[] = [];
      await b!.subscribe('prefixed', (payload, topic) =>
        got.push(`${topic}=${Buffer.from(payload)}`),
      );
      const channel = 'app:wscale:{prefixed}';
      const owner = await slotOwner(cluster, channel);
      expect(await owner.cli('pubsub', 'shardnumsub', channel)).toBe(`${channel}\n1`);
      await a!.publish('prefixed', Buffer.from('from a broker'));
      // A history room's append publishes on the same channel, from its script.
      await history.appendAndPublish('prefixed', Buffer.from('from a history'), 'prefixed');
      await until(() => got.length >= 2, 5000, 'both messages');
      expect(got[0]).toBe('prefixed=from a broker');
      expect(got[1]).toMatch(/^prefixed=.*from a history$/s);
    } finally {
      await Promise.all([a!.close(), b!.close()]);
    }
  });

  it('leaves its commands to the pipelines of a Cluster client with enableAutoPipelining', async () => {
    const clients = [0, 1].map(() => new Cluster(cluster.nodes, { enableAutoPipelining: true }));
    const [a, b] = clients.map((client) => closingWith(new RedisBroker({ redis: client }), client));
    const history = new RedisHistory({ redis: clients[0]! });
    try {
      await until(() => a!.status === 'ready' && b!.status === 'ready', 5000, 'ready');
      const got: string[] = [];
      await b!.subscribe('piped', (payload) => got.push(String(Buffer.from(payload))));
      // Sent in one go: ioredis holds them in its pipelines until the tick ends.
      const sent = Array.from({ length: 50 }, (_, i) => a!.publish('piped', Buffer.from(`${i}`)));
      expect(clients[0]!.autoPipelineQueueSize).toBe(50);
      await Promise.all(sent);
      const appended = [1, 2].map((i) => history.append('piped', Buffer.from(`kept ${i}`)));
      expect(clients[0]!.autoPipelineQueueSize).toBe(2);
      await Promise.all(appended);
      await until(() => got.length >= 50, 5000, 'every message');
      expect(got).toEqual(Array.from({ length: 50 }, (_, i) => `${i}`));
    } finally {
      await Promise.all([a!.close(), b!.close()]);
    }
  });

  it('follows a topic whose slot moves to another shard', async () => {
    const [a, b] = [open(), open()];
    try {
      const got: string[] = [];
      await b.subscribe('moving', (payload) => got.push(String(Buffer.from(payload))));
      await a.publish('moving', Buffer.from('before'));
      await until(() => got.includes('before'), 5000, 'before the move');
      const [source, target] = await ownerAndOther(cluster, 'wscale:{moving}');
      await moveSlot(cluster, 'wscale:{moving}', source, target);
      let n = 0;
      await until(
        async () => {
          await a.publish('moving', Buffer.from(`after${n++}`));
          return got.some((text) => text.startsWith('after'));
        },
        15_000,
        'a message after the move',
      );
      expect(await target.cli('pubsub', 'shardnumsub', 'wscale:{moving}')).toBe(
        'wscale:{moving}\n1',
      );
      // The old shard no longer holds a subscription for the topic.
      expect(await source.cli('pubsub', 'shardnumsub', 'wscale:{moving}')).toBe(
        'wscale:{moving}\n0',
      );
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  }, 30_000);
});

describeRedis('RedisBroker on Redis Cluster with replicas', () => {
  let cluster: RedisClusterFixture;
  beforeAll(async () => {
    cluster = await RedisClusterFixture.launch({ replicas: 1, nodeTimeoutMs: 1000 });
  });
  afterAll(() => cluster?.destroy());

  it('follows a topic to the replica that takes over when its master dies', async () => {
    const clients = [clusterClient(cluster), clusterClient(cluster)];
    const [a, b] = clients.map((client) => closingWith(new RedisBroker({ redis: client }), client));
    try {
      const got: string[] = [];
      await b!.subscribe('failover', (payload) => got.push(String(Buffer.from(payload))));
      await a!.publish('failover', Buffer.from('before'));
      await until(() => got.includes('before'), 5000, 'before the failover');
      const [master] = await ownerAndOther(cluster, 'wscale:{failover}');
      await master.stop();
      let n = 0;
      let inFlight = false;
      const failures: unknown[] = [];
      await until(
        () => {
          if (!inFlight) {
            inFlight = true;
            a!
              .publish('failover', Buffer.from(`after${n++}`))
              .catch((error: unknown) => failures.push(error))
              .finally(() => {
                inFlight = false;
              });
          }
          return got.some((text) => text.startsWith('after'));
        },
        30_000,
        'a message after the failover',
      );
      // What failed while the master was gone failed as the docs say: BrokerUnavailableError.
      for (const failure of failures) expect(failure).toBeInstanceOf(BrokerUnavailableError);
      // The replica that took over holds the subscription now.
      const live = cluster.servers.find((server) => server !== master)!;
      const promoted = await slotOwner(cluster, 'wscale:{failover}', live);
      expect(promoted.port).not.toBe(master.port);
      expect(await promoted.cli('pubsub', 'shardnumsub', 'wscale:{failover}')).toBe(
        'wscale:{failover}\n1',
      );
    } finally {
      await Promise.all([a!.close(), b!.close()]);
    }
  }, 45_000);
});

describeRedis('RedisBroker for a Redis user with limited channels (ACL)', () => {
  let server: RedisServer;
  beforeAll(async () => {
    // `app` may use one channel only; the default user (the fixture's own checks) stays as it is.
    const user = ['app', 'on', '>secret', 'resetchannels', '&wscale:{allowed}', '+@all'];
    server = await RedisServer.launch(() => ['--user', ...user]);
  });
  afterAll(() => server?.destroy());

  it('rejects what Redis refuses, and delivers what it allows', async () => {
    const options = { ...standalone(server), username: 'app', password: 'secret' };
    const [a, b] = [new RedisBroker({ redis: options }), new RedisBroker({ redis: options })];
    try {
      await until(() => a.status === 'ready' && b.status === 'ready', 5000, 'ready');
      const subscribed = b.subscribe('denied', () => undefined);
      await expect(subscribed).rejects.toBeInstanceOf(BrokerUnavailableError);
      await expect(subscribed).rejects.toThrow(/NOPERM/);
      const got: string[] = [];
      await b.subscribe('allowed', (payload) => got.push(String(Buffer.from(payload))));
      await expect(a.publish('denied', Buffer.from('x'))).rejects.toBeInstanceOf(
        BrokerUnavailableError,
      );
      await a.publish('allowed', Buffer.from('through'));
      await until(() => got.length >= 1, 5000, 'the allowed message');
      expect(got).toEqual(['through']);
      expect([a.status, b.status]).toEqual(['ready', 'ready']);
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });
});

describeRedis(
  'RedisBroker when a Redis user loses a channel while subscribed (ACL SETUSER)',
  () => {
    let server: RedisServer;
    beforeAll(async () => {
      server = await RedisServer.launch(() => [
        '--user',
        'app',
        'on',
        '>secret',
        'allchannels',
        '+@all',
      ]);
    });
    afterAll(() => server?.destroy());

    it('is down, saying why, while Redis refuses the channel, and hears it again once allowed', async () => {
      const options = { ...standalone(server), username: 'app', password: 'secret' };
      const [a, b] = [new RedisBroker({ redis: options }), new RedisBroker({ redis: options })];
      try {
        await until(() => a.status === 'ready' && b.status === 'ready', 5000, 'ready');
        const got: string[] = [];
        await b.subscribe('news', (payload) => got.push(String(Buffer.from(payload))));
        await a.publish('news', Buffer.from('before'));
        await until(() => got.includes('before'), 5000, 'the message before');
        // Redis closes the connections whose subscriptions the new rules no longer allow.
        await server.cli('acl', 'setuser', 'app', 'resetchannels', '&wscale:{other}');
        const seen: string[] = [];
        b.on('status', (status, error) => seen.push(`${status}: ${error?.message ?? ''}`));
        await until(() => seen.some((line) => line.startsWith('down: NOPERM')), 5000, 'down, why');
        await server.cli('acl', 'setuser', 'app', 'allchannels');
        await until(() => b.status === 'ready', 10_000, 'ready again');
        await a.publish('news', Buffer.from('after'));
        await until(() => got.includes('after'), 5000, 'the message after');
        expect(got).toEqual(['before', 'after']);
      } finally {
        await Promise.all([a.close(), b.close()]);
      }
    });
  },
);
