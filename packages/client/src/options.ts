import type { Position } from '@wscale/core/protocol';
import { type CloseInfo, shouldReconnect } from './close-policy.js';
import { InvalidOptionError } from './errors.js';
import type { NetworkSignal } from './network.js';
import type { WebSocketConstructor } from './socket.js';

/** A session saved from an earlier client (for example across a page reload), to resume. */
export interface SessionSnapshot {
  /** The session token from `welcome`. */
  session: string;
  /** The last position seen in each room that keeps history. */
  rooms?: Record<string, Position>;
  /** The client id the session was given (`clientId`). */
  client?: string;
  /**
   * The last number the session gave a message it sent: a later client numbers its own above it,
   * so that no message id (`<client>:<number>`) is given to two different messages, also when
   * the node that had the last ones died before recording them.
   */
  sent?: number;
}

/** Options of {@link WscaleClient}. Every one is optional. */
export interface ClientOptions {
  /**
   * The WebSocket constructor. Pass `WebSocket` from the `ws` package on Node 20, which has no
   * global one.
   * @default globalThis.WebSocket
   */
  WebSocket?: WebSocketConstructor;
  /** Connect as soon as the client is created; otherwise call `connect()`. @default true */
  autoConnect?: boolean;
  /** Resume this session on the first connection instead of starting a new one. */
  resume?: SessionSnapshot;

  /** Backoff base: the first reconnect waits a random time up to this, in ms. @default 500 */
  backoffBaseMs?: number;
  /** The longest a reconnect waits, in ms. @default 30000 */
  backoffCapMs?: number;
  /**
   * Consecutive reconnect attempts before the client gives up and closes (a `welcome` resets the
   * count). `0` never reconnects.
   * @default Infinity
   */
  maxReconnectAttempts?: number;
  /**
   * How long a welcomed connection must last for the backoff's delay to start over after it drops.
   * A server that welcomes and closes at once (1013 right after the welcome, a node that cannot
   * keep the session) is backed off from as one that refuses, instead of met a few times a second.
   * A restart (1012) of a welcomed connection is retried at once (`restartJitterMs`), three in a row.
   * @default 5000
   */
  stableAfterMs?: number;
  /**
   * After close code 1012 (the node is restarting or draining) the client reconnects after a random
   * delay up to this, in ms, whatever the backoff, so a draining node's clients do not all arrive on
   * the other nodes in the same millisecond.
   * @default 500
   */
  restartJitterMs?: number;
  /**
   * Decides whether to reconnect after a connection closed (not after `close()`, which never
   * reconnects).
   * @default reconnect unless the code is 1000, 1002, 1003, 1007, 1008, 1009 or 4409
   */
  shouldReconnect?: (close: CloseInfo) => boolean;
  /**
   * Online/offline awareness: while offline the client waits instead of spending attempts, and it
   * reconnects at once when back online. `false` turns it off.
   * @default the browser's `navigator.onLine` and `online`/`offline` events, where they exist
   */
  network?: NetworkSignal | false;

  /** How long opening a connection may take, up to the server's `welcome`, in ms. @default 10000 */
  connectTimeoutMs?: number;
  /** How long `join`, `leave` and `request` wait for their `ack`, in ms. @default 10000 */
  requestTimeoutMs?: number;
  /**
   * How often the client pings the server while connected (browsers cannot send WebSocket pings, so
   * a dead server would otherwise go unnoticed), in ms. `0` turns pings off.
   * @default 25000
   */
  pingIntervalMs?: number;
  /**
   * How long the client waits for a `pong` (or any frame) after a ping before it drops the
   * connection and reconnects, in ms.
   * @default 10000
   */
  pongTimeoutMs?: number;
  /**
   * Frames (`send`, `join`, `leave`, `request`) kept while not connected and sent, in order, after
   * the next `welcome`. When full, the call fails with `QueueFullError`. `0` makes `send` throw
   * `DisconnectedError` while not connected.
   * @default 100
   */
  sendQueueSize?: number;
  /**
   * Messages and requests kept until the server acknowledges them (sent or not yet sent): a
   * resume sends them again, so none is lost with a connection or a node. When full, `send` and
   * `request` fail with `QueueFullError` until acknowledgements come in.
   * @default 1000
   */
  maxUnacknowledged?: number;
}

/** Options with every default applied. */
export type ResolvedOptions = Required<Omit<ClientOptions, 'WebSocket' | 'resume' | 'network'>> &
  Pick<ClientOptions, 'resume'> & {
    WebSocket: WebSocketConstructor;
    network: NetworkSignal | false | undefined;
  };

export function resolveOptions(
  options: ClientOptions,
  defaults: { WebSocket: WebSocketConstructor | undefined; network: NetworkSignal | undefined },
): ResolvedOptions {
  const WebSocket = options.WebSocket ?? defaults.WebSocket;
  if (typeof WebSocket !== 'function') {
    throw new InvalidOptionError(
      'no WebSocket constructor: this runtime has no global WebSocket (Node 20); pass `WebSocket` from the ws package as options.WebSocket',
    );
  }
  const resolved: ResolvedOptions = {
    WebSocket,
    autoConnect: options.autoConnect ?? true,
    resume: options.resume,
    backoffBaseMs: options.backoffBaseMs ?? 500,
    backoffCapMs: options.backoffCapMs ?? 30_000,
    maxReconnectAttempts: options.maxReconnectAttempts ?? Number.POSITIVE_INFINITY,
    stableAfterMs: options.stableAfterMs ?? 5000,
    restartJitterMs: options.restartJitterMs ?? 500,
    shouldReconnect: options.shouldReconnect ?? shouldReconnect,
    network: options.network === undefined ? defaults.network : options.network,
    connectTimeoutMs: options.connectTimeoutMs ?? 10_000,
    requestTimeoutMs: options.requestTimeoutMs ?? 10_000,
    pingIntervalMs: options.pingIntervalMs ?? 25_000,
    pongTimeoutMs: options.pongTimeoutMs ?? 10_000,
    sendQueueSize: options.sendQueueSize ?? 100,
    maxUnacknowledged: options.maxUnacknowledged ?? 1000,
  };
  for (const name of ['maxReconnectAttempts', 'sendQueueSize', ...DELAYS] as const) {
    nonNegative(name, resolved[name]);
  }
  for (const name of DELAYS) timerDelay(name, resolved[name]);
  for (const name of [
    'connectTimeoutMs',
    'requestTimeoutMs',
    'pongTimeoutMs',
    'maxUnacknowledged',
  ] as const) {
    if (resolved[name] === 0) throw new InvalidOptionError(`${name} must be greater than 0`);
  }
  if (options.resume !== undefined && typeof options.resume.session !== 'string') {
    throw new InvalidOptionError('resume.session must be the session token from a welcome');
  }
  return resolved;
}

/** The options that are a timer's delay. */
const DELAYS = [
  'backoffBaseMs',
  'backoffCapMs',
  'stableAfterMs',
  'restartJitterMs',
  'pingIntervalMs',
  'connectTimeoutMs',
  'requestTimeoutMs',
  'pongTimeoutMs',
] as const;

/** The longest delay a timer takes: a longer one (`Infinity` too) fires at once. */
export const MAX_TIMER_MS = 2_147_483_647;

function timerDelay(name: string, value: number): void {
  if (value > MAX_TIMER_MS) {
    throw new InvalidOptionError(`${name} must be at most ${MAX_TIMER_MS} (a timer's limit)`);
  }
}

function nonNegative(name: string, value: number): void {
  if (typeof value !== 'number' || Number.isNaN(value) || value < 0) {
    throw new InvalidOptionError(`${name} must be a number ≥ 0, got ${String(value)}`);
  }
}
