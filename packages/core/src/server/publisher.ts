import { randomBytes } from 'node:crypto';
import type { Broker, History, StateStore } from '../contracts.js';
import { ServerClosedError } from '../errors.js';
import { BusKind, type DirectOperation } from '../mesh/bus-codec.js';
import { type PublishFrame, topics } from '../mesh/node-mesh.js';
import { type Logger, NodeLog } from '../ops/logger.js';
import { Sends } from '../ops/reporter.js';
import type { Outgoing } from '../protocol/outgoing.js';
import type { Sendable, SendOptions } from '../protocol/payload.js';
import { changeSession } from '../sessions/sessions.js';
import { OneAtATime } from '../util/one-at-a-time.js';
import { waitAtMost } from '../util/wait-at-most.js';
import { type BroadcastOperator, broadcastOperator, EVERYONE } from './broadcast.js';
import type { HistoryRule } from './options.js';
import {
  checkDirect,
  checkSize,
  directHeader,
  framePublisher,
  historyLookup,
  isSessionChange,
  joinedAt,
  keepsDirect,
  keptDirect,
  markJoinedAt,
  NO_BYTES,
  publishBroadcast,
  RemoteClientById,
  type SendDirect,
  type SessionChangeHeader,
} from './publication.js';
import { DEFAULT_TOPIC_PREFIX } from './resolve-options.js';
import type { RemoteClient } from './server-types.js';

/** Options of a {@link Publisher}: the same broker, history and prefix as the nodes'. */
export interface PublisherOptions {
  /** The nodes' broker (or one connected to the same server). Not closed by `close()`. */
  broker: Broker;
  /**
   * The nodes' history rules: a broadcast to a room that keeps history is appended to it first,
   * as a node does, so clients that resume recover it.
   * @default no room keeps history
   */
  history?: HistoryRule[];
  /** The nodes' `directHistory`, when they keep direct messages. @default none */
  directHistory?: History;
  /**
   * The nodes' `stateStore`: a join, leave or close for a `wscale.v1` client between two
   * connections is then kept in its session, as a node keeps it, and made when it resumes.
   * Without it, they reach only a client that is connected.
   * @default none
   */
  stateStore?: StateStore;
  /** The nodes' `topicPrefix`. @default 'wscale:' */
  topicPrefix?: string;
  /** An id for this publisher in what it sends (never taken for a node). @default a random id */
  id?: string;
  /**
   * Where a failed send nobody awaited is logged (`warn`), as a node's `logger` (pino, `console`…).
   * @default none: such failures are only counted in {@link Publisher.failedSends}
   */
  logger?: Logger;
  /** How long `close()` waits for the sends already started. @default 5000 */
  closeTimeoutMs?: number;
}

/**
 * Publishes to a wscale cluster from a process that holds no sockets: a worker, a cron job, an HTTP
 * handler of another service. It speaks to the nodes through their broker exactly as a node does —
 * broadcasts to rooms (appended to the rooms' history first), messages to one client, joins,
 * leaves and closes — so clients cannot tell a publisher's message from a node's.
 *
 * @example
 * ```ts
 * const publisher = new Publisher({ broker: new RedisBroker({ redis: process.env.REDIS_URL }) });
 * await publisher.to('chat:lobby').send(JSON.stringify({ text: 'deploy finished' }));
 * await publisher.client(clientId).send('your report is ready');
 * ```
 */
export class Publisher {
  /** This publisher's id, the `n` of what it sends. */
  readonly id: string;
  /** Publishes a frame on the nodes' broker. */
  readonly #broker: Broker;
  readonly #send: PublishFrame;
  readonly #historyOf: (room: string) => History | undefined;
  readonly #directHistory: History | undefined;
  readonly #store: StateStore | undefined;
  /** Joins, leaves and closes of sessions going to their records, in order for each session. */
  readonly #sessionChanges = new OneAtATime();
  readonly #prefix: string;
  /** The topic every node listens to, built once. */
  readonly #allTopic: string;
  readonly #sends: Sends;
  readonly #closeTimeoutMs: number;
  #closed = false;

  constructor(options: PublisherOptions) {
    this.#broker = options.broker;
    this.#send = framePublisher(options.broker);
    this.#prefix = options.topicPrefix ?? DEFAULT_TOPIC_PREFIX;
    this.#allTopic = topics.all(this.#prefix);
    this.id = options.id ?? `publisher-${randomBytes(6).toString('base64url')}`;
    this.#historyOf = historyLookup(options.history ?? [], options.directHistory);
    this.#directHistory = options.directHistory;
    this.#store = options.stateStore;
    this.#sends = new Sends(new NodeLog(options.logger, this.id));
    this.#closeTimeoutMs = options.closeTimeoutMs ?? 5000;
  }

  /**
   * Sends, joins, leaves and closes that failed. Each returns a promise that rejects when it
   * fails; one nobody awaits (`void publisher.to(room).send(text)`, the shape of a fire-and-forget
   * HTTP handler) is counted here and logged instead of ending the process as an unhandled
   * rejection.
   */
  get failedSends(): number {
    return this.#sends.failed;
  }

  /**
   * Starts a broadcast to the members of rooms, on every node; with no room (an empty list spread
   * into it), to nobody. `broadcast()` sends to everyone.
   */
  to(...rooms: string[]): BroadcastOperator {
    return broadcastOperator(this.#target, [...new Set(rooms)], []);
  }

  /** Starts a broadcast to every client except some, on every node. */
  except(...clientIds: string[]): BroadcastOperator {
    return broadcastOperator(this.#target, EVERYONE, clientIds);
  }

  /** Sends to every client of every node. */
  broadcast(data: Sendable, options?: SendOptions): Promise<void> {
    return this.#sends.track(this.#broadcast([], [], data, options));
  }

  /**
   * Operations on one client by id, on whatever node holds it. They go to every node and the one
   * that holds the client applies them (a publisher does not learn where clients are); with
   * `stateStore`, a join, leave or close for a `wscale.v1` client between connections is kept in
   * its session. Call them on the object it returns: its methods are shared, not bound to it.
   */
  client(id: string): RemoteClient {
    return new RemoteClientById(id, this.#sendDirect);
  }

  /**
   * Refuses further sends, and resolves once those already started are done (kept in a history and
   * published, or failed), awaited or not: the broker and stores, which stay open (they are the
   * caller's), can then be closed without losing any. Or it resolves after `closeTimeoutMs`, with
   * sends still waiting in the queue of a broker that is down: closing the broker then rejects
   * them (`BROKER_CLOSED`), so they are reported, not sent.
   */
  async close(): Promise<void> {
    this.#closed = true;
    await waitAtMost(this.#sends.settled(), this.#closeTimeoutMs);
  }

  readonly #target = {
    broadcast: (
      rooms: readonly string[],
      except: readonly string[],
      data: Sendable,
      options?: SendOptions,
    ) => this.#sends.track(this.#broadcast(rooms, except, data, options)),
  };

  async #broadcast(
    rooms: readonly string[],
    except: readonly string[],
    data: Sendable,
    options?: SendOptions,
  ): Promise<void> {
    if (this.#closed) throw new ServerClosedError('the publisher is closed');
    await publishBroadcast(
      this.id,
      rooms,
      except,
      data,
      options,
      this.#historyOf,
      this.#broker.maxPayloadBytes,
      (group, { message, header }) => {
        const topic = group.length === 1 ? topics.room(this.#prefix, group[0]!) : this.#allTopic;
        return this.#send(topic, { kind: BusKind.Broadcast, header }, message.bytes, message.flags);
      },
    );
  }

  /** {@link Publisher.client}'s operations go here: one function for every client, not one per call. */
  readonly #sendDirect: SendDirect = (id, operation, message) =>
    this.#sends.track(this.#direct(id, operation, message));

  async #direct(id: string, operation: DirectOperation, message?: Outgoing): Promise<void> {
    if (this.#closed) throw new ServerClosedError('the publisher is closed');
    const header = directHeader(this.id, id, operation);
    checkDirect(header);
    checkSize(this.#broker.maxPayloadBytes, { kind: BusKind.Direct, header }, message);
    const store = this.#store;
    if (store !== undefined && isSessionChange(header)) {
      return this.#sessionChanges.run(id, () => this.#changeSession(header, store));
    }
    if (header.o === 'join') markJoinedAt(header, await joinedAt(header, this.#historyOf));
    const sent = keepsDirect(id, message, this.#directHistory)
      ? await keptDirect(header, message!, this.#directHistory)
      : message;
    const { bytes, flags } = sent ?? { bytes: NO_BYTES, flags: 0 };
    await this.#send(this.#allTopic, { kind: BusKind.Direct, header }, bytes, flags);
  }

  /**
   * A join, leave or close for a session: into its record, then, when a connection holds it, to
   * every node for the holder the record names, which applies it to the connection.
   */
  async #changeSession(header: SessionChangeHeader, store: StateStore): Promise<void> {
    const at = await joinedAt(header, this.#historyOf);
    const place = await changeSession(store, this.#prefix, header.c, header, at);
    markJoinedAt(header, at);
    if (place === 'stored') return;
    if (place !== 'unknown') header.d = place.holder;
    await this.#send(this.#allTopic, { kind: BusKind.Direct, header }, NO_BYTES, 0);
  }
}
