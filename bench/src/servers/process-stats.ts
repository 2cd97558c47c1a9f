/** What a process says about itself: CPU time used so far and memory. */
export interface ProcessSample {
  pid: number;
  /** User + system CPU time since the process started, in microseconds. */
  cpuMicros: number;
  rss: number;
  /** The highest RSS seen since the last reset (sampled every {@link PEAK_INTERVAL_MS}). */
  peakRss: number;
  heapUsed: number;
  external: number;
}

const PEAK_INTERVAL_MS = 20;

/** Watches this process's RSS for peaks, and answers samples. */
export class ProcessStats {
  #peak = process.memoryUsage.rss();

  constructor() {
    setInterval(() => {
      const rss = process.memoryUsage.rss();
      if (rss > this.#peak) this.#peak = rss;
    }, PEAK_INTERVAL_MS).unref();
  }

  sample(): ProcessSample {
    const cpu = process.cpuUsage();
    const memory = process.memoryUsage();
    if (memory.rss > this.#peak) this.#peak = memory.rss;
    return {
      pid: process.pid,
      cpuMicros: cpu.user + cpu.system,
      rss: memory.rss,
      peakRss: this.#peak,
      heapUsed: memory.heapUsed,
      external: memory.external,
    };
  }

  resetPeak(): ProcessSample {
    this.#peak = process.memoryUsage.rss();
    return this.sample();
  }

  /** Collects garbage (the process runs with `--expose-gc`), then samples. */
  async settle(): Promise<ProcessSample> {
    const gc = (globalThis as { gc?: () => void }).gc;
    for (let i = 0; i < 3; i++) {
      gc?.();
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    return this.sample();
  }
}
