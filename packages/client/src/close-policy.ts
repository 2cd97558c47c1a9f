import { CloseCode } from '@wscale/core/protocol';

/** A closed connection: the close code and reason the client saw. */
export interface CloseInfo {
  /** The WebSocket close code; 1006 when the connection was lost without a close frame. */
  code: number;
  reason: string;
}

/** Close codes after which the client does not reconnect by default. */
export const FINAL_CLOSE_CODES: ReadonlySet<number> = new Set([
  CloseCode.Normal, // the server (or the application) meant it
  CloseCode.ProtocolError, // one side broke the protocol, reconnecting would repeat it
  CloseCode.UnsupportedData,
  CloseCode.InvalidPayload, // a malformed frame: a client bug, reconnecting would repeat it
  CloseCode.PolicyViolation,
  CloseCode.MessageTooBig, // a frame over the server's maxPayload
  CloseCode.SessionTakenOver, // the session was resumed on another connection
]);

/**
 * The default reconnect policy of `wscale.v1`: reconnect after anything but the codes in
 * {@link FINAL_CLOSE_CODES}.
 */
export function shouldReconnect(close: CloseInfo): boolean {
  return !FINAL_CLOSE_CODES.has(close.code);
}
