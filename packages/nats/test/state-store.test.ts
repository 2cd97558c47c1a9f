import { jetstreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { connect } from '@nats-io/transport-node';
import { StateStoreError, WscaleError } from '@wscale/core';
import { stateStoreSuite, until } from '@wscale/core/testing';
import { encodeToken, NatsKvStateStore } from '@wscale/nats';
import { type SingleNats, skipWithoutNats, startNatsServer } from '@wscale/test-support';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { deleteStream, fastReconnect, uniqueName } from './helpers/clients.js';

const runner = { describe, it, afterEach };

describe.skipIf(skipWithoutNats())('NatsKvStateStore on one nats-server', () => {
  let nats: SingleNats;
  const bucket = uniqueName('sessions');
  const store = (options: ConstructorParameters<typeof NatsKvStateStore>[0] = {}) =>
    new NatsKvStateStore({
      servers: nats.server.url,
      connectionOptions: fastReconnect,
      timeoutMs: 2000,
      ...options,
    });

  beforeAll(async () => {
    nats = await startNatsServer();
  });
  afterAll(async () => {
    await nats?.close();
  });

  // One bucket per TTL: a bucket's max age is the TTL of every key in it.
  stateStoreSuite(runner, {
    create: ({ ttlMs }) => store({ bucket: `${bucket}_${ttlMs}`, ttlMs }),
  });

  it('stores records in the named bucket, keys encoded, with the TTL as max age', async () => {
    const s = store({ bucket: `${bucket}_named`, ttlMs: 90_000 });
    try {
      await s.set('a.b *>', 'x');
      const nc = await connect({ servers: nats.server.url });
      try {
        const jsm = await jetstreamManager(nc);
        const info = await jsm.streams.info(`KV_${bucket}_named`, {
          subjects_filter: '>',
        });
        expect(info.config.max_age).toBe(90_000 * 1e6);
        expect(info.config.max_msgs_per_subject).toBe(1);
        expect(Object.keys(info.state.subjects ?? {})).toEqual([
          `$KV.${bucket}_named.${Buffer.from('a.b *>').toString('base64url')}`,
        ]);
      } finally {
        await nc.close();
      }
    } finally {
      await s.close();
    }
  });

  it('creates its bucket again when it is deleted under it', async () => {
    const name = `${bucket}_deleted`;
    const s = store({ bucket: name });
    try {
      await s.set('before', 'x');
      await deleteStream(nats.server.url, `KV_${name}`);
      // The same store: the first operation may fail, a later one finds its bucket again.
      await until(
        () =>
          s.set('after', 'y').then(
            () => true,
            () => false,
          ),
        10_000,
        'a write after the bucket was deleted',
      );
      expect((await s.get('after'))?.value).toBe('y');
      expect(await s.get('before')).toBeUndefined();
    } finally {
      await s.close();
    }
  });

  it('reads again after its bucket was deleted under it, though nothing writes first', async () => {
    const name = `${bucket}_deleted_read`;
    const s = store({ bucket: name });
    try {
      await s.set('before', 'x');
      await deleteStream(nats.server.url, `KV_${name}`);
      // A direct get of a missing stream gets no answer at all: a read times out, and the store
      // checks its bucket (creating it again) before the next one.
      await until(
        () =>
          s.get('before').then(
            (entry) => entry === undefined,
            (error: unknown) => {
              expect(error).toBeInstanceOf(StateStoreError);
              return false;
            },
          ),
        8000,
        'a read after the bucket was deleted',
      );
    } finally {
      await s.close();
    }
  });

  it('brings an existing bucket to its TTL', async () => {
    const name = `${bucket}_retuned`;
    const first = store({ bucket: name, ttlMs: 60_000 });
    await first.set('k', 'v');
    await first.close();
    const second = store({ bucket: name, ttlMs: 30_000 });
    try {
      expect((await second.get('k'))?.value).toBe('v');
      const nc = await connect({ servers: nats.server.url });
      const jsm = await jetstreamManager(nc);
      expect((await jsm.streams.info(`KV_${name}`)).config.max_age).toBe(30_000 * 1e6);
      await nc.close();
    } finally {
      await second.close();
    }
  });

  it('reads a single-replica bucket with direct gets, turning them on in an existing one', async () => {
    const name = `${bucket}_direct`;
    const nc = await connect({ servers: nats.server.url });
    const s = store({ bucket: name });
    try {
      // A bucket made by an older version (or by hand) without direct gets.
      const kv = await new Kvm(nc).create(name, { history: 1, allow_direct: false });
      await kv.put(encodeToken('k'), 'old');
      const jsm = await jetstreamManager(nc);
      expect((await jsm.streams.info(`KV_${name}`)).config.allow_direct).toBe(false);
      expect((await s.get('k'))?.value).toBe('old');
      expect((await jsm.streams.info(`KV_${name}`)).config.allow_direct).toBe(true);
      // Every acknowledged write is seen by the next read.
      for (let i = 0; i < 20; i++) {
        const version = await s.set('k', `v${i}`);
        expect(await s.get('k')).toEqual({ value: `v${i}`, version });
      }
    } finally {
      await s.close();
      await nc.close();
    }
  });

  it('treats a version it never handed out as a failed condition', async () => {
    const s = store({ bucket: `${bucket}_versions` });
    try {
      await s.set('k', 'v');
      expect(await s.set('k', 'w', { ifVersion: 'not-a-revision' })).toBeUndefined();
      expect(await s.set('k', 'w', { ifVersion: '0' })).toBeUndefined();
      expect((await s.get('k'))?.value).toBe('v');
      await s.delete('k');
      expect(await s.set('k', 'again', { ifVersion: null })).toBeTypeOf('string');
    } finally {
      await s.close();
    }
  });

  it('rejects with StateStoreError within its timeout while NATS is down, and recovers', async () => {
    const s = store({ bucket: `${bucket}_outage`, timeoutMs: 1000 });
    try {
      await s.set('k', 'before');
      await nats.server.kill();
      const started = Date.now();
      await expect(s.get('k')).rejects.toBeInstanceOf(StateStoreError);
      await expect(s.set('k', 'during')).rejects.toBeInstanceOf(StateStoreError);
      expect(Date.now() - started).toBeLessThan(5000);
      await nats.server.start();
      let value: string | undefined;
      const deadline = Date.now() + 10_000;
      while (value === undefined && Date.now() < deadline) {
        value = await s.get('k').then(
          (entry) => entry?.value,
          (error: unknown) => {
            expect(error).toBeInstanceOf(StateStoreError);
            return undefined;
          },
        );
      }
      // File storage survives the restart; the write that failed may or may not have landed.
      expect(['before', 'during']).toContain(value);
    } finally {
      await nats.server.start();
      await s.close();
    }
  }, 30_000);

  it('rejects use after close with a typed error', async () => {
    const s = store({ bucket: `${bucket}_closed` });
    await s.close();
    await expect(s.get('k')).rejects.toBeInstanceOf(WscaleError);
  });

  it('rejects bad options', () => {
    expect(() => new NatsKvStateStore({ bucket: 'a.b' })).toThrow(WscaleError);
    expect(() => new NatsKvStateStore({ ttlMs: 0 })).toThrow(WscaleError);
    expect(() => new NatsKvStateStore({ replicas: 0 })).toThrow(WscaleError);
  });
});
