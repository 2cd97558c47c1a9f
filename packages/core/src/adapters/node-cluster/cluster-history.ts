import type { History, HistoryPosition, HistoryReadResult } from '../../contracts.js';
import { HistoryError, InvalidOptionError } from '../../errors.js';
import type { MemoryHistoryOptions } from '../memory/memory-history.js';
import { fromWire, type HistoryLimits, toWire, type WirePayload } from './ipc-protocol.js';
import {
  type ErrorFactory,
  type RequestBody,
  requestTimeout,
  WorkerChannel,
} from './worker-channel.js';

/** Options of {@link ClusterHistory}. */
export interface ClusterHistoryOptions extends MemoryHistoryOptions {
  /**
   * How long one operation waits for the {@link ClusterHub} before it rejects with
   * {@link HistoryError}.
   * @default 5000
   */
  requestTimeoutMs?: number;
}

type WireReadResult =
  | { ok: true; epoch: string; entries: Array<{ offset: number; payload: WirePayload }> }
  | Extract<HistoryReadResult, { ok: false }>;

const failed: ErrorFactory = (message, cause) => new HistoryError(message, { cause });

/**
 * A {@link History} for node:cluster workers: the room logs live in the primary's memory, in the
 * {@link ClusterHub}, and last as long as the primary. Workers whose histories have the same
 * `maxEntries` and `maxAgeMs` share their rooms' logs: give every worker the same options.
 *
 * @throws {@link InvalidOptionError} when created outside a node:cluster worker.
 */
export class ClusterHistory implements History {
  readonly #limits: HistoryLimits;
  readonly #timeoutMs: number;
  #channel: WorkerChannel | undefined;

  constructor(options: ClusterHistoryOptions = {}) {
    this.#limits = {
      maxEntries: options.maxEntries ?? 1000,
      maxAgeMs: options.maxAgeMs ?? 600_000,
    };
    if (!Number.isInteger(this.#limits.maxEntries) || this.#limits.maxEntries < 1) {
      throw new InvalidOptionError('maxEntries must be a whole number >= 1');
    }
    if (!(this.#limits.maxAgeMs > 0)) throw new InvalidOptionError('maxAgeMs must be > 0');
    this.#timeoutMs = requestTimeout(options.requestTimeoutMs);
    this.#channel = WorkerChannel.acquire();
  }

  async append(room: string, payload: Uint8Array): Promise<HistoryPosition> {
    return (await this.#request((binary) => ({
      kind: 'history.append',
      room,
      payload: toWire(payload, binary),
      ...this.#limits,
    }))) as HistoryPosition;
  }

  async read(room: string, after: HistoryPosition, limit?: number): Promise<HistoryReadResult> {
    const body: Extract<RequestBody, { kind: 'history.read' }> = {
      kind: 'history.read',
      room,
      after: { offset: after.offset, epoch: after.epoch },
      ...this.#limits,
    };
    // JSON would turn Infinity into null: leave an unbounded limit out instead.
    if (limit !== undefined && Number.isFinite(limit)) body.limit = limit;
    const read = (await this.#request(() => body)) as WireReadResult;
    if (!read.ok) return read;
    return {
      ok: true,
      epoch: read.epoch,
      entries: read.entries.map(({ offset, payload }) => ({ offset, payload: fromWire(payload) })),
    };
  }

  async position(room: string): Promise<HistoryPosition> {
    return (await this.#request(() => ({
      kind: 'history.position',
      room,
      ...this.#limits,
    }))) as HistoryPosition;
  }

  async close(): Promise<void> {
    this.#channel?.release();
    this.#channel = undefined;
  }

  #request(build: (binary: boolean) => RequestBody): Promise<unknown> {
    if (this.#channel === undefined)
      return Promise.reject(new HistoryError('the history is closed'));
    return this.#channel.request(build, failed, this.#timeoutMs);
  }
}
