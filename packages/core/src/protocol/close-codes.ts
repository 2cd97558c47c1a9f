/**
 * The WebSocket close codes wscale uses. The 1xxx codes are RFC 6455's; the 4xxx codes are wscale's.
 * Part of the `wscale.v1` wire: exported from `@wscale/core` and `@wscale/core/protocol`.
 */
export enum CloseCode {
  /** The connection did its job. */
  Normal = 1000,
  /** The node is shutting down or the client was closed by the application. */
  GoingAway = 1001,
  /**
   * One side broke the protocol: a `wscale.v1` client sent a numbered frame whose `s` went
   * backwards without `p` (the server closes it), or the server did not select `wscale.v1`
   * (`@wscale/client` reports it).
   */
  ProtocolError = 1002,
  /** The peer sent a kind of data it may not send (RFC 6455; never sent by a wscale server). */
  UnsupportedData = 1003,
  /** A frame could not be decoded (malformed `wscale.v1` envelope, invalid UTF-8). */
  InvalidPayload = 1007,
  /** A policy was violated, such as a rate limit. */
  PolicyViolation = 1008,
  /** A frame was larger than `maxPayload`. */
  MessageTooBig = 1009,
  /** The node had an unexpected failure. */
  InternalError = 1011,
  /** The node is restarting or draining: reconnect, probably to another node. */
  ServiceRestart = 1012,
  /** The client could not keep up (its send buffer passed `maxBufferedBytes`): reconnect later. */
  TryAgainLater = 1013,
  /** The peer stopped answering heartbeats (never sent on the wire; reported locally). */
  Abnormal = 1006,
  /** The session was resumed on another connection; this one is closed. */
  SessionTakenOver = 4409,
}

/** The reason a connection closed with {@link CloseCode.SessionTakenOver} is given. */
export const TAKEN_OVER = 'session resumed elsewhere';
