/**
 * Application-level keep-alive: browsers cannot send WebSocket pings, so the client sends `ping`
 * every interval, and when nothing at all (a `pong` or any other frame) arrives within the timeout
 * it declares the connection dead.
 */
export class Heartbeat {
  readonly #intervalMs: number;
  readonly #timeoutMs: number;
  #interval: ReturnType<typeof setInterval> | undefined;
  #deadline: ReturnType<typeof setTimeout> | undefined;

  constructor(intervalMs: number, timeoutMs: number) {
    this.#intervalMs = intervalMs;
    this.#timeoutMs = timeoutMs;
  }

  /** Starts pinging with `ping`; calls `dead` when a ping goes unanswered. */
  start(ping: () => void, dead: () => void): void {
    this.stop();
    if (this.#intervalMs === 0) return;
    this.#interval = setInterval(() => {
      if (this.#deadline !== undefined) return;
      ping();
      this.#deadline = setTimeout(() => {
        this.stop();
        dead();
      }, this.#timeoutMs);
    }, this.#intervalMs);
  }

  /** Something arrived: the connection is alive. */
  alive(): void {
    clearTimeout(this.#deadline);
    this.#deadline = undefined;
  }

  stop(): void {
    clearInterval(this.#interval);
    this.#interval = undefined;
    this.alive();
  }
}
