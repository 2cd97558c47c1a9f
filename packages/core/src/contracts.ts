/**
 * The three contracts an adapter implements, in one place. Read this file first.
 *
 * - {@link Broker} moves bytes between nodes (one process = one node).
 * - {@link StateStore} keeps replicated client state with a time to live.
 * - {@link History} keeps a bounded, ordered log per room so a returning client can be given exactly
 *   what it missed.
 *
 * Everything that is the same for every broker (self-filtering, request/response between nodes,
 * node heartbeats, subscription reference counting, message encoding, the publish queue while the
 * broker is down) lives in `@wscale/core`. An adapter only translates these contracts to its
 * broker's API; {@link BaseBroker} does the rest. `@wscale/core/testing` holds the conformance
 * suites that prove an implementation right.
 *
 * @packageDocumentation
 */

/** Connection state of a broker, as reported by {@link Broker.status} and its `status` event. */
export type BrokerStatus = 'connecting' | 'ready' | 'reconnecting' | 'down' | 'closed';

/** Called with every message published to a subscribed topic, including the subscriber's own. */
export type TopicListener = (payload: Uint8Array, topic: string) => void;

/** The events a {@link Broker} emits. */
export interface BrokerEvents {
  /** The connection to the broker changed state. `error` says why it is not `ready`, when known. */
  status: [status: BrokerStatus, error?: Error];
}

/** The minimal event-emitter surface the server needs from a broker. */
export interface BrokerEventSource {
  on<E extends keyof BrokerEvents>(event: E, listener: (...args: BrokerEvents[E]) => void): unknown;
  off<E extends keyof BrokerEvents>(
    event: E,
    listener: (...args: BrokerEvents[E]) => void,
  ): unknown;
}

/**
 * Moves messages between nodes. Topics are strings; payloads are opaque bytes.
 *
 * Guarantees an implementation must give (checked by `brokerSuite`):
 * - every subscription on a topic receives every message published to that topic after its
 *   `subscribe` promise resolved, once, and in publish order per publisher;
 * - a topic never delivers to a listener of another topic, whatever characters the names hold;
 * - after `unsubscribe` resolves, the listener is not called again;
 * - several subscriptions may share one broker instance (several nodes in one process do);
 * - while disconnected, `publish` either queues (bounded) or rejects with a typed error:
 *   never resolves for a message it dropped;
 * - after a reconnect, every live subscription is restored without the caller's help.
 */
export interface Broker extends BrokerEventSource {
  /** Current connection state. */
  readonly status: BrokerStatus;
  /**
   * The largest payload {@link Broker.publish} carries, when the broker has a limit (a NATS
   * server's `max_payload`, known once connected). A node refuses a message whose frame would be
   * larger, before any client gets it, rather than reach only its own clients.
   */
  readonly maxPayloadBytes?: number | undefined;
  /** Publishes `payload` to every subscription of `topic`, on every node. */
  publish(topic: string, payload: Uint8Array): Promise<void>;
  /**
   * Adds a subscription. Resolves once messages published from now on will be delivered.
   * @returns a function that removes this subscription (and nothing else).
   */
  subscribe(topic: string, listener: TopicListener): Promise<Unsubscribe>;
  /** Drops every subscription and releases connections the broker created itself. */
  close(): Promise<void>;
}

/** Removes one subscription. Safe to call more than once. */
export type Unsubscribe = () => Promise<void>;

/** An opaque version of a stored value; changes on every write. */
export type Version = string;

/** A value read from a {@link StateStore} with the version it was read at. */
export interface Versioned<T> {
  value: T;
  version: Version;
}

/**
 * Replicated key/value state with a time to live, used for client sessions.
 *
 * Values are strings (core serialises records itself). Every write refreshes the key's time to live
 * ({@link StateStore.ttlMs}): a record outlives a dropped connection long enough for the client to
 * come back on any node, and then disappears by itself.
 *
 * Atomicity is by compare-and-set on {@link Version}: core builds read-modify-write on top of it
 * (see `updateState`). Store failures reject with {@link StateStoreError}.
 */
export interface StateStore {
  /** How long a key lives after its last write, in milliseconds. */
  readonly ttlMs: number;
  /** Reads a key, or `undefined` when it does not exist or has expired. */
  get(key: string): Promise<Versioned<string> | undefined>;
  /**
   * Writes a key and refreshes its time to live.
   *
   * With `ifVersion`, writes only if the key is still at that version; with `ifVersion: null`,
   * only if the key does not exist. Returns the new version, or `undefined` when the condition
   * failed (nothing was written).
   */
  set(
    key: string,
    value: string,
    options?: { ifVersion?: Version | null },
  ): Promise<Version | undefined>;
  /** Removes a key. Removing a missing key is not an error. */
  delete(key: string): Promise<void>;
  /** Releases connections the store created itself. */
  close(): Promise<void>;
}

/**
 * Where a room's history stands: the offset of its newest entry (0 when empty) and the epoch.
 *
 * An epoch names one incarnation of a room's log. When a log is lost (a broker restarted without
 * persistence, a stream was deleted and recreated) its epoch changes, so an offset from the old
 * log is never mistaken for a position in the new one.
 */
export interface HistoryPosition {
  offset: number;
  epoch: string;
}

/** One message kept in a room's history. */
export interface HistoryEntry {
  offset: number;
  payload: Uint8Array;
}

/** The answer of {@link History.read}. */
export type HistoryReadResult =
  | { ok: true; epoch: string; entries: HistoryEntry[] }
  | {
      ok: false;
      /**
       * - `too-old`: entries after the requested offset were already trimmed: the gap cannot be filled.
       * - `epoch-changed`: the log was lost and restarted; the old offsets mean nothing now.
       */
      reason: 'too-old' | 'epoch-changed';
      position: HistoryPosition;
    };

/**
 * A bounded, append-only log per room with monotonic offsets.
 *
 * Guarantees (checked by `historySuite`): offsets start at 1 and grow by one per append within an
 * epoch; `read` returns entries in offset order; a read whose start was trimmed answers
 * `too-old`, never a partial list presented as complete.
 */
export interface History {
  /** Appends a message and returns its position. */
  append(room: string, payload: Uint8Array): Promise<HistoryPosition>;
  /**
   * Entries with offset greater than `after.offset`, oldest first, at most `limit`.
   * Reading from the current offset returns no entries.
   */
  read(room: string, after: HistoryPosition, limit?: number): Promise<HistoryReadResult>;
  /** The current position of a room (offset 0 and a fresh epoch for a room never written). */
  position(room: string): Promise<HistoryPosition>;
  /** Releases connections the history created itself. */
  close(): Promise<void>;
}
