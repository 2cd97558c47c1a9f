/**
 * Every error wscale raises is a {@link WscaleError} with a stable `code`: match on the code (or
 * use `instanceof`), never on the message.
 */

/** Stable error codes, one per error class. */
export type WscaleErrorCode =
  | 'INVALID_OPTION'
  | 'SERVER_CLOSED'
  | 'BROKER_UNAVAILABLE'
  | 'BROKER_CLOSED'
  | 'STATE_STORE_FAILED'
  | 'SESSION_RECORD_DAMAGED'
  | 'HISTORY_FAILED'
  | 'UPGRADE_REJECTED'
  | 'HANDLER_FAILED'
  | 'PROTOCOL_ERROR'
  | 'LIMIT_EXCEEDED'
  | 'MESSAGE_TOO_LARGE'
  | 'INVALID_ARGUMENT';

/** Marks an error as wscale's, whichever of the package's builds made it. */
const WSCALE_ERROR = Symbol.for('wscale.WscaleError');

/** Base class of every error wscale raises. */
export class WscaleError extends Error {
  /** A stable, machine-readable code. */
  readonly code: WscaleErrorCode;

  constructor(code: WscaleErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }

  /**
   * The package ships as ES modules and as CommonJS, and one application may load both (an ES
   * module server whose hook `require`s wscale): each build has its own classes. So `instanceof`
   * matches an error of either build, a class of wscale's by its code; a subclass an application
   * declares is matched as usual.
   */
  static override [Symbol.hasInstance](value: unknown): boolean {
    // biome-ignore lint/complexity/noThisInStatic: the class on the right of `instanceof`
    return isInstance(this, value);
  }
}
Object.defineProperty(WscaleError.prototype, WSCALE_ERROR, { value: true });

/** An option passed to a constructor is missing or out of range. */
export class InvalidOptionError extends WscaleError {
  static readonly code = 'INVALID_OPTION';
  declare readonly code: 'INVALID_OPTION';

  constructor(message: string) {
    super(InvalidOptionError.code, message);
  }
}

/** The operation was called on a server or broker that is closing or closed. */
export class ServerClosedError extends WscaleError {
  static readonly code = 'SERVER_CLOSED';
  declare readonly code: 'SERVER_CLOSED';

  constructor(message = 'the server is closed') {
    super(ServerClosedError.code, message);
  }
}

/**
 * The broker is not connected and its bounded publish queue is full (or queueing is off): the
 * message was not sent. Nothing is ever dropped silently.
 */
export class BrokerUnavailableError extends WscaleError {
  static readonly code = 'BROKER_UNAVAILABLE';
  declare readonly code: 'BROKER_UNAVAILABLE';

  constructor(message: string, options?: { cause?: unknown }) {
    super(BrokerUnavailableError.code, message, options);
  }
}

/** The broker was closed; queued publishes are rejected with this. */
export class BrokerClosedError extends WscaleError {
  static readonly code = 'BROKER_CLOSED';
  declare readonly code: 'BROKER_CLOSED';

  constructor(message = 'the broker is closed') {
    super(BrokerClosedError.code, message);
  }
}

/** The state store failed to read or write (connection lost, timeout, server error). */
export class StateStoreError extends WscaleError {
  static readonly code = 'STATE_STORE_FAILED';
  declare readonly code: 'STATE_STORE_FAILED';

  constructor(message: string, options?: { cause?: unknown }) {
    super(StateStoreError.code, message, options);
  }
}

/**
 * A stored session record could not be read (not JSON, or not the shape wscale writes): the client
 * that presented its token was given a new session (`welcome` says `resumed: false`, reason
 * `expired`), as if the session had expired. The damaged record is left to expire.
 */
export class SessionRecordError extends WscaleError {
  static readonly code = 'SESSION_RECORD_DAMAGED';
  declare readonly code: 'SESSION_RECORD_DAMAGED';

  constructor(message: string) {
    super(SessionRecordError.code, message);
  }
}

/** The history store failed to append or read. */
export class HistoryError extends WscaleError {
  static readonly code = 'HISTORY_FAILED';
  declare readonly code: 'HISTORY_FAILED';

  constructor(message: string, options?: { cause?: unknown }) {
    super(HistoryError.code, message, options);
  }
}

/**
 * Thrown by an `authenticate` hook to refuse an upgrade with a specific HTTP status (default 401).
 * The client receives that status and no WebSocket is created.
 */
export class UpgradeRejectedError extends WscaleError {
  static readonly code = 'UPGRADE_REJECTED';
  declare readonly code: 'UPGRADE_REJECTED';

  /** HTTP status sent to the client. */
  readonly status: number;

  constructor(status = 401, message = status === 403 ? 'Forbidden' : 'Unauthorized') {
    super(UpgradeRejectedError.code, message);
    this.status = status;
  }
}

/**
 * An application handler threw, rejected, returned the wrong type or took too long; the node keeps
 * running and emits this as `error`. `cause` holds what the handler threw (or a `TypeError`).
 */
export class HandlerError extends WscaleError {
  static readonly code = 'HANDLER_FAILED';
  declare readonly code: 'HANDLER_FAILED';

  constructor(where: string, cause: unknown) {
    super(HandlerError.code, `the ${where} handler failed: ${describe(cause)}`, { cause });
  }
}

/** A peer sent something the protocol does not allow. */
export class ProtocolError extends WscaleError {
  static readonly code = 'PROTOCOL_ERROR';
  declare readonly code: 'PROTOCOL_ERROR';

  constructor(message: string) {
    super(ProtocolError.code, message);
  }
}

/**
 * A message is larger than the broker carries (a NATS server's `max_payload`): nobody got it, on
 * this node or any other. Raise the broker's limit, or lower `maxPayload`.
 */
export class MessageTooLargeError extends WscaleError {
  static readonly code = 'MESSAGE_TOO_LARGE';
  declare readonly code: 'MESSAGE_TOO_LARGE';

  constructor(message: string) {
    super(MessageTooLargeError.code, message);
  }
}

/**
 * A call was given a value it cannot take: a room name or client id that is no string, data that
 * is neither text nor bytes, a close code a connection cannot be closed with.
 */
export class InvalidArgumentError extends WscaleError {
  static readonly code = 'INVALID_ARGUMENT';
  declare readonly code: 'INVALID_ARGUMENT';

  constructor(message: string) {
    super(InvalidArgumentError.code, message);
  }
}

/** The application went past one of the server's limits (such as `maxSessionDataBytes`). */
export class LimitExceededError extends WscaleError {
  static readonly code = 'LIMIT_EXCEEDED';
  declare readonly code: 'LIMIT_EXCEEDED';

  constructor(message: string) {
    super(LimitExceededError.code, message);
  }
}

/** Whether `value` is an error of class `of` (see {@link WscaleError}'s `Symbol.hasInstance`). */
function isInstance(of: abstract new (...args: never[]) => unknown, value: unknown): boolean {
  const wscale = typeof value === 'object' && value !== null && WSCALE_ERROR in value;
  if (of === WscaleError) return wscale;
  if (Object.hasOwn(of, 'code')) {
    return wscale && (value as { code?: unknown }).code === (of as { code?: unknown }).code;
  }
  return Function.prototype[Symbol.hasInstance].call(of, value);
}

function describe(cause: unknown): string {
  return cause instanceof Error ? cause.message : String(cause);
}
