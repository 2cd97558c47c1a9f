import type { Duplex } from 'node:stream';
import { Cluster, Redis, type RedisOptions } from 'ioredis';
import { CommandDeadlines, type SendCommand, sendAsItIs } from './command-deadlines.js';

/** A connected ioredis client: a standalone (or Sentinel-backed) `Redis`, or a `Cluster`. */
export type RedisClient = Redis | Cluster;

/**
 * How an adapter reaches Redis: a `redis://` URL, ioredis `RedisOptions` (Sentinel included), or
 * a client you created yourself. A client you pass is used as is and never closed by wscale; one
 * wscale creates from a URL or options is closed by the adapter's `close()`.
 */
export type RedisConnection = string | RedisOptions | RedisClient;

/** A client and whether the adapter created it (and so must close it). */
export interface OpenedClient {
  client: RedisClient;
  owned: boolean;
}

/**
 * Opens the client an adapter talks through. A client wscale creates fails fast while Redis is
 * away — no offline queue, no retries, no resending after a reconnect — so every call either
 * happens now or fails typed within `commandTimeoutMs`: the broker then queues in `BaseBroker`'s
 * bounded queue, and the stores report the failure instead of replaying stale writes later.
 * Options you pass win over these. Without `commandTimeoutMs` ioredis arms no timer per command:
 * the caller bounds its commands itself (`CommandDeadlines`).
 */
export function openClient(
  connection: RedisConnection | undefined,
  commandTimeoutMs: number | undefined,
): OpenedClient {
  const defaults: RedisOptions = {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    autoResendUnfulfilledCommands: false,
  };
  if (commandTimeoutMs !== undefined) defaults.commandTimeout = commandTimeoutMs;
  if (isClient(connection)) return { client: connection, owned: false };
  if (typeof connection === 'string') {
    return { client: new Redis(connection, defaults), owned: true };
  }
  return { client: new Redis({ ...defaults, ...connection }), owned: true };
}

/** A client a store talks through, with how its commands are bounded. */
export interface StoreClient extends OpenedClient {
  /** Hands a command to the connection (see {@link SendCommand}). */
  send: SendCommand;
  /** The sweep that bounds the commands of a connection the store opened, to stop on close. */
  deadlines: CommandDeadlines | undefined;
}

/**
 * Opens the client a store (history, session records) talks through. A connection it opens (one
 * Redis) bounds its commands with one sweep for all ({@link CommandDeadlines}), not ioredis's
 * timer per command: a timer fires before the reads of a process that was busy past it, and
 * failed a command Redis had answered in time (an append it kept). With an ioredis `keyPrefix` in
 * the options the commands go through ioredis's own calls, and its timer bounds them; a client
 * passed in keeps its own settings.
 */
export function openStoreClient(
  connection: RedisConnection | undefined,
  timeoutMs: number,
): StoreClient {
  const prefixed = !isClient(connection) && !!(connection as RedisOptions | undefined)?.keyPrefix;
  const { client, owned } = openClient(connection, prefixed ? timeoutMs : undefined);
  if (owned) client.on('error', () => undefined); // reported through the calls that fail
  if (!owned || prefixed) return { client, owned, send: sendAsItIs, deadlines: undefined };
  const deadlines = new CommandDeadlines(timeoutMs);
  return { client, owned, send: (redis, command) => deadlines.send(redis, command), deadlines };
}

/** Whether a value is an ioredis client (duck-typed: the app may hold another copy of ioredis). */
export function isClient(value: unknown): value is RedisClient {
  if (value instanceof Redis || value instanceof Cluster) return true;
  if (typeof value !== 'object' || value === null) return false;
  const candidate = value as Partial<Redis>;
  return typeof candidate.duplicate === 'function' && typeof candidate.sendCommand === 'function';
}

/** Whether a client speaks to a Redis Cluster. */
export function isCluster(client: RedisClient): client is Cluster {
  return (client as Cluster).isCluster === true;
}

/**
 * Whether a Cluster client gathers commands into pipelines itself (ioredis's
 * `enableAutoPipelining`, per shard): the adapters then leave their commands to it, written as
 * ioredis writes them. One Redis needs no such setting: {@link batchWrites} gathers them.
 */
export function pipelinesItself(client: RedisClient): client is Cluster {
  return isCluster(client) && client.options.enableAutoPipelining === true;
}

/**
 * Batches the commands a standalone client is sent in one go (a loop of sends, a burst of
 * broadcasts): the first goes out at once, so a lone publish is not delayed, not even by the
 * local fan-out that follows it; the ones after it are held on the corked socket and leave
 * together, in one write (one system call instead of one each), as soon as the code that sent
 * them returns (a microtask: cheaper than a `process.nextTick`, which would cost a lone publish
 * more than the batching saves). What ioredis's `enableAutoPipelining` does, without its pipeline
 * object per tick. A Cluster's commands go out on the connections of several nodes: those are
 * left as they are. Called before each command is sent.
 */
export function batchWrites(client: RedisClient): void {
  if (isCluster(client)) return;
  const stream = client.stream as Duplex | undefined;
  if (stream === undefined || stream.writableCorked > 0) return;
  if (sentNow.includes(stream)) stream.cork();
  else if (sentNow.push(stream) === 1) void SETTLED.then(endBatch);
}

/** The sockets that were sent a command since the last batch ended: a few (a broker's, a store's). */
const sentNow: Duplex[] = [];
const SETTLED = Promise.resolve();

function endBatch(): void {
  for (const stream of sentNow) if (stream.writableCorked > 0) stream.uncork();
  sentNow.length = 0;
}

/** One pending wait per client, however many calls are waiting for it. */
const waits = new WeakMap<RedisClient, Promise<void>>();

/**
 * Resolves when the client is ready for commands; rejects after `timeoutMs` or if it has ended.
 *
 * The adapters send nothing to a client that is not ready: a command parked in ioredis's offline
 * queue would outlive the caller's timeout and still run after a reconnect, long after the caller
 * was told it failed.
 */
export function whenReady(client: RedisClient, timeoutMs: number): Promise<void> {
  if (client.status === 'ready') return Promise.resolve();
  if (client.status === 'end') return Promise.reject(new Error('the Redis connection is closed'));
  let wait = waits.get(client);
  if (wait === undefined) {
    wait = waitForReady(client, timeoutMs).finally(() => waits.delete(client));
    waits.set(client, wait);
  }
  return wait;
}

function waitForReady(client: RedisClient, timeoutMs: number): Promise<void> {
  if (client.status === 'wait') client.connect().catch(() => undefined);
  return new Promise<void>((resolve, reject) => {
    const settle = (error?: Error) => {
      clearTimeout(timer);
      client.off('ready', onReady);
      client.off('end', onEnd);
      if (error) reject(error);
      else resolve();
    };
    const onReady = () => settle();
    const onEnd = () => settle(new Error('the Redis connection is closed'));
    const timer = setTimeout(
      () => settle(new Error(`Redis is not reachable (${client.status}) after ${timeoutMs} ms`)),
      timeoutMs,
    );
    client.on('ready', onReady);
    client.on('end', onEnd);
  });
}

/** Closes a client the adapter created: politely when connected, at once otherwise. */
export async function closeClient(client: RedisClient): Promise<void> {
  if (client.status === 'end') return;
  if (client.status !== 'ready') {
    client.disconnect();
    return;
  }
  await client.quit().catch(() => client.disconnect());
}

/** The message of whatever was thrown. */
export function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
