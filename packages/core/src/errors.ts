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

/** Base class of every error wscale raises. */
export class WscaleError extends Error {
  /** A stable, machine-readable code. */
  readonly code: WscaleErrorCode;

  constructor(code: WscaleErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** An option passed to a constructor is missing or out of range. */
export class InvalidOptionError extends WscaleError {
  constructor(message: string) {
    super('INVALID_OPTION', message);
  }
}

/** The operation was called on a server or broker that is closing or closed. */
export class ServerClosedError extends WscaleError {
  constructor(message = 'the server is closed') {
    super('SERVER_CLOSED', message);
  }
}

/**
 * The broker is not connected and its bounded publish queue is full (or queueing is off): the
 * message was not sent. Nothing is ever dropped silently.
 */
export class BrokerUnavailableError extends WscaleError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('BROKER_UNAVAILABLE', message, options);
  }
}

/** The broker was closed; queued publishes are rejected with this. */
export class BrokerClosedError extends WscaleError {
  constructor(message = 'the broker is closed') {
    super('BROKER_CLOSED', message);
  }
}

/** The state store failed to read or write (connection lost, timeout, server error). */
export class StateStoreError extends WscaleError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('STATE_STORE_FAILED', message, options);
  }
}

/**
 * A stored session record could not be read (not JSON, or not the shape wscale writes): the client
 * that presented its token was given a new session (`welcome` says `resumed: false`, reason
 * `expired`), as if the session had expired. The damaged record is left to expire.
 */
export class SessionRecordError extends WscaleError {
  constructor(message: string) {
    super('SESSION_RECORD_DAMAGED', message);
  }
}

/** The history store failed to append or read. */
export class HistoryError extends WscaleError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('HISTORY_FAILED', message, options);
  }
}

/**
 * Thrown by an `authenticate` hook to refuse an upgrade with a specific HTTP status (default 401).
 * The client receives that status and no WebSocket is created.
 */
export class UpgradeRejectedError extends WscaleError {
  /** HTTP status sent to the client. */
  readonly status: number;

  constructor(status = 401, message = status === 403 ? 'Forbidden' : 'Unauthorized') {
    super('UPGRADE_REJECTED', message);
    this.status = status;
  }
}

/**
 * An application handler threw, rejected, returned the wrong type or took too long; the node keeps
 * running and emits this as `error`. `cause` holds what the handler threw (or a `TypeError`).
 */
export class HandlerError extends WscaleError {
  constructor(where: string, cause: unknown) {
    super('HANDLER_FAILED', `the ${where} handler failed: ${describe(cause)}`, { cause });
  }
}

/** A peer sent something the protocol does not allow. */
export class ProtocolError extends WscaleError {
  constructor(message: string) {
    super('PROTOCOL_ERROR', message);
  }
}

/**
 * A message is larger than the broker carries (a NATS server's `max_payload`): nobody got it, on
 * this node or any other. Raise the broker's limit, or lower `maxPayload`.
 */
export class MessageTooLargeError extends WscaleError {
  constructor(message: string) {
    super('MESSAGE_TOO_LARGE', message);
  }
}

/**
 * A call was given a value it cannot take: a room name or client id that is no string, data that
 * is neither text nor bytes, a close code a connection cannot be closed with.
 */
export class InvalidArgumentError extends WscaleError {
  constructor(message: string) {
    super('INVALID_ARGUMENT', message);
  }
}

/** The application went past one of the server's limits (such as `maxSessionDataBytes`). */
export class LimitExceededError extends WscaleError {
  constructor(message: string) {
    super('LIMIT_EXCEEDED', message);
  }
}

function describe(cause: unknown): string {
  return cause instanceof Error ? cause.message : String(cause);
}
