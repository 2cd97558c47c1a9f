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
  /**
   * The entries from `#head` on, in ascending `s`: they are numbered in order and sent in order, so
   * what a `rcv` acknowledges is a prefix. Slots before `#head` are settled and emptied; the array
   * is compacted once they are as many as the live ones, so a `rcv` costs what it acknowledged.
   */
  #entries: Array<Upstream | undefined> = [];
  #head = 0;
  #last = 0;

  get size(): number {
    return this.#entries.length - this.#head;
  }

  /** The last number given. */
  get last(): number {
    return this.#last;
  }

  /** Numbers what comes next above `s`: numbers a saved session already gave (see `resume`). */
  continueAfter(s: number): void {
    this.#last = Math.max(this.#last, s);
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

  /**
   * The server handed every message up to `s` to its application. Only the acknowledged prefix is
   * visited; the requests in it wait for their `ack` and stay, in order, at its end.
   */
  received(s: number): void {
    const entries = this.#entries;
    let end = this.#head;
    let waiting: Upstream[] | undefined;
    for (; end < entries.length && entries[end]!.s <= s; end++) {
      const entry = entries[end]!;
      entries[end] = undefined;
      if (entry.requestId === undefined) entry.resolve();
      else {
        waiting ??= [];
        waiting.push(entry);
      }
    }
    this.#head = end - (waiting?.length ?? 0);
    if (waiting !== undefined)
      for (const [i, entry] of waiting.entries()) entries[this.#head + i] = entry;
    this.#compact();
  }

  /** The request with this id was answered (or timed out): it is not sent again. */
  answered(requestId: number): void {
    const entries = this.#entries;
    for (let i = this.#head; i < entries.length; i++) {
      if (entries[i]!.requestId === requestId) {
        this.done(entries[i]!);
        return;
      }
    }
  }

  /** One frame needs no acknowledgement any more (its server does not number frames). */
  done(entry: Upstream): void {
    if (this.#remove(entry)) entry.resolve();
  }

  /** One frame will not be sent (again): it is taken out, and its promise rejects. */
  refuse(entry: Upstream, error: ClientError): void {
    if (this.#remove(entry)) entry.reject(error);
  }

  /** The frames not acknowledged yet, in order. */
  pending(): Upstream[] {
    return this.#live();
  }

  #remove(entry: Upstream): boolean {
    const index = this.#entries.indexOf(entry, this.#head);
    if (index === -1) return false;
    if (index === this.#head) {
      this.#entries[index] = undefined;
      this.#head++;
      this.#compact();
    } else this.#entries.splice(index, 1);
    return true;
  }

  /** What a resume sends again, in order: everything that went out and is not acknowledged. */
  sentBefore(): Upstream[] {
    return this.#live().filter((entry) => entry.sent);
  }

  /**
   * The session goes on (a resume): its server handed on every number up to `s`. This client may
   * be new to the session (given a saved one as `resume`, maybe older than what was sent since),
   * and a number at or below `s` would be refused as going backwards: what never went out is
   * numbered above `s`, if it is not already, and so is what is sent next.
   */
  resumedAt(s: number): void {
    const live = this.#live();
    const behind = live.some((entry) => !entry.sent && entry.s <= s);
    this.#last = Math.max(this.#last, s);
    // What never went out comes after what did (sent in order): the order of `s` holds.
    if (behind) for (const entry of live) if (!entry.sent) entry.s = ++this.#last;
    this.received(s);
  }

  /**
   * Takes out what went out and is not acknowledged: the session it went out on ends (the client
   * closes, or its session could not be resumed), so whether the server has it is unknown.
   */
  takeSent(): Upstream[] {
    const live = this.#live();
    this.#entries = live.filter((entry) => !entry.sent);
    this.#head = 0;
    return live.filter((entry) => entry.sent);
  }

  /**
   * The session is new (the old one could not be resumed): what never went out (what did was
   * taken out with {@link takeSent}) is numbered again from 1 and goes out on it.
   */
  renumber(): void {
    this.#last = 0;
    for (const entry of this.#live()) entry.s = ++this.#last;
  }

  /** Rejects everything (the client is closed). */
  rejectAll(error: () => ClientError): void {
    const entries = this.#live();
    this.#entries = [];
    this.#head = 0;
    for (const entry of entries) entry.reject(error());
  }

  /** The entries not settled, in order. */
  #live(): Upstream[] {
    return this.#entries.slice(this.#head) as Upstream[];
  }

  /** Drops the settled slots once they are as many as the live entries (amortized per entry). */
  #compact(): void {
    const head = this.#head;
    if (head === 0 || head < this.#entries.length - head) return;
    this.#entries = this.#entries.slice(head);
    this.#head = 0;
  }
}
