import { type ChildProcess, fork, spawn } from 'node:child_process';

const TAIL_BYTES = 8192;

/** A process the run started: its pid, and the end of what it printed (for error messages). */
export interface Started {
  child: ChildProcess;
  name: string;
  output(): string;
}

/** A program that runs Node under it (`valgrind`): `execPath ...args node ...execArgv module`. */
export interface Launcher {
  execPath: string;
  args: string[];
}

/**
 * Every process the run starts goes through here, so that all of them are stopped by pid at the
 * end, also when the run fails or is interrupted.
 */
export class Processes {
  readonly #alive = new Map<number, Started>();
  readonly #verbose: boolean;

  constructor(verbose: boolean) {
    this.#verbose = verbose;
    // Last resort, synchronous: nothing we started outlives us.
    process.on('exit', () => {
      for (const pid of this.#alive.keys()) kill(pid, 'SIGKILL');
    });
  }

  /** Forks a Node module with an IPC channel, through `launcher` when one is given. */
  fork(
    name: string,
    module: string,
    env: Record<string, string>,
    execArgv: string[],
    launcher?: Launcher,
  ): Started {
    const child = fork(module, [], {
      env: { ...process.env, ...env },
      ...(launcher === undefined
        ? { execArgv }
        : {
            execPath: launcher.execPath,
            execArgv: [...launcher.args, process.execPath, ...execArgv],
          }),
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    });
    return this.#track(name, child);
  }

  /** Spawns a program (a broker server). */
  spawn(name: string, command: string, args: string[]): Started {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    return this.#track(name, child);
  }

  #track(name: string, child: ChildProcess): Started {
    let tail = '';
    const collect = (chunk: Buffer) => {
      const text = chunk.toString();
      if (this.#verbose) process.stderr.write(`[${name}] ${text}`);
      tail = (tail + text).slice(-TAIL_BYTES);
    };
    child.stdout?.on('data', collect);
    child.stderr?.on('data', collect);
    const started: Started = { child, name, output: () => tail };
    const pid = child.pid;
    if (pid === undefined) throw new Error(`${name} did not start`);
    this.#alive.set(pid, started);
    child.once('exit', () => this.#alive.delete(pid));
    child.once('error', () => this.#alive.delete(pid));
    return started;
  }

  /** Waits for a process to exit; kills it by pid after `graceMs`. */
  async stop(started: Started, graceMs = 5000, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const { child } = started;
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    if (signal !== 'SIGKILL' && graceMs > 0) {
      kill(child.pid!, signal);
      const timer = setTimeout(() => kill(child.pid!, 'SIGKILL'), graceMs);
      await exited;
      clearTimeout(timer);
      return;
    }
    kill(child.pid!, 'SIGKILL');
    await exited;
  }

  /** Waits (bounded) for a process that was asked to exit; kills it by pid if it does not. */
  async reap(started: Started, graceMs: number): Promise<void> {
    const { child } = started;
    if (child.exitCode !== null || child.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        kill(child.pid!, 'SIGKILL');
      }, graceMs);
      child.once('exit', () => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  /** Stops everything still running, by pid. */
  async stopAll(): Promise<void> {
    await Promise.all([...this.#alive.values()].map((started) => this.stop(started, 2000)));
  }
}

function kill(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // already gone
  }
}
