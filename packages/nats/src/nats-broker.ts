import { nextTick } from 'node:process';
import {
  errors,
  type NatsConnection,
  type Status,
  type Subscription,
} from '@nats-io/transport-node';
import {
  BaseBroker,
  type BaseBrokerOptions,
  BrokerUnavailableError,
  InvalidOptionError,
} from '@wscale/core';
import { type NatsConnectOptions, resolveConnection } from './connection.js';
import {
  encodeToken,
  fitsControlLine,
  isSubjectPrefix,
  MAX_SUBJECT_BYTES,
} from './subject-token.js';
import { describe, withTimeout } from './timeout.js';

/** Subjects whose latest refused publish is remembered (past it, all are forgotten). */
const MAX_REFUSED_SUBJECTS = 1024;

/** First and longest wait before subscribing again a topic whose subscription the server dropped. */
const RESUBSCRIBE_FIRST_MS = 500;
const RESUBSCRIBE_MAX_MS = 30_000;

/** How long a broker's own first connection may take before the broker says it is `down`. */
const FIRST_CONNECT_MS = 5000;
/** Where the NATS client connects when given no `servers`. */
const DEFAULT_SERVER = '127.0.0.1:4222';

const { PermissionViolationError } = errors;

/** Options of {@link NatsBroker}. */
export interface NatsBrokerOptions extends BaseBrokerOptions, NatsConnectOptions {
  /**
   * Prefix of every subject the broker uses; a topic `t` travels on `<subjectPrefix><token(t)>`,
   * where the token is the base64url of `t` (see the README). Brokers that should reach each
   * other need the same prefix; different prefixes keep applications on one NATS apart.
   * @default 'wscale.'
   */
  subjectPrefix?: string;
  /**
   * Whether `publish` resolves only once the NATS server has the message (one PING/PONG round
   * trip, shared by every publish made in the same tick). Turn it off to resolve as soon as the
   * message is handed to the client: faster, but a message published in the instant a connection
   * dies, before the client notices, is then lost silently.
   * @default true
   */
  confirmPublishes?: boolean;
  /**
   * How long the broker waits for the server to answer a round trip (the confirmation of a
   * publish or a subscription). A server that does not answer in time is taken for hung: the
   * broker goes `down` and makes the client reconnect, and the publishes that waited are sent
   * again, in their place, once it is `ready` (a subscriber drops a copy it already got); a
   * subscription waiting for it rejects with `BrokerUnavailableError`.
   * @default 5000
   */
  publishTimeoutMs?: number;
  /**
   * Extra wait before `subscribe` resolves, after the connected server confirmed the
   * subscription. In a NATS cluster the other servers learn of a new subscription asynchronously
   * (route interest propagation, normally well under a millisecond): a message published through
   * another server in that instant can miss it. A few milliseconds here narrow that window; only
   * history (offsets and replay) closes it.
   * @default 0
   */
  subscribeSettleMs?: number;
}

/**
 * A {@link @wscale/core!Broker | Broker} on core NATS subjects: one NATS subscription per topic
 * per broker, delivery at most once per subscription while connected (NATS's own guarantee), in
 * publish order per publisher.
 *
 * While the connection is down, publishes wait in {@link BaseBroker}'s bounded queue and are sent
 * in order once it is back; the NATS client re-sends every subscription by itself on reconnect.
 */
export class NatsBroker extends BaseBroker {
  readonly #prefix: string;
  readonly #confirm: boolean;
  readonly #publishTimeoutMs: number;
  readonly #settleMs: number;
  readonly #owned: boolean;
  readonly #subscriptions = new Map<string, Subscription>();
  readonly #ready: Promise<NatsConnection>;
  #connection: NatsConnection | undefined;
  /**
   * Whether the connection was opened with `noEcho`: NATS then sends its own publishes to none of
   * its subscriptions, so the broker hands them to its own listeners itself.
   */
  #noEcho = false;
  /**
   * Publishes NATS refused (the connection's permissions): how many so far, and the count at the
   * latest refusal of each subject.
   */
  #refusals = 0;
  readonly #refusedAt = new Map<string, number>();
  /**
   * Topics whose live subscription the server dropped (its permissions were reloaded without
   * them): the broker is `down` until each is subscribed again.
   */
  readonly #dropped = new Set<string>();
  #droppedWhy: Error | undefined;
  #resubscribeTimer: NodeJS.Timeout | undefined;
  #resubscribeMs = RESUBSCRIBE_FIRST_MS;
  #connected = false;
  #statusStream: (AsyncIterable<Status> & { stop?: () => void }) | undefined;
  #batch: Promise<void> | undefined;
  #lastError: Error | undefined;
  #closing = false;

  constructor(options: NatsBrokerOptions = {}) {
    super(options);
    this.#prefix = options.subjectPrefix ?? 'wscale.';
    if (!isSubjectPrefix(this.#prefix)) {
      throw new InvalidOptionError(
        'subjectPrefix must be literal subject tokens each followed by a dot, like "wscale."',
      );
    }
    this.#confirm = options.confirmPublishes ?? true;
    this.#publishTimeoutMs = options.publishTimeoutMs ?? 5000;
    if (!(this.#publishTimeoutMs > 0)) throw new InvalidOptionError('publishTimeoutMs must be > 0');
    this.#settleMs = options.subscribeSettleMs ?? 0;
    if (!(this.#settleMs >= 0)) throw new InvalidOptionError('subscribeSettleMs must be >= 0');
    const { connection, owned } = resolveConnection(options, 'wscale-broker');
    this.#owned = owned;
    this.#ready = connection.then((nc) => this.#attach(nc));
    this.#ready.catch((error: unknown) => this.#lost(asError(error)));
    if (owned) this.#tellIfUnreachable(options.servers);
  }

  /**
   * A connection the broker opens waits for its first server as long as it takes (a node may start
   * before NATS): past {@link FIRST_CONNECT_MS} it says so, `down` with the servers it tries, so a
   * wrong address shows in the node's log and `brokerStatus` instead of a `ready()` that waits.
   */
  #tellIfUnreachable(servers: string | string[] | undefined): void {
    const timer = setTimeout(() => {
      if (this.#connection !== undefined || this.#closing) return;
      const where = [servers ?? DEFAULT_SERVER].flat().join(', ');
      const why = `no NATS server answered at ${where} within ${FIRST_CONNECT_MS} ms; still trying`;
      this.setStatus('down', new BrokerUnavailableError(why));
    }, FIRST_CONNECT_MS);
    timer.unref();
    this.#ready.then(
      () => clearTimeout(timer),
      () => clearTimeout(timer),
    );
  }

  /** The server's `max_payload`, once connected: a larger message is refused before it is sent. */
  get maxPayloadBytes(): number | undefined {
    return this.#connection?.info?.max_payload;
  }

  /** The NATS subject a topic travels on. */
  subjectFor(topic: string): string {
    return this.#prefix + encodeToken(topic);
  }

  /** {@link NatsBroker.subjectFor}, if NATS takes it: else it would close the connection. */
  #sendable(topic: string): string {
    const subject = this.subjectFor(topic);
    if (fitsControlLine(subject)) return subject;
    throw new BrokerUnavailableError(
      `the topic's subject is longer than NATS takes (${MAX_SUBJECT_BYTES} bytes): ${subject.slice(0, 64)}…`,
    );
  }

  protected async subscribeTopic(topic: string): Promise<void> {
    const nc = await this.#ready;
    const subject = this.#sendable(topic);
    // A subscription the server refuses (the connection's permissions) is handed the error, and
    // it comes before the answer to the round trip below; one it drops later, after it.
    let refused: Error | undefined;
    let live = false;
    const subscription = nc.subscribe(subject, {
      callback: (error, message) => {
        if (error === null) this.deliver(topic, message.data);
        else if (live) this.#drop(topic, subscription, error);
        else refused ??= error;
      },
    });
    this.#subscriptions.set(topic, subscription);
    try {
      // Resolve only once the server has the subscription: a publish after this reaches it.
      await this.#roundTrip(nc);
      if (refused !== undefined) throw refused;
      live = true;
    } catch (error) {
      if (this.#subscriptions.get(topic) === subscription) this.#subscriptions.delete(topic);
      subscription.unsubscribe();
      throw new BrokerUnavailableError(`could not subscribe to ${subject}: ${describe(error)}`, {
        cause: error,
      });
    }
    if (this.#settleMs > 0) await new Promise((resolve) => setTimeout(resolve, this.#settleMs));
  }

  protected async unsubscribeTopic(topic: string): Promise<void> {
    this.#dropped.delete(topic);
    const subscription = this.#subscriptions.get(topic);
    this.#subscriptions.delete(topic);
    subscription?.unsubscribe();
  }

  protected async publishTopic(topic: string, payload: Uint8Array): Promise<void> {
    const nc = this.#connection;
    if (nc === undefined) throw new BrokerUnavailableError('not connected to NATS');
    const subject = this.#sendable(topic);
    const refusals = this.#refusals;
    nc.publish(subject, payload);
    // On a later microtask, in publish order, as the echo would come. A copy sent again after a
    // reconnect is dropped by its stamp.
    if (this.#noEcho) queueMicrotask(() => this.deliver(topic, payload));
    if (!this.#confirm) return;
    try {
      await this.#roundTrip(nc);
    } catch (error) {
      // The NATS client drops what it buffered when it reconnects and fails the pending flush:
      // report the link as down before the status stream does, so BaseBroker queues the message
      // and sends it again once connected, instead of failing it.
      if (!(error instanceof BrokerUnavailableError)) this.setStatus('down', asError(error));
      throw error;
    }
    // The server says nothing to a publish it takes, and refuses one only in an error that comes
    // before the round trip's answer: never resolve for a message NATS dropped.
    if ((this.#refusedAt.get(subject) ?? 0) > refusals) {
      throw new BrokerUnavailableError(`NATS refused a publish to ${subject} (permissions)`);
    }
  }

  protected async closeConnection(): Promise<void> {
    this.#closing = true;
    clearTimeout(this.#resubscribeTimer);
    this.#statusStream?.stop?.();
    const subscriptions = [...this.#subscriptions.values()];
    this.#subscriptions.clear();
    const nc = this.#connection;
    if (nc === undefined || nc.isClosed()) return;
    if (this.#owned) {
      await nc.close();
    } else {
      for (const subscription of subscriptions) subscription.unsubscribe();
    }
  }

  /**
   * One server round trip confirms every publish and subscription made before it, so those of a
   * tick (a resume storm subscribes hundreds of inboxes) share one. It settles once the status
   * events that came before its answer (a refused publish) have been handled.
   */
  #roundTrip(nc: NatsConnection): Promise<void> {
    this.#batch ??= Promise.resolve().then(() => {
      this.#batch = undefined;
      return withTimeout(nc.flush(), this.#publishTimeoutMs, () => this.#unresponsive(nc)).then(
        afterPendingWork,
      );
    });
    return this.#batch;
  }

  /**
   * The server did not answer a round trip in time. It may hang with its TCP connection open (a
   * stopped process, a partition without a reset), which the client notices only after missing
   * pings, minutes later by its defaults: until then every publish would wait and fail. So the
   * broker is `down` at once, before the publishes that waited see the error (BaseBroker then
   * queues them and sends them again once `ready`), and the client is made to reconnect, to this
   * server once it answers again or to another. Returns the error for the waiters.
   */
  #unresponsive(nc: NatsConnection): Error {
    const error = new BrokerUnavailableError(
      `NATS did not confirm a round trip in ${this.#publishTimeoutMs} ms`,
    );
    if (this.#closing || nc !== this.#connection || nc.isClosed()) return error;
    this.#connected = false;
    this.setStatus('down', error);
    // Resolves at once; it does nothing when the client is already reconnecting.
    nc.reconnect().catch(() => undefined);
    return error;
  }

  #attach(nc: NatsConnection): NatsConnection {
    this.#connection = nc;
    this.#noEcho = (nc as { options?: { noEcho?: boolean } }).options?.noEcho === true;
    if (this.#closing) {
      if (this.#owned) void nc.close();
      return nc;
    }
    const stream = nc.status() as AsyncIterable<Status> & { stop?: () => void };
    this.#statusStream = stream;
    void this.#watch(nc, stream);
    void nc.closed().then((error) => {
      if (!this.#closing) this.#lost(error ?? new Error('the NATS connection was closed'));
    });
    if (!nc.isClosed()) {
      this.#connected = true;
      this.setStatus('ready');
    }
    return nc;
  }

  async #watch(nc: NatsConnection, stream: AsyncIterable<Status>): Promise<void> {
    for await (const status of stream) {
      switch (status.type) {
        case 'disconnect':
        case 'staleConnection':
          this.#connected = false;
          this.setStatus('down', this.#lastError);
          break;
        case 'reconnecting':
          this.setStatus('reconnecting', this.#lastError);
          break;
        case 'reconnect':
          this.#connected = true;
          this.#lastError = undefined;
          if (await this.#resubscribed(nc)) this.#readyUnlessDeaf();
          break;
        case 'error':
          this.#lastError = status.error;
          if (isRefusedPublish(status.error)) this.#refused(status.error.subject);
          break;
        default:
          break;
      }
    }
  }

  /**
   * The client re-sends every subscription on reconnect, before it reports `reconnect`, but the
   * server may not have processed them yet: a message published through another connection
   * right then would miss them. One round trip on this connection settles it, so `ready` means
   * "subscriptions restored". Returns false if the connection dropped again meanwhile.
   */
  async #resubscribed(nc: NatsConnection): Promise<boolean> {
    try {
      await withTimeout(nc.flush(), this.#publishTimeoutMs, () => this.#unresponsive(nc));
      if (this.#settleMs > 0) await new Promise((resolve) => setTimeout(resolve, this.#settleMs));
      return true;
    } catch {
      // Dropped again, or not answering (then made to reconnect): `ready` at the next reconnect.
      return false;
    }
  }

  /**
   * The server dropped a live subscription (its permissions were reloaded without the subject):
   * messages on the topic no longer reach this node. Not silently: the broker is `down` with why,
   * and subscribes the topic again, less and less often, until the server takes it.
   */
  #drop(topic: string, subscription: Subscription, error: Error): void {
    if (this.#closing || this.#subscriptions.get(topic) !== subscription) return;
    this.#subscriptions.delete(topic);
    this.#dropped.add(topic);
    const subject = subscription.getSubject();
    this.#droppedWhy = new BrokerUnavailableError(
      `NATS dropped the subscription to ${subject}: ${describe(error)}`,
      { cause: error },
    );
    this.setStatus('down', this.#droppedWhy);
    this.#scheduleResubscribe();
  }

  #scheduleResubscribe(): void {
    if (this.#resubscribeTimer !== undefined || this.#closing) return;
    this.#resubscribeTimer = setTimeout(() => {
      this.#resubscribeTimer = undefined;
      void this.#resubscribeDropped();
    }, this.#resubscribeMs);
    this.#resubscribeMs = Math.min(this.#resubscribeMs * 2, RESUBSCRIBE_MAX_MS);
  }

  async #resubscribeDropped(): Promise<void> {
    const wanted = new Set(this.subscribedTopics);
    for (const topic of this.#dropped) {
      if (!wanted.has(topic)) {
        this.#dropped.delete(topic);
        continue;
      }
      try {
        await this.subscribeTopic(topic);
        this.#dropped.delete(topic);
      } catch {
        // Still refused, or the connection is down: tried again later.
      }
    }
    if (this.#dropped.size > 0) return this.#scheduleResubscribe();
    this.#resubscribeMs = RESUBSCRIBE_FIRST_MS;
    if (this.#connected) this.#readyUnlessDeaf();
  }

  /** `ready`, unless a subscription the server dropped is still missing (then `down`, with why). */
  #readyUnlessDeaf(): void {
    if (this.#dropped.size === 0) this.setStatus('ready');
    else this.setStatus('down', this.#droppedWhy);
  }

  #refused(subject: string): void {
    if (this.#refusedAt.size >= MAX_REFUSED_SUBJECTS) this.#refusedAt.clear();
    this.#refusedAt.set(subject, ++this.#refusals);
  }

  /** The connection is gone for good (closed by its owner, or the first connect failed). */
  #lost(error: Error): void {
    if (this.#closing) return;
    this.setStatus('down', error);
    void this.close();
  }
}

function isRefusedPublish(error: Error): error is InstanceType<typeof PermissionViolationError> {
  return error instanceof PermissionViolationError && error.operation === 'publish';
}

/**
 * Resolves after the promise reactions queued now, and those they queue, have run: a `nextTick`
 * queued from a promise reaction runs once the microtask queue is empty. The status events the
 * client dispatched before a round trip's answer reach {@link NatsBroker}'s status loop by then.
 */
function afterPendingWork(): Promise<void> {
  return new Promise((resolve) => nextTick(resolve));
}

function asError(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error));
}
