/** A closed connection: the close code and reason the client saw. */
export interface CloseInfo {
  /** The WebSocket close code; 1006 when the connection was lost without a close frame. */
  code: number;
  reason: string;
}

/** Close codes after which the client does not reconnect by default. */
export const FINAL_CLOSE_CODES: ReadonlySet<number> = new Set([
  1000, // normal closure: the server (or the application) meant it
  1002, // protocol error: one side broke the protocol, reconnecting would repeat it
  1003, // unsupported data
  1007, // malformed frame: a client bug, reconnecting would repeat it
  1008, // policy violation
  1009, // a frame over the server's maxPayload
  4409, // the session was resumed on another connection
]);

/** The close code after which the client reconnects at once (with a small jitter). */
export const SERVICE_RESTART = 1012;

/**
 * The default reconnect policy of `wscale.v1`: reconnect after anything but the codes in
 * {@link FINAL_CLOSE_CODES}.
 */
export function shouldReconnect(close: CloseInfo): boolean {
  return !FINAL_CLOSE_CODES.has(close.code);
}
