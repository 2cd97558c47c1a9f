// @ts-check
// A process the stack started (src/stack.js): its output read line by line, waited on, stopped by
// the pid it got, never by name.
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';

/** A process this stack started: its output goes to `log` line by line, prefixed with its label. */
export class Child {
  /** @type {import('node:child_process').ChildProcess} */
  #process;
  /** @type {Promise<void>} */
  #exited;
  #output = '';
  /** @type {Set<(line: string) => void>} */
  #lineListeners = new Set();

  /**
   * @param {string} label
   * @param {'redis' | 'node' | 'lb'} role
   * @param {string} command
   * @param {(line: string) => void} log
   * @param {{ args: string[], env?: Record<string, string>, cwd?: string, stopSignal?: NodeJS.Signals }} options
   */
  constructor(label, role, command, log, options) {
    this.role = role;
    this.label = label;
    /** @type {NodeJS.Signals} */
    this.stopSignal = options.stopSignal ?? 'SIGTERM';
    // Its own process group: Ctrl-C reaches only the launcher, which stops things in order.
    this.#process = spawn(command, options.args, {
      cwd: options.cwd,
      env: { ...process.env, ...options.env },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    this.#exited = new Promise((resolve) => this.#process.once('exit', () => resolve()));
    this.#process.once('error', (error) => {
      this.#output += `${error.message}\n`;
      log(`[${label}] ${error.message}`);
    });
    for (const stream of [this.#process.stdout, this.#process.stderr]) {
      if (stream === null) continue;
      createInterface({ input: stream }).on('line', (line) => {
        this.#output = `${this.#output}${line}\n`.slice(-8000);
        log(`[${label}] ${line}`);
        for (const listener of this.#lineListeners) listener(line);
      });
    }
  }

  get pid() {
    return this.#process.pid;
  }

  get running() {
    return (
      this.#process.exitCode === null && this.#process.signalCode === null && this.pid !== undefined
    );
  }

  /**
   * Resolves with the first output line that matches; rejects if the process exits or the time
   * runs out first.
   *
   * @param {RegExp} pattern
   * @param {number} timeoutMs
   * @returns {Promise<RegExpMatchArray>}
   */
  waitForLine(pattern, timeoutMs) {
    return new Promise((resolve, reject) => {
      const done = () => {
        clearTimeout(timer);
        this.#lineListeners.delete(onLine);
        this.#process.off('exit', onExit);
      };
      /** @param {string} line */
      const onLine = (line) => {
        const match = line.match(pattern);
        if (match !== null) {
          done();
          resolve(match);
        }
      };
      const onExit = () => {
        done();
        reject(new Error(`${this.label} exited before it was ready:\n${this.#output}`));
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`${this.label} not ready after ${timeoutMs} ms:\n${this.#output}`));
      }, timeoutMs);
      this.#lineListeners.add(onLine);
      this.#process.once('exit', onExit);
      if (!this.running) onExit();
    });
  }

  /**
   * Polls `check` (every 100 ms, there is no event to wait for) until it returns true; rejects if
   * the process exits or the time runs out first.
   *
   * @param {() => Promise<boolean>} check
   * @param {number} timeoutMs
   */
  async until(check, timeoutMs) {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (!this.running) throw new Error(`${this.label} exited:\n${this.#output}`);
      if (await check()) return;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    throw new Error(`${this.label} not ready after ${timeoutMs} ms:\n${this.#output}`);
  }

  /**
   * Sends `signal`, then SIGKILL if the process is still there after `graceMs`; resolves once it
   * has exited.
   *
   * @param {NodeJS.Signals} signal
   * @param {number} graceMs
   */
  async stop(signal, graceMs) {
    if (this.running) {
      this.#signal(signal);
      const timer = setTimeout(() => this.#signal('SIGKILL'), graceMs);
      await this.#exited;
      clearTimeout(timer);
    }
  }

  /** SIGKILL without waiting: for the launcher's own exit. */
  killNow() {
    if (this.running) this.#signal('SIGKILL');
  }

  /** @param {NodeJS.Signals} signal */
  #signal(signal) {
    try {
      process.kill(/** @type {number} */ (this.pid), signal);
    } catch {
      // it exited meanwhile
    }
  }
}
