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
}

interface RoomLog {
  epoch: string;
  /** Offset of the newest entry; 0 before the first append. */
  offset: number;
  entries: Array<HistoryEntry & { at: number }>;
}

/** A {@link History} in one process's memory, shared by the servers of that process. */
export class MemoryHistory implements History {
  readonly #rooms = new Map<string, RoomLog>();
  readonly #maxEntries: number;
  readonly #maxAgeMs: number;

  constructor(options: MemoryHistoryOptions = {}) {
    this.#maxEntries = options.maxEntries ?? 1000;
    this.#maxAgeMs = options.maxAgeMs ?? 600_000;
    if (!Number.isInteger(this.#maxEntries) || this.#maxEntries < 1) {
      throw new InvalidOptionError('maxEntries must be a whole number >= 1');
    }
    if (!(this.#maxAgeMs > 0)) throw new InvalidOptionError('maxAgeMs must be > 0');
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
    let log = this.#rooms.get(room);
    if (log === undefined) {
      log = { epoch: randomUUID(), offset: 0, entries: [] };
      this.#rooms.set(room, log);
    }
    return log;
  }

  #trim(log: RoomLog): void {
    const oldest = Date.now() - this.#maxAgeMs;
    let drop = Math.max(0, log.entries.length - this.#maxEntries);
    while (drop < log.entries.length && log.entries[drop]!.at < oldest) drop++;
    if (drop > 0) log.entries.splice(0, drop);
  }
}
