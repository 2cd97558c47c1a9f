import { execFile } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Launcher } from './processes.js';

const run = promisify(execFile);
/** Bound on one `callgrind_control` command, ms (the process answers it when it next runs). */
const CONTROL_MS = 60_000;

/**
 * Counts the instructions node processes execute on their main thread in a window, with
 * Valgrind's callgrind: the processes run under it (see {@link launcher}) with instrumentation
 * off, {@link start} turns it on and zeroes the counts, {@link stop} reads them and turns it off.
 *
 * Instructions are what the code does, whatever else the machine is doing: on a shared machine
 * whose CPU time per message moves by a tenth between two measures of one server, a count of
 * instructions compares two servers' code to a few percent. It leaves out what the kernel does
 * (the system calls, the same for servers that make the same calls), what the caches cost, and
 * V8's own threads (its optimizing compiler and parts of its collector run there, whenever they
 * get to it: their share of a window moves by tens of millions of instructions).
 */
export class InstructionCounter {
  readonly #dir: string;

  /** `dir`: where callgrind writes its counts (one file per process and dump). */
  constructor(dir: string) {
    this.#dir = dir;
  }

  /** Runs Node under callgrind, instrumenting nothing until {@link start}. */
  get launcher(): Launcher {
    return {
      execPath: 'valgrind',
      args: [
        '--tool=callgrind',
        // Node writes machine code of its own (V8's compilers): callgrind must see it change.
        '--smc-check=all-non-file',
        '--instr-atstart=no',
        // A file per thread: the main thread's is read alone.
        '--separate-threads=yes',
        `--callgrind-out-file=${join(this.#dir, 'callgrind.%p.out')}`,
      ],
    };
  }

  /** Starts counting in each process, from zero. */
  async start(pids: number[]): Promise<void> {
    await Promise.all(pids.map((pid) => control(pid, '--instr=on').then(() => control(pid, '-z'))));
  }

  /** Stops counting; resolves with each process's instructions since {@link start}. */
  async stop(pids: number[]): Promise<number[]> {
    return Promise.all(
      pids.map(async (pid) => {
        await control(pid, '--dump');
        await control(pid, '--instr=off');
        return this.#lastTotal(pid);
      }),
    );
  }

  /** The process's latest dump of its main thread: `callgrind.<pid>.out.<n>-01`, n highest. */
  dumpOf(pid: number): string {
    const dump = new RegExp(`^callgrind\\.${pid}\\.out\\.(\\d+)-01$`);
    let last: { name: string; n: number } | undefined;
    for (const name of readdirSync(this.#dir)) {
      const n = Number(dump.exec(name)?.[1] ?? -1);
      if (n > (last?.n ?? -1)) last = { name, n };
    }
    if (last === undefined) throw new Error(`callgrind wrote no counts for pid ${pid}`);
    return join(this.#dir, last.name);
  }

  /** The main thread's total in the process's latest dump. */
  #lastTotal(pid: number): number {
    const file = this.dumpOf(pid);
    const totals = /^totals: (\d+)/m.exec(readFileSync(file, 'utf8'));
    if (totals === null) throw new Error(`no totals in ${file}`);
    return Number(totals[1]);
  }
}

async function control(pid: number, command: string): Promise<void> {
  await run('callgrind_control', [command, String(pid)], { timeout: CONTROL_MS });
}
