import type { Buffer } from 'node:buffer';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { type WebSocket, WebSocketServer } from 'ws';
import { HandlerError, UpgradeRejectedError } from '../errors.js';
import type { Reporter } from '../ops/reporter.js';
import { offersForSharedWindow } from '../protocol/deflate.js';
import { PROTOCOL } from '../protocol/messages.js';
import { inTime, LATE } from '../util/wait-at-most.js';
import { NodeSocket } from './node-socket.js';
import { pathOf, refuse } from './upgrade-response.js';

/** Where the gate hands the WebSockets it opened: the node's connections. */
export interface Door<Identity> {
  /** Connections held or being opened: what `maxConnections` counts. */
  readonly count: number;
  /** Takes a WebSocket the gate opened for an authenticated request. */
  admit(ws: WebSocket, socket: Duplex, request: IncomingMessage, identity: Identity): void;
}

/** What `authenticate` answers: an identity, or a refusal. */
type Authenticated<Identity> =
  | Identity
  | false
  | null
  | undefined
  | Promise<Identity | false | null | undefined>;

/** The server options the gate applies (see `ServerOptions`). */
export interface GateSettings<Identity> {
  readonly port?: number | undefined;
  readonly host?: string | undefined;
  readonly server?: Server | HttpsServer | undefined;
  readonly path?: string | undefined;
  readonly maxPayload: number;
  readonly maxConnections: number;
  readonly allowedOrigins?: readonly string[] | undefined;
  readonly authenticateTimeoutMs: number;
  /** How long a closed connection waits for its peer's close frame before its socket is ended. */
  readonly closeTimeoutMs: number;
  /** Set when messages are compressed (permessage-deflate). */
  readonly perMessageDeflate: object | undefined;
  readonly authenticate?: ((request: IncomingMessage) => Authenticated<Identity>) | undefined;
}

/**
 * The door of a node: its HTTP server (or the application's, attached), the upgrade of each
 * request within the limits (path, origin, `maxConnections`, `authenticate` and its time), and the
 * WebSocket handed to the node's connections. A refusal answers with an HTTP status; no WebSocket
 * is made.
 */
export class UpgradeGate<Identity> {
  readonly #settings: GateSettings<Identity>;
  readonly #door: Door<Identity>;
  readonly #reporter: Reporter;
  readonly #wss: WebSocketServer;
  /** The HTTP server of the node's own `port`. */
  readonly #http: Server | undefined;
  /** The application's server, with `server`. */
  readonly #attached: Server | HttpsServer | undefined;
  /** Upgrades waiting for `authenticate`: connections too, for `maxConnections`. */
  #authenticating = 0;
  #draining = false;

  constructor(settings: GateSettings<Identity>, door: Door<Identity>, reporter: Reporter) {
    this.#settings = settings;
    this.#door = door;
    this.#reporter = reporter;
    this.#wss = new WebSocketServer<typeof NodeSocket>({
      noServer: true,
      clientTracking: false,
      // Every socket shares a node's compressed frames: no context may carry over on our side.
      perMessageDeflate: settings.perMessageDeflate !== undefined && {
        serverNoContextTakeover: true,
      },
      maxPayload: settings.maxPayload,
      // A fragment costs about 100 bytes of heap whatever its size: 16 384 of them (ws's default)
      // let a message of 16 KiB of payload hold 1.7 MB. A message comes in at most 128 parts.
      maxFragments: MAX_FRAGMENTS,
      WebSocket: NodeSocket,
      handleProtocols: (protocols) => (protocols.has(PROTOCOL) ? PROTOCOL : false),
      // A peer that does not answer a close frame holds its socket (and its place under
      // `maxConnections`) this long, not ws's 30 s. (An option of ws 8.23 its types lack.)
      ...{ closeTimeout: settings.closeTimeoutMs },
    });
    if (settings.port !== undefined) {
      this.#http = createServer(
        {
          headersTimeout: HEADERS_TIMEOUT_MS,
          requestTimeout: HEADERS_TIMEOUT_MS,
          connectionsCheckingInterval: 1000,
        },
        (_request, response) => {
          // One answer, then the connection ends: requests pipelined behind it are not read (a
          // stream of them on one connection kept a node answering 426s for seconds).
          const headers = { 'content-type': 'text/plain', connection: 'close' };
          response.writeHead(426, headers).end('Upgrade Required');
        },
      );
      this.#http.on('upgrade', this.#onUpgrade);
    } else if (settings.server !== undefined) {
      this.#attached = settings.server;
      this.#attached.on('upgrade', this.#onUpgrade);
    }
  }

  /** Starts listening on the node's own port, if it has one. */
  async listen(): Promise<void> {
    const http = this.#http;
    if (http === undefined) return;
    await new Promise<void>((resolve, reject) => {
      http.once('error', reject);
      http.listen(this.#settings.port, this.#settings.host, () => {
        http.off('error', reject);
        resolve();
      });
    });
  }

  /** Whether the HTTP server listens (always, for a node without one). */
  get listening(): boolean {
    const http = this.#http ?? this.#attached;
    return http === undefined || http.listening;
  }

  /** The address of the HTTP server (with `port` or `server`). */
  address(): AddressInfo | null {
    const address = (this.#http ?? this.#attached)?.address();
    return typeof address === 'object' ? (address ?? null) : null;
  }

  /** From now on every upgrade is answered 503: the node is draining. */
  drain(): void {
    this.#draining = true;
  }

  /**
   * Stops taking upgrades and closes the node's own HTTP server. Until it has closed, an upgrade
   * on a connection it took (a node:cluster primary may hand one over meanwhile) is answered 503.
   */
  async close(): Promise<void> {
    this.drain();
    this.#wss.close();
    this.#attached?.off('upgrade', this.#onUpgrade);
    const http = this.#http;
    if (http?.listening) await new Promise((resolve) => http.close(resolve));
    http?.off('upgrade', this.#onUpgrade);
  }

  /** Completes an upgrade (see `ScaledWebSocketServer.handleUpgrade`). */
  handleUpgrade(request: IncomingMessage, socket: Duplex, head: Buffer): void {
    this.#upgrade(request, socket, head).catch((error) => {
      // Nothing an upgrade does should throw; if it does, one socket goes, never the process.
      this.#reporter.report(error);
      socket.destroy();
    });
  }

  readonly #onUpgrade = (request: IncomingMessage, socket: Duplex, head: Buffer): void => {
    const path = this.#settings.path;
    if (path !== undefined && pathOf(request) !== path) {
      // Someone else may own this path on a shared server; answer only when nobody would.
      if (this.#attached === undefined || this.#attached.listenerCount('upgrade') === 1) {
        refuse(socket, 400);
      }
      return;
    }
    this.handleUpgrade(request, socket, head);
  };

  async #upgrade(request: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    socket.on('error', ignore);
    const refusal = this.#refusal(request);
    if (refusal !== undefined) return refuse(socket, refusal);
    // Without `authenticate`, every client is `true`.
    let identity = true as Identity;
    if (this.#settings.authenticate !== undefined) {
      this.#authenticating++;
      const outcome = await this.#authenticate(request).finally(() => this.#authenticating--);
      if (typeof outcome === 'number') return refuse(socket, outcome);
      identity = outcome.identity;
      if (this.#draining || socket.destroyed) return refuse(socket, 503);
    }
    // One compressed frame serves every socket: no client may narrow the window it is made with.
    const offers = request.headers['sec-websocket-extensions'];
    if (this.#settings.perMessageDeflate !== undefined && offers !== undefined) {
      request.headers['sec-websocket-extensions'] = offersForSharedWindow(offers);
    }
    this.#wss.handleUpgrade(request, socket, head, (ws) => {
      socket.off('error', ignore);
      if (ws.extensions !== '') stopParsingOnError(ws);
      this.#door.admit(ws, socket, request, identity);
    });
  }

  /** The HTTP status an upgrade is refused with before `authenticate`, if it is. */
  #refusal(request: IncomingMessage): number | undefined {
    if (this.#draining) return 503;
    const origins = this.#settings.allowedOrigins;
    const origin = request.headers.origin;
    if (origins !== undefined && origin !== undefined && !origins.includes(origin)) {
      this.#reporter.limit('origins', { origin });
      return 403;
    }
    const connections = this.#door.count + this.#authenticating;
    if (connections >= this.#settings.maxConnections) {
      this.#reporter.limit('connections', { connections });
      return 503;
    }
    return undefined;
  }

  /** Runs `authenticate` within its time: the identity, or the HTTP status to refuse with. */
  async #authenticate(request: IncomingMessage): Promise<{ identity: Identity } | number> {
    const ms = this.#settings.authenticateTimeoutMs;
    try {
      const result = await inTime(this.#settings.authenticate!(request), ms);
      if (result === LATE) {
        this.#reporter.limit('authenticateTimeouts');
        this.#reporter.report(new HandlerError('authenticate', `no answer within ${ms} ms`));
        return 503;
      }
      if (result === false || result === null || result === undefined) return 401;
      return { identity: result };
    } catch (error) {
      if (error instanceof UpgradeRejectedError) return error.status;
      this.#reporter.report(new HandlerError('authenticate', error));
      return 500;
    }
  }
}

/**
 * How long the node's own HTTP server (`port`) waits for a request's headers, an upgrade's
 * included (Node's default is 60 s, checked every 30 s): a connection that trickles them holds a
 * file descriptor this long, 11 s at most with the check each second.
 */
const HEADERS_TIMEOUT_MS = 10_000;

function ignore(): void {}

/** The most frames (fragments) one message may come in; past it the connection closes with 1008. */
const MAX_FRAGMENTS = 128;

/** What {@link stopParsingOnError} reaches in a `ws` socket's frame parser. */
interface FrameParser {
  _errored: boolean;
  _loop: boolean;
  getData(this: FrameParser, cb: unknown): void;
}

/**
 * A `ws` receiver that refused a frame (too many fragments, too large) while a compressed one was
 * still inflating went on parsing when the inflation ended, and threw (ws 8.23: its frame mask
 * was already cleared), ending the process: a client with compression on could end a node with
 * 129 small fragments. Such a receiver now parses nothing more once it has refused a frame.
 */
function stopParsingOnError(ws: WebSocket): void {
  const receiver = (ws as unknown as { _receiver?: FrameParser })._receiver;
  if (receiver !== undefined && typeof receiver.getData === 'function') {
    receiver.getData = getDataUnlessErrored;
  }
}

/** ws's own `getData` (on the receiver's prototype), unless the receiver refused a frame. */
function getDataUnlessErrored(this: FrameParser, cb: unknown): void {
  if (this._errored) {
    this._loop = false;
    return;
  }
  (Object.getPrototypeOf(this) as FrameParser).getData.call(this, cb);
}
