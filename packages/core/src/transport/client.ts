import { Buffer } from 'node:buffer';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { EventEmitter } from 'eventemitter3';
import { WebSocket } from 'ws';
import type { ResumeInfo } from '../ops/node-stats.js';
import type { Traffic } from '../ops/traffic.js';
import { CloseCode } from '../protocol/close-codes.js';
import type { FrameDeflater } from '../protocol/deflate.js';
import { isInbox } from '../protocol/messages.js';
import { type Outgoing, OutKind } from '../protocol/outgoing.js';
import { prepareMessage, type Sendable, type SendOptions } from '../protocol/payload.js';
import { resyncFrame } from '../protocol/v1-writer.js';
import { checkClose } from '../util/arguments.js';
import { closeReason } from '../util/close-reason.js';
import type { Pending } from '../util/pending.js';
import { handlersOf, SafeEmitter } from '../util/safe-emitter.js';
import { type MessageInfo, UNNUMBERED } from '../v1/upstream.js';
import { FrameQueue } from './frame-queue.js';

/** Events of a {@link Client}. */
export interface ClientEvents {
  /**
   * A message from the client: text arrives as a string, binary as a Buffer. `info` gives
   * `wscale.v1` messages a stable id and says whether one may have been handled before.
   */
  message: [data: string | Buffer, isBinary: boolean, info: MessageInfo];
  /** The connection closed (for any reason, including a heartbeat timeout: 1006). */
  close: [code: number, reason: string];
  /** A protocol error on the connection (the connection is closed by then). */
  error: [error: Error];
}

/**
 * One connection held by this node, as the application sees it. `data` is the application's own
 * per-client state.
 *
 * @typeParam Identity - what the `authenticate` hook returned for this client
 * @typeParam Data - the shape of {@link Client.data}
 */
export interface Client<Identity = unknown, Data extends object = Record<string, unknown>>
  extends EventEmitter<ClientEvents> {
  /** Stable id, unique in the cluster. */
  readonly id: string;
  /** What the `authenticate` hook returned (`true` when there is no hook). */
  readonly identity: Identity;
  /** Whether the client speaks `wscale.v1` (else it is a raw WebSocket client). */
  readonly v1: boolean;
  /**
   * The application's per-client state, `{}` on a new session. For `wscale.v1` clients it is part
   * of the session and survives reconnects: assign a new object (or call {@link Client.saveData}
   * after changing it in place) and it is saved to the state store at once, as JSON: a resumed
   * session's `data` is what `JSON.parse(JSON.stringify(data))` gives (a `Date` comes back a
   * string, a `Map` or `Set` an empty object), and data JSON cannot encode (a `BigInt`, a cycle) is
   * not saved (an `InvalidArgumentError` is emitted as the server's `error`).
   */
  data: Data;
  /**
   * Saves `data` after it was changed in place (`wscale.v1` sessions). Resolves once the state
   * store has it (a failed save is emitted as the server's `error` and resolves too): await it
   * before acknowledging something that must survive this node.
   */
  saveData(): Promise<void>;
  /** Whether this `wscale.v1` connection resumed an existing session (rooms and `data` restored). */
  readonly resumed: boolean;
  /**
   * Whether this `wscale.v1` connection continues a session the state store could not be read for
   * (its `welcome` said `reason: "unavailable"`): the session lives on in the store, but its rooms
   * and `data` are not restored here. Once the store answers, the connection is closed with 1012
   * and the client resumes with them, replayed what its rooms missed. A room joined on this
   * connection goes on from the join instead (the client gets a `resync` if that skipped
   * messages): a `connection` handler that joins new clients to rooms should skip it, as it skips
   * `resumed` ones.
   */
  readonly sessionUnavailable: boolean;
  /** For a resumed client: per room, whether what it missed while away was replayed. */
  readonly recovery: ResumeInfo | undefined;
  /**
   * Listens for an event. Messages the client sent before the first `message` listener was
   * attached are kept and handed to it, in order, so a `connection` handler may await (a join, a
   * lookup) before it listens without losing what the client sent meanwhile.
   */
  on<T extends EventEmitter.EventNames<ClientEvents>>(
    event: T,
    listener: EventEmitter.EventListener<ClientEvents, T>,
  ): this;
  /** Rooms this client is in (a snapshot). */
  readonly rooms: ReadonlySet<string>;
  /** Whether the client is in a room. */
  inRoom(room: string): boolean;
  /** Messages dropped for this client because it could not keep up. */
  readonly dropped: number;
  /** Whether the connection is open. */
  readonly open: boolean;
  /**
   * Bytes on their way to this client: those in its socket's send buffer, and the frames held back
   * while its session resumes. Exactly what `maxBufferedBytes` is compared with: a message is
   * written while this is below it, and dropped (or the client closed) once it is not.
   */
  readonly bufferedAmount: number;
  /** The negotiated subprotocol, or `''`. */
  readonly protocol: string;
  /**
   * Sends a message to this client: a string as a text frame, bytes as a binary frame.
   * @returns `false` when the message was not written (closed, or dropped as a slow consumer).
   */
  send(data: Sendable, options?: SendOptions): boolean;
  /**
   * Joins a room; resolves once broadcasts to it from every node reach this client and, for a
   * `wscale.v1` client, its session is saved with the room. Joins and leaves of one room, the
   * application's and the client's own, run in the order asked: the last one decides. On a
   * connection that is over (it closed, or its session was resumed on another connection), it
   * does nothing and resolves, as `leave` and `saveData` do: to reach a session wherever it is
   * now, use the server's `client(id)`.
   */
  join(room: string): Promise<void>;
  /** Leaves a room. */
  leave(room: string): Promise<void>;
  /**
   * Closes the connection with a close code and a reason (cut to the 123 bytes a frame holds). A
   * `wscale.v1` client that does not answer the close (its connection gone without this node
   * knowing yet) is closed with it again when it resumes, on any node.
   */
  close(code?: number, reason?: string): void;
  /** Ends the connection at once, without a closing handshake. */
  terminate(): void;
}

/** Any connection, whatever its identity and data types: what the server's internals handle. */
export type AnyClient = Connection<unknown, object>;

/** What a connection needs from the node that holds it. */
export interface ClientHost {
  join(client: AnyClient, room: string): Promise<void>;
  leave(client: AnyClient, room: string): Promise<void>;
  /** Holds the socket's writes until the end of this tick, so they go out together. */
  cork(socket: Duplex): void;
  /**
   * The client's send buffer is full: `message` is the application message that did not fit,
   * or `undefined` for a protocol frame (which is never dropped).
   */
  slowConsumer(client: AnyClient, message: Outgoing | undefined): void;
  handlerFailed(error: unknown, client: AnyClient): void;
  /** What the application's handlers still do: closing waits for it. */
  readonly handlers: Pending;
  /** The client's `data` was replaced: its session must be saved. */
  dataChanged(client: AnyClient): Promise<void>;
  readonly maxBufferedBytes: number;
  readonly maxOpsPerSecond: number;
  /** The client sent more than `maxOpsPerSecond` allows: it is closed with 1008, counted. */
  rateExceeded(client: AnyClient): void;
  /** The node's counters of what it writes. */
  readonly traffic: Traffic;
  /** Compresses messages for the sockets that negotiated permessage-deflate, if the node does. */
  readonly deflater: FrameDeflater | undefined;
}

/** Fields few clients ever use, kept apart so that every client stays small. */
interface Rare {
  dropped: number;
  conn?: string;
  /** When its session's connection opened here (Date.now()). */
  openedAt?: number;
  /** Its claim of its session's record (see `SessionRecord.claim`). */
  claim?: number;
  /** Whether it continues a session the state store could not be read for. */
  unavailable?: boolean;
  /** The application's close of it, made again on its session's resume until answered. */
  closedWith?: [code: number, reason: string];
  /** Its session's owner, as `sessionOwner` said when the session opened. */
  owner?: string;
  /** Frames waiting for the socket to drain: it is backed up (see {@link FrameQueue}). */
  backlog?: FrameQueue;
  /** Frames held back: while its session opens, or while a join or leave is being saved. */
  held?: Buffer[];
  heldBytes?: number;
  /** Whether the held frames wait for the welcome ({@link Connection.release}). */
  welcomeDue?: boolean;
  /** Joins and leaves whose session save the held frames wait for. */
  pauses?: number;
  /** Joins and requests waiting for their `ack`. */
  inFlight?: number;
  /** Rooms the client joined by its own `join`: authorized again when it resumes. */
  own?: string[];
  /** History rooms a message was dropped from: the client gets a `resync` before the next one. */
  gaps?: Set<string>;
  recovery?: ResumeInfo;
  /** Messages that arrived before the application listened for them. */
  inbox?: [data: string | Buffer, isBinary: boolean, info: MessageInfo][];
  /** Their lengths, added up. */
  inboxBytes?: number;
  /** Heartbeat rounds in a row that found a message still arriving, none completed meanwhile. */
  arriving?: number;
}

/**
 * Messages kept for the application until it attaches a `message` listener (for example while a
 * `connection` handler awaits a join). An application that never listens gets none of them, as
 * before; the bound keeps such a client from growing the node's memory. A `wscale.v1` client's
 * numbered message past it is not taken (see {@link Connection.inboxFull}).
 */
const INBOX_LIMIT = 256;
/** ...and at most this many bytes of them (a message's length: bytes, or characters of a text). */
const INBOX_BYTES = 4 * 1024 * 1024;

/** How many seconds' worth of operations a client may send at once (its rate bucket's size). */
const BURST_SECONDS = 2;

const NO_ROOMS: ReadonlySet<string> = new Set();

const NO_ROOM_LIST: readonly string[] = [];

/** An empty ping, as a server sends it (FIN, opcode 9, unmasked, no payload). */
const PING_FRAME = Buffer.from([0x89, 0x00]);

/** {@link Connection.heartbeat}'s mark of a peer that completed a message since the last round. */
const ALIVE = -1;
/** Its mark of a peer that sent a ping or pong since the last round, and no message. */
const ANSWERED = -3;
/**
 * Heartbeat rounds one message may take to arrive: a message still coming at this many rounds in
 * a row, none completed meanwhile, ends the connection. Bytes trickled into a message are a sign
 * of life, but not for ever: a client held its partial frame (up to `maxPayload`) at a byte every
 * few seconds, and every such connection kept some 2 MB of the node's memory as long as it liked.
 */
const MAX_ARRIVING_ROUNDS = 4;

/** What {@link Connection.heartbeat} reads of a `ws` socket's frame parser. */
interface ParserState {
  /** Bytes of the message being received so far, its frames' lengths as announced. */
  _totalPayloadLength: number;
  /** Bytes read and not parsed yet: a frame's start. */
  _bufferedBytes: number;
}

/** What a socket that does not count the bytes it read reads at every heartbeat. */
const UNCOUNTED = -2;

/** The bytes a socket read, modulo 2^30 (a small integer: no number allocated), or UNCOUNTED. */
function bytesRead(socket: Duplex): number {
  const read = (socket as Partial<Socket>).bytesRead;
  return typeof read === 'number' ? read % 2 ** 30 : UNCOUNTED;
}

/**
 * One connection held by this node: the {@link Client} the application sees, and what the node
 * does with it (writes, the send-buffer budget, rooms, rate limit, liveness). No second object
 * per connection: the application gets this one, typed as its public face.
 */
export class Connection<Identity = unknown, Data extends object = Record<string, unknown>>
  extends SafeEmitter<ClientEvents>
  implements Client<Identity, Data>
{
  static {
    handlersOf(Connection, {
      failed: (connection, error) => connection.#host.handlerFailed(error, connection),
      running: (connection, work) => connection.#host.handlers.track(work),
    });
  }

  /** Stable id, unique in the cluster. */
  readonly id: string;
  /** What the `authenticate` hook returned (`true` when there is no hook). */
  readonly identity: Identity;
  /** Whether the client speaks `wscale.v1` (else it is a raw WebSocket client). */
  readonly v1: boolean;
  readonly #ws: WebSocket;
  readonly #socket: Duplex;
  readonly #host: ClientHost;
  /** Set when the socket negotiated permessage-deflate: messages are written compressed. */
  readonly #deflater: FrameDeflater | undefined;
  #data: Data | undefined;
  /**
   * Rooms joined: the room itself while there is one (most clients), an array from the second on
   * (a client is in few rooms, and a Set costs far more memory).
   */
  #rooms: string | string[] | undefined;
  #rare: Rare | undefined;
  /**
   * What the socket had read at the last heartbeat (see {@link Connection.heartbeat}), or
   * {@link ALIVE} once the peer showed a sign of life since.
   */
  #seen = ALIVE;
  /** The rate limit's token bucket, from the client's first operation on (idle clients have none). */
  #bucket: { tokens: number; filledAt: number } | undefined;

  constructor(
    id: string,
    identity: Identity,
    ws: WebSocket,
    socket: Duplex,
    host: ClientHost,
    v1: boolean,
    data?: Data,
  ) {
    super();
    this.id = id;
    this.identity = identity;
    this.v1 = v1;
    this.#ws = ws;
    this.#socket = socket;
    this.#host = host;
    this.#deflater = ws.extensions === '' ? undefined : host.deflater;
    this.#data = data;
  }

  /**
   * The application's per-client state, `{}` on a new session. For `wscale.v1` clients it is part
   * of the session and survives reconnects: assign a new object (or call {@link Client.saveData}
   * after changing it in place) and it is saved to the state store at once, as JSON: a resumed
   * session's `data` is what `JSON.parse(JSON.stringify(data))` gives (a `Date` comes back a
   * string, a `Map` or `Set` an empty object), and data JSON cannot encode (a `BigInt`, a cycle) is
   * not saved (an `InvalidArgumentError` is emitted as the server's `error`).
   */
  get data(): Data {
    this.#data ??= {} as Data;
    return this.#data;
  }

  set data(data: Data) {
    this.#data = data;
    void this.#host.dataChanged(this);
  }

  /**
   * Saves `data` after it was changed in place (`wscale.v1` sessions). Resolves once the state
   * store has it (a failed save is emitted as the server's `error` and resolves too): await it
   * before acknowledging something that must survive this node.
   */
  saveData(): Promise<void> {
    return this.#host.dataChanged(this);
  }

  /** Whether this `wscale.v1` connection resumed an existing session (rooms and `data` restored). */
  get resumed(): boolean {
    return this.#rare?.recovery !== undefined;
  }

  /**
   * Whether this `wscale.v1` connection continues a session the state store could not be read for
   * (its `welcome` said `reason: "unavailable"`): the session lives on in the store, but its rooms
   * and `data` are not restored here. Once the store answers, the connection is closed with 1012
   * and the client resumes with them, replayed what its rooms missed. A room joined on this
   * connection goes on from the join instead (the client gets a `resync` if that skipped
   * messages): a `connection` handler that joins new clients to rooms should skip it, as it skips
   * `resumed` ones.
   */
  get sessionUnavailable(): boolean {
    return this.#rare?.unavailable === true;
  }

  set sessionUnavailable(unavailable: boolean) {
    this.#rareState().unavailable = unavailable;
  }

  /** For a resumed client: per room, whether what it missed while away was replayed. */
  get recovery(): ResumeInfo | undefined {
    return this.#rare?.recovery;
  }

  /** Marks the client as the resumption of a session. */
  set recovery(info: ResumeInfo | undefined) {
    this.#rareState().recovery = info;
  }

  /**
   * Listens for an event. Messages the client sent before the first `message` listener was
   * attached are kept and handed to it, in order, so a `connection` handler may await (a join, a
   * lookup) before it listens without losing what the client sent meanwhile.
   */
  override on<T extends EventEmitter.EventNames<ClientEvents>>(
    event: T,
    listener: EventEmitter.EventListener<ClientEvents, T>,
  ): this {
    super.on(event, listener);
    if (event === 'message' && this.#rare?.inbox !== undefined) {
      queueMicrotask(() => this.#flushInbox());
    }
    return this;
  }

  /**
   * Whether a message now would be past what is kept for a `message` listener still to come: the
   * node then closes a `wscale.v1` connection (1013) instead of acknowledging a message it would
   * drop, and the client sends it again on its next connection.
   */
  get inboxFull(): boolean {
    const rare = this.#rare;
    return (rare?.inbox?.length ?? 0) >= INBOX_LIMIT || (rare?.inboxBytes ?? 0) >= INBOX_BYTES;
  }

  /** A message from the peer, for the application. */
  receive(data: string | Buffer, isBinary: boolean, info: MessageInfo = UNNUMBERED): void {
    const inbox = this.#rare?.inbox;
    if (inbox === undefined && this.listenerCount('message') > 0) {
      this.emit('message', data, isBinary, info);
      return;
    }
    if (this.inboxFull) return;
    const rare = this.#rareState();
    rare.inbox ??= [];
    rare.inbox.push([data, isBinary, info]);
    rare.inboxBytes = (rare.inboxBytes ?? 0) + data.length;
  }

  #flushInbox(): void {
    const inbox = this.#rare?.inbox;
    if (inbox === undefined || this.listenerCount('message') === 0) return;
    this.#rare!.inbox = undefined;
    this.#rare!.inboxBytes = undefined;
    for (const [data, isBinary, info] of inbox) this.emit('message', data, isBinary, info);
  }

  /** Rooms this client is in (a snapshot). */
  get rooms(): ReadonlySet<string> {
    // The session's stream of direct messages is the server's own, not a room of the application.
    return this.#rooms === undefined
      ? NO_ROOMS
      : new Set(this.roomList.filter((room) => !isInbox(room)));
  }

  /** Whether the client is in a room. */
  inRoom(room: string): boolean {
    const rooms = this.#rooms;
    return typeof rooms === 'string' ? rooms === room : (rooms?.includes(room) ?? false);
  }

  /** The rooms (an array made for the call when the client is in one room). */
  get roomList(): readonly string[] {
    const rooms = this.#rooms;
    return typeof rooms === 'string' ? [rooms] : (rooms ?? NO_ROOM_LIST);
  }

  /** Messages dropped for this client because it could not keep up. */
  get dropped(): number {
    return this.#rare?.dropped ?? 0;
  }

  /** Whether the connection is open. */
  get open(): boolean {
    return this.#ws.readyState === WebSocket.OPEN;
  }

  /** Bytes on their way to this client: what the send-buffer budget counts. */
  get bufferedAmount(): number {
    return this.#queuedBytes();
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
    return this.deliver(prepareMessage(data, options), OutKind.Direct);
  }

  /**
   * Joins a room; resolves once broadcasts to it from every node reach this client and, for a
   * `wscale.v1` client, its session is saved with the room.
   */
  join(room: string): Promise<void> {
    return this.#host.join(this, room);
  }

  /** Leaves a room. */
  leave(room: string): Promise<void> {
    return this.#host.leave(this, room);
  }

  /**
   * Closes the connection with a close code and a reason (cut to the 123 bytes a frame holds). A
   * `wscale.v1` client that does not answer the close (its connection gone without this node
   * knowing yet) is closed with it again when it resumes, on any node.
   */
  close(code: number = CloseCode.Normal, reason = ''): void {
    checkClose(code, reason);
    const cut = closeReason(reason);
    if (
      this.v1 &&
      this.#ws.readyState !== WebSocket.CLOSED &&
      this.#rare?.closedWith === undefined
    ) {
      this.#rareState().closedWith = [code, cut];
      // Into the session's record at once: a node killed before the client answers has it there.
      void this.#host.dataChanged(this);
    }
    this.#writeBacklog(this.#rare);
    this.#ws.close(code, cut);
  }

  /**
   * Closes the connection for the server's own reason (a drain, a takeover, a limit, a protocol
   * error): made once, not again on a resume.
   */
  shut(code: number, reason: string): void {
    this.#writeBacklog(this.#rare);
    this.#ws.close(code, closeReason(reason));
  }

  /**
   * The application's close of this connection, unless the client answered it: `answer` is the
   * code its close frame came back with once the socket ended (1006 when it ended without one);
   * before, the code of the close frame it sent, if one came.
   */
  unansweredClose(answer = this.#closeAnswer()): [code: number, reason: string] | undefined {
    const made = this.#rare?.closedWith;
    return made === undefined || made[0] === answer ? undefined : made;
  }

  /**
   * The code of the close frame the peer sent, while the socket is still ending (`ws` says so
   * only with the socket's `close` event, and keeps it on itself meanwhile).
   */
  #closeAnswer(): number | undefined {
    const ws = this.#ws as unknown as { _closeFrameReceived?: boolean; _closeCode?: number };
    return ws._closeFrameReceived === true ? ws._closeCode : undefined;
  }

  /** Ends the connection at once, without a closing handshake. */
  terminate(): void {
    this.#ws.terminate();
  }

  /** Reads nothing more from the socket (it is being closed for what it sent). */
  stopReading(): void {
    this.#ws.pause();
  }

  /** Writes a message framed once per node; the fan-out hot path. */
  deliver(message: Outgoing, kind: OutKind = message.kind): boolean {
    const ws = this.#ws;
    if (ws.readyState !== WebSocket.OPEN || message.skip?.has(this.id)) return false;
    if (this.#queuedBytes() >= this.#host.maxBufferedBytes) {
      this.#host.slowConsumer(this, message);
      return false;
    }
    if (!this.v1) {
      this.#count(message.rawFrame(this.#deflater), kind);
      return true;
    }
    const gaps = this.#rare?.gaps;
    const { room, offset } = message;
    if (gaps !== undefined && room !== undefined && offset !== undefined && gaps.delete(room)) {
      this.#count(
        resyncFrame(room, { offset: offset - 1, epoch: message.epoch! }),
        OutKind.Control,
      );
    }
    this.#count(message.envelopeFrame(this.#deflater), kind);
    return true;
  }

  /**
   * Writes one complete protocol frame, within the send-buffer budget: a frame that
   * does not fit makes the client a slow consumer instead.
   */
  writeFrame(frame: Buffer, kind: OutKind = OutKind.Control): boolean {
    if (this.#ws.readyState !== WebSocket.OPEN) return false;
    if (this.#queuedBytes() >= this.#host.maxBufferedBytes) {
      this.#host.slowConsumer(this, undefined);
      return false;
    }
    this.#count(frame, kind);
    return true;
  }

  /** Writes a frame and counts it (once: a held frame is counted when it is held). */
  #count(frame: Buffer, kind: OutKind): void {
    this.#write(frame);
    this.#host.traffic.out(kind, frame.length);
  }

  /**
   * Bytes on their way to the client: in the socket's buffer, waiting for it to drain, and held
   * during a resume. Read from the socket itself, not `ws.bufferedAmount`: that adds what `ws`'s
   * sender queues while it compresses a `ws.send()`, which wscale never calls, and reaching its
   * sender costs the fan-out a memory access per recipient that nothing else needs.
   */
  #queuedBytes(): number {
    const rare = this.#rare;
    const socket = this.#socket.writableLength;
    return rare === undefined
      ? socket
      : socket + (rare.heldBytes ?? 0) + (rare.backlog?.bytes ?? 0);
  }

  #write(frame: Buffer): void {
    const rare = this.#rare;
    if (rare !== undefined) {
      if (rare.held !== undefined) {
        rare.held.push(frame);
        rare.heldBytes = (rare.heldBytes ?? 0) + frame.length;
        return;
      }
      if (rare.backlog !== undefined) {
        rare.backlog.add(frame);
        return;
      }
    }
    const socket = this.#socket;
    if (socket.writableNeedDrain) {
      this.#startBacklog().add(frame);
      return;
    }
    this.#host.cork(socket);
    socket.write(frame);
  }

  /**
   * The socket is backed up (a write was refused for its buffer's size): what follows waits in a
   * {@link FrameQueue} until the socket drains, then goes to it in chunks.
   */
  #startBacklog(): FrameQueue {
    const rare = this.#rareState();
    const backlog = new FrameQueue();
    rare.backlog = backlog;
    this.#socket.once('drain', () => {
      if (rare.backlog === backlog) this.#writeBacklog(rare);
    });
    return backlog;
  }

  /**
   * Writes what waits for the socket to drain; before this node's close frame too, which goes after
   * them. Once a close frame went out (`ws` closed the connection itself: the client's close, a
   * protocol error), what waited is dropped: nothing may follow a close frame.
   */
  #writeBacklog(rare: Rare | undefined): void {
    const backlog = rare?.backlog;
    if (backlog === undefined) return;
    rare!.backlog = undefined;
    if (this.#ws.readyState !== WebSocket.OPEN) return;
    for (const chunk of backlog.take()) this.#socket.write(chunk);
  }

  /** Holds every frame back until {@link Connection.release}. */
  hold(): void {
    const rare = this.#rareState();
    rare.held ??= [];
    rare.welcomeDue = true;
  }

  /** Whether its session is still opening: a resume rejoining its rooms, not yet welcomed. */
  get opening(): boolean {
    return this.#rare?.welcomeDue === true;
  }

  /**
   * Writes the welcome and the replay (within the budget), then everything held
   * (counted against the budget when it was held), and stops holding (unless a join or leave
   * being saved holds them on: they go after it).
   */
  release(welcome: Buffer, replay: Buffer[]): void {
    const rare = this.#rare;
    const held = rare?.held;
    const heldBytes = rare?.heldBytes;
    if (rare !== undefined) {
      // The welcome and the replay go past what is held.
      rare.welcomeDue = undefined;
      rare.held = undefined;
      rare.heldBytes = undefined;
    }
    if (!this.writeFrame(welcome)) return;
    for (const frame of replay) if (!this.writeFrame(frame, OutKind.Replay)) return;
    if (rare === undefined || held === undefined) return;
    rare.held = held;
    rare.heldBytes = heldBytes;
    this.#releaseHeld(rare);
  }

  /**
   * Holds every frame back until the function it returns is called, or `ms` passed: a join's
   * `joined` (and what follows it) waits until the session has the room. Several pauses end with
   * the last; a pending welcome still goes first.
   */
  pause(ms: number): () => void {
    const rare = this.#rareState();
    rare.held ??= [];
    rare.pauses = (rare.pauses ?? 0) + 1;
    let paused = true;
    const resume = (): void => {
      if (!paused) return;
      paused = false;
      clearTimeout(timer);
      rare.pauses = rare.pauses! - 1;
      this.#releaseHeld(rare);
    };
    const timer = setTimeout(resume, ms);
    timer.unref();
    return resume;
  }

  /** Writes what is held (counted when it was) once nothing holds it: no welcome due, no pause. */
  #releaseHeld(rare: Rare): void {
    if (rare.welcomeDue || rare.pauses) return;
    const held = rare.held ?? [];
    rare.held = undefined;
    rare.heldBytes = undefined;
    if (this.#ws.readyState !== WebSocket.OPEN) return;
    for (const frame of held) this.#write(frame);
  }

  /**
   * Takes one incoming frame from the client's rate budget (a token bucket holding two
   * seconds' worth); `false` when the budget is spent.
   */
  takeOp(): boolean {
    const rate = this.#host.maxOpsPerSecond;
    // Turned off: no bucket, and no clock read per frame.
    if (rate === Number.POSITIVE_INFINITY) return true;
    const now = Date.now();
    // A bucket starts full: one made at the first operation is the one made at connect, refilled.
    this.#bucket ??= { tokens: BURST_SECONDS * rate, filledAt: now };
    const bucket = this.#bucket;
    bucket.tokens = Math.min(
      BURST_SECONDS * rate,
      bucket.tokens + ((now - bucket.filledAt) * rate) / 1000,
    );
    bucket.filledAt = now;
    if (bucket.tokens < 1) return false;
    bucket.tokens--;
    return true;
  }

  /** Joins and requests of this client waiting for their `ack`. */
  get inFlight(): number {
    return this.#rare?.inFlight ?? 0;
  }

  set inFlight(count: number) {
    this.#rareState().inFlight = count;
  }

  /** Rooms the client is in by its own `join`. */
  get ownRooms(): readonly string[] {
    return this.#rare?.own?.filter((room) => this.inRoom(room)) ?? NO_ROOM_LIST;
  }

  /** Marks a room as joined at the client's own request. */
  markOwn(room: string): void {
    const rare = this.#rareState();
    rare.own ??= [];
    if (!rare.own.includes(room)) rare.own.push(room);
  }

  /** The connection id that holds this client's `wscale.v1` session. */
  get conn(): string | undefined {
    return this.#rare?.conn;
  }

  set conn(conn: string | undefined) {
    this.#rareState().conn = conn;
  }

  /** When the connection of its session opened on this node (`wscale.v1`). */
  get openedAt(): number | undefined {
    return this.#rare?.openedAt;
  }

  set openedAt(at: number | undefined) {
    this.#rareState().openedAt = at;
  }

  /** Its resume's claim of its `wscale.v1` session's record; `undefined` for a new session. */
  get claim(): number | undefined {
    return this.#rare?.claim;
  }

  set claim(claim: number | undefined) {
    this.#rareState().claim = claim;
  }

  /** The owner of this client's `wscale.v1` session, known from its open. */
  get owner(): string | undefined {
    return this.#rare?.owner;
  }

  set owner(owner: string | undefined) {
    this.#rareState().owner = owner;
  }

  /** Counts a message dropped for this slow consumer. */
  countDropped(message: Outgoing): void {
    const rare = this.#rareState();
    rare.dropped++;
    // A gap in a history room must not go unnoticed: the room's next message brings a resync.
    if (this.v1 && message.offset !== undefined && message.room !== undefined) {
      rare.gaps ??= new Set();
      rare.gaps.add(message.room);
    }
  }

  /** Room membership, kept by the server's room registry. */
  addRoom(room: string): void {
    const rooms = this.#rooms;
    if (rooms === undefined) this.#rooms = room;
    else if (typeof rooms === 'object') {
      if (!rooms.includes(room)) rooms.push(room);
    } else if (rooms !== room) {
      // A literal: V8 gives an empty array that is pushed to room for 17 elements.
      this.#rooms = [rooms, room];
    }
  }

  /** Leaves a room in the client's own record (kept by the server's room registry). */
  removeRoom(room: string): void {
    const rooms = this.#rooms;
    if (rooms === room) this.#rooms = undefined;
    else if (typeof rooms === 'object') {
      const index = rooms.indexOf(room);
      if (index !== -1) rooms.splice(index, 1);
    }
    const own = this.#rare?.own;
    if (own?.includes(room)) own.splice(own.indexOf(room), 1);
  }

  /** The fields few connections use, made at the first use. */
  #rareState(): Rare {
    this.#rare ??= { dropped: 0 };
    return this.#rare;
  }

  /** Whether the connection is over (its `close` event was emitted or is due now). */
  get gone(): boolean {
    return this.#ws.readyState === WebSocket.CLOSED;
  }

  /**
   * One heartbeat round: terminate if the peer showed no sign of life since the last round (no
   * byte read, on a socket that counts them; else no pong and no frame), or if a message has been
   * arriving for {@link MAX_ARRIVING_ROUNDS} rounds without completing; else ping.
   */
  heartbeat(): void {
    const read = bytesRead(this.#socket);
    if (read === this.#seen || (this.#seen !== ALIVE && this.#stillArriving())) {
      this.#ws.terminate();
      return;
    }
    if (this.#seen === ALIVE && this.#rare?.arriving !== undefined) this.#rare.arriving = 0;
    this.#seen = read;
    // Written as the data frames are (see `wsFrame`): `ws.ping()` runs code that runs too rarely
    // for V8 to optimize, some 20 000 instructions a client a round more.
    if (this.#ws.readyState === WebSocket.OPEN) this.#socket.write(PING_FRAME);
  }

  /**
   * Whether a message is still arriving, a round more, and has for too many rounds: counted in
   * rounds that completed no message.
   */
  #stillArriving(): boolean {
    const parser = (this.#ws as unknown as { _receiver?: Partial<ParserState> })._receiver;
    const arriving = (parser?._totalPayloadLength ?? 0) > 0 || (parser?._bufferedBytes ?? 0) > 0;
    if (!arriving) {
      if (this.#rare?.arriving !== undefined) this.#rare.arriving = 0;
      return false;
    }
    const rare = this.#rareState();
    rare.arriving = (rare.arriving ?? 0) + 1;
    return rare.arriving >= MAX_ARRIVING_ROUNDS;
  }

  /** A message from the peer came: a sign of life. */
  markAlive(): void {
    this.#seen = ALIVE;
  }

  /** A ping or pong frame came: a sign of life, and one operation of the rate limit. */
  control(): void {
    if (!this.open) return;
    if (this.#seen !== ALIVE) this.#seen = ANSWERED;
    if (!this.takeOp()) this.#host.rateExceeded(this);
  }
}
