import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocket } from 'ws';
import { CloseCode } from '../close-codes.js';
import type { HistoryPosition } from '../contracts.js';
import { HandlerError } from '../errors.js';
import type { JoinOutcome } from '../history/room-stream.js';
import { wsFrame } from '../internal/ws-frame.js';
import { decodeClientFrame, encodeBinary, ProtocolViolation } from '../protocol/codec.js';
import type {
  AckMessage,
  ClientMessage,
  HelloMessage,
  ProtocolErrorCode,
  ServerMessage,
  WelcomeMessage,
  WelcomeRoom,
} from '../protocol/messages.js';
import type { OpenedSession, Sessions, StoredReply, UpstreamRecord } from '../session/sessions.js';
import type { AnyClient } from './client.js';
import type { Awaitable } from './options.js';
import { prepareMessage, type Sendable } from './payload.js';
import { type MessageInfo, ReceiptBatcher, UNNUMBERED, UpstreamLedger } from './upstream.js';

/** What the `wscale.v1` endpoint needs from its server. */
export interface V1Host {
  readonly nodeId: string;
  readonly helloTimeoutMs: number;
  /** How long a `rcv` may wait, so that it covers every frame a client sent meanwhile. */
  readonly receiptDelayMs: number;
  readonly sessions: Sessions;
  owner(identity: unknown): string;
  /** Whether a node (this one or another) is alive. */
  alive(nodeId: string): boolean;
  /** Closes an older connection of the session, wherever it is. */
  kick(sessionId: string): Promise<void>;
  /** Creates and registers the client of an opened session. */
  register(session: OpenedSession, ws: WebSocket, socket: Duplex, identity: unknown): AnyClient;
  join(
    client: AnyClient,
    room: string,
    from?: HistoryPosition,
    announce?: boolean,
  ): Promise<JoinOutcome | undefined>;
  leave(client: AnyClient, room: string): Promise<void>;
  /** Starts sending a room's presence to a client; an error code when refused. */
  watchPresence(client: AnyClient, room: string): ProtocolErrorCode | undefined;
  save(client: AnyClient): void;
  authorizeJoin?: (client: AnyClient, room: string) => Awaitable<boolean>;
  onRequest?: (client: AnyClient, data: string | Buffer, info: MessageInfo) => Awaitable<unknown>;
  /** Hands a client whose session is open (new or resumed) to the application. */
  connected(client: AnyClient, request: IncomingMessage): void;
  report(error: unknown): void;
}

/**
 * The server side of `wscale.v1` (see `docs/protocol.md`): the `hello` that opens or resumes a
 * session, then every operation a client may send.
 */
export class V1Endpoint {
  readonly #host: V1Host;
  /** Connections that have not finished their hello yet. */
  readonly #opening = new Set<WebSocket>();
  /** Each connection's upstream bookkeeping (only clients that number what they send have one). */
  readonly #upstream = new WeakMap<AnyClient, UpstreamLedger>();
  readonly #receipts: ReceiptBatcher<AnyClient>;

  constructor(host: V1Host) {
    this.#host = host;
    this.#receipts = new ReceiptBatcher(host.receiptDelayMs, (client) => {
      const last = this.#upstream.get(client)?.last;
      if (last !== undefined && client.open) send(client, { t: 'rcv', s: last });
    });
  }

  /** What the session record keeps of a client's upstream. */
  upstreamRecord(client: AnyClient): UpstreamRecord | undefined {
    return this.#upstream.get(client)?.record();
  }

  /** Whether the client's upstream changed since its session was last saved. */
  upstreamDirty(client: AnyClient): boolean {
    return this.#upstream.get(client)?.dirty ?? false;
  }

  /** The client went away: no more receipts for it. */
  forget(client: AnyClient): void {
    this.#receipts.forget(client);
  }

  /** Takes a fresh `wscale.v1` connection: waits for its `hello`, then opens its session. */
  accept(ws: WebSocket, socket: Duplex, request: IncomingMessage, identity: unknown): void {
    const timer = setTimeout(
      () => ws.close(CloseCode.PolicyViolation, 'hello expected'),
      this.#host.helloTimeoutMs,
    );
    this.#opening.add(ws);
    const onError = () => undefined;
    const onClose = () => {
      clearTimeout(timer);
      this.#opening.delete(ws);
    };
    const onMessage = (data: Buffer, isBinary: boolean) => {
      clearTimeout(timer);
      ws.off('message', onMessage).off('error', onError);
      const message = this.#decode(ws, data, isBinary)?.message;
      if (message === undefined) return;
      if (message.t !== 'hello') {
        ws.close(CloseCode.PolicyViolation, 'hello expected');
        return;
      }
      // Operations sent right behind the hello wait until the session is open.
      ws.pause();
      this.#open(ws, socket, request, identity, message).catch((error) => {
        this.#host.report(error);
        ws.close(CloseCode.InternalError, 'session could not be opened');
      });
    };
    ws.on('message', onMessage).on('close', onClose).on('error', onError);
  }

  /** Closes the connections still opening (the node is draining). */
  closeOpening(code: number, reason: string): void {
    for (const ws of this.#opening) ws.close(code, reason);
  }

  /** Handles one frame of a client whose session is open. */
  receive(client: AnyClient, data: Buffer, isBinary: boolean): void {
    const decoded = this.#decode(client, data, isBinary);
    if (decoded !== undefined) this.#dispatch(client, decoded.message, decoded.binary);
  }

  async #open(
    ws: WebSocket,
    socket: Duplex,
    request: IncomingMessage,
    identity: unknown,
    hello: HelloMessage,
  ): Promise<void> {
    const host = this.#host;
    const owner = host.owner(identity);
    if (hello.session !== undefined) await this.#handOver(hello.session, owner);
    const session = await host.sessions.open(hello.session, owner);
    if (ws.readyState !== WebSocket.OPEN) {
      // Closed meanwhile (a drain): it is paused, so its close handshake would never finish.
      ws.terminate();
      return;
    }
    if (session.resumed) await host.kick(session.id);
    this.#opening.delete(ws);
    const client = host.register(session, ws, socket, identity);
    // Whether the previous connection recorded all it handed on: only a clean close says so.
    const doubtful = session.cleanlyClosed !== true;
    const ledger = new UpstreamLedger(session.record, doubtful);
    this.#upstream.set(client, ledger);
    client.hold();
    const rooms: Record<string, WelcomeRoom> = {};
    const replay: Buffer[] = [];
    for (const room of session.record?.rooms ?? []) {
      const seen = hello.rooms?.[room];
      const from = seen === undefined ? undefined : { offset: seen.o, epoch: seen.e };
      rooms[room] = await this.#rejoin(client, room, from, replay);
    }
    const welcome: WelcomeMessage = {
      t: 'welcome',
      session: session.token,
      client: client.id,
      node: host.nodeId,
      resumed: session.resumed,
      rooms,
      s: ledger.last,
    };
    if (session.reason !== undefined) welcome.reason = session.reason;
    client.release([wsFrame(Buffer.from(JSON.stringify(welcome)), false), ...replay]);
    ws.resume();
    if (session.resumed) {
      const recovered = Object.values(rooms).every((room) => room.recovered);
      client.recovery = { recovered, rooms };
      host.save(client);
    }
    host.connected(client, request);
  }

  /**
   * When a connection on a live node still holds the session (that node has not seen it drop
   * yet), has it closed and waits a moment for its node to record what it handed on: the resume
   * then knows exactly which of the client's messages arrived, and none comes twice.
   */
  async #handOver(token: string, owner: string): Promise<void> {
    const sessions = this.#host.sessions;
    const holder = await sessions.holder(token);
    if (holder === undefined || holder.owner !== owner || !this.#host.alive(holder.node)) return;
    await this.#host.kick(holder.id);
    const deadline = Date.now() + HANDOVER_MS;
    while (Date.now() < deadline && (await sessions.holder(token)) !== undefined) {
      await new Promise((resolve) => setTimeout(resolve, HANDOVER_POLL_MS));
    }
  }

  async #rejoin(
    client: AnyClient,
    room: string,
    from: HistoryPosition | undefined,
    replay: Buffer[],
  ): Promise<WelcomeRoom> {
    let outcome: JoinOutcome | undefined;
    try {
      outcome = await this.#host.join(client, room, from, false);
    } catch (error) {
      this.#host.report(error);
      return { recovered: false, reason: 'unavailable' };
    }
    if (outcome === undefined) return { recovered: false, reason: 'no-history' };
    const { position } = outcome;
    const state: WelcomeRoom = {
      recovered: outcome.recovered,
      o: position.offset,
      e: position.epoch,
    };
    if (from === undefined) {
      state.recovered = false;
      state.reason = 'no-position';
    } else if (outcome.reason !== undefined) {
      state.reason = outcome.reason;
    }
    for (const message of outcome.replay) replay.push(message.envelopeFrame());
    return state;
  }

  #dispatch(client: AnyClient, message: ClientMessage, binary: Buffer | undefined): void {
    const payload = binary ?? ('d' in message && message.d !== undefined ? message.d : '');
    switch (message.t) {
      case 'msg': {
        const info = this.#admit(client, message);
        if (info !== undefined) client.receive(payload, binary !== undefined, info);
        return;
      }
      case 'req': {
        const info = this.#admit(client, message);
        if (info !== undefined) void this.#request(client, message, payload, info);
        else this.#answerAgain(client, message);
        return;
      }
      case 'join':
        void this.#join(client, message.id, message.r);
        return;
      case 'leave':
        void this.#leave(client, message.id, message.r);
        return;
      case 'ping':
        send(client, { t: 'pong' });
        return;
      case 'presence': {
        const refused = this.#host.watchPresence(client, message.r);
        if (refused === undefined) send(client, { t: 'ack', id: message.id });
        else fail(client, message.id, refused, `no presence of "${message.r}" for this client`);
        return;
      }
      case 'hello':
        send(client, { t: 'error', code: 'BAD_REQUEST', message: 'hello was already said' });
        return;
      default:
        send(client, {
          t: 'error',
          code: 'UNKNOWN_OP',
          message: `unknown message type "${String((message as { t: unknown }).t).slice(0, 64)}"`,
        });
    }
  }

  /**
   * Takes a numbered `msg` or `req` into the client's upstream (and owes it a `rcv`): yields what
   * the application is told about it, or `undefined` when it was handed on already.
   */
  #admit(client: AnyClient, message: { s?: number; p?: 1 }): MessageInfo | undefined {
    const ledger = message.s === undefined ? undefined : this.#upstream.get(client);
    if (ledger === undefined) return UNNUMBERED;
    const admission = ledger.admit(message.s!, message.p === 1);
    this.#receipts.owe(client);
    if (admission === 'duplicate') return undefined;
    return { id: `${client.id}:${message.s}`, redelivered: admission === 'redelivery' };
  }

  /** A request sent again that was handled before: the kept reply, if there is one. */
  #answerAgain(client: AnyClient, message: { id: number; s?: number }): void {
    const kept = this.#upstream.get(client)?.replyTo(message.s!);
    if (kept === undefined) {
      fail(client, message.id, 'REPLY_LOST', 'handled before; its reply is not kept');
    } else {
      writeAck(client, message.id, kept, kept.b === undefined ? undefined : base64(kept.b));
    }
  }

  async #request(
    client: AnyClient,
    message: { id: number; s?: number },
    data: string | Buffer,
    info: MessageInfo,
  ): Promise<void> {
    const { reply, bytes } = await this.#reply(client, data, info);
    if (message.s !== undefined) this.#upstream.get(client)?.keepReply({ s: message.s, ...reply });
    writeAck(client, message.id, reply, bytes);
  }

  /** Runs the application's request handler: its reply, or the error that answers instead. */
  async #reply(
    client: AnyClient,
    data: string | Buffer,
    info: MessageInfo,
  ): Promise<{ reply: Omit<StoredReply, 's'>; bytes?: Buffer }> {
    const onRequest = this.#host.onRequest;
    if (onRequest === undefined) {
      return {
        reply: { error: { code: 'NOT_FOUND', message: 'the server has no request handler' } },
      };
    }
    let result: unknown;
    try {
      result = await onRequest(client, data, info);
    } catch (error) {
      this.#host.report(new HandlerError('onRequest', error));
      return {
        reply: { error: { code: 'HANDLER_FAILED', message: 'the request handler failed' } },
      };
    }
    if (result === undefined) return { reply: {} };
    const { bytes, binary } = prepareMessage(result as Sendable);
    if (!binary) return { reply: { d: bytes.toString('utf8') } };
    return { reply: { b: bytes.toString('base64') }, bytes };
  }

  async #join(client: AnyClient, id: number, room: string): Promise<void> {
    const authorize = this.#host.authorizeJoin;
    let allowed = false;
    try {
      allowed = authorize !== undefined && (await authorize(client, room));
    } catch (error) {
      this.#host.report(new HandlerError('authorizeJoin', error));
    }
    if (!allowed) return fail(client, id, 'FORBIDDEN', `may not join "${room}"`);
    try {
      await this.#host.join(client, room);
    } catch (error) {
      this.#host.report(error);
      return fail(client, id, 'UNAVAILABLE', `could not join "${room}"`);
    }
    send(client, { t: 'ack', id });
  }

  async #leave(client: AnyClient, id: number, room: string): Promise<void> {
    await this.#host.leave(client, room).catch((error) => this.#host.report(error));
    send(client, { t: 'ack', id });
  }

  /** Decodes a frame; a malformed one closes the connection with 1007 and yields `undefined`. */
  #decode(
    target: WebSocket | AnyClient,
    data: Buffer,
    isBinary: boolean,
  ): { message: ClientMessage; binary?: Buffer } | undefined {
    try {
      const { message, binary } = decodeClientFrame(isBinary ? data : data.toString('utf8'));
      if (binary === undefined) return { message };
      const { buffer, byteOffset, byteLength } = binary;
      return { message, binary: Buffer.from(buffer, byteOffset, byteLength) };
    } catch (error) {
      if (!(error instanceof ProtocolViolation)) throw error;
      target.close(CloseCode.InvalidPayload, error.message.slice(0, 120));
      return undefined;
    }
  }
}

/** How long a resume waits for a live node to let go of the session, and how often it looks. */
const HANDOVER_MS = 250;
const HANDOVER_POLL_MS = 10;

function send(client: AnyClient, message: ServerMessage): void {
  client.writeText(JSON.stringify(message));
}

/** Answers a request: text or no reply in a text frame, bytes in a binary one. */
function writeAck(client: AnyClient, id: number, reply: Omit<StoredReply, 's'>, bytes?: Buffer) {
  const ack: AckMessage = { t: 'ack', id };
  if (reply.error !== undefined) ack.error = reply.error;
  if (reply.d !== undefined) ack.d = reply.d;
  if (bytes === undefined) send(client, ack);
  else client.writeFrame(wsFrame(encodeBinary(ack, bytes), true));
}

function base64(text: string): Buffer {
  return Buffer.from(text, 'base64');
}

function fail(client: AnyClient, id: number, code: ProtocolErrorCode, message: string): void {
  send(client, { t: 'ack', id, error: { code, message } });
}
