import type { ProtocolErrorCode } from '@wscale/core/protocol';

/**
 * Every error the client raises is a {@link ClientError} with a stable `code`: match on the code
 * (or use `instanceof`), never on the message.
 */

/** Stable codes of the client's errors. A {@link ServerError} carries the server's code instead. */
export type ClientErrorCode =
  | 'INVALID_OPTION'
  | 'INVALID_ARGUMENT'
  | 'TIMEOUT'
  | 'DISCONNECTED'
  | 'CLIENT_CLOSED'
  | 'QUEUE_FULL'
  | 'MESSAGE_TOO_LARGE'
  | 'PROTOCOL_ERROR'
  | ProtocolErrorCode;

/**
 * Base class of every error the client raises. Each class sets its `name` itself: a minifying
 * bundler renames classes.
 */
export class ClientError extends Error {
  /** A stable, machine-readable code. */
  readonly code: ClientErrorCode;

  constructor(code: ClientErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = 'ClientError';
  }
}

/** An option is missing or out of range, or no `WebSocket` constructor is available. */
export class InvalidOptionError extends ClientError {
  override readonly name = 'InvalidOptionError';
  declare readonly code: 'INVALID_OPTION';

  constructor(message: string) {
    super('INVALID_OPTION', message);
  }
}

/** An argument is out of the protocol's bounds (a room name over 256 characters…). */
export class InvalidArgumentError extends ClientError {
  override readonly name = 'InvalidArgumentError';
  declare readonly code: 'INVALID_ARGUMENT';

  constructor(message: string) {
    super('INVALID_ARGUMENT', message);
  }
}

/** A request, `join` or `leave` got no `ack` in time. The server may still have handled it. */
export class TimeoutError extends ClientError {
  override readonly name = 'TimeoutError';
  declare readonly code: 'TIMEOUT';

  /** How long the client waited, in ms. */
  readonly timeoutMs: number;

  constructor(what: string, timeoutMs: number) {
    super('TIMEOUT', `${what} got no answer within ${timeoutMs} ms`);
    this.timeoutMs = timeoutMs;
  }
}

/**
 * Whether the server has it is unknown: a message or request went out and was not acknowledged
 * when the client closed or its session could not be resumed (so it is not sent again), or a
 * `join`/`leave` or a request to a server that does not number frames lost its connection before
 * the answer. Also thrown by `send` while not connected when `sendQueueSize` is 0.
 */
export class DisconnectedError extends ClientError {
  override readonly name = 'DisconnectedError';
  declare readonly code: 'DISCONNECTED';

  constructor(message = 'the connection closed before the server answered') {
    super('DISCONNECTED', message);
  }
}

/** The client is closed (by `close()`, a final close code, or after its last reconnect attempt). */
export class ClientClosedError extends ClientError {
  override readonly name = 'ClientClosedError';
  declare readonly code: 'CLIENT_CLOSED';

  constructor(message = 'the client is closed; call connect() to open it again') {
    super('CLIENT_CLOSED', message);
  }
}

/**
 * Nothing was queued: the client is not connected and its bounded send queue is full, or
 * `maxUnacknowledged` messages and requests wait for the server's acknowledgement.
 */
export class QueueFullError extends ClientError {
  override readonly name = 'QueueFullError';
  declare readonly code: 'QUEUE_FULL';

  constructor(
    size: number,
    message = `the send queue is full (${size} frames) while not connected`,
  ) {
    super('QUEUE_FULL', message);
  }
}

/**
 * Not sent: its frame is larger than the server takes (its `maxPayload`, told in the `welcome`),
 * which would close the connection with 1009. Send it in smaller parts, or raise the limit.
 */
export class MessageTooLargeError extends ClientError {
  override readonly name = 'MessageTooLargeError';
  declare readonly code: 'MESSAGE_TOO_LARGE';

  /** The frame's size, in bytes. */
  readonly bytes: number;
  /** The largest frame the server takes, in bytes. */
  readonly maxBytes: number;

  constructor(bytes: number, maxBytes: number) {
    super(
      'MESSAGE_TOO_LARGE',
      `the message's frame is ${bytes} bytes, over the ${maxBytes} the server takes (maxPayload)`,
    );
    this.bytes = bytes;
    this.maxBytes = maxBytes;
  }
}

/** The server broke the protocol: a malformed frame, or it did not select `wscale.v1`. */
export class ProtocolError extends ClientError {
  override readonly name = 'ProtocolError';
  declare readonly code: 'PROTOCOL_ERROR';

  constructor(message: string, options?: { cause?: unknown }) {
    super('PROTOCOL_ERROR', message, options);
  }
}

/**
 * The server answered with an error: a failed `ack` (a refused `join`, a request whose handler
 * failed…) or an `error` message. `code` is the protocol's code, such as `FORBIDDEN`.
 */
export class ServerError extends ClientError {
  override readonly name = 'ServerError';

  declare readonly code: ProtocolErrorCode;

  constructor(code: ProtocolErrorCode, message: string) {
    super(code, message);
  }
}
