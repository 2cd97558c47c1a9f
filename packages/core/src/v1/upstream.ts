import { Buffer } from 'node:buffer';
import type { StoredReply, UpstreamRecord } from '../sessions/sessions.js';

/**
 * Upstream delivery for `wscale.v1`: what a client sends (`msg`, `req`) is numbered per session;
 * the node hands each number to the application once, acknowledges cumulatively with `rcv`, and
 * records the last number in the session (batched, never one write per message). A client sends
 * again what it has not seen acknowledged after it resumes, and the node drops what it already
 * handed on. See docs/protocol.md, "Upstream delivery".
 */

/** About one message a client sent, as the application receives it. */
export interface MessageInfo {
  /**
   * A stable id (`<clientId>:<sequence>`) for `wscale.v1` clients that number their messages, the
   * same when the message comes again; `undefined` for raw clients.
   */
  id?: string;
  /**
   * `true` when the message may have reached the application before: its node died after handing
   * it on and before recording that. Make the handler idempotent with `id` if that matters.
   */
  redelivered: boolean;
}

/** What raw clients' messages carry: nothing is numbered. */
export const UNNUMBERED: MessageInfo = Object.freeze({ redelivered: false });

/**
 * How a numbered frame is to be treated: handed on (`new`, `redelivery`), dropped (`duplicate`: sent
 * again, handed on before), or a protocol violation (`backwards`: a number not above the last one,
 * not marked as sent again).
 */
export type Admission = 'new' | 'redelivery' | 'duplicate' | 'backwards';

/**
 * Replies kept per session: the latest 32, at most 64 KiB together, each at most 16 KiB (a bigger
 * one answers `REPLY_LOST` if asked again). Bytes as the session record's JSON holds them, where a
 * control character takes six: every save of the session writes them.
 */
const REPLIES_KEPT = 32;
const REPLY_BYTES_KEPT = 16 * 1024;
const REPLIES_BYTES_KEPT = 64 * 1024;

/** What a kept reply takes in the session record's JSON, in bytes. */
function recordBytes(reply: StoredReply): number {
  return Buffer.byteLength(JSON.stringify(reply));
}

/** One connection's view of its session's upstream. */
export class UpstreamLedger {
  #last: number;
  /**
   * An earlier connection may have handed on more than the record says (it never closed it, or
   * closed before the client sent that again): until the client sends something new, what it
   * sends again may have reached the application before.
   */
  #doubtful: boolean;
  /** Kept replies, oldest first (none until a request is answered: most clients never send one). */
  #replies: StoredReply[] | undefined;
  /** What the kept replies take in the record, together. */
  #bytes = 0;
  /** What this connection was given of the kept replies, measured the same way. */
  #givenAgain = 0;
  #dirty = false;

  constructor(record: Partial<UpstreamRecord> | undefined, doubtful: boolean) {
    this.#last = Number.isSafeInteger(record?.up) ? (record!.up as number) : 0;
    const replies = record?.replies;
    if (Array.isArray(replies) && replies.length > 0) {
      this.#replies = [];
      for (const reply of replies) this.#add(reply, recordBytes(reply));
    }
    this.#doubtful = doubtful;
  }

  /** The highest sequence number handed to the application. */
  get last(): number {
    return this.#last;
  }

  /** Whether something changed since the last {@link UpstreamLedger.record}. */
  get dirty(): boolean {
    return this.#dirty;
  }

  /**
   * Takes a numbered frame: a number at or below the last one was handed on already (only a frame
   * sent again, `resent`, may repeat one); a frame sent again above it may have been handed on by a
   * node that died before recording it. Numbers may skip: a client drops what it never sent.
   */
  admit(s: number, resent: boolean): Admission {
    if (s <= this.#last) return resent ? 'duplicate' : 'backwards';
    this.#last = s;
    this.#dirty = true;
    if (resent) return this.#doubtful ? 'redelivery' : 'new';
    // The client sends again what it had out before anything new: all of that came already.
    if (this.#doubtful) this.#doubtful = false;
    return 'new';
  }

  /** Keeps a request's reply for a repeat of the request. */
  keepReply(s: number, reply: Omit<StoredReply, 's' | 'b'>, bytes?: Buffer): void {
    // Bytes are kept as base64 (the record is JSON): encoded only once they are known to fit.
    const base64 = bytes === undefined ? 0 : Math.ceil(bytes.length / 3) * 4;
    if ((reply.d?.length ?? 0) + base64 > REPLY_BYTES_KEPT) return;
    const kept: StoredReply = { s, ...reply };
    if (bytes !== undefined) kept.b = bytes.toString('base64');
    const size = recordBytes(kept);
    if (size > REPLY_BYTES_KEPT) return;
    this.#replies ??= [];
    this.#add(kept, size);
    this.#dirty = true;
  }

  /** Keeps a reply, dropping the oldest ones past the bounds (their size measured again: rare). */
  #add(reply: StoredReply, size: number): void {
    const replies = this.#replies!;
    replies.push(reply);
    this.#bytes += size;
    while (replies.length > REPLIES_KEPT || this.#bytes > REPLIES_BYTES_KEPT) {
      this.#bytes -= recordBytes(replies.shift()!);
    }
  }

  /**
   * The kept reply of request number `s`, for the request sent again. A connection is given at
   * most what the session keeps (a client sends each request again once, after it resumes): past
   * that, none, so that tiny repeats cannot have the node send one large reply over and over.
   */
  replyTo(s: number): StoredReply | undefined {
    const reply = this.#replies?.find((kept) => kept.s === s);
    if (reply === undefined) return undefined;
    const size = recordBytes(reply);
    if (this.#givenAgain + size > REPLIES_BYTES_KEPT) return undefined;
    this.#givenAgain += size;
    return reply;
  }

  /** A save of the record failed: it counts as changed again. */
  unsaved(): void {
    this.#dirty = true;
  }

  /** What the session record keeps; the ledger counts as saved from here. */
  record(): UpstreamRecord {
    this.#dirty = false;
    const record: UpstreamRecord = { up: this.#last };
    if (this.#replies !== undefined) record.replies = this.#replies;
    // Kept for the connection after this one, if this one closes first (a close made on resume).
    if (this.#doubtful) record.doubt = true;
    return record;
  }
}

/**
 * Cumulative `rcv` acknowledgements, batched: one timer for the whole node, and at most one `rcv`
 * per client per window, however many frames it sent meanwhile.
 */
export class ReceiptBatcher<C> {
  readonly #owed = new Set<C>();
  readonly #delayMs: number;
  readonly #write: (client: C) => void;
  #timer: ReturnType<typeof setTimeout> | undefined;

  constructor(delayMs: number, write: (client: C) => void) {
    this.#delayMs = delayMs;
    this.#write = write;
  }

  /** `client` is owed a `rcv` for what it sent. */
  owe(client: C): void {
    this.#owed.add(client);
    if (this.#timer !== undefined) return;
    this.#timer = setTimeout(this.#flush, this.#delayMs);
    this.#timer.unref?.();
  }

  /** Forgets a client (it went away). */
  forget(client: C): void {
    this.#owed.delete(client);
  }

  readonly #flush = (): void => {
    this.#timer = undefined;
    for (const client of this.#owed) this.#write(client);
    this.#owed.clear();
  };
}
