import { type AckMessage, LIMITS } from '@wscale/core/protocol';
import { type ClientError, ServerError, TimeoutError } from './errors.js';

/** What an `ack` carries: text, bytes, or nothing. */
export type AckPayload = string | Uint8Array | undefined;

interface Pending {
  resolve(payload: AckPayload): void;
  reject(error: ClientError): void;
  timer: ReturnType<typeof setTimeout>;
  /** Whether the frame went out on a connection (then a drop leaves its fate unknown). */
  sent: boolean;
}

/**
 * `join`, `leave` and `req` frames waiting for their `ack`, by id. Each has its own timeout; ids are
 * unique among the requests in flight, as the protocol asks.
 */
export class PendingRequests {
  readonly #pending = new Map<number, Pending>();
  #nextId = 0;

  get size(): number {
    return this.#pending.size;
  }

  /**
   * Registers a request. `onTimeout` runs when it times out, before the promise rejects (to take
   * an unsent frame out of the queue).
   */
  open(
    what: string,
    timeoutMs: number,
    onTimeout: (id: number) => void,
  ): { id: number; promise: Promise<AckPayload> } {
    const id = this.#allocate();
    const promise = new Promise<AckPayload>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        onTimeout(id);
        reject(new TimeoutError(what, timeoutMs));
      }, timeoutMs);
      this.#pending.set(id, { resolve, reject, timer, sent: false });
    });
    return { id, promise };
  }

  /** The request's frame went out on the current connection. */
  sent(id: number): void {
    const pending = this.#pending.get(id);
    if (pending) pending.sent = true;
  }

  /** Settles the request an `ack` answers. Returns false for an unknown id (late or foreign). */
  settle(ack: AckMessage, binary: Uint8Array | undefined): boolean {
    const pending = this.#pending.get(ack.id);
    if (pending === undefined) return false;
    this.#pending.delete(ack.id);
    clearTimeout(pending.timer);
    if (ack.error) pending.reject(new ServerError(ack.error.code, ack.error.message));
    else pending.resolve(binary ?? ack.d);
    return true;
  }

  /** Rejects one request (its frame could not be sent or queued). */
  fail(id: number, error: ClientError): void {
    const pending = this.#pending.get(id);
    if (pending === undefined) return;
    this.#pending.delete(id);
    clearTimeout(pending.timer);
    pending.reject(error);
  }

  /** Rejects the requests whose frames were sent on a connection that is gone. */
  rejectSent(error: () => ClientError): void {
    for (const [id, pending] of this.#pending) {
      if (!pending.sent) continue;
      this.#pending.delete(id);
      clearTimeout(pending.timer);
      pending.reject(error());
    }
  }

  /** Rejects every request. */
  rejectAll(error: () => ClientError): void {
    for (const [id, pending] of this.#pending) {
      this.#pending.delete(id);
      clearTimeout(pending.timer);
      pending.reject(error());
    }
  }

  #allocate(): number {
    // At most 2^31 ids exist; the map is far smaller, so this loop ends after a few steps.
    do {
      this.#nextId = this.#nextId >= LIMITS.id ? 1 : this.#nextId + 1;
    } while (this.#pending.has(this.#nextId));
    return this.#nextId;
  }
}
