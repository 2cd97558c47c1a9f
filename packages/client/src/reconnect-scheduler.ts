import { backoffDelay } from './backoff.js';
import type { NetworkSignal } from './network.js';

/** How the scheduler waits between attempts. */
export interface ReconnectSchedule {
  baseMs: number;
  capMs: number;
  maxAttempts: number;
  /** How long a welcomed connection must last for its drop to start the backoff over. */
  stableAfterMs: number;
  /** The window of the quick reconnect after close code 1012. */
  restartJitterMs: number;
  network: NetworkSignal | false | undefined;
}

/**
 * Decides when the next connection attempt happens: exponential backoff with full jitter, a quick
 * jittered retry after a node restart, a limit on consecutive attempts, and while the device says
 * it is offline, one attempt per longest backoff only, not counted (then one at once when it comes
 * back online): browsers say offline where the server can be reached (a VPN, no default route).
 */
export class ReconnectScheduler {
  readonly #schedule: ReconnectSchedule;
  readonly #attemptNow: () => void;
  /** Attempts made since the last welcome: what `maxAttempts` bounds. */
  #attempts = 0;
  /** The backoff's step: attempts since the last connection that lasted `stableAfterMs`. */
  #step = 0;
  /** When the current connection was welcomed, if it was. */
  #welcomedAt: number | undefined;
  #timer: ReturnType<typeof setTimeout> | undefined;
  /** Whether an attempt is due (a timer runs, or it waits for the network). */
  #waiting = false;
  #unsubscribe: (() => void) | undefined;

  constructor(schedule: ReconnectSchedule, attemptNow: () => void) {
    this.#schedule = schedule;
    this.#attemptNow = attemptNow;
  }

  /** Attempts made since the last welcome. */
  get attempts(): number {
    return this.#attempts;
  }

  /** Starts listening to the network (when the client connects). */
  start(): void {
    if (this.#unsubscribe || !this.#schedule.network) return;
    this.#unsubscribe = this.#schedule.network.subscribe((online) => this.#onNetwork(online));
  }

  /** Stops everything (when the client closes). */
  stop(): void {
    this.cancel();
    this.#unsubscribe?.();
    this.#unsubscribe = undefined;
    this.#attempts = 0;
    this.#step = 0;
    this.#welcomedAt = undefined;
  }

  /**
   * A connection was welcomed: the attempts start over. The backoff starts over only once it has
   * lasted `stableAfterMs`: a server that welcomes and closes at once (a node that cannot keep the
   * session, a 1013 right after the welcome) is backed off from like one that refuses.
   */
  succeeded(): void {
    this.#attempts = 0;
    this.#welcomedAt = Date.now();
  }

  /**
   * Plans the next attempt after a failed or dropped connection. Returns false when the attempts
   * are used up (then nothing is planned).
   */
  plan(restart: boolean): boolean {
    const { baseMs, capMs, maxAttempts, stableAfterMs, restartJitterMs } = this.#schedule;
    const welcomed = this.#welcomedAt !== undefined;
    if (welcomed && Date.now() - this.#welcomedAt! >= stableAfterMs) this.#step = 0;
    this.#welcomedAt = undefined;
    if (this.#attempts >= maxAttempts) return false;
    // A restart (1012) of a connection that was welcomed means "go to another node now", however
    // short it lived (a rolling deploy drains node after node), a few times in a row: a node that
    // welcomes and restarts every time is backed off from, as is a restart before any welcome.
    const delay =
      restart && welcomed && this.#step < QUICK_RESTARTS
        ? Math.floor(Math.random() * restartJitterMs)
        : backoffDelay(this.#step, baseMs, capMs);
    this.cancel();
    this.#waiting = true;
    this.#timer = setTimeout(() => this.#fire(), this.#offline() ? capMs : delay);
    return true;
  }

  /** Cancels a planned attempt. */
  cancel(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#waiting = false;
  }

  #fire(): void {
    this.cancel();
    // Offline, it tries in case the device is wrong, but uses up no attempt nor backoff step.
    if (!this.#offline()) {
      this.#attempts++;
      this.#step++;
    }
    this.#attemptNow();
  }

  #onNetwork(online: boolean): void {
    if (!this.#waiting) return;
    if (!online) {
      // Offline: an attempt soon would likely fail; wait for `online`, or the longest backoff.
      clearTimeout(this.#timer);
      this.#timer = setTimeout(() => this.#fire(), this.#schedule.capMs);
      return;
    }
    // Back online: the network changed, so the old backoff says nothing about the server.
    this.#attempts = 0;
    this.#step = 0;
    this.#fire();
  }

  #offline(): boolean {
    const network = this.#schedule.network;
    return network ? !network.online : false;
  }
}

/** Restarts (1012) of short-lived connections in a row that are retried at once, not backed off. */
const QUICK_RESTARTS = 3;
