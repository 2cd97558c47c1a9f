/**
 * Application-level keep-alive: browsers cannot send WebSocket pings, so the client sends `ping`
 * every interval and waits for its `pong`. None within the timeout: the connection is dead. While
 * other frames keep coming, the pong may be waiting behind them (a slow link, the server's send
 * buffer full), so it waits on, up to {@link PATIENCE} timeouts in all: past that, what the client
 * sends no longer reaches the server, though what it is sent still arrives.
 */
export class Heartbeat {
  readonly #intervalMs: number;
  readonly #timeoutMs: number;
  #interval: ReturnType<typeof setInterval> | undefined;
  #deadline: ReturnType<typeof setTimeout> | undefined;
  /** When the unanswered ping was sent. */
  #pingedAt = 0;
  /** Whether a frame arrived since the deadline was last set. */
  #heard = false;

  constructor(intervalMs: number, timeoutMs: number) {
    this.#intervalMs = intervalMs;
    this.#timeoutMs = timeoutMs;
  }

  /** Starts pinging with `ping`; calls `dead` when a ping goes unanswered. */
  start(ping: () => void, dead: () => void): void {
    this.stop();
    if (this.#intervalMs === 0) return;
    const expired = () => {
      const waited = Date.now() - this.#pingedAt;
      if (this.#heard && waited < PATIENCE * this.#timeoutMs) {
        this.#heard = false;
        this.#deadline = setTimeout(expired, this.#timeoutMs);
        return;
      }
      this.stop();
      dead();
    };
    this.#interval = setInterval(() => {
      if (this.#deadline !== undefined) return;
      ping();
      this.#pingedAt = Date.now();
      this.#heard = false;
      this.#deadline = setTimeout(expired, this.#timeoutMs);
    }, this.#intervalMs);
  }

  /** A frame arrived: the connection carries data to the client. */
  alive(): void {
    this.#heard = true;
  }

  /** The `pong` arrived: the ping was answered. */
  pong(): void {
    clearTimeout(this.#deadline);
    this.#deadline = undefined;
  }

  stop(): void {
    clearInterval(this.#interval);
    this.#interval = undefined;
    this.pong();
  }
}

/** How many timeouts a ping waits for its `pong` at most, while other frames keep coming. */
const PATIENCE = 3;
