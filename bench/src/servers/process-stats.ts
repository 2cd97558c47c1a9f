/** What a process says about itself: CPU time used so far and memory. */
export interface ProcessSample {
  pid: number;
  /** User + system CPU time since the process started, in microseconds. */
  cpuMicros: number;
  /** The user part of it: the process's own code, without the kernel's work for it. */
  userMicros: number;
  rss: number;
  heapUsed: number;
  external: number;
}

/**
 * Answers samples of this process. Peaks of RSS are watched from outside (the orchestrator reads
 * `/proc`), so that watching costs the measured process nothing.
 */
export class ProcessStats {
  sample(): ProcessSample {
    const cpu = process.cpuUsage();
    const memory = process.memoryUsage();
    return {
      pid: process.pid,
      cpuMicros: cpu.user + cpu.system,
      userMicros: cpu.user,
      rss: memory.rss,
      heapUsed: memory.heapUsed,
      external: memory.external,
    };
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
