import type { Buffer } from 'node:buffer';
import {
  BaseBroker,
  type BaseBrokerOptions,
  type BrokerStatus,
  InvalidOptionError,
} from '@wscale/core';
import { CommandDeadlines, CommandTimeoutError } from './command-deadlines.js';
import {
  batchWrites,
  closeClient,
  isCluster,
  openClient,
  pipelinesItself,
  type RedisClient,
  type RedisConnection,
  whenReady,
} from './connection.js';
import { channelName, checkPrefix, topicOfChannel } from './naming.js';
import { asBuffer, ownBytes, PublishChannel } from './written-command.js';

/** Options of {@link RedisBroker}. */
export interface RedisBrokerOptions extends BaseBrokerOptions {
  /**
   * Where Redis is: a URL, ioredis options (Sentinel too), or a `Redis` / `Cluster` client you
   * created. A client you pass publishes as is and is never closed by the broker; the broker
   * subscribes on a `duplicate()` of it. Given a `Cluster`, the broker uses sharded pub/sub
   * (Redis 7 or newer).
   * @default `{}` (ioredis's default: 127.0.0.1:6379), also when `undefined` (an unset variable)
   */
  redis?: RedisConnection | undefined;
  /**
   * Put before every channel name, so several applications can share one Redis (pub/sub
   * channels ignore the database number). No `{` or `}`.
   * @default 'wscale:'
   */
  channelPrefix?: string;
  /**
   * How long a subscribe may wait for Redis to connect and answer before it rejects with
   * `BrokerUnavailableError`, and a publish for Redis to answer (within a tenth of this more: one
   * timer checks every publish out, not one timer each) before the broker counts Redis as hung:
   * it goes `reconnecting`, opens its publishing connection again, and sends the unanswered
   * publishes again once Redis answers (subscribers drop a copy Redis had taken, by its stamp).
   * Applies to the connections the broker opens: a client you pass in publishes with its own
   * settings (set its ioredis `commandTimeout`, or a publish to a Redis that hangs waits for it).
   * @default 5000
   */
  commandTimeoutMs?: number;
}

/**
 * How often the Cluster subscriber re-reads the slot map, so ioredis moves subscriptions along
 * with a topology change it was not told about by an error.
 */
const SLOTS_REFRESH_MS = 5000;
/** Most channel names the broker keeps for the topics it publishes to. */
const MAX_CHANNELS = 4096;
/** How long the Cluster subscriber lets a burst of dropped subscriptions settle before repairing. */
const REPAIR_DELAY_MS = 100;

/** First and longest wait before resubscribing after Redis refused it (an ACL changed). */
const RESTORE_RETRY_FIRST_MS = 500;
const RESTORE_RETRY_MAX_MS = 30_000;

/**
 * A {@link @wscale/core!Broker | Broker} on Redis pub/sub: one connection publishes, a dedicated
 * one subscribes, with one Redis subscription per topic. On a Redis Cluster it uses sharded pub/sub
 * (`SPUBLISH` / `SSUBSCRIBE`), so a message travels only within the shard that owns its topic, and
 * ioredis moves subscriptions along when slots move or a replica takes over.
 *
 * While Redis is unreachable, or hangs (a publish unanswered for `commandTimeoutMs`), the broker
 * reports `reconnecting` and queues publishes in
 * {@link BaseBroker}'s bounded queue (ioredis's own unbounded offline queue is turned off on the
 * connections the broker creates); it reports `ready` again only once every subscription is
 * restored, then sends what it queued, in order.
 */
export class RedisBroker extends BaseBroker {
  readonly #pub: RedisClient;
  readonly #sub: RedisClient;
  readonly #ownsPub: boolean;
  readonly #cluster: boolean;
  readonly #prefix: string;
  /**
   * What a channel carries in front of {@link RedisBroker.#prefix} on the wire: on a Cluster,
   * ioredis's `keyPrefix` (it counts a shard channel as a key, and prefixes it in `SSUBSCRIBE`).
   */
  readonly #wirePrefix: string;
  readonly #timeoutMs: number;
  /** Bounds the publishes on a connection the broker opened (one timer, not one per publish). */
  readonly #deadlines: CommandDeadlines | undefined;
  #everReady = false;
  /** A publish went unanswered on the publishing connection, which is being opened again. */
  #stalled = false;
  #restored = false;
  #restoring = 0;
  /** Why Redis refused to resubscribe on a connection that is up (an ACL): `down` until it takes it. */
  #refused: Error | undefined;
  #retryMs = RESTORE_RETRY_FIRST_MS;
  #lastError: Error | undefined;
  #repairTimer: NodeJS.Timeout | undefined;
  readonly #channels = new Map<string, PublishChannel>();
  /** The channel the last message came on, and its topic. */
  #lastChannel: { bytes: Buffer; topic: string } | undefined;

  constructor(options: RedisBrokerOptions = {}) {
    super(options);
    this.#prefix = checkPrefix('channelPrefix', options.channelPrefix ?? 'wscale:');
    this.#timeoutMs = options.commandTimeoutMs ?? 5000;
    if (!(this.#timeoutMs > 0)) throw new InvalidOptionError('commandTimeoutMs must be > 0');
    // The publishes on a connection the broker opens (never a Cluster) are bounded by
    // `#deadlines`, not by a timer per command.
    const { client, owned } = openClient(options.redis, undefined);
    this.#pub = client;
    this.#ownsPub = owned;
    this.#cluster = isCluster(client);
    this.#wirePrefix = this.#cluster ? (client.options.keyPrefix ?? '') : '';
    if (owned) this.#deadlines = new CommandDeadlines(this.#timeoutMs);
    this.#sub = isCluster(client)
      ? client.duplicate([], { shardedSubscribers: true, slotsRefreshInterval: SLOTS_REFRESH_MS })
      : client.duplicate({
          // The broker resubscribes itself, to know when it is done.
          autoResubscribe: false,
          enableOfflineQueue: false,
          maxRetriesPerRequest: 0,
          autoResendUnfulfilledCommands: false,
          commandTimeout: this.#timeoutMs,
        });
    for (const connection of [this.#pub, this.#sub]) {
      for (const event of ['ready', 'close', 'reconnecting', 'end']) {
        connection.on(event, this.#refresh);
      }
      connection.on('error', this.#onError);
      if (connection.status === 'wait') connection.connect().catch(() => undefined);
    }
    this.#pub.on('close', () => {
      // The stalled connection is gone: its state says what comes next.
      this.#stalled = false;
    });
    this.#sub.on(this.#cluster ? 'smessageBuffer' : 'messageBuffer', this.#onMessage);
    if (isCluster(this.#sub)) {
      // A shard that drops our subscriptions (its slot moved, or it was demoted) sends an
      // unsolicited SUNSUBSCRIBE, which ioredis reports as a node error and does not act on.
      this.#sub.on('nodeError', (error: Error) => {
        if (/sunsubscribe/i.test(error.message)) this.#scheduleRepair();
      });
      // A shard's subscriber connection was replaced (closed by the server, say after an ACL
      // change): ioredis subscribes it again but says nothing when that is refused.
      this.#sub.on('subscribersReady', () => this.#scheduleRepair());
    } else {
      this.#sub.on('ready', () => void this.#restore());
      this.#sub.on('close', () => {
        this.#restored = false;
      });
    }
    this.#refresh();
  }

  protected async subscribeTopic(topic: string): Promise<void> {
    await whenReady(this.#sub, this.#timeoutMs);
    const channel = channelName(this.#prefix, topic);
    if (isCluster(this.#sub)) await this.#sub.ssubscribe(channel);
    else await this.#sub.subscribe(channel);
  }

  protected async unsubscribeTopic(topic: string): Promise<void> {
    // A connection that is not ready holds no subscriptions, and will not get this one back.
    if (this.#sub.status !== 'ready') return;
    const channel = channelName(this.#prefix, topic);
    if (isCluster(this.#sub)) await this.#sub.sunsubscribe(channel);
    else await this.#sub.unsubscribe(channel);
  }

  protected publishTopic(topic: string, payload: Uint8Array): Promise<unknown> {
    const message = asBuffer(payload);
    const pub = this.#pub;
    // A Cluster that gathers commands into pipelines itself gets them as ioredis writes them.
    if (pipelinesItself(pub)) return pub.spublish(channelName(this.#prefix, topic), message);
    // ioredis's own promise, not one more around it: this runs for every message. A Cluster
    // sends it to the shard that owns the channel's slot.
    const command = this.#channelOf(topic).command(message);
    batchWrites(pub);
    // Bounded by `#deadlines` on a connection the broker opened (one Redis, never a Cluster).
    if (this.#deadlines !== undefined && !isCluster(pub)) return this.#deadlines.send(pub, command);
    return pub.sendCommand(command) as Promise<unknown>;
  }

  protected async closeConnection(): Promise<void> {
    clearTimeout(this.#repairTimer);
    this.#deadlines?.stop();
    this.#sub.removeAllListeners();
    this.#sub.on('error', () => undefined); // late socket errors of a connection being torn down
    this.#sub.disconnect();
    for (const event of ['ready', 'close', 'reconnecting', 'end'])
      this.#pub.off(event, this.#refresh);
    this.#pub.off('error', this.#onError);
    if (this.#ownsPub) await closeClient(this.#pub);
  }

  /** The channel of a topic published to, built once (topics come and go: the names are bounded). */
  #channelOf(topic: string): PublishChannel {
    let channel = this.#channels.get(topic);
    if (channel === undefined) {
      if (this.#channels.size >= MAX_CHANNELS) this.#channels.clear();
      const name = this.#wirePrefix + channelName(this.#prefix, topic);
      channel = new PublishChannel(name, this.#cluster);
      this.#channels.set(topic, channel);
    }
    return channel;
  }

  readonly #onMessage = (channel: Buffer, message: Buffer): void => {
    // Messages come in runs on one channel (a node's own, a busy room's): its topic is read once
    // per run, not decoded again for every message.
    let last = this.#lastChannel;
    if (last === undefined || !last.bytes.equals(channel)) {
      const topic = topicOfChannel(this.#wirePrefix + this.#prefix, channel.toString());
      if (topic === undefined) return;
      last = { bytes: ownBytes(channel), topic };
      this.#lastChannel = last;
    }
    this.deliver(last.topic, message);
  };

  readonly #onError = (error: Error): void => {
    this.#lastError = error;
  };

  /**
   * A publish went unanswered for `commandTimeoutMs` (`#deadlines` failed it): Redis hangs
   * (stopped, or blocked by a slow command) or the path to it is half-open. The broker goes
   * `reconnecting`: the publishes that went unanswered and those after them wait in the queue, to
   * go out in their place once Redis answers again (a subscriber drops a copy Redis had taken after
   * all, by its stamp), and the connection is opened again (its socket destroyed if it does not
   * close within ioredis's `disconnectTimeout`). A publish Redis refused is no hang.
   */
  protected override hangs(error: unknown): boolean {
    if (!(error instanceof CommandTimeoutError)) return false;
    if (this.#stalled || this.#pub.status !== 'ready') return true;
    this.#stalled = true;
    this.#lastError = new Error(`Redis did not answer a publish within ${this.#timeoutMs} ms`);
    this.#refresh();
    this.#pub.disconnect(true);
    return true;
  }

  /** Maps the two connections' states onto the broker's status. */
  readonly #refresh = (): void => {
    const pub = this.#pub.status;
    const sub = this.#sub.status;
    let status: BrokerStatus;
    let error = this.#lastError;
    if (sub === 'ready' && this.#refused !== undefined) {
      status = 'down';
      error = this.#refused;
    } else if (
      pub === 'ready' &&
      !this.#stalled &&
      sub === 'ready' &&
      (this.#cluster || this.#restored)
    ) {
      this.#everReady = true;
      status = 'ready';
    } else if (pub === 'end' || sub === 'end') {
      status = 'down';
    } else {
      status = this.#everReady ? 'reconnecting' : 'connecting';
    }
    if (status === 'ready') {
      // What went wrong before is over: a later outage is told by its own error, not this one.
      this.#lastError = undefined;
      this.setStatus(status);
    } else {
      this.setStatus(status, error ?? new Error(`no connection to Redis (${pub}, ${sub})`));
    }
  };

  /**
   * Subscribes again, once, after `delayMs`: on a Cluster every topic where it now lives
   * ({@link RedisBroker.#repair}), on one Redis all of them if they are not back yet.
   */
  #scheduleRepair(delayMs = REPAIR_DELAY_MS): void {
    if (this.#repairTimer !== undefined || this.status === 'closed') return;
    this.#repairTimer = setTimeout(() => {
      this.#repairTimer = undefined;
      if (this.#cluster) void this.#repair();
      else if (this.#sub.status === 'ready' && !this.#restored) void this.#restore();
    }, delayMs);
  }

  /**
   * Redis refused to subscribe on a connection that is up (the user's ACL no longer has a
   * channel): the broker is `down` with why, and tries again less and less often.
   */
  #refusedBy(error: Error): void {
    this.#refused = error;
    this.#refresh();
    this.#scheduleRepair(this.#retryMs);
    this.#retryMs = Math.min(this.#retryMs * 2, RESTORE_RETRY_MAX_MS);
  }

  /** Every subscription is back: no refusal stands. */
  #subscribed(): void {
    this.#refused = undefined;
    this.#retryMs = RESTORE_RETRY_FIRST_MS;
    this.#refresh();
  }

  /**
   * Re-reads the slot map, then subscribes every topic again where it now lives. Subscribing a
   * channel twice is harmless; missing one is not.
   */
  async #repair(): Promise<void> {
    const sub = this.#sub;
    if (!isCluster(sub) || this.status === 'closed') return;
    await new Promise<void>((resolve) => sub.refreshSlotsCache(() => resolve()));
    const results = await Promise.allSettled(
      this.subscribedTopics.map((topic) => sub.ssubscribe(channelName(this.#prefix, topic))),
    );
    const failed = results.find((result) => result.status === 'rejected')?.reason;
    if (failed === undefined) this.#subscribed();
    else if (isRefusal(failed)) this.#refusedBy(failed);
    // A shard that is moving or away: soon again.
    else this.#scheduleRepair();
  }

  /** Subscribes every topic again on a fresh subscriber connection, then reports ready. */
  async #restore(): Promise<void> {
    const attempt = ++this.#restoring;
    try {
      await this.resubscribeAll();
    } catch (error) {
      this.#onError(error instanceof Error ? error : new Error(String(error)));
      // The connection dropped again: its next `ready` restores. Still up: Redis refused.
      if (attempt === this.#restoring && this.#sub.status === 'ready') {
        this.#refusedBy(this.#lastError!);
      }
      return;
    }
    if (attempt !== this.#restoring || this.#sub.status !== 'ready') return;
    this.#restored = true;
    this.#subscribed();
  }
}

/** Whether Redis refused a command for the user's ACL (not a connection or slot problem). */
function isRefusal(error: unknown): error is Error {
  return error instanceof Error && error.message.startsWith('NOPERM');
}
