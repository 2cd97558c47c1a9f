import type { DataMessage, RequestMessage } from '@wscale/core/protocol';
import type { ClientError } from './errors.js';

/** What `send` and `request` take: text, or bytes. */
export type Payload = string | Uint8Array;

/** A `msg` or `req` the server has not acknowledged yet. */
export interface Upstream {
  /** Sequence number in this session. */
  s: number;
  message: DataMessage | RequestMessage;
  data: Payload;
  /** The request's id, for a `req`. */
  requestId?: number;
  /** Whether it went out on some connection (then a later send marks it as sent again). */
  sent: boolean;
  resolve(): void;
  reject(error: ClientError): void;
}

/**
 * Every `msg` and `req` from its numbering until the server acknowledged it, in order: what a
 * resume sends again. A message leaves on `rcv` (cumulative); a request when its `ack` arrives
 * (or it times out), since a request the server handled is answered again from its kept reply.
 */
export class Outbox {
  #entries: Upstream[] = [];
  #last = 0;

  get size(): number {
    return this.#entries.length;
  }

  /** Numbers a new upstream frame; the promise settles when the server acknowledged it. */
  add(
    message: DataMessage | RequestMessage,
    data: Payload,
    requestId?: number,
  ): { entry: Upstream; acked: Promise<void> } {
    let entry!: Upstream;
    const acked = new Promise<void>((resolve, reject) => {
      entry = { s: ++this.#last, message, data, sent: false, resolve, reject };
      if (requestId !== undefined) entry.requestId = requestId;
    });
    // Callers may ignore the promise: a rejection they never look at must not crash anything.
    acked.catch(() => undefined);
    this.#entries.push(entry);
    return { entry, acked };
  }

  /** The server handed every message up to `s` to its application. */
  received(s: number): void {
    this.#settle((entry) => entry.s <= s && entry.requestId === undefined);
  }

  /** The request with this id was answered (or timed out): it is not sent again. */
  answered(requestId: number): void {
    const entry = this.#entries.find((candidate) => candidate.requestId === requestId);
    if (entry !== undefined) this.done(entry);
  }

  /** One frame needs no acknowledgement any more (its server does not number frames). */
  done(entry: Upstream): void {
    const index = this.#entries.indexOf(entry);
    if (index === -1) return;
    this.#entries.splice(index, 1);
    entry.resolve();
  }

  /** What a resume sends again, in order: everything that went out and is not acknowledged. */
  sentBefore(): Upstream[] {
    return this.#entries.filter((entry) => entry.sent);
  }

  /**
   * The session goes on (a resume): its server handed on every number up to `s`. What never went
   * out is numbered above `s` first, if it is not already: this client may be new to the session (a
   * saved one given as `resume`), and a number at or below `s` would be refused as going backwards.
   */
  resumedAt(s: number): void {
    if (this.#entries.some((entry) => !entry.sent && entry.s <= s)) {
      this.#last = Math.max(this.#last, s);
      for (const entry of this.#entries) if (!entry.sent) entry.s = ++this.#last;
    }
    this.received(s);
  }

  /**
   * The session is new (the old one could not be resumed): what was not acknowledged is numbered
   * again from 1 and goes out on it, still marked as sent before when it was.
   */
  renumber(): void {
    this.#last = 0;
    for (const entry of this.#entries) entry.s = ++this.#last;
  }

  /** Rejects everything (the client is closed). */
  rejectAll(error: () => ClientError): void {
    const entries = this.#entries;
    this.#entries = [];
    for (const entry of entries) entry.reject(error());
  }

  #settle(done: (entry: Upstream) => boolean): void {
    const kept: Upstream[] = [];
    for (const entry of this.#entries) {
      if (done(entry)) entry.resolve();
      else kept.push(entry);
    }
    this.#entries = kept;
  }
}
