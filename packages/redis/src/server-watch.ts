import { Command, type Redis } from 'ioredis';
import type { SendCommand } from './command-deadlines.js';

/** How often Redis's clock is read again: a clock that drifts or steps is followed within it. */
const CLOCK_CHECK_MS = 30_000;
/** How soon a read of Redis's clock that came back too slowly is tried again. */
const CLOCK_RETRY_MS = 1000;

/**
 * What a history needs to know of the Redis process one standalone connection is on, read when
 * the connection is ready and forgotten when it closes (a restart or a failover may put it on
 * another process, on another machine):
 *
 * - its run id: a room's epoch is that process's (`''` while unknown: the scripts read it
 *   themselves);
 * - its clock, at a moment of this process's monotonic clock, so an append can carry a deadline
 *   on Redis's clock. Read again every {@link CLOCK_CHECK_MS}, and when an append was refused as
 *   late ({@link ServerWatch.readClock}).
 */
export class ServerWatch {
  runId = '';
  readonly #client: Redis;
  readonly #timeoutMs: number;
  readonly #send: SendCommand;
  #clock: { redisMs: number; at: number } | undefined;
  #clockReadAt = 0;
  #reading = false;

  /** `send` bounds its commands as the history's own (ioredis's timer, or `CommandDeadlines`). */
  constructor(client: Redis, timeoutMs: number, send: SendCommand) {
    this.#client = client;
    this.#timeoutMs = timeoutMs;
    this.#send = send;
    client.on('close', this.#forget);
    client.on('ready', this.#read);
    if (client.status === 'ready') this.#read();
  }

  /**
   * When an append sent now must have run, on Redis's clock: before the call's own timeout, with a
   * fifth of it to spare for the answer's way back and the clock's reading. `''` while the clock is
   * unknown.
   */
  deadline(): string {
    const now = performance.now();
    if (now - this.#clockReadAt > CLOCK_CHECK_MS) this.readClock();
    const clock = this.#clock;
    if (clock === undefined) return '';
    return String(Math.floor(clock.redisMs + (now - clock.at) + this.#timeoutMs * 0.8));
  }

  /** Reads Redis's clock; nothing while a read is out. */
  readClock(): void {
    const client = this.#client;
    if (this.#reading || client.status !== 'ready') return;
    this.#reading = true;
    const sent = performance.now();
    this.#clockReadAt = sent;
    this.#run<[string, string]>('time', [])
      .then(([seconds, micros]) => {
        const back = performance.now();
        if (client.status !== 'ready') return;
        // A slow answer says little of when Redis read its clock: kept only within a tenth of
        // the timeout (the deadline spares a fifth); else read again in a second.
        if (back - sent > this.#timeoutMs / 10) {
          this.#clockReadAt = back - CLOCK_CHECK_MS + CLOCK_RETRY_MS;
          return;
        }
        const redisMs = Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
        this.#clock = { redisMs, at: (sent + back) / 2 };
      })
      .catch(() => undefined)
      .finally(() => {
        this.#reading = false;
      });
  }

  /** Stops following the connection. */
  stop(): void {
    this.#client.off('close', this.#forget);
    this.#client.off('ready', this.#read);
  }

  readonly #read = (): void => {
    const client = this.#client;
    this.#run<string>('info', ['server'])
      .then((info) => {
        if (client.status === 'ready') this.runId = /run_id:(\w+)/.exec(info)?.[1] ?? '';
      })
      .catch(() => undefined);
    this.readClock();
  };

  #run<T>(name: string, args: string[]): Promise<T> {
    const command = new Command(name, args, { replyEncoding: 'utf8' });
    return this.#send(this.#client, command) as Promise<T>;
  }

  readonly #forget = (): void => {
    this.runId = '';
    this.#clock = undefined;
  };
}
