import { type Broker, type History, HistoryError } from '@wscale/core';
import { delay, historySuite, until } from '@wscale/core/testing';
import {
  decodeHistoryMessage,
  encodeHistoryMessage,
  type HistoryMessage,
  RedisBroker,
  RedisHistory,
} from '@wscale/redis';
import { describeRedis, RedisClusterFixture, RedisServer } from '@wscale/test-support';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { closingWith, clusterClient, standalone } from './helpers/clients.js';

const runner = { describe, it, afterEach };
const bytes = (text: string) => new TextEncoder().encode(text);
const texts = (entries: Array<{ payload: Uint8Array }>) =>
  entries.map((entry) => new TextDecoder().decode(entry.payload));
let roomCounter = 0;
const fresh = (name = 'room') => `test:${process.pid}:${Date.now()}:${roomCounter++}:${name}`;

/**
 * Two histories append-and-publish concurrently to one room; a broker on another "node" must see
 * every message once, framed with its position, in offset order, with its payload exact.
 */
async function appendAndPublishInOrder(
  histories: [RedisHistory, RedisHistory],
  subscriber: Broker,
  room: string,
  topic: string,
) {
  const received: HistoryMessage[] = [];
  const unsubscribe = await subscriber.subscribe(topic, (bytes) => {
    received.push(decodeHistoryMessage(bytes));
  });
  const count = 40;
  const payload = (i: number) => Uint8Array.from([i, 0, 255, 13, 10]);
  const positions = await Promise.all(
    Array.from({ length: count }, (_, i) =>
      histories[i % 2]!.appendAndPublish(room, payload(i), topic),
    ),
  );
  await until(() => received.length >= count, 5000, `${count} published messages`);
  const { epoch } = positions[0]!;
  expect(received.map((message) => message.offset)).toEqual(
    Array.from({ length: count }, (_, i) => i + 1),
  );
  expect(new Set(received.map((message) => message.epoch))).toEqual(new Set([epoch]));
  for (const message of received) {
    const sent = positions.findIndex((position) => position.offset === message.offset);
    expect([...message.payload]).toEqual([...payload(sent)]);
  }
  const read = await histories[0].read(room, { offset: 0, epoch });
  expect(read.ok && read.entries.map((entry) => [...entry.payload])).toEqual(
    received.map((message) => [...message.payload]),
  );
  await unsubscribe();
}

/** Waits for a history to answer again after its Redis came back. */
const answering = (history: History, room: string) =>
  until(
    () =>
      history.position(room).then(
        () => true,
        () => false,
      ),
    10_000,
    'the history to answer again',
  );

const closeAll = (...things: Array<History | Broker>) =>
  Promise.all(things.map((thing) => thing.close()));

describe('history message wire format', () => {
  it('round-trips offset, epoch and binary payload', () => {
    const message = { offset: 2 ** 40 + 5, epoch: 'AbC-_9', payload: Uint8Array.from([0, 255, 1]) };
    const framed = encodeHistoryMessage(message);
    expect([...framed.subarray(0, 10)]).toEqual([1, 0, 0, 1, 0, 0, 0, 0, 5, 6]);
    const decoded = decodeHistoryMessage(framed);
    expect({ ...decoded, payload: [...decoded.payload] }).toEqual({
      ...message,
      payload: [0, 255, 1],
    });
    expect(() => decodeHistoryMessage(Uint8Array.from([2, 0]))).toThrow(/version-1/);
  });
});

describeRedis('RedisHistory on standalone Redis', () => {
  let server: RedisServer;
  beforeAll(async () => {
    server = await RedisServer.launch();
  });
  afterAll(() => server?.destroy());

  historySuite(runner, {
    create: ({ maxEntries }) => new RedisHistory({ redis: standalone(server), maxEntries }),
  });

  it('trims entries older than maxAgeMs and answers too-old for them', async () => {
    // Ages long enough that the three new appends stay young on a busy machine.
    const history = new RedisHistory({ redis: standalone(server), maxAgeMs: 1000, roomTtlMs: 0 });
    try {
      const room = fresh();
      let epoch = '';
      for (let i = 1; i <= 9; i++) epoch = (await history.append(room, bytes(`old${i}`))).epoch;
      await delay(1100);
      for (let i = 10; i <= 12; i++) await history.append(room, bytes(`new${i}`));
      expect(await history.read(room, { offset: 8, epoch })).toEqual({
        ok: false,
        reason: 'too-old',
        position: { offset: 12, epoch },
      });
      expect(await server.cli('xlen', `wscale:history:{${room}}:log`)).toBe('3');
      const kept = await history.read(room, { offset: 9, epoch });
      expect(kept.ok && texts(kept.entries)).toEqual(['new10', 'new11', 'new12']);
      // A read trims too: once everything aged out, only the current position is readable.
      await delay(1100);
      expect((await history.read(room, { offset: 11, epoch })).ok).toBe(false);
      expect(await history.read(room, { offset: 12, epoch })).toEqual({
        ok: true,
        epoch,
        entries: [],
      });
    } finally {
      await history.close();
    }
  });

  it('starts a new epoch when the room’s keys were lost, and keeps prefixes apart', async () => {
    const history = new RedisHistory({ redis: standalone(server), keyPrefix: 'app-h:' });
    const other = new RedisHistory({ redis: standalone(server), keyPrefix: 'app-i:' });
    try {
      const room = 'lost';
      const before = await history.append(room, bytes('one'));
      await history.append(room, bytes('two'));
      await other.append(room, bytes('elsewhere'));
      expect(await server.cli('del', 'app-h:history:{lost}:meta')).toBe('1');
      const after = await history.position(room);
      expect(after.offset).toBe(0);
      expect(after.epoch).not.toBe(before.epoch);
      expect(await history.read(room, { offset: 1, epoch: before.epoch })).toEqual({
        ok: false,
        reason: 'epoch-changed',
        position: after,
      });
      expect(await history.append(room, bytes('three'))).toEqual({ offset: 1, epoch: after.epoch });
      const read = await history.read(room, after);
      expect(read.ok && texts(read.entries)).toEqual(['three']);
      expect(await other.position(room)).toEqual(expect.objectContaining({ offset: 1 }));
    } finally {
      await Promise.all([history.close(), other.close()]);
    }
  });

  it('appends and publishes in one step: subscribers see offsets in order', async () => {
    const histories: [RedisHistory, RedisHistory] = [
      new RedisHistory({ redis: standalone(server) }),
      new RedisHistory({ redis: standalone(server) }),
    ];
    const broker = new RedisBroker({ redis: standalone(server) });
    try {
      await appendAndPublishInOrder(histories, broker, fresh('live'), 'any topic');
    } finally {
      await closeAll(...histories, broker);
    }
  });

  it('appends nothing when its user may not publish to the channel (ACL): never kept unpublished', async () => {
    await server.cli(
      'acl',
      'setuser',
      'no-pub',
      'on',
      '>secret',
      '~*',
      'resetchannels',
      '&other:*',
      '+@all',
    );
    const history = new RedisHistory({
      redis: { ...standalone(server), username: 'no-pub', password: 'secret' },
    });
    try {
      const room = fresh('acl');
      await expect(history.appendAndPublish(room, bytes('x'), 'news')).rejects.toThrow(
        HistoryError,
      );
      expect(await history.position(room)).toMatchObject({ offset: 0 });
      expect(await server.cli('exists', `wscale:history:{${room}}:log`)).toBe('0');
    } finally {
      await history.close();
      await server.cli('acl', 'deluser', 'no-pub');
    }
  });

  it('starts a new epoch when Redis restarts from a snapshot that lacks the newest appends', async () => {
    const saving = await RedisServer.launch();
    const history = new RedisHistory({ redis: standalone(saving) });
    try {
      const room = fresh();
      for (let i = 1; i <= 10; i++) await history.append(room, bytes(`old${i}`));
      await saving.cli('save');
      let seen = { offset: 0, epoch: '' };
      for (let i = 11; i <= 15; i++) seen = await history.append(room, bytes(`old${i}`));
      // A crash after the snapshot: the restarted process loads offsets 1 to 10 only.
      await saving.stop();
      await saving.start();
      await answering(history, room);
      const next = await history.append(room, bytes('new'));
      // Not offset 11 again in the same epoch, which a client holding old15 would read past.
      expect(next.epoch).not.toBe(seen.epoch);
      expect(await history.read(room, seen)).toMatchObject({ ok: false, reason: 'epoch-changed' });
      expect(await history.read(room, { offset: 0, epoch: next.epoch })).toMatchObject({
        ok: true,
        entries: [{ offset: next.offset }],
      });
    } finally {
      await history.close();
      await saving.destroy();
    }
  });

  it('keeps nothing of an append its caller gave up on: Redis runs it too late, and refuses it', async () => {
    const history = new RedisHistory({ redis: standalone(server), commandTimeoutMs: 500 });
    const pid = server.pid!;
    try {
      const room = fresh();
      const before = await history.append(room, bytes('one'));
      process.kill(pid, 'SIGSTOP');
      await expect(history.appendAndPublish(room, bytes('late'), room)).rejects.toThrow(
        HistoryError,
      );
      // Redis now runs the append it was sent, past the deadline it carries.
      process.kill(pid, 'SIGCONT');
      expect(await history.position(room)).toEqual(before);
      const after = await history.append(room, bytes('two'));
      expect(after).toEqual({ offset: before.offset + 1, epoch: before.epoch });
    } finally {
      process.kill(pid, 'SIGCONT');
      await history.close();
    }
  });

  it('sends a flood of appends to Redis a window at a time: those that waited half their deadline for their turn are refused, none sent expires, and appends go on at once after it', async () => {
    const history = new RedisHistory({ redis: standalone(server), commandTimeoutMs: 10_000 });
    const pid = server.pid!;
    try {
      const room = fresh();
      await history.position(room); // connected
      const outcomes = { appended: 0, refused: 0, failed: [] as string[] };
      // Redis stalls while a flood comes: 10 000 go out, the rest wait for their turn. Sent all at
      // once, the 60 000 would still be in Redis's queue when their deadline came.
      process.kill(pid, 'SIGSTOP');
      const appends = Array.from({ length: 60_000 }, () =>
        history.append(room, bytes('flood')).then(
          () => void outcomes.appended++,
          (error: Error) => {
            if (/waited half of commandTimeoutMs/.test(error.message)) outcomes.refused++;
            else outcomes.failed.push(error.message);
          },
        ),
      );
      // The stall outlasts half the deadline (the fault itself, not a wait for an event).
      await new Promise((resolve) => setTimeout(resolve, 5200));
      process.kill(pid, 'SIGCONT');
      await Promise.all(appends);
      expect(outcomes).toEqual({ appended: 10_000, refused: 50_000, failed: [] });
      const position = await history.position(room);
      expect(position.offset).toBe(outcomes.appended);
      const started = performance.now();
      expect(await history.append(room, bytes('after'))).toEqual({
        offset: position.offset + 1,
        epoch: position.epoch,
      });
      expect(performance.now() - started).toBeLessThan(1000);
    } finally {
      process.kill(pid, 'SIGCONT');
      await history.close();
    }
  }, 30_000);

  it('refuses the appends still waiting for their turn when it is closed', async () => {
    const history = new RedisHistory({ redis: standalone(server) });
    const pid = server.pid!;
    try {
      const room = fresh();
      await history.position(room); // connected
      process.kill(pid, 'SIGSTOP');
      const appends = Array.from({ length: 10_005 }, () =>
        history.append(room, bytes('x')).then(
          () => 'appended',
          (error: Error) => error.message,
        ),
      );
      const closed = history.close();
      process.kill(pid, 'SIGCONT');
      await closed;
      const late = await Promise.all(appends.slice(10_000));
      expect(late.every((outcome) => outcome.endsWith('the history is closed'))).toBe(true);
      await Promise.all(appends);
    } finally {
      process.kill(pid, 'SIGCONT');
    }
  });

  it('takes a burst of 20 000 appends at once whole: those past the window wait their turn', async () => {
    const history = new RedisHistory({ redis: standalone(server) });
    try {
      const room = fresh();
      const positions = await Promise.all(
        Array.from({ length: 20_000 }, () => history.append(room, bytes('burst'))),
      );
      expect(
        positions
          .map((position) => position.offset)
          .sort((a, b) => a - b)
          .at(-1),
      ).toBe(20_000);
    } finally {
      await history.close();
    }
  });

  it('never rejects an append Redis answered in time because this process was busy when the answer came', async () => {
    const history = new RedisHistory({ redis: standalone(server), commandTimeoutMs: 200 });
    try {
      const room = fresh();
      const before = await history.append(room, bytes('one'));
      const appended = history.append(room, bytes('two'));
      // Written to the connection (a microtask away), answered by Redis at once; this process
      // is then busy (a long synchronous task) past the timeout before it reads the answer.
      await Promise.resolve();
      await Promise.resolve();
      const busyUntil = performance.now() + 400;
      while (performance.now() < busyUntil);
      expect(await appended).toEqual({ offset: before.offset + 1, epoch: before.epoch });
    } finally {
      await history.close();
    }
  });

  it('keeps appending when this process’s wall clock steps: deadlines run on its monotonic clock', async () => {
    const history = new RedisHistory({ redis: standalone(server), commandTimeoutMs: 1000 });
    const realNow = Date.now;
    try {
      const room = fresh();
      const first = await history.append(room, bytes('before'));
      for (const step of [-10_000, 10_000]) {
        Date.now = () => realNow() + step;
        const next = await history.append(room, bytes(`stepped ${step}`));
        expect(next.epoch).toBe(first.epoch);
      }
    } finally {
      Date.now = realNow;
      await history.close();
    }
  });

  it('sends its scripts in full first on each connection, so no append can overtake one that met NOSCRIPT', async () => {
    const own = await RedisServer.launch();
    const history = new RedisHistory({ redis: standalone(own) });
    let monitor: Redis | undefined;
    try {
      const room = fresh();
      await history.append(room, bytes('one'));
      // A restart empties Redis's script cache; the history's connection is a new one after it.
      await own.stop();
      await own.start();
      await answering(history, room);
      monitor = await new Redis(standalone(own)).monitor();
      const seen: string[] = [];
      monitor.on('monitor', (_time: string, args: string[]) => {
        if (args[0]?.toLowerCase().startsWith('eval')) seen.push(args[0].toLowerCase());
      });
      await history.append(room, bytes('two'));
      await until(() => seen.length >= 1, 5000, 'the append seen');
      // The first append of the new connection is sent in full: no NOSCRIPT, no second try.
      expect(seen[0]).toBe('eval');
    } finally {
      monitor?.disconnect();
      await history.close();
      await own.destroy();
    }
  });

  it('works for a user who may not run INFO (its rooms then keep their epoch across processes)', async () => {
    await server.cli('acl', 'setuser', 'no-info', 'on', '>pw', '~*', '&*', '+@all', '-info');
    const history = new RedisHistory({
      redis: { ...standalone(server), username: 'no-info', password: 'pw' },
    });
    try {
      const room = fresh();
      const first = await history.append(room, bytes('one'));
      const second = await history.appendAndPublish(room, bytes('two'), room);
      expect(second).toEqual({ offset: first.offset + 1, epoch: first.epoch });
      expect(await history.position(room)).toEqual(second);
      const read = await history.read(room, first);
      expect(read.ok && texts(read.entries)).toEqual(['two']);
    } finally {
      await history.close();
      await server.cli('acl', 'deluser', 'no-info');
    }
  });

  it('rejects with HistoryError while Redis is down, and gives a new epoch after a restart', async () => {
    const history = new RedisHistory({ redis: standalone(server), commandTimeoutMs: 1000 });
    try {
      const room = fresh();
      const before = await history.append(room, bytes('kept?'));
      await server.stop();
      const started = Date.now();
      const errors = await Promise.all(
        [history.append(room, bytes('x')), history.read(room, before), history.position(room)].map(
          (call) =>
            call.then(
              () => undefined,
              (error: unknown) => error,
            ),
        ),
      );
      for (const error of errors) expect(error).toBeInstanceOf(HistoryError);
      expect(Date.now() - started).toBeLessThan(2500);
      // No persistence: the restarted server lost the room, so the old position means nothing.
      await server.start();
      await answering(history, room);
      const read = await history.read(room, before);
      expect(read).toEqual({ ok: false, reason: 'epoch-changed', position: expect.anything() });
      expect(read.ok === false && read.position.epoch).not.toBe(before.epoch);
    } finally {
      await server.start();
      await history.close();
    }
  }, 20_000);
});

describeRedis('RedisHistory on Redis Cluster', () => {
  let cluster: RedisClusterFixture;
  beforeAll(async () => {
    cluster = await RedisClusterFixture.launch();
  });
  afterAll(() => cluster?.destroy());

  historySuite(runner, {
    create: ({ maxEntries }) => {
      const client = clusterClient(cluster);
      return closingWith(new RedisHistory({ redis: client, maxEntries }), client);
    },
  });

  const openHistory = () => {
    const client = clusterClient(cluster);
    return closingWith(new RedisHistory({ redis: client }), client);
  };

  it('appends and publishes (sharded) in one step when the topic is the room', async () => {
    const histories: [RedisHistory, RedisHistory] = [openHistory(), openHistory()];
    const client = clusterClient(cluster);
    const broker = closingWith(new RedisBroker({ redis: client }), client);
    try {
      const room = fresh('live');
      await appendAndPublishInOrder(histories, broker, room, room);
    } finally {
      await closeAll(...histories, broker);
    }
  });

  it('refuses, appending nothing, a topic in another slot than the room', async () => {
    const history = openHistory();
    try {
      const room = fresh('here');
      const slot = (name: string) => cluster.servers[0]!.cli('cluster', 'keyslot', `{${name}}`);
      let topic = 'elsewhere';
      while ((await slot(topic)) === (await slot(room))) topic += '!';
      const before = await history.position(room);
      const error = await history.appendAndPublish(room, bytes('x'), topic).catch((e) => e);
      expect(error).toBeInstanceOf(HistoryError);
      expect(String(error.message)).toMatch(/CROSSSLOT.*use the room name/);
      expect(await history.position(room)).toEqual(before);
    } finally {
      await history.close();
    }
  });
});
