import type { StateStore, Version, Versioned } from '../../contracts.js';
import { InvalidOptionError, StateStoreError } from '../../errors.js';
import {
  type ErrorFactory,
  type RequestBody,
  requestTimeout,
  WorkerChannel,
} from './worker-channel.js';

/** Options of {@link ClusterStateStore}. */
export interface ClusterStateStoreOptions {
  /**
   * How long a key lives after its last write.
   * @default 300000 (five minutes)
   */
  ttlMs?: number;
  /**
   * How long one operation waits for the {@link ClusterHub} before it rejects with
   * {@link StateStoreError}.
   * @default 5000
   */
  requestTimeoutMs?: number;
}

const failed: ErrorFactory = (message, cause) => new StateStoreError(message, { cause });

/**
 * A {@link StateStore} for node:cluster workers: the keys live in the primary's memory, in the
 * {@link ClusterHub}, so every worker sees every other's writes. They last as long as the primary.
 *
 * @throws {@link InvalidOptionError} when created outside a node:cluster worker.
 */
export class ClusterStateStore implements StateStore {
  readonly ttlMs: number;
  readonly #timeoutMs: number;
  #channel: WorkerChannel | undefined;

  constructor(options: ClusterStateStoreOptions = {}) {
    this.ttlMs = options.ttlMs ?? 300_000;
    if (!(this.ttlMs > 0)) throw new InvalidOptionError('ttlMs must be > 0');
    this.#timeoutMs = requestTimeout(options.requestTimeoutMs);
    this.#channel = WorkerChannel.acquire();
  }

  async get(key: string): Promise<Versioned<string> | undefined> {
    return ((await this.#request({ kind: 'state.get', key })) ?? undefined) as
      | Versioned<string>
      | undefined;
  }

  async set(
    key: string,
    value: string,
    options: { ifVersion?: Version | null } = {},
  ): Promise<Version | undefined> {
    const body: Extract<RequestBody, { kind: 'state.set' }> = {
      kind: 'state.set',
      key,
      value,
      ttlMs: this.ttlMs,
    };
    if (options.ifVersion !== undefined) body.ifVersion = options.ifVersion;
    return ((await this.#request(body)) ?? undefined) as Version | undefined;
  }

  async delete(key: string): Promise<void> {
    await this.#request({ kind: 'state.delete', key });
  }

  async close(): Promise<void> {
    this.#channel?.release();
    this.#channel = undefined;
  }

  #request(body: RequestBody): Promise<unknown> {
    if (this.#channel === undefined) {
      return Promise.reject(new StateStoreError('the state store is closed'));
    }
    return this.#channel.request(() => body, failed, this.#timeoutMs);
  }
}
