import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { HistoryError, type HistoryPosition, WscaleError } from '@wscale/core';
import { historySuite, until } from '@wscale/core/testing';
import { NatsBroker, NatsHistory } from '@wscale/nats';
import { type SingleNats, skipWithoutNats, startNatsServer } from '@wscale/test-support';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { deleteStream, fastReconnect, uniqueName } from './helpers/clients.js';

const runner = { describe, it, afterEach };
const text = (bytes: Uint8Array) => Buffer.from(bytes).toString();

describe.skipIf(skipWithoutNats())('NatsHistory on one nats-server', () => {
  let nats: SingleNats;
  const stream = uniqueName('history');
  const opened: Array<{ close(): Promise<void> }> = [];
  // Streams may not share subjects: each test stream gets its own prefix.
  const history = (options: ConstructorParameters<typeof NatsHistory>[0] = {}) => {
    const name = options.stream ?? stream;
    const created = new NatsHistory({
      servers: nats.server.url,
      connectionOptions: fastReconnect,
      timeoutMs: 2000,
      subjectPrefix: `${name}.`,
      ...options,
    });
    opened.push(created);
    return created;
  };

  beforeAll(async () => {
    nats = await startNatsServer();
  });
  afterAll(async () => {
    await Promise.all(opened.map((h) => h.close()));
    await nats?.close();
  });

  // One stream per maxEntries: the limit is the stream's max messages per subject.
  historySuite(runner, {
    create: ({ maxEntries }) => history({ stream: `${stream}_${maxEntries}`, maxEntries }),
  });

  it('changes the epoch when the stream is deleted and created again', async () => {
    const name = `${stream}_recreated`;
    const h = history({ stream: name });
    const before = await h.append('room', Buffer.from('one'));
    await deleteStream(nats.server.url, name);
    const again = history({ stream: name });
    const position = await again.position('room');
    expect(position.offset).toBe(0);
    expect(position.epoch).not.toBe(before.epoch);
    expect(await again.read('room', before)).toEqual({
      ok: false,
      reason: 'epoch-changed',
      position,
    });
    expect(await again.append('room', Buffer.from('two'))).toEqual({
      offset: 1,
      epoch: position.epoch,
    });
  });

  it('creates its stream again when it is deleted under it, with a new epoch', async () => {
    const name = `${stream}_deleted`;
    const h = history({ stream: name });
    const before = await h.append('room', Buffer.from('one'));
    await deleteStream(nats.server.url, name);
    // The same history, not a new one: the first operation may fail, a later one finds it again.
    let after: HistoryPosition | undefined;
    await until(
      async () => {
        after = await h.append('room', Buffer.from('two')).catch(() => undefined);
        return after !== undefined;
      },
      10_000,
      'an append after the stream was deleted',
    );
    expect(after!.epoch).not.toBe(before.epoch);
    expect(await h.read('room', before)).toMatchObject({ ok: false, reason: 'epoch-changed' });
  });

  it('reads again after its stream was deleted under it, though nothing writes first', async () => {
    const name = `${stream}_deleted_read`;
    const h = history({ stream: name });
    const before = await h.append('room', Buffer.from('one'));
    await deleteStream(nats.server.url, name);
    // A direct get of a missing stream gets no answer at all, not "stream not found": a read
    // times out, and the history checks its stream before the next one.
    let after: HistoryPosition | undefined;
    await until(
      async () => {
        after = await h.position('room').catch((error: unknown) => {
          expect(error).toBeInstanceOf(HistoryError);
          return undefined;
        });
        return after !== undefined;
      },
      8000,
      'a position after the stream was deleted',
    );
    expect(after).toEqual({ offset: 0, epoch: expect.any(String) });
    expect(after!.epoch).not.toBe(before.epoch);
    expect(await h.read('room', before)).toMatchObject({ ok: false, reason: 'epoch-changed' });
  });

  it('gives a room whose entries all expired a new epoch, never reused offsets', async () => {
    const h = history({ stream: `${stream}_expiring`, maxAgeMs: 800 });
    const first = await h.append('room', Buffer.from('old'));
    await h.append('room', Buffer.from('old 2'));
    let now: HistoryPosition = first;
    await until(
      async () => {
        now = await h.position('room');
        return now.epoch !== first.epoch;
      },
      8000,
      'the room to expire',
    );
    expect(now.offset).toBe(0);
    const read = await h.read('room', { offset: 2, epoch: first.epoch });
    expect(read).toMatchObject({ ok: false, reason: 'epoch-changed' });
    expect(await h.append('room', Buffer.from('new'))).toEqual({ offset: 1, epoch: now.epoch });
  }, 15_000);

  it('answers too-old while entries expire by age, with the position kept', async () => {
    const h = history({ stream: `${stream}_aging`, maxAgeMs: 1500 });
    const first = await h.append('room', Buffer.from('1'));
    await new Promise((resolve) => setTimeout(resolve, 900));
    await h.append('room', Buffer.from('2'));
    await until(
      async () => !(await h.read('room', { offset: 0, epoch: first.epoch })).ok,
      5000,
      'entry 1 to expire',
    );
    const tail = await h.read('room', { offset: 1, epoch: first.epoch });
    expect(tail.ok && tail.entries.map((e) => text(e.payload))).toEqual(['2']);
    expect(await h.read('room', { offset: 0, epoch: first.epoch })).toEqual({
      ok: false,
      reason: 'too-old',
      position: { offset: 2, epoch: first.epoch },
    });
  }, 15_000);

  it('reads any range of a room whose entries sit among a busier room', async () => {
    const name = `${stream}_interleaved`;
    const writer = history({ stream: name });
    let epoch = '';
    for (let i = 1; i <= 30; i++) {
      // Between 0 and 22 entries of another room before each of this room's, unevenly.
      const others = (i * 7) % 23;
      await Promise.all(
        Array.from({ length: others }, () => writer.append('busy', Buffer.from('b'))),
      );
      epoch = (await writer.append('quiet', Buffer.from(`q${i}`))).epoch;
    }
    const reader = history({ stream: name });
    const expected = (after: number, count: number) =>
      Array.from({ length: count }, (_, i) => `q${after + 1 + i}`);
    for (let after = 0; after < 30; after += 1) {
      const read = await reader.read('quiet', { offset: after, epoch });
      expect(read.ok && read.entries.map((e) => text(e.payload))).toEqual(
        expected(after, 30 - after),
      );
      const two = await reader.read('quiet', { offset: after, epoch }, 2);
      expect(two.ok && two.entries.map((e) => text(e.payload))).toEqual(
        expected(after, Math.min(2, 30 - after)),
      );
    }
  }, 30_000);

  it('reads a single-replica stream with direct gets, turning them on in an existing one', async () => {
    const name = `${stream}_direct`;
    const nc = await connect({ servers: nats.server.url });
    try {
      const jsm = await jetstreamManager(nc);
      // A stream made by an older version without direct gets.
      await jsm.streams.add({ name, subjects: [`${name}.>`], allow_direct: false });
      const h = history({ stream: name });
      let position = await h.position('room');
      expect((await jsm.streams.info(name)).config.allow_direct).toBe(true);
      // Every acknowledged append is seen by the next position and read, from another instance.
      const reader = history({ stream: name });
      for (let i = 1; i <= 10; i++) {
        const from = position;
        position = await h.append('room', Buffer.from(`m${i}`));
        expect(await reader.position('room')).toEqual(position);
        const read = await reader.read('room', from);
        expect(read.ok && read.entries.map((e) => text(e.payload))).toEqual([`m${i}`]);
      }
    } finally {
      await nc.close();
    }
  });

  it('reads the few entries a resume misses with direct gets alone, no JetStream API request', async () => {
    const name = `${stream}_walk`;
    const h = history({ stream: name });
    let epoch = '';
    for (let i = 1; i <= 12; i++) {
      if (i % 3 === 0) await h.append('other', Buffer.from('o'));
      epoch = (await h.append('room', Buffer.from(`m${i}`))).epoch;
    }
    const reader = history({ stream: name });
    await reader.position('room');
    const nc = await connect({ servers: nats.server.url });
    try {
      const jsm = await jetstreamManager(nc);
      const before = (await jsm.getAccountInfo()).api.total;
      for (const after of [0, 4, 9, 11]) {
        const read = await reader.read('room', { offset: after, epoch });
        expect(read.ok && read.entries.map((e) => text(e.payload))).toEqual(
          Array.from({ length: 12 - after }, (_, k) => `m${after + 1 + k}`),
        );
      }
      // A consumer would cost a create and a delete each (the account info itself costs one).
      expect((await jsm.getAccountInfo()).api.total - before).toBe(1);
    } finally {
      await nc.close();
    }
  });

  it('publishes a burst of appends at once, each at its offset in call order, among other writers', async () => {
    const name = `${stream}_burst`;
    const [a, b, other] = [
      history({ stream: name }),
      history({ stream: name }),
      history({ stream: name }),
    ];
    // Each opened first, so that their bursts overlap.
    const { epoch } = await a.position('room');
    await b.position('room');
    await other.position('other');
    const burst = (h: NatsHistory, room: string, tag: string) =>
      Promise.all(Array.from({ length: 40 }, (_, i) => h.append(room, Buffer.from(`${tag}${i}`))));
    // Two writers race for the room's offsets while a third breaks their chains with its own room.
    const [fromA, fromB] = await Promise.all([
      burst(a, 'room', 'a'),
      burst(b, 'room', 'b'),
      burst(other, 'other', 'o'),
    ]);
    const read = await a.read('room', { offset: 0, epoch });
    const stored = read.ok ? read.entries : [];
    expect(stored.map((e) => e.offset)).toEqual(Array.from({ length: 80 }, (_, i) => i + 1));
    const payloadAt = new Map(stored.map((e) => [e.offset, text(e.payload)]));
    for (const [tag, positions] of [
      ['a', fromA],
      ['b', fromB],
    ] as const) {
      // Each append's answer names where its own payload is, and one writer's stay in call order.
      positions.forEach((position, i) => {
        expect(position.epoch).toBe(epoch);
        expect(payloadAt.get(position.offset)).toBe(`${tag}${i}`);
      });
      const offsets = positions.map((p) => p.offset);
      expect(offsets).toEqual([...offsets].sort((x, y) => x - y));
    }
    // The burst was pipelined: its entries carry the message ids that chain them.
    const nc = await connect({ servers: nats.server.url });
    try {
      const jsm = await jetstreamManager(nc);
      const last = await jsm.streams.getMessage(name, { last_by_subj: a.entrySubject('room') });
      expect(last?.header.get('Nats-Msg-Id')).not.toBe('');
    } finally {
      await nc.close();
    }
  });

  it('answers concurrent reads of one room each with its own range, leaving no consumer', async () => {
    const name = `${stream}_concurrent`;
    const h = history({ stream: name });
    let epoch = '';
    for (let i = 1; i <= 40; i++) {
      await h.append('other', Buffer.from('o'));
      epoch = (await h.append('room', Buffer.from(`m${i}`))).epoch;
    }
    const reader = history({ stream: name });
    const ranges = Array.from({ length: 60 }, (_, i) => ({ after: i % 9, limit: 1 + (i % 31) }));
    const reads = await Promise.all(
      ranges.map(({ after, limit }) => reader.read('room', { offset: after, epoch }, limit)),
    );
    reads.forEach((read, i) => {
      const { after, limit } = ranges[i]!;
      expect(read.ok && read.entries.map((e) => text(e.payload))).toEqual(
        Array.from({ length: limit }, (_, k) => `m${after + 1 + k}`),
      );
    });
    const nc = await connect({ servers: nats.server.url });
    try {
      const jsm = await jetstreamManager(nc);
      await until(
        async () => (await jsm.streams.info(name)).state.consumer_count === 0,
        5000,
        'the reads to delete their consumers',
      );
    } finally {
      await nc.close();
    }
  });

  it('appendAndPublish stores and delivers each entry once, in offset order', async () => {
    // Two histories racing for one room retry their compare-and-set: on a loaded machine (the
    // whole suite on 2 cores) an append can take longer than the 2 s the other tests allow.
    const options = { stream: `${stream}_republish`, republishTo: 'wscale.', timeoutMs: 10_000 };
    const [h1, h2] = [history(options), history(options)];
    const broker = new NatsBroker({ servers: nats.server.url });
    opened.push(broker);
    await until(() => broker.status === 'ready', 5000, 'broker');
    const room = 'room.with *> chars';
    const delivered: string[] = [];
    await broker.subscribe(room, (payload) => delivered.push(text(payload)));
    const frame = (p: HistoryPosition, from: string) => Buffer.from(`${p.offset}@${from}`);
    const positions = await Promise.all(
      Array.from({ length: 30 }, (_, i) =>
        (i % 2 ? h1 : h2).appendAndPublish(room, (p) => frame(p, i % 2 ? 'h1' : 'h2')),
      ),
    );
    await until(() => delivered.length >= 30, 5000, '30 deliveries');
    await new Promise((resolve) => setTimeout(resolve, 100));
    // Lost compare-and-set attempts never reach subscribers: exactly the stored entries arrive.
    expect(delivered.map((d) => Number(d.split('@')[0]))).toEqual(
      Array.from({ length: 30 }, (_, i) => i + 1),
    );
    const { epoch } = positions[0]!;
    const stored = await h1.read(room, { offset: 0, epoch });
    expect(stored.ok && stored.entries.map((e) => text(e.payload))).toEqual(delivered);
    await expect(history().appendAndPublish('r', () => new Uint8Array())).rejects.toThrow(
      WscaleError,
    );
  }, 30_000);

  it('is heard by a broker on the same noEcho connection: the server republishes what it stored', async () => {
    const nc = await connect({ servers: nats.server.url, noEcho: true });
    try {
      const shared = { connection: nc, republishTo: 'wscale.' };
      const h = history({ ...shared, stream: `${stream}_noecho` });
      const broker = new NatsBroker({ connection: nc });
      opened.push(broker);
      await until(() => broker.status === 'ready', 5000, 'broker');
      const delivered: string[] = [];
      await broker.subscribe('quiet', (payload) => delivered.push(text(payload)));
      for (const n of [1, 2, 3]) await h.appendAndPublish('quiet', () => Buffer.from(`entry ${n}`));
      await until(() => delivered.length >= 3, 5000, 'three entries');
      expect(delivered).toEqual(['entry 1', 'entry 2', 'entry 3']);
    } finally {
      await nc.close();
    }
  });

  it('refuses, with a HistoryError that says why, a stream whose republish rule is not its own', async () => {
    const name = `${stream}_rule`;
    const publishing = history({ stream: name, republishTo: 'wscale.' });
    await publishing.append('room', Buffer.from('one'));
    for (const other of [{}, { republishTo: 'other.' }]) {
      const append = history({ stream: name, ...other }).append('room', Buffer.from('two'));
      await expect(append).rejects.toBeInstanceOf(HistoryError);
      await expect(append).rejects.toThrow(/republish/);
    }
    // Left as it was: the nodes that count on it go on.
    const nc = await connect({ servers: nats.server.url });
    const { config } = await (await jetstreamManager(nc)).streams.info(name);
    await nc.close();
    expect(config.republish).toMatchObject({ dest: 'wscale.>' });
    expect(await publishing.append('room', Buffer.from('three'))).toMatchObject({ offset: 2 });
  });

  it('refuses a room whose subject NATS would not take, and goes on for the others', async () => {
    const h = history({ stream: `${stream}_long` });
    const long = 'é'.repeat(1500);
    await expect(h.append(long, Buffer.from('x'))).rejects.toBeInstanceOf(HistoryError);
    await expect(h.position(long)).rejects.toThrow(/longer than NATS takes/);
    await expect(h.read(long, { offset: 0, epoch: 'e' })).rejects.toBeInstanceOf(HistoryError);
    const fits = 'é'.repeat(1400);
    const { offset } = await h.append(fits, Buffer.from('kept'));
    expect(offset).toBe(1);
  });

  it('rejects only the append whose build threw mid-batch; the rest are stored in call order', async () => {
    const options = { stream: `${stream}_buildthrows`, republishTo: 'wscale.' };
    const h = history(options);
    const { epoch } = await h.position('room');
    const broken = new Error('build failed on purpose');
    // One burst: a single pipelined batch, the third's build throwing.
    const appends = Array.from({ length: 6 }, (_, i) =>
      h.appendAndPublish('room', (p) => {
        if (i === 2) throw broken;
        return Buffer.from(`e${i}@${p.offset}`);
      }),
    );
    const outcomes = await Promise.allSettled(appends);
    const failed = outcomes[2]!;
    expect(failed.status).toBe('rejected');
    const reason = (failed as PromiseRejectedResult).reason;
    expect(reason).toBeInstanceOf(HistoryError);
    expect(reason.cause).toBe(broken);
    const stored = outcomes.flatMap((outcome) =>
      outcome.status === 'fulfilled' ? [outcome.value.offset] : [],
    );
    // The others: each stored once, at consecutive offsets in call order.
    expect(stored).toEqual([1, 2, 3, 4, 5]);
    const read = await h.read('room', { offset: 0, epoch });
    expect(read.ok && read.entries.map((e) => text(e.payload))).toEqual([
      'e0@1',
      'e1@2',
      'e3@3',
      'e4@4',
      'e5@5',
    ]);
    // And the room goes on from there.
    expect(await h.append('room', Buffer.from('next'))).toEqual({ offset: 6, epoch });
  });

  it("answers too-old, never fails, when a read's range is trimmed while it runs", async () => {
    const name = `${stream}_trimmed`;
    const writer = history({ stream: name, maxEntries: 4 });
    const reader = history({ stream: name, maxEntries: 4 });
    const { epoch, offset: firstOffset } = await writer.append('room', Buffer.from('1'));
    let offset = firstOffset;
    let writing = true;
    const written = (async () => {
      // Bounded: bursts of 16 until the reads are done or 200 bursts.
      for (let burst = 0; writing && burst < 200; burst++) {
        const bursts = await Promise.all(
          Array.from({ length: 16 }, () => writer.append('room', Buffer.from('x'))),
        );
        offset = bursts.at(-1)!.offset;
      }
    })();
    const reasons: string[] = [];
    try {
      for (let i = 0; i < 60; i++) {
        // The oldest entry kept a moment ago: trimmed by the time the read gets to it, mostly.
        const after = Math.max(0, offset - 4);
        const read = await reader.read('room', { offset: after, epoch });
        if (read.ok) {
          expect(read.epoch).toBe(epoch);
          expect(read.entries.map((e) => e.offset)).toEqual(
            read.entries.map((_, k) => after + 1 + k),
          );
          reasons.push('ok');
        } else {
          expect(read.reason).toBe('too-old');
          expect(read.position.epoch).toBe(epoch);
          expect(read.position.offset).toBeGreaterThan(after);
          reasons.push(read.reason);
        }
      }
    } finally {
      writing = false;
      await written;
    }
    // read() checks no range before it scans: each too-old was found by the scan itself.
    expect(reasons).toContain('too-old');
  }, 30_000);

  it('rejects with HistoryError within its timeout while NATS is down, and recovers', async () => {
    const h = history({ stream: `${stream}_outage`, timeoutMs: 1000 });
    const first = await h.append('room', Buffer.from('before'));
    await nats.server.kill();
    try {
      await expect(h.append('room', Buffer.from('during'))).rejects.toBeInstanceOf(HistoryError);
      await expect(h.position('room')).rejects.toBeInstanceOf(HistoryError);
    } finally {
      await nats.server.start();
    }
    let position: HistoryPosition | undefined;
    await until(
      async () => {
        position = await h.position('room').catch((error: unknown) => {
          expect(error).toBeInstanceOf(HistoryError);
          return undefined;
        });
        return position !== undefined;
      },
      10_000,
      'history back',
    );
    // File storage kept the log: same epoch, and the failed append may or may not have landed.
    expect(position!.epoch).toBe(first.epoch);
    const next = await h.append('room', Buffer.from('after'));
    expect(next.offset).toBe(position!.offset + 1);
  }, 30_000);

  it('rejects each of a burst of appends within its own timeout while nats-server hangs, however many wait', async () => {
    const h = history({ stream: `${stream}_hung`, timeoutMs: 500 });
    await h.append('room', Buffer.from('before'));
    const pid = nats.server.pid!;
    process.kill(pid, 'SIGSTOP');
    try {
      const started = Date.now();
      // Ten batches' worth: each waited for the ones before it, a timeout each (5 s here).
      const burst = Array.from({ length: 640 }, (_, i) => h.append('room', Buffer.from(`m${i}`)));
      const settled = await Promise.allSettled(burst);
      const took = Date.now() - started;
      expect(
        settled.every((s) => s.status === 'rejected' && s.reason instanceof HistoryError),
      ).toBe(true);
      expect(took).toBeLessThan(2 * 500 + 1000);
    } finally {
      process.kill(pid, 'SIGCONT');
    }
  }, 20_000);

  it('rejects bad options', () => {
    expect(() => new NatsHistory({ stream: 'a.b' })).toThrow(WscaleError);
    expect(() => new NatsHistory({ maxEntries: 0 })).toThrow(WscaleError);
    expect(() => new NatsHistory({ subjectPrefix: 'x' })).toThrow(WscaleError);
    expect(() => new NatsHistory({ subjectPrefix: 'wscale.h.', republishTo: 'wscale.' })).toThrow(
      WscaleError,
    );
  });
});
