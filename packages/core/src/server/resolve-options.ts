import { Buffer } from 'node:buffer';
import { InvalidOptionError } from '../errors.js';
import type { PerMessageDeflateOptions, ResolvedOptions, ServerOptions } from './options.js';

/** Applies the defaults and checks every option, with a typed error naming the one that is off. */
export function resolveOptions<Identity>(
  options: ServerOptions<Identity>,
  randomId: () => string,
): ResolvedOptions<Identity> {
  const modes = [
    options.port !== undefined,
    options.server !== undefined,
    options.noServer === true,
  ];
  if (modes.filter(Boolean).length !== 1) {
    throw new InvalidOptionError('give exactly one of port, server and noServer');
  }
  if (options.stateStore !== undefined && options.sessionSecret === undefined) {
    throw new InvalidOptionError(
      'sessionSecret is required with a stateStore: every node must sign tokens alike',
    );
  }
  const ttlMs = options.stateStore?.ttlMs;
  // Every save's timing and every retry's bound is counted from it: NaN would bound nothing.
  if (options.stateStore !== undefined && !(Number.isFinite(ttlMs) && ttlMs! > 0)) {
    throw new InvalidOptionError(
      `stateStore.ttlMs must be a positive, finite number of milliseconds, got ${ttlMs}`,
    );
  }
  const nodeHeartbeatMs = options.nodeHeartbeatMs ?? 5000;
  const resolved: ResolvedOptions<Identity> = {
    ...options,
    nodeId: options.nodeId ?? randomId(),
    topicPrefix: options.topicPrefix ?? DEFAULT_TOPIC_PREFIX,
    maxPayload: options.maxPayload ?? 1024 * 1024,
    maxBufferedBytes: options.maxBufferedBytes ?? 4 * 1024 * 1024,
    slowConsumer: options.slowConsumer ?? 'close',
    heartbeatIntervalMs: options.heartbeatIntervalMs ?? 30_000,
    nodeHeartbeatMs,
    nodeTimeoutMs: options.nodeTimeoutMs ?? nodeHeartbeatMs * 3,
    requestTimeoutMs: options.requestTimeoutMs ?? 5000,
    closeTimeoutMs: options.closeTimeoutMs ?? 5000,
    helloTimeoutMs: options.helloTimeoutMs ?? 10_000,
    upstreamSaveMs: options.upstreamSaveMs ?? 1000,
    authenticateTimeoutMs: options.authenticateTimeoutMs ?? 10_000,
    hookTimeoutMs: options.hookTimeoutMs ?? 30_000,
    maxConnections: options.maxConnections ?? 50_000,
    maxRoomsPerClient: options.maxRoomsPerClient ?? 128,
    maxInFlightPerClient: options.maxInFlightPerClient ?? 1000,
    maxOpsPerSecond: options.maxOpsPerSecond ?? 1000,
    maxSessionDataBytes: options.maxSessionDataBytes ?? 64 * 1024,
    maxReplayBytes: options.maxReplayBytes ?? 1024 * 1024,
    maxReplayEntries: options.maxReplayEntries ?? 5000,
    history: options.history ?? [],
    sessionOwner: options.sessionOwner ?? defaultOwner,
    presence: options.presence ?? [],
    presenceGraceMs: options.presenceGraceMs ?? 5000,
    perMessageDeflate: resolveDeflate(options.perMessageDeflate),
  };
  for (const key of [
    'maxPayload',
    'maxBufferedBytes',
    'nodeHeartbeatMs',
    'nodeTimeoutMs',
    'requestTimeoutMs',
    'closeTimeoutMs',
    'helloTimeoutMs',
    'upstreamSaveMs',
    'authenticateTimeoutMs',
    'hookTimeoutMs',
    'maxConnections',
    'maxRoomsPerClient',
    'maxInFlightPerClient',
    'maxOpsPerSecond',
    'maxSessionDataBytes',
    'maxReplayBytes',
    'maxReplayEntries',
    'presenceGraceMs',
  ] as const) {
    // A count may be `Infinity` (no limit); a size a client is told, and a time, may not.
    const value = resolved[key];
    if (!(value > 0)) throw new InvalidOptionError(`${key} must be > 0, got ${value}`);
    if (key === 'maxPayload' && !Number.isFinite(value)) {
      throw new InvalidOptionError(`maxPayload must be a finite number of bytes, got ${value}`);
    }
    if (key.endsWith('Ms') && !(value <= MAX_TIMER_MS)) {
      throw new InvalidOptionError(`${key} must be at most ${MAX_TIMER_MS} (a timer's limit)`);
    }
  }
  const beatMs = resolved.heartbeatIntervalMs;
  if (!(beatMs >= 0 && beatMs <= MAX_TIMER_MS)) {
    throw new InvalidOptionError(`heartbeatIntervalMs must be from 0 to ${MAX_TIMER_MS}`);
  }
  // Every client answers each heartbeat with a pong, which takes one operation of its rate: at
  // more than half the rate they would leave a client little to send, and past it close every
  // idle client with 1008.
  const { heartbeatIntervalMs: beat, maxOpsPerSecond: rate } = resolved;
  if (beat > 0 && beat * rate < 2000) {
    throw new InvalidOptionError(
      `heartbeatIntervalMs (${beat}) × maxOpsPerSecond (${rate}) must be >= 2000: every client answers each heartbeat with a pong, which counts against its rate`,
    );
  }
  const origins: unknown = resolved.allowedOrigins;
  if (
    origins !== undefined &&
    !(Array.isArray(origins) && origins.every((origin) => typeof origin === 'string'))
  ) {
    throw new InvalidOptionError('allowedOrigins must be a list of origins (strings)');
  }
  if (!['close', 'drop'].includes(resolved.slowConsumer)) {
    throw new InvalidOptionError("slowConsumer must be 'close' or 'drop'");
  }
  return resolved;
}

/**
 * The longest a Node.js timer waits: a longer one fires after 1 ms (with a warning), so a timeout
 * set past it would end every wait at once.
 */
const MAX_TIMER_MS = 2 ** 31 - 1;

function resolveDeflate(
  option: boolean | PerMessageDeflateOptions | undefined,
): Required<PerMessageDeflateOptions> | undefined {
  if (option === undefined || option === false) return undefined;
  const { threshold = 256, level = 6 } = option === true ? {} : option;
  if (!(Number.isInteger(threshold) && threshold >= 0)) {
    throw new InvalidOptionError('perMessageDeflate.threshold must be an integer >= 0');
  }
  if (!(Number.isInteger(level) && level >= 0 && level <= 9)) {
    throw new InvalidOptionError('perMessageDeflate.level must be an integer from 0 to 9');
  }
  return { threshold, level };
}

function defaultOwner(identity: unknown): string {
  if (identity === true || identity === undefined) return '';
  const hasId = typeof identity === 'object' && identity !== null && 'id' in identity;
  const value = hasId ? (identity as { id: unknown }).id : identity;
  if (typeof value !== 'object' || value === null) {
    if (hasId) return String(value);
    try {
      return JSON.stringify(value) ?? String(value);
    } catch {
      return String(value); // a BigInt
    }
  }
  return objectOwner(value);
}

/**
 * An object named so that two that differ are never named alike (sessions would resume across
 * owners): bytes by their base64, a date by its ISO time, an object that says what it is (its own
 * `toString`) by that, anything else by its JSON, when that holds all of it; else no owner.
 */
function objectOwner(value: object): string {
  if (ArrayBuffer.isView(value)) {
    return `bytes:${Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('base64')}`;
  }
  if (value instanceof Date && !Number.isNaN(value.getTime())) return value.toISOString();
  let named: string | undefined;
  try {
    named = Array.isArray(value) ? undefined : String(value);
  } catch {
    named = undefined; // no prototype: no `toString`
  }
  if (named !== undefined && !/^\[object [^\]]*\]$/.test(named)) return named;
  let json: string | undefined;
  try {
    json = JSON.stringify(value, (key, inner: unknown) => {
      // Inside, only what JSON holds whole: a Map, or a class with private state, reads "{}".
      if (key !== '' && typeof inner === 'object' && inner !== null && !holdsWhole(inner)) {
        throw new TypeError('not plain');
      }
      return inner;
    });
  } catch {
    json = undefined;
  }
  if (json === undefined || (json === '{}' && !holdsWhole(value))) {
    throw new TypeError('the identity does not name its owner: give a sessionOwner');
  }
  return json;
}

/** Whether JSON holds all of an object: an array, or a plain object. */
function holdsWhole(value: object): boolean {
  const prototype = Object.getPrototypeOf(value);
  return Array.isArray(value) || prototype === Object.prototype || prototype === null;
}

/** The `topicPrefix` of nodes and publishers that name none. */
export const DEFAULT_TOPIC_PREFIX = 'wscale:';
