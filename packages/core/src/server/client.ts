import type { Duplex } from 'node:stream';
import { WebSocket } from 'ws';
import { CloseCode } from '../close-codes.js';
import { SafeEmitter } from '../internal/safe-emitter.js';
import { preparePayload, type Sendable, type SendOptions } from './payload.js';

/** Events of a {@link Client}. */
export interface ClientEvents {
  /** A message from the client: text arrives as a string, binary as a Buffer. */
  message: [data: string | Buffer, isBinary: boolean];
  /** The connection closed (for any reason, including a heartbeat timeout: 1006). */
  close: [code: number, reason: string];
  /** A protocol error on the connection (the connection is closed by then). */
  error: [error: Error];
}

/** Any client, whatever its identity and data types: what the server's internals handle. */
export type AnyClient = Client<unknown, object>;

/** What a client needs from the server that holds it. */
export interface ClientHost {
  join(client: AnyClient, room: string): Promise<void>;
  leave(client: AnyClient, room: string): Promise<void>;
  /** Holds the socket's writes until the end of this tick, so they go out together. */
  cork(socket: Duplex): void;
  slowConsumer(client: AnyClient, volatile: boolean): void;
  handlerFailed(error: unknown, client: AnyClient): void;
  readonly maxBufferedBytes: number;
}

const TEXT = { binary: false } as const;
const BINARY = { binary: true } as const;

/**
 * One connection held by this node. `data` is the application's own per-client state.
 *
 * @typeParam Identity - what the `authenticate` hook returned for this client
 * @typeParam Data - the shape of {@link Client.data}
 */
export class Client<
  Identity = unknown,
  Data extends object = Record<string, unknown>,
> extends SafeEmitter<ClientEvents> {
  /** Stable id, unique in the cluster. */
  readonly id: string;
  /** What the `authenticate` hook returned (`true` when there is no hook). */
  readonly identity: Identity;
  /** The application's per-client state. */
  data: Data;
  /** Messages dropped for this client because it could not keep up. */
  dropped = 0;
  readonly #ws: WebSocket;
  readonly #socket: Duplex;
  readonly #host: ClientHost;
  readonly #rooms = new Set<string>();
  #alive = true;

  /** @internal Created by the server for each accepted connection. */
  constructor(id: string, identity: Identity, ws: WebSocket, socket: Duplex, host: ClientHost) {
    super();
    this.id = id;
    this.identity = identity;
    this.data = {} as Data;
    this.#ws = ws;
    this.#socket = socket;
    this.#host = host;
  }

  /** Rooms this client is in. */
  get rooms(): ReadonlySet<string> {
    return this.#rooms;
  }

  /** Whether the connection is open. */
  get open(): boolean {
    return this.#ws.readyState === WebSocket.OPEN;
  }

  /** Bytes waiting to be written to this client. */
  get bufferedAmount(): number {
    return this.#ws.bufferedAmount;
  }

  /** The negotiated subprotocol, or `''`. */
  get protocol(): string {
    return this.#ws.protocol;
  }

  /**
   * Sends a message to this client: a string as a text frame, bytes as a binary frame.
   * @returns `false` when the message was not written (closed, or dropped as a slow consumer).
   */
  send(data: Sendable, options?: SendOptions): boolean {
    const { bytes, binary } = preparePayload(data);
    return this.deliver(bytes, binary, options?.volatile === true);
  }

  /** Joins a room; resolves once broadcasts to it from every node reach this client. */
  join(room: string): Promise<void> {
    return this.#host.join(this, room);
  }

  /** Leaves a room. */
  leave(room: string): Promise<void> {
    return this.#host.leave(this, room);
  }

  /** Closes the connection with a close code and reason. */
  close(code: number = CloseCode.Normal, reason = ''): void {
    this.#ws.close(code, reason);
  }

  /** Ends the connection at once, without a closing handshake. */
  terminate(): void {
    this.#ws.terminate();
  }

  /** @internal Writes an already encoded payload; the fan-out hot path. */
  deliver(bytes: Buffer, binary: boolean, volatile: boolean): boolean {
    const ws = this.#ws;
    if (ws.readyState !== WebSocket.OPEN) return false;
    if (ws.bufferedAmount >= this.#host.maxBufferedBytes) {
      this.#host.slowConsumer(this, volatile);
      return false;
    }
    this.#host.cork(this.#socket);
    ws.send(bytes, binary ? BINARY : TEXT);
    return true;
  }

  /** @internal Room membership as the server's room registry sees it. */
  get memberships(): Set<string> {
    return this.#rooms;
  }

  /** @internal One heartbeat round: terminate if the last ping went unanswered, else ping. */
  heartbeat(): void {
    if (!this.#alive) {
      this.#ws.terminate();
      return;
    }
    this.#alive = false;
    this.#ws.ping();
  }

  /** @internal Any sign of life from the peer. */
  markAlive(): void {
    this.#alive = true;
  }

  /** @internal */
  handlerFailed(error: unknown): void {
    this.#host.handlerFailed(error, this);
  }
}
