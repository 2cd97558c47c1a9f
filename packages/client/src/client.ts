import {
  type AckMessage,
  CloseCode,
  type DataMessage,
  decodeServerFrame,
  encodeBinary,
  encodeText,
  type HelloMessage,
  isInbox,
  LIMITS,
  type NotResumedReason,
  PROTOCOL,
  type PresenceEntry,
  type ServerMessage,
  type WelcomeMessage,
  type WelcomeRoom,
} from '@wscale/core/protocol';
import type { CloseInfo } from './close-policy.js';
import { TypedEmitter } from './emitter.js';
import {
  ClientClosedError,
  type ClientError,
  DisconnectedError,
  InvalidArgumentError,
  InvalidOptionError,
  MessageTooLargeError,
  ProtocolError,
  QueueFullError,
  ServerError,
} from './errors.js';
import { Heartbeat } from './heartbeat.js';
import { browserNetwork } from './network.js';
import {
  type ClientOptions,
  MAX_TIMER_MS,
  type ResolvedOptions,
  resolveOptions,
  type SessionSnapshot,
} from './options.js';
import { Outbox, type Payload, type Upstream } from './outbox.js';
import { type AckPayload, PendingRequests } from './pending-requests.js';
import { PresenceView } from './presence-view.js';
import { ReconnectScheduler } from './reconnect-scheduler.js';
import { RoomPositions } from './room-positions.js';
import { OPEN, type WebSocketConstructor, type WebSocketLike } from './socket.js';

/**
 * Where the client is. `connecting` and `resuming` both open a socket and wait for `welcome`;
 * `resuming` presents a session token, `connecting` starts a new session.
 *
 * ```
 * closed ──connect()──▶ connecting ─┐
 *                                   ├─welcome─▶ open ──drop──▶ reconnecting ──timer / online──▶ resuming
 *                       resuming ───┘                              ▲                           │
 *                          └───────────────failed──────────────────┴───────────────────────────┘
 * any ──close(), a final close code, or the last attempt failed──▶ closed
 * ```
 */
export type ClientState = 'connecting' | 'resuming' | 'open' | 'reconnecting' | 'closed';

export type { Payload } from './outbox.js';

/** Where a received message belongs. */
export interface MessageMeta {
  /** The room of a broadcast; absent for a direct message. */
  room?: string;
  /** The message's offset in the room, when the room keeps history. */
  offset?: number;
  /** The epoch the offset belongs to. */
  epoch?: string;
}

/** What a `welcome` said. */
export interface WelcomeInfo {
  /** The session token (already kept by the client). */
  session: string;
  /** This client's id, the same across resumes. */
  clientId: string;
  /** The node the connection is on. */
  node: string;
  /** Whether the session was resumed. */
  resumed: boolean;
  /** Why the session was not resumed (`new` for a first connection). */
  reason?: NotResumedReason;
  /** Per room: whether what was missed is replayed (`recovered`), or why not. */
  rooms: Record<string, WelcomeRoom>;
  /**
   * The same for the direct messages, when the server keeps them (`directHistory`): whether those
   * sent while the client was away follow.
   */
  direct?: WelcomeRoom;
}

/** A connection closed. */
export interface ClientCloseInfo extends CloseInfo {
  /** Whether the client will reconnect. */
  reconnecting: boolean;
}

/** The events of {@link WscaleClient}. */
export interface WscaleClientEvents {
  /** The state changed. */
  state: (state: ClientState, previous: ClientState) => void;
  /** The server answered `hello`: a new session, or a resumed one (`resumed: true`). */
  welcome: (info: WelcomeInfo) => void;
  /** The session was resumed (after `welcome`); missed messages of recovered rooms follow. */
  resume: (info: WelcomeInfo) => void;
  /** An application message; each room message at most once, in offset order. */
  message: (data: Payload, meta: MessageMeta) => void;
  /** The client was put in a room (by its own `join` or by the server). */
  joined: (info: { room: string; offset?: number; epoch?: string }) => void;
  /** The client is no longer in a room (it left, the server removed it, or the session was lost). */
  left: (info: { room: string }) => void;
  /**
   * The server could not keep a room's stream whole: messages were lost; it goes on from here.
   * Without `room`, the stream of the session's direct messages (`directHistory`) lost some.
   */
  resync: (info: { room?: string; offset: number; epoch: string }) => void;
  /** The server reported an error, or broke the protocol. The client keeps running. */
  error: (error: ClientError) => void;
  /** A connection closed (every time, also when the client reconnects afterwards). */
  close: (info: ClientCloseInfo) => void;
}

/** Where to connect: a URL, or a function giving one per attempt (for example with a fresh token). */
export type ClientUrl = string | URL | (() => string | URL | Promise<string | URL>);

/** A frame waiting for the connection: a `join`/`leave`, or a numbered `msg`/`req`. */
interface Queued {
  frame?: string | Uint8Array;
  requestId?: number;
  upstream?: Upstream;
}

/** A room whose presence the client watches. */
interface Watch {
  view: PresenceView;
  /** Whether it was asked on the current connection and the answer is still to come. */
  asking: boolean;
  /** The ids of the `presence()` calls waiting for its next answer. */
  waiting: Set<number>;
}

/** How long `close()` waits for the closing handshake before it resolves anyway. */
const CLOSE_WAIT_MS = 2000;

/**
 * A `wscale.v1` client: one logical connection to a wscale cluster that survives dropped
 * connections and lost nodes. It reconnects with backoff, resumes its session, and delivers room
 * messages exactly once and in order when the rooms keep history.
 *
 * @example
 * ```ts
 * const client = new WscaleClient('wss://example.com/ws');
 * client.on('message', (data, { room }) => console.log(room, data));
 * await client.join('chat');
 * client.send(JSON.stringify({ text: 'hi' }));
 * ```
 */
export class WscaleClient extends TypedEmitter<WscaleClientEvents> {
  readonly #url: ClientUrl;
  readonly #options: ResolvedOptions;
  readonly #rooms = new RoomPositions();
  readonly #requests = new PendingRequests();
  readonly #outbox = new Outbox();
  /** Whether the server of this connection numbers upstream frames (its `welcome` had `s`). */
  #numbered = false;
  /** The largest frame the server takes, as its last `welcome` said (older servers do not). */
  #maxFrame: number | undefined;
  readonly #heartbeat: Heartbeat;
  readonly #scheduler: ReconnectScheduler;
  #queue: Queued[] = [];
  #state: ClientState = 'closed';
  #socket: WebSocketLike | undefined;
  /** Bumped by each attempt, so a late URL or a late socket of an old attempt is ignored. */
  #attempt = 0;
  #connectTimer: ReturnType<typeof setTimeout> | undefined;
  #session: string | undefined;
  #clientId: string | undefined;
  /** Whether the last `welcome` said `unavailable` (see the `hello`'s `u`). */
  #unrecorded = false;
  /** The client id of the session given as `resume`, until a `welcome` gives one. */
  #savedClient: string | undefined;
  #node: string | undefined;
  /** Rooms whose presence the client watches, asked again on every connection. */
  readonly #watched = new Map<string, Watch>();

  constructor(url: ClientUrl, options: ClientOptions = {}) {
    super();
    this.#url = url;
    this.#options = resolveOptions(options, {
      WebSocket: (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket,
      network: browserNetwork(),
    });
    const { resume } = this.#options;
    if (resume !== undefined && resume.session.length <= LIMITS.token) {
      this.#session = resume.session;
      this.#rooms.restore(resume.rooms ?? {});
      if (typeof resume.client === 'string' && resume.client.length <= LIMITS.token) {
        this.#savedClient = resume.client;
      }
      if (Number.isSafeInteger(resume.sent) && resume.sent! > 0) {
        this.#outbox.continueAfter(resume.sent!);
      }
    }
    this.#heartbeat = new Heartbeat(this.#options.pingIntervalMs, this.#options.pongTimeoutMs);
    this.#scheduler = new ReconnectScheduler(
      {
        baseMs: this.#options.backoffBaseMs,
        capMs: this.#options.backoffCapMs,
        maxAttempts: this.#options.maxReconnectAttempts,
        stableAfterMs: this.#options.stableAfterMs,
        restartJitterMs: this.#options.restartJitterMs,
        network: this.#options.network,
      },
      () => this.#open(),
    );
    if (this.#options.autoConnect) this.connect();
  }

  /** Where the client is; see {@link ClientState}. */
  get state(): ClientState {
    return this.#state;
  }

  /** This client's id, from the last `welcome`. */
  get clientId(): string | undefined {
    return this.#clientId;
  }

  /** The node of the current (or last) connection. */
  get node(): string | undefined {
    return this.#node;
  }

  /** The session token presented on the next connection. */
  get session(): string | undefined {
    return this.#session;
  }

  /** The rooms the client is in, as far as it knows. */
  get rooms(): string[] {
    return this.#rooms.rooms;
  }

  /** Frames waiting to be sent after the next `welcome`. */
  get queued(): number {
    return this.#queue.length;
  }

  /** The last position seen in `room`, for a room that keeps history. */
  position(room: string): { offset: number; epoch: string } | undefined {
    const position = this.#rooms.get(room);
    return position && { offset: position.o, epoch: position.e };
  }

  /**
   * The session and room positions, to save (for example in `sessionStorage`) and pass as
   * `options.resume` to a later client, which then resumes instead of starting over.
   */
  snapshot(): SessionSnapshot | undefined {
    if (this.#session === undefined) return undefined;
    const snapshot: SessionSnapshot = { session: this.#session, rooms: this.#rooms.snapshot() };
    const client = this.#clientId ?? this.#savedClient;
    if (client !== undefined) snapshot.client = client;
    if (this.#outbox.last > 0) snapshot.sent = this.#outbox.last;
    return snapshot;
  }

  /** Opens the connection (done by the constructor unless `autoConnect: false`). No-op unless closed. */
  connect(): void {
    if (this.#state !== 'closed') return;
    this.#scheduler.start();
    this.#open();
  }

  /**
   * Closes the connection for good (until `connect()`): no reconnect. Messages and requests that
   * went out and are not acknowledged reject with `DisconnectedError` (the server may have them:
   * await them before closing to know), those that never went out with `ClientClosedError`.
   * Resolves when the socket has closed (at most about 2 s).
   */
  close(code: number = CloseCode.Normal, reason = ''): Promise<void> {
    if (this.#state === 'closed') return Promise.resolve();
    const socket = this.#socket;
    this.#release();
    this.#finish({ code, reason });
    if (socket === undefined) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        socket.terminate?.();
        resolve();
      }, CLOSE_WAIT_MS);
      socket.onclose = () => {
        clearTimeout(timer);
        resolve();
      };
      try {
        socket.close(code, reason);
      } catch {
        socket.close();
      }
    });
  }

  /**
   * Sends an application message: a string as text, bytes as a binary frame. While not connected
   * it is queued (see `sendQueueSize`) and sent after the next `welcome`. It is kept until the
   * server acknowledges it, and sent again after a resume if the connection or its node died
   * first: it reaches the server's application, or the returned promise rejects. Awaiting the
   * promise is optional.
   *
   * @returns a promise that resolves once the server's application has the message, and rejects
   * with `ClientClosedError` if the client is closed first.
   * @throws {@link QueueFullError} when `maxUnacknowledged` messages wait for acknowledgement, or
   * when not connected and the queue is full.
   * @throws {@link DisconnectedError} when not connected and `sendQueueSize` is 0.
   * @throws {@link ClientClosedError} when the client is closed.
   */
  send(data: Payload): Promise<void> {
    checkPayload(data);
    this.#checkWritable();
    this.#checkSize(MSG, data);
    const { entry, acked } = this.#outbox.add({ t: 'msg' }, data);
    this.#writeUpstream(entry);
    return acked;
  }

  /**
   * Asks to join a room. Resolves when the server acknowledged it (the `joined` event came first);
   * rejects with a {@link ServerError} (such as `FORBIDDEN`) when refused, a `TimeoutError`, or a
   * `DisconnectedError` when the connection dropped before the answer.
   */
  async join(room: string, options: { timeoutMs?: number } = {}): Promise<void> {
    checkRoom(room);
    await this.#askFrame(`join "${room}"`, (id) => encodeText({ t: 'join', id, r: room }), options);
  }

  /** Leaves a room. Resolves when the server acknowledged it. Rejects like {@link join}. */
  async leave(room: string, options: { timeoutMs?: number } = {}): Promise<void> {
    checkRoom(room);
    await this.#askFrame(
      `leave "${room}"`,
      (id) => encodeText({ t: 'leave', id, r: room }),
      options,
    );
    this.#unwatch(room);
    if (this.#rooms.remove(room)) this.emit('left', { room });
  }

  /**
   * Sends a request; resolves with the server's reply (a string, bytes, or `undefined` for an
   * empty reply). A request survives a dropped connection: it is sent again after the resume, and
   * a server that handled it already answers with the reply it kept. Rejects with a
   * {@link ServerError} (such as `HANDLER_FAILED`, or `REPLY_LOST` when a handled request's reply
   * was not kept) when the server answers with an error, a `TimeoutError` after `timeoutMs`, or a
   * `ClientClosedError` when the client is closed first.
   */
  request(data: Payload, options: { timeoutMs?: number } = {}): Promise<AckPayload> {
    return this.#ask(
      'request',
      (id) => {
        checkPayload(data);
        this.#checkWritable();
        this.#checkSize({ t: 'req', id }, data);
        this.#writeUpstream(this.#outbox.add({ t: 'req', id }, data, id).entry);
      },
      options,
    );
  }

  /**
   * Who is in a room, on every node (the room must keep presence on the server, and the client
   * must be in it). Resolves with a live view once its first snapshot is in: it follows joins and
   * leaves, and is refreshed after every resume, reporting only the users that really came or
   * went meanwhile. Rejects with a {@link ServerError} (`FORBIDDEN`: not in the room;
   * `NOT_FOUND`: the room keeps no presence), a `TimeoutError`, or a `ClientClosedError`. Asked
   * while not connected, or when the connection drops before the answer, it is asked on the next
   * connection. The view ends when the client leaves the room (its `end` event).
   */
  async presence(room: string, options: { timeoutMs?: number } = {}): Promise<PresenceView> {
    checkRoom(room);
    let watch = this.#watched.get(room);
    if (watch === undefined) {
      watch = { view: new PresenceView(room), asking: false, waiting: new Set() };
      this.#watched.set(room, watch);
    }
    const { view, waiting } = watch;
    await this.#ask(
      `presence of "${room}"`,
      (id) => {
        waiting.add(id);
        // Asked now if connected (unless it is already), else by the next welcome.
        if (!watch.asking && this.#openSocket() !== undefined) this.#askPresence(room, watch);
      },
      options,
    );
    return view;
  }

  // ---- connection lifecycle ----

  #open(): void {
    const attempt = ++this.#attempt;
    this.#setState(this.#session === undefined ? 'connecting' : 'resuming');
    if (attempt !== this.#attempt) return; // a state listener closed the client
    this.#connectTimer = setTimeout(
      () =>
        this.#drop(`no welcome within ${this.#options.connectTimeoutMs} ms`, CloseCode.Abnormal),
      this.#options.connectTimeoutMs,
    );
    let url: string | URL | Promise<string | URL>;
    try {
      url = typeof this.#url === 'function' ? this.#url() : this.#url;
    } catch (error) {
      this.#urlFailed(error);
      return;
    }
    if (typeof url === 'string' || url instanceof URL) this.#createSocket(url);
    else
      url.then(
        (resolved) => {
          if (attempt === this.#attempt && this.#state !== 'closed') this.#createSocket(resolved);
        },
        (error: unknown) => {
          if (attempt === this.#attempt && this.#state !== 'closed') this.#urlFailed(error);
        },
      );
  }

  #createSocket(url: string | URL): void {
    let socket: WebSocketLike;
    try {
      socket = new this.#options.WebSocket(String(url), [PROTOCOL]);
    } catch (error) {
      // An invalid URL: retrying would fail the same way.
      const failure = new InvalidOptionError(
        `cannot connect to ${String(url)}: ${describe(error)}`,
      );
      this.#failed(failure, () => {
        this.#release();
        this.#finish({ code: CloseCode.Abnormal, reason: 'invalid URL' });
      });
      return;
    }
    this.#socket = socket;
    socket.binaryType = 'arraybuffer';
    let opened = false;
    // Why the handshake failed, where the runtime says (the `ws` package does: "Unexpected server
    // response: 401", "Server sent no subprotocol"); browsers say nothing in their error events.
    let failure: string | undefined;
    socket.onopen = () => {
      opened = true;
      if (this.#socket === socket) this.#onOpen(socket);
    };
    socket.onmessage = (event) => {
      if (this.#socket === socket) this.#onFrame(event.data);
    };
    socket.onclose = (event) => {
      if (this.#socket !== socket) return;
      if (!opened && failure !== undefined && /subprotocol/i.test(failure)) {
        // The server did not select wscale.v1 (the runtime failed the handshake itself).
        this.#protocolError(new ProtocolError(`the server did not select ${PROTOCOL}: ${failure}`));
        return;
      }
      const reason = event.reason === '' && !opened ? (failure ?? '') : event.reason;
      this.#closed({ code: event.code, reason });
    };
    socket.onerror = (event) => {
      const message = (event as { message?: unknown }).message;
      if (typeof message === 'string' && message !== '') failure = message;
    };
  }

  /**
   * Rejects what went out and was not acknowledged when the session it went out on ends: the
   * server's application may or may not have it, so neither a resolve nor a resend would be true.
   */
  #abandonSent(why: string): void {
    for (const entry of this.#outbox.takeSent()) {
      const error = new DisconnectedError(
        `${why}: the server's application may or may not have it`,
      );
      if (entry.requestId !== undefined) this.#requests.fail(entry.requestId, error);
      entry.reject(error);
    }
  }

  #urlFailed(error: unknown): void {
    const failure = new InvalidOptionError(`the url function failed: ${describe(error)}`);
    this.#failed(failure, () =>
      this.#closed({ code: CloseCode.Abnormal, reason: 'the url function failed' }),
    );
  }

  /**
   * The attempt could not be made (a bad URL, a url function that threw): said, then `end`, on a
   * later microtask, since with `autoConnect` this runs inside the constructor, before the
   * application could listen.
   */
  #failed(error: InvalidOptionError, end: () => void): void {
    const attempt = this.#attempt;
    queueMicrotask(() => {
      // Closed, or connected again, meanwhile.
      if (attempt !== this.#attempt || this.#state === 'closed') return;
      this.emit('error', error);
      end();
    });
  }

  #onOpen(socket: WebSocketLike): void {
    if (socket.protocol !== PROTOCOL) {
      this.#protocolError(
        new ProtocolError(`the server did not select ${PROTOCOL} (got "${socket.protocol}")`),
      );
      return;
    }
    const hello: HelloMessage = { t: 'hello' };
    if (this.#session !== undefined) {
      hello.session = this.#session;
      const rooms = this.#rooms.snapshot();
      if (Object.keys(rooms).length > 0) hello.rooms = rooms;
      if (this.#unrecorded) hello.u = 1;
    }
    socket.send(encodeText(hello));
  }

  /** The socket closed (or failed to open). Reconnects or closes, as the policy says. */
  #closed(close: CloseInfo): void {
    if (this.#state === 'closed') return;
    this.#release();
    this.#requests.rejectSent(() => new DisconnectedError());
    // Their asks in flight died with the connection: the next welcome asks them all again.
    for (const watch of this.#watched.values()) watch.asking = false;
    const reconnecting =
      this.#options.shouldReconnect(close) &&
      this.#scheduler.plan(close.code === CloseCode.ServiceRestart);
    // The state it goes to is told first, so that `close` listeners see it: `closed` (connect()
    // in one starts over), or `reconnecting` (close() in one closes the client).
    if (!reconnecting) {
      this.#finish(close);
      return;
    }
    this.#setState('reconnecting');
    if (this.#state !== 'reconnecting') return; // a state listener closed the client
    this.emit('close', { ...close, reconnecting });
  }

  /** Gives up on the current socket (dead, or broken) and goes on as if it had closed. */
  #drop(reason: string, code: number): void {
    if (this.#state === 'closed') return;
    const socket = this.#socket;
    if (socket === undefined) {
      // Still resolving the URL: nothing to close.
      this.#closed({ code, reason });
      return;
    }
    detach(socket);
    try {
      if (socket.terminate) socket.terminate();
      else socket.close(4000, reason.slice(0, 120));
    } catch {
      // Already closing.
    }
    this.#closed({ code, reason });
  }

  #protocolError(error: ProtocolError): void {
    this.emit('error', error);
    this.#drop(error.message, CloseCode.ProtocolError);
  }

  /** Stops the current socket's timers and listeners; the socket itself is not closed here. */
  #release(): void {
    clearTimeout(this.#connectTimer);
    this.#connectTimer = undefined;
    this.#heartbeat.stop();
    if (this.#socket) detach(this.#socket);
    this.#socket = undefined;
    this.#attempt++;
  }

  /** Enters `closed`: nothing more is attempted; whatever waits is rejected. */
  #finish(close: CloseInfo): void {
    // Closed before any listener runs, so a listener calling close() again is a no-op.
    const previous = this.#state;
    this.#state = 'closed';
    this.#scheduler.stop();
    this.#requests.rejectSent(() => new DisconnectedError());
    this.#abandonSent('the client closed before the server acknowledged it');
    this.#requests.rejectAll(() => new ClientClosedError());
    this.#outbox.rejectAll(() => new ClientClosedError());
    this.#queue = [];
    if (previous !== 'closed') this.emit('state', 'closed', previous);
    // Unless a state listener already called connect() again.
    if (this.#isClosed()) this.emit('close', { ...close, reconnecting: false });
  }

  /** Whether the client is closed now (a listener may have closed it during an emit). */
  #isClosed(): boolean {
    return this.#state === 'closed';
  }

  #setState(state: ClientState): void {
    const previous = this.#state;
    if (previous === state) return;
    this.#state = state;
    this.emit('state', state, previous);
  }

  // ---- frames in ----

  #onFrame(data: unknown): void {
    this.#heartbeat.alive();
    let frame: string | Uint8Array;
    if (typeof data === 'string') frame = data;
    else if (data instanceof ArrayBuffer) frame = new Uint8Array(data);
    else if (ArrayBuffer.isView(data)) {
      frame = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    } else {
      this.#protocolError(new ProtocolError('received a frame of an unexpected type'));
      return;
    }
    let decoded: { message: ServerMessage; binary?: Uint8Array };
    try {
      decoded = decodeServerFrame(frame);
    } catch (error) {
      this.#protocolError(
        new ProtocolError(`malformed frame: ${describe(error)}`, { cause: error }),
      );
      return;
    }
    const { message, binary } = decoded;
    switch (message.t) {
      case 'welcome':
        this.#onWelcome(message);
        break;
      case 'msg':
        this.#onMessage(message, binary);
        break;
      case 'ack':
        this.#onAck(message, binary);
        break;
      case 'joined': {
        if (typeof message.r !== 'string') break;
        const o = offsetOf(message.o);
        const e = epochOf(message.e);
        const missed = this.#rooms.joined(message.r, o, e);
        if (!isInbox(message.r)) {
          this.emit('joined', { room: message.r, offset: message.o, epoch: message.e });
        }
        // Joined again past the position kept for a resume: what came between is not replayed.
        if (missed && o !== undefined && e !== undefined) this.#resynced(message.r, o, e);
        break;
      }
      case 'left':
        if (typeof message.r === 'string' && this.#rooms.remove(message.r)) {
          this.#unwatch(message.r);
          this.emit('left', { room: message.r });
        }
        break;
      case 'presence':
        if (Array.isArray(message.m) && message.m.every(isPresenceEntry)) {
          const partial = message.p === 1;
          this.#watched.get(message.r)?.view.snapshot(message.m, Number(message.n) || 0, partial);
        }
        break;
      case 'pjoin':
        if (isPresenceEntry(message)) this.#watched.get(message.r)?.view.joined(message);
        break;
      case 'pleave':
        if (typeof message.u === 'string') this.#watched.get(message.r)?.view.left(message.u);
        break;
      case 'resync':
        if (offsetOf(message.o) === undefined || epochOf(message.e) === undefined) break;
        this.#rooms.resync(message.r, message.o, message.e);
        this.#resynced(message.r, message.o, message.e);
        break;
      case 'error':
        this.emit('error', new ServerError(message.code, message.message));
        break;
      case 'rcv':
        if (Number.isSafeInteger(message.s)) this.#outbox.received(message.s);
        break;
      case 'pong':
        this.#heartbeat.pong();
        break;
      default:
        // Message types newer than this client: ignored, as the protocol asks.
        break;
    }
  }

  #onWelcome(message: WelcomeMessage): void {
    const socket = this.#socket;
    if (socket === undefined || (this.#state !== 'connecting' && this.#state !== 'resuming'))
      return;
    if (typeof message.session !== 'string' || typeof message.client !== 'string') {
      this.#protocolError(new ProtocolError('welcome without session or client'));
      return;
    }
    clearTimeout(this.#connectTimer);
    this.#connectTimer = undefined;
    const rooms = message.rooms ?? {};
    this.#session = message.session.length <= LIMITS.token ? message.session : undefined;
    // Not resumed but the same client: the store could not be read, and the session lives on.
    const sameSession = message.client === (this.#clientId ?? this.#savedClient);
    this.#clientId = message.client;
    this.#node = message.node;
    // Welcomed while the server could not read the session: what it hands on may go unrecorded.
    this.#unrecorded = message.reason === 'unavailable';
    // `unavailable`: the session the token named, unread; it keeps its rooms, and the resume that
    // follows once the server can read it (a 1012) replays what they missed meanwhile.
    const { gone, back } =
      message.resumed === true
        ? this.#rooms.resumed(rooms)
        : { gone: this.#rooms.reset(rooms, message.reason === 'unavailable'), back: [] };
    this.#numbered = Number.isSafeInteger(message.s);
    const max = message.m;
    this.#maxFrame = Number.isSafeInteger(max) && max! > 0 ? max : undefined;
    // Its numbers go on: numbering again from 1 would reuse ids the session already handed out.
    if (message.resumed !== true && !sameSession) {
      // A new session knows nothing of the old one: what went out on it is not sent again (its
      // application may have it, under the old session's ids), and what never did starts at 1.
      this.#abandonSent(`its session could not be resumed (${message.reason ?? 'new'})`);
      this.#outbox.renumber();
    } else if (this.#numbered) this.#outbox.resumedAt(message.s!);
    this.#scheduler.succeeded();
    this.#heartbeat.start(
      () => socket.send(encodeText({ t: 'ping' })),
      () => this.#drop(`no pong within ${this.#options.pongTimeoutMs} ms`, CloseCode.Abnormal),
    );
    this.#refuseTooLarge();
    // What went out before and is not acknowledged goes first, then what was queued, so that what
    // listeners send below comes after them.
    for (const entry of this.#outbox.sentBefore()) this.#sendUpstream(socket, entry);
    this.#flush(socket);
    this.#setState('open');
    if (this.#socket !== socket) return; // a state listener closed the client
    // No event after a listener closed the client (or connected it again).
    for (const room of gone) {
      this.#unwatch(room);
      this.emit('left', { room });
      if (this.#socket !== socket) return;
    }
    // Rooms the session has that the client did not list (kept while its server could not read
    // the session, or joined by the server just before a drop): what was missed there follows.
    for (const room of back) {
      const position = this.#rooms.get(room);
      this.emit('joined', { room, offset: position?.o, epoch: position?.e });
      if (this.#socket !== socket) return;
    }
    // A fresh snapshot of every room watched: the view reports only what changed meanwhile.
    for (const [room, watch] of this.#watched) if (!watch.asking) this.#askPresence(room, watch);
    const info: WelcomeInfo = {
      session: message.session,
      clientId: message.client,
      node: message.node,
      resumed: message.resumed === true,
      rooms: {},
    };
    for (const [room, state] of Object.entries(rooms)) {
      if (isInbox(room)) info.direct = state;
      else info.rooms[room] = state;
    }
    if (message.reason !== undefined) info.reason = message.reason;
    this.emit('welcome', info);
    if (info.resumed && this.#socket === socket) this.emit('resume', info);
  }

  /** Says a stream lost messages: a room's, or without `room` the session's direct messages'. */
  #resynced(room: string, offset: number, epoch: string): void {
    this.emit('resync', isInbox(room) ? { offset, epoch } : { room, offset, epoch });
  }

  #onMessage(message: DataMessage, binary: Uint8Array | undefined): void {
    const meta: MessageMeta = {};
    if (typeof message.r === 'string') {
      const o = offsetOf(message.o);
      const e = epochOf(message.e);
      if (o !== undefined && e !== undefined && !this.#rooms.accept(message.r, o, e)) return;
      // A kept direct message is numbered in the session's own stream; to the application it is
      // a direct message, with no room.
      if (!isInbox(message.r)) {
        meta.room = message.r;
        if (o !== undefined && e !== undefined) {
          meta.offset = o;
          meta.epoch = e;
        }
      }
    }
    this.emit('message', binary ?? message.d ?? '', meta);
  }

  #onAck(message: AckMessage, binary: Uint8Array | undefined): void {
    if (Number.isInteger(message.id) && this.#requests.settle(message, binary)) {
      this.#outbox.answered(message.id);
    }
  }

  // ---- frames out ----

  /** The socket frames can be written on now, if any. */
  #openSocket(): WebSocketLike | undefined {
    const socket = this.#socket;
    return this.#state === 'open' && socket !== undefined && socket.readyState === OPEN
      ? socket
      : undefined;
  }

  /** Throws unless a frame can be sent or queued now. */
  #checkWritable(upstream = true): void {
    if (this.#state === 'closed') throw new ClientClosedError();
    if (upstream && this.#outbox.size >= this.#options.maxUnacknowledged) {
      const size = this.#options.maxUnacknowledged;
      throw new QueueFullError(size, `${size} messages and requests wait for acknowledgement`);
    }
    if (this.#openSocket() !== undefined) return;
    const size = this.#options.sendQueueSize;
    if (size === 0) throw new DisconnectedError('not connected (and sendQueueSize is 0)');
    if (this.#queue.length >= size) throw new QueueFullError(size);
  }

  #write(frame: string | Uint8Array, requestId?: number): void {
    this.#checkWritable(false);
    const socket = this.#openSocket();
    if (socket === undefined) {
      this.#queue.push(requestId === undefined ? { frame } : { frame, requestId });
      return;
    }
    socket.send(frame);
    if (requestId !== undefined) this.#requests.sent(requestId);
  }

  /**
   * Refuses a message whose frame the server would not take (its `maxPayload`, told by the last
   * `welcome`): sent, it would close the connection with 1009; kept to be sent again, it would
   * close every connection after it too.
   */
  #checkSize(envelope: Upstream['message'], data: Payload): void {
    const bytes = this.#tooLarge(envelope, this.#outbox.last + 1, data);
    if (bytes !== undefined) throw new MessageTooLargeError(bytes, this.#maxFrame!);
  }

  /**
   * The size of a frame numbered `s`, as sent again (its largest), when it is larger than the
   * server takes; `undefined` when it fits, or the limit is not known.
   */
  #tooLarge(envelope: Upstream['message'], s: number, data: Payload): number | undefined {
    const max = this.#maxFrame;
    if (max === undefined) return undefined;
    // Without encoding it: JSON writes a UTF-16 unit in at most 6 bytes (`\u001f`).
    const most = (typeof data === 'string' ? data.length * 6 : data.byteLength) + ENVELOPE_BYTES;
    if (most <= max) return undefined;
    const resent: Upstream['message'] = { ...envelope, s, p: 1 };
    const bytes =
      typeof data === 'string'
        ? utf8.encode(encodeText({ ...resent, d: data })).byteLength
        : encodeBinary(resent, data).byteLength;
    return bytes > max ? bytes : undefined;
  }

  /**
   * What waits to go out and is larger than the server now says it takes (queued before a welcome
   * told the limit, or kept for a server whose limit is now lower): refused, not sent; one that
   * went out before rejects as any message whose fate is unknown (`DisconnectedError`).
   */
  #refuseTooLarge(): void {
    if (this.#maxFrame === undefined) return;
    for (const entry of this.#outbox.pending()) {
      const bytes = this.#tooLarge(entry.message, entry.s, entry.data);
      if (bytes === undefined) continue;
      // One that went out before may have reached the server's application: not sent again.
      const error = entry.sent
        ? new DisconnectedError(
            `not sent again: its frame is ${bytes} bytes, over the ${this.#maxFrame} the server ` +
              "takes now; the server's application may or may not have it",
          )
        : new MessageTooLargeError(bytes, this.#maxFrame);
      if (entry.requestId !== undefined) this.#requests.fail(entry.requestId, error);
      this.#outbox.refuse(entry, error);
      this.#queue = this.#queue.filter(({ upstream }) => upstream !== entry);
    }
  }

  /** Sends a numbered frame now, or queues it (after {@link #checkWritable}). */
  #writeUpstream(entry: Upstream): void {
    const socket = this.#openSocket();
    if (socket === undefined) this.#queue.push({ upstream: entry });
    else this.#sendUpstream(socket, entry);
  }

  #sendUpstream(socket: WebSocketLike, entry: Upstream): void {
    // One object per frame: the message with its number and, as text, its payload.
    const message = { ...entry.message };
    if (this.#numbered) {
      message.s = entry.s;
      if (entry.sent) message.p = 1;
    }
    const { data } = entry;
    if (typeof data !== 'string') socket.send(encodeBinary(message, data));
    else {
      message.d = data;
      socket.send(encodeText(message));
    }
    entry.sent = true;
    if (this.#numbered) return;
    // A server that does not number frames never acknowledges them: at most once, as before
    // (a request is then answered on this connection or fails with the connection).
    if (entry.requestId !== undefined) this.#requests.sent(entry.requestId);
    this.#outbox.done(entry);
  }

  #flush(socket: WebSocketLike): void {
    const queue = this.#queue;
    this.#queue = [];
    for (const { frame, requestId, upstream } of queue) {
      if (upstream !== undefined) {
        this.#sendUpstream(socket, upstream);
        continue;
      }
      socket.send(frame!);
      if (requestId !== undefined) this.#requests.sent(requestId);
    }
  }

  /** Takes a request that timed out out of the queue: it is not sent later. */
  #unqueue(requestId: number): void {
    this.#queue = this.#queue.filter(
      (queued) => (queued.requestId ?? queued.upstream?.requestId) !== requestId,
    );
  }

  /**
   * Asks for a watched room's presence on the open connection; its answer settles the
   * `presence()` calls waiting. A connection that drops first leaves it to the next one.
   */
  #askPresence(room: string, watch: Watch): void {
    watch.asking = true;
    const answered = (error?: ClientError) => {
      watch.asking = false;
      const waiting = [...watch.waiting];
      watch.waiting.clear();
      for (const id of waiting) {
        if (error === undefined) this.#requests.settle({ t: 'ack', id }, undefined);
        else this.#requests.fail(id, error);
      }
      if (error === undefined) return;
      // A view that ended meanwhile (its room was left) asked for nothing the application awaits.
      if (waiting.length === 0 && this.#watched.get(room) === watch) this.emit('error', error);
      // Refused, or never answered: nothing watches it any more.
      const refused = error instanceof ServerError || !watch.view.synced;
      if (refused && this.#watched.get(room) === watch) this.#watched.delete(room);
    };
    this.#askFrame(
      `presence of "${room}"`,
      (id) => encodeText({ t: 'presence', id, r: room }),
      {},
    ).then(
      () => answered(),
      (error: ClientError) => {
        if (!(error instanceof DisconnectedError)) answered(error);
      },
    );
  }

  /** Stops watching a room the client is no longer in; `presence()` calls still waiting fail. */
  #unwatch(room: string): void {
    const watch = this.#watched.get(room);
    if (watch === undefined) return;
    this.#watched.delete(room);
    watch.view.end();
    if (watch.asking) return; // the answer on its way settles them
    for (const id of watch.waiting) {
      this.#requests.fail(id, new ServerError('FORBIDDEN', `no longer in "${room}"`));
    }
  }

  /** Sends a `join`, `leave` or `presence` frame and waits for its `ack`. */
  #askFrame(
    what: string,
    frame: (id: number) => string | Uint8Array,
    options: { timeoutMs?: number },
  ): Promise<AckPayload> {
    return this.#ask(what, (id) => this.#write(frame(id), id), options);
  }

  /** Sends what `write` sends for a new request id and waits for its `ack`. */
  #ask(
    what: string,
    write: (id: number) => void,
    options: { timeoutMs?: number },
  ): Promise<AckPayload> {
    const timeoutMs = options.timeoutMs ?? this.#options.requestTimeoutMs;
    if (!(typeof timeoutMs === 'number' && timeoutMs > 0 && timeoutMs <= MAX_TIMER_MS)) {
      const bounds = `greater than 0 and at most ${MAX_TIMER_MS} (a timer's limit)`;
      return Promise.reject(new InvalidArgumentError(`timeoutMs must be ${bounds}`));
    }
    if (this.#state === 'closed') return Promise.reject(new ClientClosedError());
    // A request that timed out is not sent later, nor sent again after a resume.
    const { id, promise } = this.#requests.open(what, timeoutMs, (expired) => {
      this.#outbox.answered(expired);
      this.#unqueue(expired);
    });
    try {
      write(id);
    } catch (error) {
      this.#requests.fail(id, error as ClientError);
    }
    return promise;
  }
}

/** Creates a {@link WscaleClient} (and connects it, unless `autoConnect: false`). */
export function createClient(url: ClientUrl, options?: ClientOptions): WscaleClient {
  return new WscaleClient(url, options);
}

function detach(socket: WebSocketLike): void {
  socket.onopen = null;
  socket.onmessage = null;
  socket.onclose = null;
  // Keep swallowing errors: an unhandled 'error' would crash Node with the `ws` package.
  socket.onerror = () => undefined;
}

/** The envelope of `send` (its `s` is added as it is sent). */
const MSG: Upstream['message'] = { t: 'msg' };
/** More than a `msg` or `req` frame adds to its data: JSON fields, or a binary frame's header. */
const ENVELOPE_BYTES = 256;
const utf8 = new TextEncoder();

function checkPayload(data: Payload): void {
  if (typeof data !== 'string' && !(data instanceof Uint8Array)) {
    throw new InvalidArgumentError('a payload is a string or a Uint8Array');
  }
}

function checkRoom(room: string): void {
  if (typeof room !== 'string' || room.length === 0 || room.length > LIMITS.room) {
    const got =
      typeof room === 'string' && room.length > LIMITS.room
        ? `${room.length} characters`
        : JSON.stringify(room);
    throw new InvalidArgumentError(
      `a room name is a string of 1 to ${LIMITS.room} characters, got ${got}`,
    );
  }
}

function isPresenceEntry(value: { u?: unknown }): value is PresenceEntry {
  return typeof value.u === 'string';
}

function offsetOf(value: unknown): number | undefined {
  return Number.isSafeInteger(value) && (value as number) >= 0 ? (value as number) : undefined;
}

function epochOf(value: unknown): string | undefined {
  return typeof value === 'string' && value.length <= LIMITS.epoch ? value : undefined;
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
