import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

const PAGE_SIZE = (() => {
  try {
    return Number(execFileSync('getconf', ['PAGESIZE'], { encoding: 'utf8' }).trim()) || 4096;
  } catch {
    return 4096;
  }
})();

/** RSS of a process from `/proc/<pid>/statm` (Linux), or undefined. */
export function rssOf(pid: number): number | undefined {
  try {
    const resident = Number(readFileSync(`/proc/${pid}/statm`, 'utf8').split(' ')[1]);
    return Number.isFinite(resident) ? resident * PAGE_SIZE : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Watches the RSS of some processes from the outside every `intervalMs` and keeps the highest
 * seen per process since the last reset, so the processes measured pay nothing for it.
 */
export class PeakRss {
  readonly #pids: number[];
  readonly #peaks: number[];
  readonly #timer: NodeJS.Timeout;

  constructor(pids: number[], intervalMs = 20) {
    this.#pids = pids;
    this.#peaks = pids.map(() => 0);
    this.#timer = setInterval(() => this.#poll(), intervalMs);
    this.#timer.unref();
    this.#poll();
  }

  #poll(): void {
    for (let i = 0; i < this.#pids.length; i++) {
      const rss = rssOf(this.#pids[i]!);
      if (rss !== undefined && rss > this.#peaks[i]!) this.#peaks[i] = rss;
    }
  }

  reset(): void {
    this.#peaks.fill(0);
    this.#poll();
  }

  /** The highest RSS per process since the last reset. */
  peaks(): number[] {
    this.#poll();
    return [...this.#peaks];
  }

  stop(): void {
    clearInterval(this.#timer);
  }
}
