import type { Command, Redis } from 'ioredis';

/**
 * ioredis's `commandTimeout` for the commands sent through it, with one timer for all of them
 * instead of one per command: a publish runs for every message, and arming and clearing a
 * `Timeout` per command cost more than the rest of the broker's own work on it.
 *
 * A command still unanswered `timeoutMs` after it was sent is rejected (`Command timed out`, as
 * ioredis says it) by a sweep that runs while commands are out, every tenth of the timeout: it
 * fails within `timeoutMs` plus that tenth (plus two tenths, when the timeout is not a multiple of
 * 10 ms). Time is counted in sweeps, not read from a clock per command: one sent after sweep `k`
 * fails once a timeout's worth of whole sweeps has passed after the next one (at sweep `k + 11`
 * for a multiple of 10 ms), and sweeps are at least a tenth apart (a late one moves the next ones
 * later too), so never sooner than `timeoutMs` after it was sent. Redis answers a connection's
 * commands in order, so the oldest command out is first in line, and answered ones leave from the
 * front as new ones come.
 */
export class CommandDeadlines {
  readonly #sweepMs: number;
  /**
   * Sweeps after the one a command was sent after at which it fails: those of the timeout, and
   * one for the part of a sweep it was sent into.
   */
  readonly #sweepsToFail: number;
  /**
   * The commands out, oldest first, with the sweep each was sent after: slots `#first` to `#end` of two
   * arrays reused from one command to the next (no allocation per command once they have grown).
   */
  readonly #commands: (Command | undefined)[] = [];
  readonly #sentAt: number[] = [];
  /** Sweeps so far. */
  #sweeps = 0;
  #first = 0;
  #end = 0;
  #timer: NodeJS.Timeout | undefined;

  constructor(timeoutMs: number) {
    this.#sweepMs = Math.max(1, Math.ceil(timeoutMs / 10));
    this.#sweepsToFail = Math.ceil(timeoutMs / this.#sweepMs) + 1;
  }

  /** Sends a command on `client`; its promise fails if Redis has not answered in time. */
  send(client: Redis, command: Command): Promise<unknown> {
    this.#dropAnswered();
    this.#commands[this.#end] = command;
    this.#sentAt[this.#end] = this.#sweeps;
    this.#end++;
    if (this.#timer === undefined) {
      this.#timer = setInterval(this.#sweep, this.#sweepMs);
      // The connection keeps the process alive while a command is out, not this timer.
      this.#timer.unref();
    }
    return client.sendCommand(command) as Promise<unknown>;
  }

  /** Stops sweeping; commands still out are left to the connection's close. */
  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
    this.#commands.fill(undefined, this.#first, this.#end);
    this.#first = 0;
    this.#end = 0;
  }

  readonly #sweep = (): void => {
    const expired = ++this.#sweeps - this.#sweepsToFail;
    while (this.#first < this.#end && this.#sentAt[this.#first]! <= expired) {
      const command = this.#commands[this.#first]!;
      this.#commands[this.#first++] = undefined;
      // A command the connection's close already failed is failed again: a promise settles once.
      if (!command.isResolved) command.reject(new CommandTimeoutError());
    }
    this.#dropAnswered();
    if (this.#first === this.#end) this.stop();
  };

  /** Forgets the answered commands at the front, and moves the rest to the start when far in. */
  #dropAnswered(): void {
    const commands = this.#commands;
    while (this.#first < this.#end && commands[this.#first]!.isResolved) {
      commands[this.#first++] = undefined;
    }
    if (this.#first === this.#end) {
      this.#first = 0;
      this.#end = 0;
    } else if (this.#first >= COMPACT_AFTER) {
      commands.copyWithin(0, this.#first, this.#end);
      this.#sentAt.copyWithin(0, this.#first, this.#end);
      this.#end -= this.#first;
      commands.fill(undefined, this.#end, this.#end + this.#first);
      this.#first = 0;
    }
  }
}

/** How an adapter hands a command to its connection: as it is, or through {@link CommandDeadlines}. */
export type SendCommand = (client: Redis, command: Command) => Promise<unknown>;

/** Hands a command to the connection as it is: its own `commandTimeout`, if any, bounds it. */
export const sendAsItIs: SendCommand = (client, command) =>
  client.sendCommand(command) as Promise<unknown>;

/**
 * A command Redis did not answer in time: it may still run (it was written to the connection).
 * The message is ioredis's own for its `commandTimeout`.
 */
export class CommandTimeoutError extends Error {
  constructor() {
    super('Command timed out');
    this.name = 'CommandTimeoutError';
  }
}

/** How far the oldest command out may move into the arrays before the rest move to the start. */
const COMPACT_AFTER = 1024;
