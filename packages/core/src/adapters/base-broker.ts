import { EventEmitter } from 'eventemitter3';
import type { Broker, BrokerStatus, TopicListener, Unsubscribe } from '../contracts.js';
import { BrokerClosedError, BrokerUnavailableError, InvalidOptionError } from '../errors.js';
import { PublishStamper, RepeatFilter } from './publish-stamp.js';

/** Options every {@link BaseBroker} accepts. */
export interface BaseBrokerOptions {
  /**
   * How many publishes may wait while the broker is not connected. They are sent in order once it
   * is; past this bound `publish` rejects with {@link BrokerUnavailableError}. `0` rejects at once.
   * Publishes that were out when the connection dropped (or hung) go back in the queue past the
   * bound: the broker may have run them, so they are never refused afterwards.
   * @default 10000
   */
  maxQueuedPublishes?: number;
}

/** Events of a {@link BaseBroker}: its `status`, and `error` for a listener that threw. */
export interface BaseBrokerEvents {
  status: [status: BrokerStatus, error?: Error];
  error: [error: Error];
}

interface TopicState {
  listeners: Set<TopicListener>;
  /** Settles when the broker-level subscription exists (or failed). */
  ready: Promise<void>;
}

interface QueuedPublish {
  topic: string;
  /** Stamped: what goes on the wire. */
  payload: Uint8Array;
  /** The stamp's number: the queue is kept in this order. */
  sequence: number;
  resolve: () => void;
  reject: (error: Error) => void;
}

/**
 * The part of a broker that is the same for every broker: listener sets with one broker-level
 * subscription per topic (reference counted), a bounded publish queue while disconnected, status
 * events, and resubscription after a reconnect.
 *
 * A publish whose answer is lost with the connection may have reached the broker or not, so it is
 * sent again once the connection is back, in its place among the queued ones. To keep that from
 * repeating a message, every payload goes out behind a 14-byte stamp (this broker's random id and
 * the publish's number) and {@link BaseBroker.deliver} drops a stamp it has already seen: what a
 * subscriber gets is each publish once, in the order of one publisher.
 *
 * An adapter extends it and implements four methods that talk to its broker:
 * {@link BaseBroker.subscribeTopic}, {@link BaseBroker.unsubscribeTopic},
 * {@link BaseBroker.publishTopic} and {@link BaseBroker.closeConnection}; it calls
 * {@link BaseBroker.deliver} for every message that arrives and {@link BaseBroker.setStatus} when
 * its connection changes state.
 */
export abstract class BaseBroker extends EventEmitter<BaseBrokerEvents> implements Broker {
  #status: BrokerStatus = 'connecting';
  readonly #topics = new Map<string, TopicState>();
  readonly #queue: QueuedPublish[] = [];
  readonly #maxQueued: number;
  readonly #stamper = new PublishStamper();
  readonly #repeats = new RepeatFilter();
  #flushing = false;

  constructor(options: BaseBrokerOptions = {}) {
    super();
    const maxQueued = options.maxQueuedPublishes ?? 10_000;
    if (!Number.isInteger(maxQueued) || maxQueued < 0) {
      throw new InvalidOptionError('maxQueuedPublishes must be a whole number >= 0');
    }
    this.#maxQueued = maxQueued;
  }

  /** Creates the broker-level subscription for a topic (called once per topic). */
  protected abstract subscribeTopic(topic: string): Promise<void>;
  /** Removes the broker-level subscription for a topic (called when its last listener leaves). */
  protected abstract unsubscribeTopic(topic: string): Promise<void>;
  /**
   * Sends one message (the payload stamped, as it goes on the wire); only called while the status
   * is `ready`. What it resolves to is unused.
   */
  protected abstract publishTopic(topic: string, payload: Uint8Array): Promise<unknown>;
  /** Closes the connections this broker opened. */
  protected abstract closeConnection(): Promise<void>;

  /**
   * Whether a publish that failed while the broker was `ready` failed because the connection
   * hangs (it went unanswered), rather than because the broker refused it. An adapter that says so
   * has left `ready` (it reconnects): the publish, which the broker may still run, is then sent
   * again in its place, as one whose connection dropped, and is never rejected. By default, no.
   */
  protected hangs(_error: unknown): boolean {
    return false;
  }

  /** Publishes waiting for the connection to come back (bounded by `maxQueued`). */
  get queued(): number {
    return this.#queue.length;
  }

  get status(): BrokerStatus {
    return this.#status;
  }

  publish(topic: string, payload: Uint8Array): Promise<void> {
    return this.#publishStamped(topic, this.#stamper.stamp(payload));
  }

  /**
   * {@link BaseBroker.publish} of `frame.subarray(14)`, without copying it behind a stamp: the
   * first 14 bytes of `frame` are the caller's to give, and the stamp is written over them. A node
   * encodes its frames between nodes with that room in front and publishes them so, while its
   * broker's `publish` is this class's own.
   */
  publishInPlace(topic: string, frame: Uint8Array): Promise<void> {
    this.#stamper.stampFront(frame);
    return this.#publishStamped(topic, frame);
  }

  #publishStamped(topic: string, stamped: Uint8Array): Promise<void> {
    const sequence = this.#stamper.sequence;
    if (this.#status !== 'ready' || this.#queue.length > 0) {
      return this.#enqueue(topic, stamped, sequence);
    }
    // No async frame around the common case: it runs for every message.
    return this.#send(topic, stamped).then(nothing, (error: unknown) => {
      if (this.#status === 'ready' && !this.hangs(error)) throw asUnavailable(error);
      // The connection dropped under us, or hangs, maybe after the broker had it: send it again
      // in its place (past the queue's bound: it was taken when it was sent); a subscriber that
      // gets both copies drops the second by its stamp.
      return this.#enqueue(topic, stamped, sequence, true);
    });
  }

  /** {@link BaseBroker.publishTopic}, with what it throws as a rejection. */
  #send(topic: string, payload: Uint8Array): Promise<unknown> {
    try {
      return this.publishTopic(topic, payload);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  #enqueue(
    topic: string,
    payload: Uint8Array,
    sequence: number,
    sentBefore = false,
  ): Promise<void> {
    if (this.#status === 'closed') return Promise.reject(new BrokerClosedError());
    if (!sentBefore && this.#queue.length >= this.#maxQueued) {
      return Promise.reject(
        new BrokerUnavailableError(
          `broker is ${this.#status} and ${this.#maxQueued} publishes are already queued`,
        ),
      );
    }
    return new Promise<void>((resolve, reject) => {
      const entry = { topic, payload, sequence, resolve, reject };
      const queue = this.#queue;
      if (queue.length === 0 || queue.at(-1)!.sequence < sequence) queue.push(entry);
      else queue.splice(placeOf(queue, sequence), 0, entry);
    });
  }

  async subscribe(topic: string, listener: TopicListener): Promise<Unsubscribe> {
    if (this.#status === 'closed') throw new BrokerClosedError();
    let state = this.#topics.get(topic);
    if (state === undefined) {
      const created: TopicState = { listeners: new Set(), ready: Promise.resolve() };
      created.ready = this.subscribeTopic(topic).catch((error: unknown) => {
        if (this.#topics.get(topic) === created && created.listeners.size === 0) {
          this.#topics.delete(topic);
        }
        throw asUnavailable(error);
      });
      state = created;
      this.#topics.set(topic, state);
    }
    const current = state;
    const entry: TopicListener = (payload, t) => listener(payload, t);
    current.listeners.add(entry);
    try {
      await current.ready;
    } catch (error) {
      current.listeners.delete(entry);
      if (this.#topics.get(topic) === current && current.listeners.size === 0) {
        this.#topics.delete(topic);
      }
      throw error;
    }
    let removed = false;
    return async () => {
      if (removed) return;
      removed = true;
      current.listeners.delete(entry);
      if (current.listeners.size > 0 || this.#topics.get(topic) !== current) return;
      this.#topics.delete(topic);
      if (this.#status !== 'closed') await this.unsubscribeTopic(topic).catch(() => undefined);
    };
  }

  async close(): Promise<void> {
    if (this.#status === 'closed') return;
    this.setStatus('closed');
    this.#topics.clear();
    for (const queued of this.#queue.splice(0)) queued.reject(new BrokerClosedError());
    await this.closeConnection();
  }

  /** The topics that currently have listeners: what to resubscribe after a reconnect. */
  protected get subscribedTopics(): string[] {
    return [...this.#topics.keys()];
  }

  /**
   * Hands a message that arrived on `topic` (stamped, as it came off the wire) to that topic's
   * listeners, unless it is the copy of one that already arrived.
   */
  protected deliver(topic: string, data: Uint8Array): void {
    const state = this.#topics.get(topic);
    if (state === undefined) return;
    const payload = this.#repeats.open(data);
    if (payload === undefined) return;
    for (const listener of state.listeners) {
      try {
        listener(payload, topic);
      } catch (error) {
        this.emit('error', error instanceof Error ? error : new Error(String(error)));
      }
    }
  }

  /**
   * Reports a connection state change. Going to `ready` flushes the publish queue in order; an
   * adapter whose client does not resubscribe by itself calls {@link BaseBroker.resubscribeAll}
   * first.
   */
  protected setStatus(status: BrokerStatus, error?: Error): void {
    if (this.#status === status || this.#status === 'closed') return;
    this.#status = status;
    this.emit('status', status, error);
    if (status === 'ready') void this.#flush();
  }

  /** Subscribes every topic that has listeners again, for clients that lose them on reconnect. */
  protected async resubscribeAll(): Promise<void> {
    await Promise.all(this.subscribedTopics.map((topic) => this.subscribeTopic(topic)));
  }

  async #flush(): Promise<void> {
    if (this.#flushing) return;
    this.#flushing = true;
    try {
      await this.#drainQueue();
    } finally {
      this.#flushing = false;
    }
  }

  /**
   * Sends the queue in batches of at most {@link DRAIN_BATCH}, each batch pipelined (every publish
   * sent before the first answer is awaited), in queue order. A batch stays queued while it is out:
   * publishes made meanwhile wait behind it, and an older one sent again goes before it. One that
   * fails while the connection is still up is rejected; one that fails because the connection
   * dropped again stays queued, in its place.
   */
  async #drainQueue(): Promise<void> {
    while (this.#status === 'ready' && this.#queue.length > 0) {
      const batch = this.#queue.slice(0, DRAIN_BATCH);
      const results = await Promise.allSettled(
        batch.map((next) => this.#send(next.topic, next.payload)),
      );
      // Closed meanwhile: close() rejected the whole queue, this batch with it.
      if (this.status === 'closed') return;
      const settled = new Set<QueuedPublish>();
      for (let i = 0; i < batch.length; i++) {
        const next = batch[i]!;
        const result = results[i]!;
        if (result.status === 'fulfilled') next.resolve();
        else if (this.#status === 'ready' && !this.hangs(result.reason)) {
          next.reject(asUnavailable(result.reason));
        } else continue;
        settled.add(next);
      }
      let kept = 0;
      for (const entry of this.#queue) if (!settled.has(entry)) this.#queue[kept++] = entry;
      this.#queue.length = kept;
    }
  }
}

/** Where a publish of this number goes in a queue ordered by number. */
function placeOf(queue: readonly QueuedPublish[], sequence: number): number {
  let low = 0;
  let high = queue.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if (queue[middle]!.sequence < sequence) low = middle + 1;
    else high = middle;
  }
  return low;
}

/**
 * Most queued publishes sent at once after a reconnect: enough that a long queue drains in few
 * round trips, few enough that a reconnect does not flood the broker's connection.
 */
const DRAIN_BATCH = 256;

function nothing(): void {}

function asUnavailable(error: unknown): Error {
  if (error instanceof BrokerUnavailableError || error instanceof BrokerClosedError) return error;
  const message = error instanceof Error ? error.message : String(error);
  return new BrokerUnavailableError(`broker operation failed: ${message}`, { cause: error });
}
