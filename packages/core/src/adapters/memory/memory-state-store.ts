import type { StateStore, Version, Versioned } from '../../contracts.js';
import { InvalidOptionError } from '../../errors.js';

/** Options of {@link MemoryStateStore}. */
export interface MemoryStateStoreOptions {
  /**
   * How long a key lives after its last write.
   * @default 300000 (five minutes)
   */
  ttlMs?: number;
}

interface Entry {
  value: string;
  version: number;
  expiresAt: number;
}

/**
 * A {@link StateStore} in one process's memory. Share one instance between several servers in
 * one process; for several processes use the cluster, Redis or NATS store.
 */
export class MemoryStateStore implements StateStore {
  readonly ttlMs: number;
  readonly #entries = new Map<string, Entry>();
  readonly #sweeper: NodeJS.Timeout;
  #version = 0;

  constructor(options: MemoryStateStoreOptions = {}) {
    this.ttlMs = options.ttlMs ?? 300_000;
    if (!(this.ttlMs > 0)) throw new InvalidOptionError('ttlMs must be > 0');
    this.#sweeper = setInterval(() => this.#sweep(), Math.min(this.ttlMs, 60_000));
    this.#sweeper.unref();
  }

  async get(key: string): Promise<Versioned<string> | undefined> {
    const entry = this.#live(key);
    return entry && { value: entry.value, version: String(entry.version) };
  }

  /**
   * Writes a key, as {@link StateStore.set}. `ttlMs` overrides this store's time to live for this
   * write, so one store can keep keys for clients configured differently (the cluster hub does).
   */
  async set(
    key: string,
    value: string,
    options: { ifVersion?: Version | null; ttlMs?: number } = {},
  ): Promise<Version | undefined> {
    const current = this.#live(key);
    if (options.ifVersion === null && current !== undefined) return undefined;
    if (typeof options.ifVersion === 'string' && String(current?.version) !== options.ifVersion) {
      return undefined;
    }
    const version = ++this.#version;
    this.#entries.set(key, {
      value,
      version,
      expiresAt: Date.now() + (options.ttlMs ?? this.ttlMs),
    });
    return String(version);
  }

  async delete(key: string): Promise<void> {
    this.#entries.delete(key);
  }

  async close(): Promise<void> {
    clearInterval(this.#sweeper);
    this.#entries.clear();
  }

  #live(key: string): Entry | undefined {
    const entry = this.#entries.get(key);
    if (entry === undefined) return undefined;
    if (entry.expiresAt <= Date.now()) {
      this.#entries.delete(key);
      return undefined;
    }
    return entry;
  }

  #sweep(): void {
    const now = Date.now();
    for (const [key, entry] of this.#entries) if (entry.expiresAt <= now) this.#entries.delete(key);
  }
}
