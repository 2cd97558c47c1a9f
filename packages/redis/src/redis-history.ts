import type { Buffer } from 'node:buffer';
import { randomBytes } from 'node:crypto';
import {
  type History,
  type HistoryEntry,
  HistoryError,
  type HistoryPosition,
  type HistoryReadResult,
  InvalidOptionError,
} from '@wscale/core';
import type { CommandDeadlines, SendCommand } from './command-deadlines.js';
import {
  closeClient,
  isCluster,
  messageOf,
  openStoreClient,
  type RedisClient,
  type RedisConnection,
  whenReady,
} from './connection.js';
import { APPEND, POSITION, READ } from './history-scripts.js';
import { channelName, checkPrefix, hashTagged } from './naming.js';
import { ServerWatch } from './server-watch.js';
import { asBuffer } from './written-command.js';

/** Options of {@link RedisHistory}. */
export interface RedisHistoryOptions {
  /**
   * Where Redis is: a URL, ioredis options (Sentinel too), or a `Redis` / `Cluster` client you
   * created (used as is, never closed by the history). Needs Redis 6.2 or newer.
   * @default `{}` (ioredis's default: 127.0.0.1:6379), also when `undefined` (an unset variable)
   */
  redis?: RedisConnection | undefined;
  /**
   * Entries kept per room; older ones are trimmed (exactly, not approximately).
   * @default 1000
   */
  maxEntries?: number;
  /**
   * Entries older than this are trimmed, on the room's next append or read.
   * @default 600000 (ten minutes)
   */
  maxAgeMs?: number;
  /**
   * A room nobody appended to for this long is forgotten (its keys expire); a client that comes
   * back with a position in it is then told `epoch-changed`. `0` keeps rooms forever. When not
   * `0`, at least `maxAgeMs`.
   * @default 86400000 (one day)
   */
  roomTtlMs?: number;
  /**
   * Put before every key, so several applications can share one Redis. No `{` or `}`.
   * @default 'wscale:'
   */
  keyPrefix?: string;
  /**
   * Put before every channel {@link RedisHistory.appendAndPublish} publishes to. Must match the
   * `channelPrefix` of the {@link RedisBroker} that subscribes. No `{` or `}`.
   * @default 'wscale:'
   */
  channelPrefix?: string;
  /**
   * How long a call may wait for Redis (to connect, or to answer) before it rejects with
   * {@link HistoryError}.
   * @default 5000
   */
  commandTimeoutMs?: number;
}

type Reply = Array<Buffer | number>;

/**
 * A {@link History} in Redis Streams: one stream per room, bounded by `maxEntries` and `maxAgeMs`,
 * with offsets 1, 2, 3… and a random epoch kept in a companion hash. Every operation is one Lua
 * script, so appends from many nodes get consecutive offsets and a read is never a partial replay.
 * Both keys of a room share a hash tag, so it works on Redis Cluster.
 */
export class RedisHistory implements History {
  readonly #client: RedisClient;
  readonly #owned: boolean;
  readonly #cluster: boolean;
  readonly #keyPrefix: string;
  readonly #channelPrefix: string;
  readonly #maxEntries: string;
  readonly #maxAgeMs: string;
  readonly #roomTtlMs: string;
  readonly #timeoutMs: number;
  /** The Redis process of a standalone connection: run id and clock (none on a Cluster). */
  readonly #server: ServerWatch | undefined;
  /** Bounds the commands on a connection the history opened. */
  readonly #deadlines: CommandDeadlines | undefined;
  readonly #send: SendCommand;
  /** Appends sent to Redis and not answered yet. */
  #pending = 0;
  /** Appends waiting for their turn to be sent (see {@link MAX_APPENDS_OUT}), oldest first. */
  readonly #waiting: WaitingAppend[] = [];
  /** The first of {@link #waiting} still waiting. */
  #next = 0;

  constructor(options: RedisHistoryOptions = {}) {
    const maxEntries = options.maxEntries ?? 1000;
    const maxAgeMs = options.maxAgeMs ?? 600_000;
    const roomTtlMs = options.roomTtlMs ?? 86_400_000;
    this.#timeoutMs = options.commandTimeoutMs ?? 5000;
    if (!Number.isInteger(maxEntries) || maxEntries < 1) {
      throw new InvalidOptionError('maxEntries must be a whole number >= 1');
    }
    if (!Number.isInteger(maxAgeMs) || maxAgeMs < 1) {
      throw new InvalidOptionError('maxAgeMs must be a whole number of ms >= 1');
    }
    if (!Number.isInteger(roomTtlMs) || (roomTtlMs !== 0 && roomTtlMs < maxAgeMs)) {
      throw new InvalidOptionError('roomTtlMs must be 0 or a whole number of ms >= maxAgeMs');
    }
    if (!(this.#timeoutMs > 0)) throw new InvalidOptionError('commandTimeoutMs must be > 0');
    this.#maxEntries = String(maxEntries);
    this.#maxAgeMs = String(maxAgeMs);
    this.#roomTtlMs = String(roomTtlMs);
    this.#keyPrefix = `${checkPrefix('keyPrefix', options.keyPrefix ?? 'wscale:')}history:`;
    this.#channelPrefix = checkPrefix('channelPrefix', options.channelPrefix ?? 'wscale:');
    const { client, owned, send, deadlines } = openStoreClient(options.redis, this.#timeoutMs);
    this.#client = client;
    this.#owned = owned;
    this.#cluster = isCluster(client);
    this.#send = send;
    this.#deadlines = deadlines;
    this.#server = isCluster(client)
      ? undefined
      : new ServerWatch(client, this.#timeoutMs, this.#send);
  }

  append(room: string, payload: Uint8Array): Promise<HistoryPosition> {
    return this.#append(room, payload, undefined);
  }

  /**
   * Appends a message and publishes it to a broker topic in the same Lua script, so subscribers
   * see a room's messages in offset order and a message is never published without being in the
   * history (nor kept without being published).
   *
   * What is published is the payload framed with its position (see {@link decodeHistoryMessage}
   * for the format), on the channel a {@link RedisBroker} with the same `channelPrefix` uses for
   * `topic`: `PUBLISH` on standalone Redis, `SPUBLISH` on a Cluster. On a Cluster the topic must
   * live in the room's slot, which holds when `topic === room`; otherwise it rejects with
   * {@link HistoryError} and appends nothing.
   */
  appendAndPublish(room: string, payload: Uint8Array, topic: string): Promise<HistoryPosition> {
    return this.#append(room, payload, channelName(this.#channelPrefix, topic));
  }

  async read(room: string, after: HistoryPosition, limit = Infinity): Promise<HistoryReadResult> {
    if (!Number.isSafeInteger(after.offset) || after.offset < 0) {
      throw new HistoryError(`invalid offset ${after.offset}: a whole number >= 0 is expected`);
    }
    const count = limit === Infinity ? 0 : limit >= 1 ? Math.floor(limit) : -1;
    const reply = (await this.#run('read', room, (client) =>
      READ.runBuffer(
        client,
        this.#keys(room),
        [
          newEpoch(),
          this.#maxAgeMs,
          this.#roomTtlMs,
          after.epoch,
          String(after.offset),
          String(count),
          this.#server?.runId ?? '',
        ],
        this.#send,
      ),
    )) as Reply;
    const status = String(reply[0]);
    const position = { offset: reply[1] as number, epoch: String(reply[2]) };
    if (status !== 'ok') {
      return { ok: false, reason: status as 'too-old' | 'epoch-changed', position };
    }
    const entries: HistoryEntry[] = [];
    for (let i = 3; i < reply.length; i += 2) {
      entries.push({ offset: reply[i] as number, payload: reply[i + 1] as Buffer });
    }
    return { ok: true, epoch: position.epoch, entries };
  }

  position(room: string): Promise<HistoryPosition> {
    return this.#run('read the position of', room, (client) =>
      POSITION.run(
        client,
        this.#keys(room),
        [newEpoch(), this.#roomTtlMs, this.#server?.runId ?? ''],
        this.#send,
      ),
    ).then(positionOf);
  }

  async close(): Promise<void> {
    this.#server?.stop();
    this.#deadlines?.stop();
    // Appends still waiting for their turn are not sent.
    const waiting = this.#waiting.splice(this.#next);
    this.#waiting.length = 0;
    this.#next = 0;
    for (const append of waiting) {
      append.refuse(
        new HistoryError(`could not append to room "${append.room}": the history is closed`),
      );
    }
    if (this.#owned) await closeClient(this.#client);
  }

  #append(
    room: string,
    payload: Uint8Array,
    channel: string | undefined,
  ): Promise<HistoryPosition> {
    // A flood of appends sent at once would wait past their deadline together in Redis, and
    // every one would fail, the flood's and everyone else's, until the queue drained (some 25 s
    // after a flood of 80 000 in a probe). So this many at most are out at once; the others wait
    // here, in order, and one that waited half its deadline is refused instead of sent.
    if (this.#pending < MAX_APPENDS_OUT && this.#next === this.#waiting.length) {
      return this.#appendNow(room, payload, channel);
    }
    return new Promise((resolve, reject) => {
      this.#waiting.push({
        at: performance.now(),
        send: () => this.#appendNow(room, payload, channel).then(resolve, reject),
        refuse: reject,
        room,
      });
    });
  }

  #appendNow(
    room: string,
    payload: Uint8Array,
    channel: string | undefined,
  ): Promise<HistoryPosition> {
    this.#pending++;
    const keys = this.#keys(room);
    let command = '';
    if (channel !== undefined) {
      command = this.#cluster ? 'SPUBLISH' : 'PUBLISH';
      if (this.#cluster) keys.push(channel);
    }
    return this.#run('append to', room, (client) =>
      APPEND.run(
        client,
        keys,
        [
          asBuffer(payload),
          newEpoch(),
          this.#maxEntries,
          this.#maxAgeMs,
          this.#roomTtlMs,
          command,
          channel ?? '',
          this.#server?.runId ?? '',
          this.#server?.deadline() ?? '',
        ],
        this.#send,
      ),
    ).then(
      (reply) => {
        this.#answered();
        return positionOf(reply);
      },
      (error: unknown) => {
        this.#answered();
        throw error;
      },
    );
  }

  /** An append was answered: the first ones waiting go out in its place. */
  #answered(): void {
    this.#pending--;
    const waiting = this.#waiting;
    if (this.#next === waiting.length) return;
    const oldest = performance.now() - this.#timeoutMs / 2;
    while (this.#pending < MAX_APPENDS_OUT && this.#next < waiting.length) {
      const next = waiting[this.#next++]!;
      if (next.at >= oldest) next.send();
      else {
        next.refuse(
          new HistoryError(
            `could not append to room "${next.room}": it waited half of commandTimeoutMs behind ` +
              `${MAX_APPENDS_OUT} appends out to Redis`,
          ),
        );
      }
    }
    // Those taken leave the array: at once when none waits, else once they are half of it.
    if (this.#next === waiting.length) {
      waiting.length = 0;
      this.#next = 0;
    } else if (this.#next > waiting.length / 2) {
      waiting.splice(0, this.#next);
      this.#next = 0;
    }
  }

  #keys(room: string): string[] {
    const base = this.#keyPrefix + hashTagged(room);
    return [`${base}:meta`, `${base}:log`];
  }

  /** Runs `command` once the client is ready (no wait when it is: this runs for every message). */
  #run<T>(what: string, room: string, command: (client: RedisClient) => Promise<T>): Promise<T> {
    const client = this.#client;
    let ran: Promise<T>;
    try {
      ran =
        client.status === 'ready'
          ? command(client)
          : whenReady(client, this.#timeoutMs).then(() => command(client));
    } catch (error) {
      ran = Promise.reject(error);
    }
    return ran.catch((error: unknown) => {
      // Refused as late though it was not (Redis's clock moved): read it again.
      if (messageOf(error).startsWith('EXPIRED')) this.#server?.readClock();
      const hint = messageOf(error).includes('CROSSSLOT')
        ? ' (on Redis Cluster, appendAndPublish needs a topic in the room’s slot: use the room name)'
        : '';
      throw new HistoryError(`could not ${what} room "${room}": ${messageOf(error)}${hint}`, {
        cause: error,
      });
    });
  }
}

/** Appends out to Redis at once, at most: a burst past it waits its turn (see `#append`). */
const MAX_APPENDS_OUT = 10_000;

/** An append waiting for its turn to go out. */
interface WaitingAppend {
  /** When it was asked for (`performance.now()`). */
  at: number;
  send: () => void;
  refuse: (error: HistoryError) => void;
  room: string;
}

const EPOCH_BASE = randomBytes(12).toString('base64url');
let epochsDrawn = 0;

/**
 * A fresh epoch, used only if the script finds the room without one: 96 random bits drawn once
 * per process, then a count, so no two are ever the same. Every append sends one, and drawing
 * random bytes for each took microseconds; a room is rarely created.
 */
function newEpoch(): string {
  return `${EPOCH_BASE}${(epochsDrawn++).toString(36)}`;
}

/** The position a script answers with: `[offset, epoch]`. */
function positionOf(reply: unknown): HistoryPosition {
  const [offset, epoch] = reply as [number, string];
  return { offset, epoch };
}
