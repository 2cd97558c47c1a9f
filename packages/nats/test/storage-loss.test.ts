import { rmSync } from 'node:fs';
import { Kvm } from '@nats-io/kv';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { MemoryHistory } from '@wscale/core';
import { until } from '@wscale/core/testing';
import { NatsHistory, NatsKvStateStore } from '@wscale/nats';
import {
  leftSession,
  outageClient,
  outageNode,
  type SingleNats,
  skipWithoutNats,
  startNatsServer,
} from '@wscale/test-support';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { fastReconnect, nextStatus, uniqueName } from './helpers/clients.js';

const text = (bytes: Uint8Array) => Buffer.from(bytes).toString();

/**
 * A nats-server that restarts without its JetStream storage (a lost disk, a new container): every
 * stream and bucket is gone, while the adapters' connections come back by themselves.
 */
describe.skipIf(skipWithoutNats())('NATS adapters when the server loses its storage', () => {
  let nats: SingleNats;
  const opened: Array<{ close(): Promise<void> }> = [];
  const open = <T extends { close(): Promise<void> }>(created: T): T => {
    opened.push(created);
    return created;
  };
  /** A connection of the test's own, to know when the adapters using it are back. */
  const connection = async (): Promise<NatsConnection> =>
    open(await connect({ servers: nats.server.url, ...fastReconnect }));

  /** Restarts the server without its storage; resolves once `nc` is back on it and it is healthy. */
  const restartWithoutStorage = async (nc: NatsConnection) => {
    const back = nextStatus(nc, 'reconnect', 20_000);
    await nats.server.kill();
    nats.server.wipeStorage();
    await nats.server.start();
    await back;
  };

  /** Restarts the server (the store kept), doing `between` while it is down; resolves once `nc` is back. */
  const restart = async (nc: NatsConnection, between: () => void) => {
    const back = nextStatus(nc, 'reconnect', 20_000);
    await nats.server.stop();
    between();
    await nats.server.start();
    await back;
  };

  /**
   * `history` appends 3 entries to `room`, the store is copied, and 3 more follow: where a client
   * saw the room then (offset 6), the first entry's position, and a function that puts the store
   * back to the copy.
   */
  const pastACopy = async (nc: NatsConnection, history: NatsHistory) => {
    const kept = await history.append('room', Buffer.from('kept 1'));
    for (const n of [2, 3]) await history.append('room', Buffer.from(`kept ${n}`));
    let copy = '';
    await restart(nc, () => {
      copy = nats.server.copyStorage();
    });
    for (const n of [4, 5, 6]) await history.append('room', Buffer.from(`lost ${n}`));
    const seen = await history.position('room');
    const putBack = async () => {
      await restart(nc, () => nats.server.restoreStorage(copy));
      rmSync(copy, { recursive: true, force: true });
    };
    return { kept, seen, putBack };
  };

  beforeAll(async () => {
    nats = await startNatsServer();
  });
  afterEach(async () => {
    await Promise.all(opened.splice(0).map((o) => o.close()));
  });
  afterAll(async () => {
    await nats?.close();
  });

  it('history: the first operation after the reconnect works, in a new epoch', async () => {
    const nc = await connection();
    const stream = uniqueName('lost');
    const history = open(
      new NatsHistory({ connection: nc, stream, subjectPrefix: `${stream}.`, timeoutMs: 2000 }),
    );
    const before = await history.append('room', Buffer.from('before'));
    await restartWithoutStorage(nc);
    // A direct get of the missing stream would get no answer: only reads, nothing writes first.
    const position = await history.position('room');
    expect(position.offset).toBe(0);
    expect(position.epoch).not.toBe(before.epoch);
    expect(await history.read('room', before)).toEqual({
      ok: false,
      reason: 'epoch-changed',
      position,
    });
    expect(await history.append('room', Buffer.from('after'))).toEqual({
      offset: 1,
      epoch: position.epoch,
    });
  });

  it('history: a cached tail never writes into the lost log when another node made the stream again', async () => {
    const nc = await connection();
    const stream = uniqueName('stale');
    const options = { stream, subjectPrefix: `${stream}.`, timeoutMs: 2000 };
    const a = open(new NatsHistory({ connection: nc, ...options }));
    for (const n of [1, 2, 3]) await a.append('room', Buffer.from(`old ${n}`));
    const seenBefore = await a.position('room');
    await restartWithoutStorage(nc);
    // Another node is first after the restart: the stream it creates has, for this room, the
    // same sequences as the lost one had (the epoch, then three entries).
    const b = open(new NatsHistory({ servers: nats.server.url, ...options }));
    const fromB = [];
    for (const n of [1, 2, 3]) fromB.push(await b.append('room', Buffer.from(`new ${n}`)));
    const { epoch } = fromB[0]!;
    expect(epoch).not.toBe(seenBefore.epoch);
    expect(await a.append('room', Buffer.from('from a'))).toEqual({ offset: 4, epoch });
    // A client that saw the lost log to its end is told it is gone, not handed "from a" alone.
    expect(await b.read('room', seenBefore)).toMatchObject({ ok: false, reason: 'epoch-changed' });
    const all = await b.read('room', { offset: 0, epoch });
    expect(all.ok && all.entries.map((e) => text(e.payload))).toEqual([
      'new 1',
      'new 2',
      'new 3',
      'from a',
    ]);
  });

  it('history: a store put back to an older copy starts its rooms over, so a client past the copy is told', async () => {
    const nc = await connection();
    const stream = uniqueName('restored');
    const options = { connection: nc, stream, subjectPrefix: `${stream}.`, timeoutMs: 2000 };
    const history = open(new NatsHistory(options));
    // A client saw the room to offset 6; the store goes back to the copy (3 entries)...
    const { seen, putBack } = await pastACopy(nc, history);
    await putBack();
    // ...and grows past 6 again: offsets 4 to 6 now name other messages.
    const after = [];
    for (const n of [1, 2, 3, 4]) after.push(await history.append('room', Buffer.from(`new ${n}`)));
    expect(after[0]!.epoch).not.toBe(seen.epoch);
    expect(await history.read('room', seen)).toMatchObject({ ok: false, reason: 'epoch-changed' });
    const all = await history.read('room', { offset: 0, epoch: after[0]!.epoch });
    expect(all.ok && all.entries.map((e) => text(e.payload))).toEqual([
      'new 1',
      'new 2',
      'new 3',
      'new 4',
    ]);
  });

  it.each([
    ['as far as', 3],
    ['past', 4],
  ])(
    'history: a store put back to an older copy and grown again %s where a node saw it, by another node, starts its rooms over',
    async (_, grown) => {
      const nc = await connection();
      const stream = uniqueName('regrown');
      const options = { stream, subjectPrefix: `${stream}.`, timeoutMs: 2000 };
      const a = open(new NatsHistory({ connection: nc, ...options }));
      const { kept, seen, putBack } = await pastACopy(nc, a);
      // A restart that kept the store keeps the room's epoch.
      expect(seen).toEqual({ offset: 6, epoch: kept.epoch });
      await putBack();
      // Another node, which never saw the room past the copy, writes first: the same sequences,
      // offsets and epoch as the lost entries had, but other messages.
      const b = open(new NatsHistory({ servers: nats.server.url, ...options }));
      for (let n = 1; n <= grown; n++) await b.append('room', Buffer.from(`new ${n}`));
      // The node that saw offset 6 tells a client resuming from there, not hands it what follows.
      expect(await a.read('room', seen)).toMatchObject({ ok: false, reason: 'epoch-changed' });
      const { epoch } = await b.append('room', Buffer.from('next'));
      expect(epoch).not.toBe(seen.epoch);
      const all = await b.read('room', { offset: 0, epoch });
      expect(all.ok && all.entries.map((e) => text(e.payload))).toEqual(['next']);
    },
  );

  it('history: a room that only moved on while a node was away, its entries there trimmed, is not started over', async () => {
    const nc = await connection();
    const stream = uniqueName('trimmed');
    const options = { stream, subjectPrefix: `${stream}.`, timeoutMs: 2000, maxEntries: 3 };
    const a = open(new NatsHistory({ connection: nc, ...options }));
    for (const n of [1, 2, 3]) await a.append('room', Buffer.from(`m${n}`));
    const seen = await a.position('room');
    await restart(nc, () => undefined);
    // Another node goes on: the entry node a saw last is trimmed with the room's oldest.
    const b = open(new NatsHistory({ servers: nats.server.url, ...options }));
    for (const n of [4, 5, 6]) await b.append('room', Buffer.from(`m${n}`));
    // Node a checks where it was after the reconnect: gone because trimmed, not because the log
    // went back. A client resuming from offset 3 gets what followed, in the same epoch.
    const read = await a.read('room', seen);
    expect(read).toMatchObject({ ok: true, epoch: seen.epoch });
    expect(read.ok && read.entries.map((e) => text(e.payload))).toEqual(['m4', 'm5', 'm6']);
    expect(await a.position('room')).toEqual({ offset: 6, epoch: seen.epoch });
  });

  it('state store: the first read after the reconnect works, on a new bucket', async () => {
    const nc = await connection();
    const store = open(
      new NatsKvStateStore({ connection: nc, bucket: uniqueName('lost'), timeoutMs: 2000 }),
    );
    await store.set('k', 'before');
    await restartWithoutStorage(nc);
    // Reads only: nothing writes (and so creates the bucket) first.
    expect(await store.get('k')).toBeUndefined();
    const version = await store.set('k', 'after');
    expect(await store.get('k')).toEqual({ value: 'after', version });
  });

  it('state store: a session it lost while its connection was welcomed unavailable is closed 1012 and told expired, not kept out of its rooms', async () => {
    const closers: Array<() => Promise<void>> = [];
    opened.push({
      close: async () => {
        for (const close of closers.splice(0).reverse()) await close();
      },
    });
    const nc = await connection();
    const sessions = uniqueName('sessions');
    const stateStore = new NatsKvStateStore({
      servers: nats.server.url,
      connectionOptions: fastReconnect,
      bucket: sessions,
      timeoutMs: 500,
    });
    const node = await outageNode(stateStore, new MemoryHistory(), closers);
    const { first, saved: snapshot } = await leftSession(node, closers);
    const bucket = await new Kvm(nc).open(sessions);
    // Nothing but the node's sessions is kept in the bucket.
    const saved = async () => {
      for await (const _ of await bucket.keys()) return true;
      return false;
    };
    await until(saved, 5000, 'the session saved');

    const back = nextStatus(nc, 'reconnect', 30_000);
    await nats.server.kill();
    nats.server.wipeStorage();
    const resumed = outageClient(node, closers, snapshot);
    await until(() => resumed.welcomes.length === 1, 10_000, 'the resume attempt');
    expect(resumed.welcomes[0]).toMatchObject({ resumed: false, reason: 'unavailable' });
    await nats.server.start(); // without its storage: the bucket and the session are gone
    await back;
    await until(() => resumed.welcomes.length === 2, 15_000, 'the resume once the store answers');
    expect(resumed.closes[0]).toMatch(/^1012 /);
    expect(resumed.welcomes[1]).toMatchObject({ resumed: false, reason: 'expired' });
    expect(resumed.welcomes[1]!.clientId).not.toBe(first.welcomes[0]!.clientId);
    await until(() => resumed.client.rooms.includes('feed'), 5000, 'the new session in its room');
    await node.to('feed').send('to the new session');
    await until(() => resumed.texts.includes('to the new session'), 5000, 'a message to it');
  }, 60_000);
});
