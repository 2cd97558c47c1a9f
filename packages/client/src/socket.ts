/**
 * The part of the WebSocket API the client uses. The browser's `WebSocket`, Node's global one
 * (Node 22 and later) and the `ws` package all have it.
 */

// A listener type checked bivariantly, so that the DOM's and `ws`'s richer event types fit.
type Listener<E> = { bivarianceHack(event: E): void }['bivarianceHack'];

/** A received message event: a string for text frames, an `ArrayBuffer` (or a view) for binary. */
export interface SocketMessageEvent {
  readonly data: unknown;
}

/** A close event. */
export interface SocketCloseEvent {
  readonly code: number;
  readonly reason: string;
}

/** A WebSocket, as the client uses it. */
export interface WebSocketLike {
  /** The subprotocol the server selected. */
  readonly protocol: string;
  /** 0 connecting, 1 open, 2 closing, 3 closed. */
  readonly readyState: number;
  binaryType: string;
  onopen: Listener<unknown> | null;
  onmessage: Listener<SocketMessageEvent> | null;
  onclose: Listener<SocketCloseEvent> | null;
  onerror: Listener<unknown> | null;
  send(data: string | Uint8Array): void;
  close(code?: number, reason?: string): void;
  /** Drops the connection without a closing handshake (`ws` has it; browsers do not). */
  terminate?(): void;
}

/** A WebSocket constructor: `globalThis.WebSocket`, or `WebSocket` from the `ws` package. */
export type WebSocketConstructor = new (url: string, protocols: string[]) => WebSocketLike;

/** `readyState` of an open socket. */
export const OPEN = 1;
