import { type Percentiles, percentiles } from './percentiles.js';

/** What the load generator measured for one scenario. */
export interface DeliveryResult {
  /** Messages the publisher sent. */
  sent: number;
  /** Deliveries expected (sent × recipients). */
  expected: number;
  /** Distinct deliveries received. */
  delivered: number;
  lost: number;
  duplicated: number;
  /** Deliveries that arrived after a later message to the same client. */
  reordered: number;
  /** Direct messages that reached another client than the one they were for. */
  misrouted: number;
  /** From the first send to the last delivery (or the end of the drain wait), ms. */
  durationMs: number;
  /** From the first send to the last send, ms. */
  sendMs: number;
  /** End-to-end latency of every delivery. */
  latencyAll: Percentiles;
  /** End-to-end latency of the first copy of each message. */
  latencyFirst: Percentiles;
}

/**
 * Counts what arrives: for each (message, recipient) whether it came, more than once, or after a
 * later one; and the latency of each from the moment the publisher sent it.
 */
export class DeliveryTracker {
  readonly #messages: number;
  /** Recipient of each message for direct sends; undefined for a broadcast (every client). */
  readonly #targets: Int32Array | undefined;
  readonly #seen: Uint8Array;
  readonly #last: Int32Array;
  readonly #sentAt: Float64Array;
  readonly #first: Float64Array;
  readonly #latency: Float64Array;
  /** Broadcasts: deliveries per client, and when its last one arrived (it had them all). */
  readonly #count: Int32Array;
  readonly #completeAt: Float64Array;
  readonly #expected: number;
  #delivered = 0;
  #duplicated = 0;
  #reordered = 0;
  #misrouted = 0;
  #sent = 0;
  #lastAt = 0;
  #onComplete: (() => void) | undefined;

  constructor(clients: number, messages: number, targets?: Int32Array) {
    this.#messages = messages;
    this.#targets = targets;
    this.#expected = targets === undefined ? clients * messages : messages;
    this.#seen = new Uint8Array(targets === undefined ? clients * messages : messages);
    this.#last = new Int32Array(clients).fill(-1);
    this.#sentAt = new Float64Array(messages);
    this.#first = new Float64Array(messages).fill(Number.POSITIVE_INFINITY);
    this.#latency = new Float64Array(this.#expected);
    this.#count = new Int32Array(targets === undefined ? clients : 0);
    this.#completeAt = new Float64Array(targets === undefined ? clients : 0);
  }

  /** When a broadcast's client had every message (performance.now()), 0 while it has not. */
  completeAt(client: number): number {
    return this.#completeAt[client] ?? 0;
  }

  get expected(): number {
    return this.#expected;
  }

  get complete(): boolean {
    return this.#delivered === this.#expected;
  }

  /** When the last delivery arrived (performance.now()). */
  get lastAt(): number {
    return this.#lastAt;
  }

  /** Resolves once every expected delivery arrived. */
  whenComplete(): Promise<void> {
    if (this.complete) return Promise.resolve();
    return new Promise((resolve) => {
      this.#onComplete = resolve;
    });
  }

  sent(seq: number, at: number): void {
    this.#sentAt[seq] = at;
    this.#sent++;
  }

  received(client: number, seq: number, at: number): void {
    if (seq < 0 || seq >= this.#messages) {
      this.#misrouted++;
      return;
    }
    const targets = this.#targets;
    if (targets !== undefined && targets[seq] !== client) {
      this.#misrouted++;
      return;
    }
    const slot = targets === undefined ? client * this.#messages + seq : seq;
    if (this.#seen[slot] === 1) {
      this.#duplicated++;
      return;
    }
    this.#seen[slot] = 1;
    if (seq < this.#last[client]!) this.#reordered++;
    else this.#last[client] = seq;
    const latency = at - this.#sentAt[seq]!;
    this.#latency[this.#delivered++] = latency;
    if (latency < this.#first[seq]!) this.#first[seq] = latency;
    this.#lastAt = at;
    if (targets === undefined && ++this.#count[client]! === this.#messages) {
      this.#completeAt[client] = at;
    }
    if (this.#delivered === this.#expected) this.#onComplete?.();
  }

  result(startedAt: number, sendEndedAt: number, endedAt: number): DeliveryResult {
    let firstCount = 0;
    const first = new Float64Array(this.#messages);
    for (const value of this.#first)
      if (value !== Number.POSITIVE_INFINITY) first[firstCount++] = value;
    return {
      sent: this.#sent,
      expected: this.#expected,
      delivered: this.#delivered,
      lost: this.#expected - this.#delivered,
      duplicated: this.#duplicated,
      reordered: this.#reordered,
      misrouted: this.#misrouted,
      durationMs: endedAt - startedAt,
      sendMs: sendEndedAt - startedAt,
      latencyAll: percentiles(this.#latency, this.#delivered),
      latencyFirst: percentiles(first, firstCount),
    };
  }
}
