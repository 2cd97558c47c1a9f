import { randomBytes } from 'node:crypto';
import {
  InvalidOptionError,
  type StateStore,
  StateStoreError,
  type Version,
  type Versioned,
} from '@wscale/core';
import { Command, type Redis } from 'ioredis';
import type { CommandDeadlines, SendCommand } from './command-deadlines.js';
import {
  closeClient,
  messageOf,
  openStoreClient,
  type RedisClient,
  type RedisConnection,
  whenReady,
} from './connection.js';
import { LuaScript } from './lua-script.js';
import { checkPrefix, hashTagged } from './naming.js';

/** Options of {@link RedisStateStore}. */
export interface RedisStateStoreOptions {
  /**
   * Where Redis is: a URL, ioredis options (Sentinel too), or a `Redis` / `Cluster` client you
   * created (used as is, never closed by the store).
   * @default `{}` (ioredis's default: 127.0.0.1:6379), also when `undefined` (an unset variable)
   */
  redis?: RedisConnection | undefined;
  /**
   * How long a record lives after its last write, in milliseconds.
   * @default 300000 (five minutes)
   */
  ttlMs?: number;
  /**
   * Put before every key, so several applications can share one Redis. No `{` or `}`.
   * @default 'wscale:'
   */
  keyPrefix?: string;
  /**
   * How long a call may wait for Redis (to connect, or to answer) before it rejects with
   * {@link StateStoreError}.
   * @default 5000
   */
  commandTimeoutMs?: number;
}

// A record is one hash: `v` holds the value, `n` its version. One key per script, so it is
// Cluster-safe without a shared hash tag.
const SET = new LuaScript(`
local mode = ARGV[4]
if mode ~= 'any' then
  local current = redis.call('HGET', KEYS[1], 'n')
  if mode == 'absent' then
    if current then return false end
  elseif current ~= ARGV[5] then
    return false
  end
end
redis.call('HSET', KEYS[1], 'v', ARGV[1], 'n', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return ARGV[2]
`);

/**
 * A {@link StateStore} in Redis: each key is a hash holding the value and its version, with a
 * time to live every write refreshes. Compare-and-set runs as one Lua script, so it is atomic
 * across every node. Versions are random, so a record that expired and was written again never
 * matches a version read before.
 */
export class RedisStateStore implements StateStore {
  readonly ttlMs: number;
  readonly #client: RedisClient;
  readonly #owned: boolean;
  readonly #prefix: string;
  readonly #timeoutMs: number;
  readonly #pexpire: string;
  readonly #send: SendCommand;
  /** Bounds the commands on a connection the store opened. */
  readonly #deadlines: CommandDeadlines | undefined;

  constructor(options: RedisStateStoreOptions = {}) {
    this.ttlMs = options.ttlMs ?? 300_000;
    if (!(this.ttlMs > 0) || !Number.isFinite(this.ttlMs)) {
      throw new InvalidOptionError('ttlMs must be a finite number > 0');
    }
    this.#timeoutMs = options.commandTimeoutMs ?? 5000;
    if (!(this.#timeoutMs > 0)) throw new InvalidOptionError('commandTimeoutMs must be > 0');
    this.#prefix = `${checkPrefix('keyPrefix', options.keyPrefix ?? 'wscale:')}state:`;
    this.#pexpire = String(Math.ceil(this.ttlMs));
    const { client, owned, send, deadlines } = openStoreClient(options.redis, this.#timeoutMs);
    this.#client = client;
    this.#owned = owned;
    this.#send = send;
    this.#deadlines = deadlines;
  }

  async get(key: string): Promise<Versioned<string> | undefined> {
    const [value, version] = await this.#run('read', key, (client) =>
      this.#call<[string | null, string | null]>(client, 'hmget', [this.#key(key), 'v', 'n']),
    );
    if (value == null || version == null) return undefined;
    return { value, version };
  }

  async set(
    key: string,
    value: string,
    options: { ifVersion?: Version | null } = {},
  ): Promise<Version | undefined> {
    const { ifVersion } = options;
    const mode = ifVersion === undefined ? 'any' : ifVersion === null ? 'absent' : 'match';
    const version = randomBytes(12).toString('base64url');
    const written = await this.#run('write', key, (client) =>
      SET.run(
        client,
        [this.#key(key)],
        [value, version, this.#pexpire, mode, typeof ifVersion === 'string' ? ifVersion : ''],
        this.#send,
      ),
    );
    return written == null ? undefined : version;
  }

  async delete(key: string): Promise<void> {
    await this.#run('delete', key, (client) => this.#call(client, 'del', [this.#key(key)]));
  }

  async close(): Promise<void> {
    this.#deadlines?.stop();
    if (this.#owned) await closeClient(this.#client);
  }

  /** A command with text replies: bounded by the sweep on a connection the store opened. */
  #call<T>(client: RedisClient, name: string, args: string[]): Promise<T> {
    if (this.#deadlines === undefined) return client.call(name, ...args) as Promise<T>;
    const command = new Command(name, args, { replyEncoding: 'utf8' });
    return this.#send(client as Redis, command) as Promise<T>;
  }

  #key(key: string): string {
    return this.#prefix + hashTagged(key);
  }

  async #run<T>(what: string, key: string, command: (client: RedisClient) => Promise<T>) {
    try {
      await whenReady(this.#client, this.#timeoutMs);
      return await command(this.#client);
    } catch (error) {
      throw new StateStoreError(`could not ${what} "${key}" in Redis: ${messageOf(error)}`, {
        cause: error,
      });
    }
  }
}
