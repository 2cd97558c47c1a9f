import { JetStreamApiCodes, JetStreamApiError, jetstreamManager } from '@nats-io/jetstream';
import { type KV, Kvm } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import {
  InvalidOptionError,
  type StateStore,
  StateStoreError,
  type Version,
  type Versioned,
} from '@wscale/core';
import { type NatsConnectOptions, resolveConnection } from './connection.js';
import { nanos } from './nanos.js';
import { encodeToken } from './subject-token.js';
import { runTyped } from './timeout.js';

/** Options of {@link NatsKvStateStore}. */
export interface NatsKvStateStoreOptions extends NatsConnectOptions {
  /**
   * The JetStream KV bucket holding the records (created when missing). Every node must use the
   * same bucket and the same `ttlMs`.
   * @default 'wscale_sessions'
   */
  bucket?: string;
  /**
   * How long a key lives after its last write. It is the bucket's max age: a store that opens
   * an existing bucket with another max age updates the bucket to this value.
   * @default 300000 (five minutes)
   */
  ttlMs?: number;
  /**
   * Replicas of the bucket when this store creates it (3 on a cluster survives a node's loss).
   * @default 1
   */
  replicas?: number;
  /**
   * How long one operation may take before it rejects with `StateStoreError`.
   * @default 5000
   */
  timeoutMs?: number;
}

/**
 * A {@link StateStore} in a JetStream KV bucket: versions are the entries' revisions, compare-and-set
 * is `kv.create` / `kv.update`, and the time to live is the bucket's max age (each write is a new
 * revision, so it refreshes the key's age). Keys are encoded into the KV key alphabet. Reads go to
 * the stream leader, so a read sees every write acknowledged before it.
 */
export class NatsKvStateStore implements StateStore {
  readonly ttlMs: number;
  readonly #bucket: string;
  readonly #replicas: number;
  readonly #timeoutMs: number;
  readonly #connection: Promise<NatsConnection>;
  readonly #owned: boolean;
  #kv: Promise<KV> | undefined;
  #closed = false;

  constructor(options: NatsKvStateStoreOptions = {}) {
    this.ttlMs = options.ttlMs ?? 300_000;
    this.#bucket = options.bucket ?? 'wscale_sessions';
    this.#replicas = options.replicas ?? 1;
    this.#timeoutMs = options.timeoutMs ?? 5000;
    if (!(this.ttlMs >= 1)) throw new InvalidOptionError('ttlMs must be >= 1');
    if (!/^[-\w]+$/.test(this.#bucket)) {
      throw new InvalidOptionError('bucket may only hold letters, digits, "-" and "_"');
    }
    if (!Number.isInteger(this.#replicas) || this.#replicas < 1) {
      throw new InvalidOptionError('replicas must be a whole number >= 1');
    }
    if (!(this.#timeoutMs > 0)) throw new InvalidOptionError('timeoutMs must be > 0');
    const { connection, owned } = resolveConnection(options, 'wscale-state-store');
    this.#connection = connection;
    this.#owned = owned;
  }

  async get(key: string): Promise<Versioned<string> | undefined> {
    return this.#run('read', key, async (kv) => {
      const entry = await kv.get(encodeToken(key));
      if (entry === null || entry.operation !== 'PUT') return undefined;
      return { value: entry.string(), version: String(entry.revision) };
    });
  }

  async set(
    key: string,
    value: string,
    options: { ifVersion?: Version | null } = {},
  ): Promise<Version | undefined> {
    const { ifVersion } = options;
    let expected: number | undefined;
    if (typeof ifVersion === 'string') {
      expected = Number(ifVersion);
      // Not a revision this store ever handed out: it cannot match.
      if (!Number.isSafeInteger(expected) || expected < 1) return undefined;
    }
    return this.#run('write', key, async (kv) => {
      const k = encodeToken(key);
      try {
        let revision: number;
        if (ifVersion === null) revision = await kv.create(k, value);
        else if (expected !== undefined) revision = await kv.update(k, value, expected);
        else revision = await kv.put(k, value);
        return String(revision);
      } catch (error) {
        if (isConflict(error)) return undefined;
        throw error;
      }
    });
  }

  async delete(key: string): Promise<void> {
    await this.#run('delete', key, (kv) => kv.delete(encodeToken(key)));
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (!this.#owned) return;
    const nc = await this.#connection.catch(() => undefined);
    if (nc !== undefined && !nc.isClosed()) await nc.close();
  }

  async #run<T>(what: string, key: string, operation: (kv: KV) => Promise<T>): Promise<T> {
    if (this.#closed) throw new StateStoreError('the state store is closed');
    return runTyped(
      () => this.#open().then(operation),
      this.#timeoutMs,
      StateStoreError,
      `NATS KV ${what} of "${key}" failed`,
    );
  }

  /** Opens (creating or re-configuring) the bucket once; a failed attempt is retried next time. */
  #open(): Promise<KV> {
    if (this.#kv !== undefined) return this.#kv;
    const opening = this.#connection.then((nc) => this.#ensureBucket(nc));
    this.#kv = opening;
    opening.catch(() => {
      if (this.#kv === opening) this.#kv = undefined;
    });
    return opening;
  }

  async #ensureBucket(nc: NatsConnection): Promise<KV> {
    const kv = await new Kvm(nc).create(this.#bucket, {
      ttl: this.ttlMs,
      history: 1,
      replicas: this.#replicas,
      // Direct gets may be answered by a replica that lags behind the leader: read from the leader.
      allow_direct: false,
      timeout: this.#timeoutMs,
    });
    // An existing bucket keeps its configuration on open: bring its max age to our TTL.
    const jsm = await jetstreamManager(nc, { timeout: this.#timeoutMs });
    const stream = `KV_${this.#bucket}`;
    const { config } = await jsm.streams.info(stream);
    const maxAge = nanos(this.ttlMs);
    if (config.max_age !== maxAge) {
      await jsm.streams.update(stream, {
        max_age: maxAge,
        duplicate_window: Math.min(config.duplicate_window || maxAge, maxAge),
      });
    }
    return kv;
  }
}

function isConflict(error: unknown): boolean {
  return (
    error instanceof JetStreamApiError &&
    (error.code === JetStreamApiCodes.StreamWrongLastSequence ||
      error.code === JetStreamApiCodes.StreamWrongLastSequenceUnknown)
  );
}
