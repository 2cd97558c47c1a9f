import type { Buffer } from 'node:buffer';
import type { IncomingMessage } from 'node:http';
import process from 'node:process';
import type { Duplex } from 'node:stream';
import type { WebSocket } from 'ws';
import type { HistoryPosition } from '../contracts.js';
import { HandlerError } from '../errors.js';
import type { NodeMesh } from '../mesh/node-mesh.js';
import type { Reporter } from '../ops/reporter.js';
import type { Traffic } from '../ops/traffic.js';
import type { PresenceService } from '../presence/presence-service.js';
import { CloseCode } from '../protocol/close-codes.js';
import { FrameDeflater } from '../protocol/deflate.js';
import { isInbox, PROTOCOL } from '../protocol/messages.js';
import type { Outgoing } from '../protocol/outgoing.js';
import { receivedText } from '../protocol/payload.js';
import type { RoomRegistry } from '../rooms/room-registry.js';
import { type SaverSettings, SessionSaver } from '../sessions/session-saver.js';
import {
  checkSessionRoom,
  type KeptOnClose,
  type OpenedSession,
  type Sessions,
} from '../sessions/sessions.js';
import { checkName } from '../util/arguments.js';
import type { Pending } from '../util/pending.js';
import type { Membership } from '../v1/membership.js';
import type { V1Client } from '../v1/v1-client.js';
import { V1Endpoint, type V1Node, type V1Settings } from '../v1/v1-endpoint.js';
import { type AnyClient, type Client, type ClientHost, Connection } from './client.js';
import { CLIENT, type NodeSocket } from './node-socket.js';
import type { Door } from './upgrade-gate.js';

/** The server options the connections apply (see `ServerOptions`). */
export interface ConnectionSettings extends V1Settings, SaverSettings<unknown> {
  readonly maxBufferedBytes: number;
  readonly maxOpsPerSecond: number;
  readonly slowConsumer: 'close' | 'drop';
  readonly heartbeatIntervalMs: number;
  /** Absent when compression is off. */
  readonly perMessageDeflate: { readonly threshold: number; readonly level: number } | undefined;
}

/** Sessions that move between nodes: what the connections ask of the node's direct delivery. */
export interface Takeovers {
  /**
   * Closes an older connection of the session, wherever it is, without waiting; false when a
   * connection claimed it after `claim` (see `Delivery.kick`).
   */
  kick(sessionId: string, claim?: number): boolean;
  /** Takes a session over from the node that holds it; resolves once it let go, or after `ms`. */
  takeOver(sessionId: string, holder: string, ms: number, claim: number): Promise<void>;
  /**
   * Applies what came for a session while it was being taken over (behind its welcome); with
   * `drop`, forgets it (a connection closed at once takes none of it).
   */
  arrived(client: AnyClient, drop?: boolean): void;
  /**
   * Runs a join or leave of the connection itself behind the `wss.client(id)` changes of its
   * session this node made before and that still wait for the store; at once when none does.
   */
  inTurn(sessionId: string, change: () => Promise<void>): Promise<void>;
}

/** Where a new connection is announced: the server's `connection` event. */
export interface ConnectionEvents<Identity, Data extends object> {
  emit(event: 'connection', client: Client<Identity, Data>, request: IncomingMessage): boolean;
}

/** What the connections of a node use of the node. */
export interface ConnectionParts {
  readonly mesh: NodeMesh;
  readonly sessions: Sessions;
  readonly rooms: RoomRegistry<AnyClient>;
  readonly presence: PresenceService | undefined;
  readonly membership: Membership;
  readonly takeovers: Takeovers;
  readonly traffic: Traffic;
  readonly reporter: Reporter;
  /** Where new raw clients get their ids (the direct router: the id names the node). */
  readonly ids: { newClientId(): string };
}

/**
 * The connections this node holds: the registry by id, the handlers every socket shares, writes
 * gathered per tick (corking), the slow-consumer policy, the rate limit on what clients send, and
 * the ping heartbeat that ends connections whose peer went silent. A `wscale.v1` connection goes
 * to the endpoint, which it serves as its node; its session is saved by the saver.
 */
export class Connections<Identity, Data extends object>
  implements ClientHost, Door<Identity>, V1Node
{
  /** The `wscale.v1` endpoint of the node's connections. */
  readonly v1: V1Endpoint;
  /** Saves the sessions of the node's `wscale.v1` connections. */
  readonly saver: SessionSaver<V1Client>;
  /** Messages dropped for slow consumers, and slow consumers closed. */
  readonly counters = { dropped: 0, slowConsumersClosed: 0 };
  // Plain fields, not getters: every write to a client reads them.
  readonly maxBufferedBytes: number;
  readonly maxOpsPerSecond: number;
  readonly traffic: Traffic;
  /** Compresses messages for the sockets that negotiated permessage-deflate, if the node does. */
  readonly deflater: FrameDeflater | undefined;
  readonly #clients: Map<string, Connection<Identity, Data>>;
  readonly #settings: ConnectionSettings;
  readonly #parts: ConnectionParts;
  readonly #events: ConnectionEvents<Identity, Data>;
  readonly #corked: Duplex[] = [];
  /** Connections whose socket is not closed yet. */
  #open = 0;
  #heartbeat: NodeJS.Timeout | undefined;

  constructor(
    /** The registry, shared with those that must know whether a client is still here. */
    clients: Map<string, Connection<Identity, Data>>,
    settings: ConnectionSettings,
    parts: ConnectionParts,
    events: ConnectionEvents<Identity, Data>,
  ) {
    this.#clients = clients;
    this.#settings = settings;
    this.#parts = parts;
    this.#events = events;
    this.maxBufferedBytes = settings.maxBufferedBytes;
    this.maxOpsPerSecond = settings.maxOpsPerSecond;
    this.traffic = parts.traffic;
    const deflate = settings.perMessageDeflate;
    this.deflater = deflate && new FrameDeflater(deflate.threshold, deflate.level);
    const { sessions, membership, presence, traffic, reporter } = parts;
    this.v1 = new V1Endpoint({
      node: this,
      settings,
      sessions,
      membership,
      presence,
      traffic,
      log: reporter.log,
      violation: reporter.violation,
    });
    this.saver = new SessionSaver(sessions, clients, this.v1, settings, reporter);
  }

  get nodeId(): string {
    return this.#parts.mesh.nodeId;
  }

  alive(nodeId: string): boolean {
    return nodeId === this.nodeId || this.#parts.mesh.isAlive(nodeId);
  }

  kick(sessionId: string, claim?: number): boolean {
    return this.#parts.takeovers.kick(sessionId, claim);
  }

  takeOver(sessionId: string, holder: string, ms: number, claim: number): Promise<void> {
    return this.#parts.takeovers.takeOver(sessionId, holder, ms, claim);
  }

  /** Registers the connection of an opened `wscale.v1` session. */
  register(session: OpenedSession, ws: WebSocket, socket: Duplex, identity: unknown): AnyClient {
    const data = session.record?.data as Data | undefined;
    const client = this.#add(session.id, ws, socket, identity as Identity, true, data);
    client.conn = session.conn;
    client.openedAt = Date.now();
    client.claim = session.claim;
    client.owner = session.owner;
    if (session.reason === 'unavailable') client.sessionUnavailable = true;
    return client;
  }

  arrived(client: AnyClient, drop?: boolean): void {
    this.#parts.takeovers.arrived(client, drop);
  }

  connected(client: AnyClient, request: IncomingMessage): void {
    // The endpoint hands back the connection it registered here, with this node's types.
    this.#events.emit('connection', client as Connection<Identity, Data>, request);
  }

  save(client: AnyClient): Promise<void> {
    return this.saver.save(client);
  }

  closedAtOnce(client: AnyClient, close: [code: number, reason: string]): void {
    // Answered by the client (its close frame came back with the code): it was told.
    const unanswered = new Promise<typeof close | undefined>((resolve) => {
      client.once('close', (code) => resolve(code === close[0] ? undefined : close));
    });
    this.saver.saveUnopened(client, unanswered);
  }

  markClosed(id: string, conn: string, kept: KeptOnClose): void {
    this.saver.markClosed(id, conn, kept);
  }

  limited(limit: 'rooms' | 'inFlight' | 'replay'): void {
    this.#parts.reporter.limit(limit);
  }

  report(error: unknown): void {
    this.#parts.reporter.report(error);
  }

  /**
   * Connections open, and `wscale.v1` ones waiting for their `welcome`. Those taken over by a
   * resume count until their socket is closed: a client resuming again and again holds a socket
   * each time until it answers the close.
   */
  get count(): number {
    return this.#open + this.v1.opening;
  }

  /** Messages compressed once for every socket they went to. */
  get compressed(): number {
    return this.deflater?.compressed ?? 0;
  }

  /** Room memberships of the clients (a client in three rooms counts three). */
  get subscriptions(): number {
    let subscriptions = 0;
    for (const client of this.#clients.values()) {
      for (const room of client.roomList) if (!isInbox(room)) subscriptions++;
    }
    return subscriptions;
  }

  /** Starts pinging clients (with `heartbeatIntervalMs`). */
  start(): void {
    const ms = this.#settings.heartbeatIntervalMs;
    if (ms <= 0) return;
    this.#heartbeat = setInterval(() => {
      for (const client of this.#clients.values()) client.heartbeat();
    }, ms);
    this.#heartbeat.unref();
  }

  admit(ws: WebSocket, socket: Duplex, request: IncomingMessage, identity: Identity): void {
    // From here to its end, a socket's errors (a bad frame, a reset) come as `error` events.
    ws.on('error', this.#socketEvents.error);
    if (ws.protocol === PROTOCOL) {
      this.v1.accept(ws, socket, request, identity);
      return;
    }
    const id = this.#parts.ids.newClientId();
    const client = this.#add(id, ws, socket, identity, false);
    this.listen(ws);
    this.#events.emit('connection', client, request);
  }

  /** Adds a connection to the registry; its frames are taken from {@link listen} on. */
  #add(
    id: string,
    ws: WebSocket,
    socket: Duplex,
    identity: Identity,
    v1: boolean,
    data?: Data,
  ): Connection<Identity, Data> {
    const client = new Connection<Identity, Data>(id, identity, ws, socket, this, v1, data);
    this.#clients.set(id, client);
    this.#open++;
    // One set of handler functions for every socket (not four closures per client): the socket
    // is `this` in them, and names its client.
    (ws as NodeSocket)[CLIENT] = client;
    ws.on('close', this.#socketEvents.close);
    return client;
  }

  /** Starts taking the frames of a registered client's socket. */
  listen(ws: WebSocket): void {
    ws.on('message', this.#socketEvents.message);
  }

  /** One frame from a client, within its rate limit. */
  frame(client: AnyClient, frame: Buffer, isBinary: boolean): void {
    if (!client.open) return;
    client.markAlive();
    const traffic = this.#parts.traffic;
    traffic.messagesIn++;
    traffic.bytesIn += frame.length;
    if (!client.takeOp()) {
      this.rateExceeded(client);
      return;
    }
    if (client.v1) this.v1.receive(client, frame, isBinary);
    else client.receive(isBinary ? frame : receivedText(frame), isBinary);
  }

  rateExceeded(client: AnyClient): void {
    this.#parts.reporter.limit('rate', { client: client.id });
    client.shut(CloseCode.PolicyViolation, 'rate limit');
    // What a flood already put in the socket is not read (and parsed) any more; the close frame
    // still goes out, and the socket ends after `closeTimeoutMs`.
    client.stopReading();
  }

  /**
   * Closes every connection with `code` (after `timeoutMs`, ends those still open) and resolves
   * when all of them are closed.
   */
  async closeAll(code: number, reason: string, timeoutMs: number): Promise<void> {
    clearInterval(this.#heartbeat);
    const clients = [...this.#clients.values()];
    const closed = clients.map(
      (client) => new Promise<void>((resolve) => client.once('close', () => resolve())),
    );
    const v1 = this.v1;
    v1.closeOpening(code, reason);
    for (const client of clients) client.shut(code, reason);
    const timer = setTimeout(() => {
      for (const client of clients) client.terminate();
      v1.terminateOpening();
    }, timeoutMs);
    await Promise.all(closed);
    clearTimeout(timer);
  }

  join(client: AnyClient, room: string): Promise<void> {
    return this.#inTurn(client, () => this.joinNow(client, room));
  }

  leave(client: AnyClient, room: string): Promise<void> {
    return this.#inTurn(client, () => this.leaveNow(client, room));
  }

  /**
   * Joins `room` now: behind the joins and leaves of the room under way, not behind the session's
   * changes waiting for the store (it is one of them, or none waits). With `from`, the position
   * of the room when the join was made (elsewhere): the client is replayed what came since.
   */
  joinNow(client: AnyClient, room: string, from?: HistoryPosition): Promise<void> {
    try {
      checkName(room, 'room');
      if (client.v1) checkSessionRoom(room);
    } catch (error) {
      return Promise.reject(error);
    }
    const { membership } = this.#parts;
    return membership.inOrder(client, room, async () => {
      await membership.join(client, room, from);
    });
  }

  /** Leaves `room` now, as {@link joinNow} joins. */
  leaveNow(client: AnyClient, room: string): Promise<void> {
    try {
      checkName(room, 'room');
    } catch (error) {
      return Promise.reject(error);
    }
    const { membership } = this.#parts;
    return membership.inOrder(client, room, () => membership.leave(client, room));
  }

  #inTurn(client: AnyClient, change: () => Promise<void>): Promise<void> {
    return this.#parts.reporter.sends.track(this.#parts.takeovers.inTurn(client.id, change));
  }

  dataChanged(client: AnyClient): Promise<void> {
    return this.saver.save(client);
  }

  get handlers(): Pending {
    return this.#parts.reporter.handlers;
  }

  handlerFailed(error: unknown): void {
    this.#parts.reporter.report(new HandlerError('client event', error));
  }

  cork(socket: Duplex): void {
    if (socket.writableCorked > 0) {
      // A socket holding a lot already goes out now: what one tick holds stays bounded.
      if (socket.writableLength >= CORK_LIMIT) socket.uncork();
      return;
    }
    socket.cork();
    if (this.#corked.push(socket) === 1) process.nextTick(this.#uncork);
  }

  slowConsumer(client: AnyClient, message: Outgoing | undefined): void {
    if (message !== undefined && (message.volatile || this.#settings.slowConsumer === 'drop')) {
      client.countDropped(message);
      this.counters.dropped++;
      if (message.volatile) this.#parts.traffic.droppedVolatile++;
      return;
    }
    if (!client.open) return;
    this.counters.slowConsumersClosed++;
    this.#parts.reporter.slowConsumer(client.id);
    // Nothing more is written once it is closing; ws ends it if the close frame goes unread.
    client.shut(CloseCode.TryAgainLater, 'send buffer full');
  }

  readonly #uncork = (): void => {
    // Emptied in place, not spliced: no copy of the list per tick, and the array keeps its room.
    const corked = this.#corked;
    try {
      for (let i = 0; i < corked.length; i++) corked[i]!.uncork();
    } finally {
      corked.length = 0;
    }
  };

  #closed(client: AnyClient, code: number, reason: Buffer): void {
    this.#open--;
    const { presence, rooms, reporter } = this.#parts;
    if (client.v1) {
      this.v1.forget(client);
      this.saver.saveClosed(client, code);
    }
    presence?.closed(client, client.roomList, code);
    if (this.#clients.get(client.id) === client) this.#clients.delete(client.id);
    rooms.leaveAll(client).catch(reporter.report);
    client.emit('close', code, reason.toString('utf8'));
    client.removeAllListeners();
  }

  readonly #socketEvents = ((connections) => ({
    message(this: NodeSocket, frame: Buffer, isBinary: boolean) {
      connections.frame(this[CLIENT]!, frame, isBinary);
    },
    error(this: NodeSocket, error: Error) {
      // `ws` refused a frame (RFC 6455, or a limit) and closes the socket with its code.
      const client = this[CLIENT];
      connections.#parts.reporter.violation(wsCloseCode(error), {
        client: client?.id,
        reason: error.message,
      });
      // A socket still opening has no client yet: there is nobody to tell.
      client?.emit('error', error);
    },
    close(this: NodeSocket, code: number, reason: Buffer) {
      connections.#closed(this[CLIENT]!, code, reason);
    },
  }))(this);
}

/**
 * The close code `ws` ends a socket with for a frame it refused: kept on its error under a symbol
 * of its own (1002 when there is none).
 */
function wsCloseCode(error: Error): number {
  const key = Object.getOwnPropertySymbols(error).find((s) => s.description === 'status-code');
  const code = key === undefined ? undefined : (error as unknown as Record<symbol, unknown>)[key];
  return typeof code === 'number' ? code : CloseCode.ProtocolError;
}

/** Bytes a socket may gather within one tick before they are written anyway. */
const CORK_LIMIT = 64 * 1024;
