import { randomUUID } from 'node:crypto';
import type { History, HistoryEntry, HistoryPosition, HistoryReadResult } from '../../contracts.js';
import { InvalidOptionError } from '../../errors.js';

/** Options of {@link MemoryHistory}. */
export interface MemoryHistoryOptions {
  /**
   * Entries kept per room; older ones are trimmed.
   * @default 1000
   */
  maxEntries?: number;
  /**
   * Entries older than this are trimmed.
   * @default 600000 (ten minutes)
   */
  maxAgeMs?: number;
  /**
   * A room whose entries are all trimmed and that nobody read or wrote for this long is forgotten:
   * its next use starts a new log (a new epoch), as a Redis history's room key expiring. Without
   * it, every room ever used (each session's direct-message stream, each room a client joined)
   * would stay in memory for the life of the process.
   * @default 86400000 (one day)
   */
  roomTtlMs?: number;
}

interface RoomLog {
  epoch: string;
  /** Offset of the newest entry; 0 before the first append. */
  offset: number;
  entries: Array<HistoryEntry & { at: number }>;
  /** When it was last read or written. */
  used: number;
}

/** A {@link History} in one process's memory, shared by the servers of that process. */
export class MemoryHistory implements History {
  readonly #rooms = new Map<string, RoomLog>();
  readonly #maxEntries: number;
  readonly #maxAgeMs: number;
  readonly #roomTtlMs: number;
  /** When the rooms are next looked through for ones to trim or forget. */
  #sweepAt: number;

  constructor(options: MemoryHistoryOptions = {}) {
    this.#maxEntries = options.maxEntries ?? 1000;
    this.#maxAgeMs = options.maxAgeMs ?? 600_000;
    this.#roomTtlMs = options.roomTtlMs ?? 86_400_000;
    if (!Number.isInteger(this.#maxEntries) || this.#maxEntries < 1) {
      throw new InvalidOptionError('maxEntries must be a whole number >= 1');
    }
    if (!(this.#maxAgeMs > 0)) throw new InvalidOptionError('maxAgeMs must be > 0');
    if (!(this.#roomTtlMs > 0)) throw new InvalidOptionError('roomTtlMs must be > 0');
    this.#sweepAt = Date.now() + this.#sweepEveryMs();
  }

  async append(room: string, payload: Uint8Array): Promise<HistoryPosition> {
    const log = this.#log(room);
    log.offset += 1;
    log.entries.push({ offset: log.offset, payload, at: Date.now() });
    this.#trim(log);
    return { offset: log.offset, epoch: log.epoch };
  }

  async read(room: string, after: HistoryPosition, limit = Infinity): Promise<HistoryReadResult> {
    const log = this.#log(room);
    this.#trim(log);
    const position = { offset: log.offset, epoch: log.epoch };
    if (after.epoch !== log.epoch) return { ok: false, reason: 'epoch-changed', position };
    const first = log.entries[0]?.offset ?? log.offset + 1;
    if (after.offset + 1 < first) return { ok: false, reason: 'too-old', position };
    const start = after.offset + 1 - first;
    const entries = log.entries
      .slice(start, start + limit)
      .map(({ offset, payload }) => ({ offset, payload }));
    return { ok: true, epoch: log.epoch, entries };
  }

  async position(room: string): Promise<HistoryPosition> {
    const log = this.#log(room);
    return { offset: log.offset, epoch: log.epoch };
  }

  async close(): Promise<void> {
    this.#rooms.clear();
  }

  #log(room: string): RoomLog {
    const now = Date.now();
    if (now >= this.#sweepAt) this.#sweep(now);
    let log = this.#rooms.get(room);
    if (log === undefined) {
      log = { epoch: randomUUID(), offset: 0, entries: [], used: now };
      this.#rooms.set(room, log);
    }
    log.used = now;
    return log;
  }

  /**
   * Trims every room (an idle one keeps its old entries otherwise) and forgets those left empty
   * and unused for `roomTtlMs`. Runs on use, at most once per sweep interval: no timer.
   */
  #sweep(now: number): void {
    this.#sweepAt = now + this.#sweepEveryMs();
    for (const [room, log] of this.#rooms) {
      this.#trim(log);
      if (log.entries.length === 0 && now - log.used >= this.#roomTtlMs) this.#rooms.delete(room);
    }
  }

  #sweepEveryMs(): number {
    return Math.min(this.#maxAgeMs, this.#roomTtlMs, 60_000);
  }

  #trim(log: RoomLog): void {
    const oldest = Date.now() - this.#maxAgeMs;
    let drop = Math.max(0, log.entries.length - this.#maxEntries);
    while (drop < log.entries.length && log.entries[drop]!.at < oldest) drop++;
    if (drop > 0) log.entries.splice(0, drop);
  }
}
