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
import type { OpenedSession, Sessions } from '../session/sessions.js';
import type { AnyClient } from './client.js';
import type { Awaitable } from './options.js';
import { prepareMessage, type Sendable } from './payload.js';

/** What the `wscale.v1` endpoint needs from its server. */
export interface V1Host {
  readonly nodeId: string;
  readonly helloTimeoutMs: number;
  readonly sessions: Sessions;
  owner(identity: unknown): string;
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
  save(client: AnyClient): void;
  authorizeJoin?: (client: AnyClient, room: string) => Awaitable<boolean>;
  onRequest?: (client: AnyClient, data: string | Buffer) => Awaitable<unknown>;
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

  constructor(host: V1Host) {
    this.#host = host;
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
    const session = await host.sessions.open(hello.session, host.owner(identity));
    if (ws.readyState !== WebSocket.OPEN) return;
    if (session.resumed) await host.kick(session.id);
    this.#opening.delete(ws);
    const client = host.register(session, ws, socket, identity);
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
      case 'msg':
        client.receive(payload, binary !== undefined);
        return;
      case 'req':
        void this.#request(client, message.id, payload);
        return;
      case 'join':
        void this.#join(client, message.id, message.r);
        return;
      case 'leave':
        void this.#leave(client, message.id, message.r);
        return;
      case 'ping':
        send(client, { t: 'pong' });
        return;
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

  async #request(client: AnyClient, id: number, data: string | Buffer): Promise<void> {
    const onRequest = this.#host.onRequest;
    if (onRequest === undefined) {
      return fail(client, id, 'NOT_FOUND', 'the server has no request handler');
    }
    let reply: unknown;
    try {
      reply = await onRequest(client, data);
    } catch (error) {
      this.#host.report(new HandlerError('onRequest', error));
      return fail(client, id, 'HANDLER_FAILED', 'the request handler failed');
    }
    const ack: AckMessage = { t: 'ack', id };
    if (reply === undefined) return send(client, ack);
    const { bytes, binary } = prepareMessage(reply as Sendable);
    if (!binary) return send(client, { ...ack, d: bytes.toString('utf8') });
    client.writeFrame(wsFrame(encodeBinary(ack, bytes), true));
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

function send(client: AnyClient, message: ServerMessage): void {
  client.writeText(JSON.stringify(message));
}

function fail(client: AnyClient, id: number, code: ProtocolErrorCode, message: string): void {
  send(client, { t: 'ack', id, error: { code, message } });
}
