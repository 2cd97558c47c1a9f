import { Buffer } from 'node:buffer';
import type { HistoryPosition } from '../contracts.js';
import { encodeBinary, encodeText } from './codec.js';
import type { FrameDeflater } from './deflate.js';
import type {
  AckMessage,
  DataMessage,
  JoinedMessage,
  PresenceEntry,
  PresenceUpdateMessage,
  ProtocolErrorCode,
  ResyncMessage,
  ServerMessage,
  WelcomeMessage,
} from './messages.js';
import { wsFrame } from './ws-frame.js';

/**
 * The server's writer of `wscale.v1` frames: every frame a server sends is built here, from a typed
 * message, and handed to its connection here (the `msg` envelope of a broadcast is encoded here too,
 * once per node, by {@link dataFrame}). The server's parts say what to tell a client
 * (`writeJoined(client, room, position)`), never how it looks on the wire.
 */

/** A connection as the writer sees it. */
export interface V1Sink {
  /** Whether it speaks `wscale.v1`: a raw WebSocket client is never written a protocol frame. */
  readonly v1: boolean;
  readonly open: boolean;
  /** Writes one complete frame within the connection's send budget; `false` if it was not. */
  writeFrame(frame: Buffer): boolean;
}

/** A connection whose frames are held while its session opens. */
export interface HeldSink extends V1Sink {
  /** Writes the welcome and the replay (within the send budget), then what was held. */
  release(welcome: Buffer, replay: Buffer[]): void;
}

/** What a request is answered with: a text reply, an error, or nothing. */
export interface AckReply {
  d?: string;
  error?: { code: ProtocolErrorCode; message: string };
}

/** The WebSocket frame of a server message: a text frame, or a binary one carrying `payload`. */
export function serverFrame(message: ServerMessage, payload?: Uint8Array): Buffer {
  return wsFrame(serverBody(message, payload), payload !== undefined);
}

/** The payload of a server message's frame: its JSON, or the binary layout carrying `payload`. */
function serverBody(message: ServerMessage, payload?: Uint8Array): Uint8Array {
  return payload === undefined ? Buffer.from(encodeText(message)) : encodeBinary(message, payload);
}

/**
 * The `msg` frame of an application message (text or binary), with its room and its position in
 * the room's history when it has them. Built once per node; every recipient gets the same bytes.
 */
export function dataFrame(
  payload: Buffer,
  binary: boolean,
  room: string | undefined,
  offset: number | undefined,
  epoch: string | undefined,
): Buffer {
  return serverFrame(...dataMessage(payload, binary, room, offset, epoch));
}

/**
 * The `msg` frame of {@link dataFrame} compressed for the sockets that negotiated
 * permessage-deflate, or `undefined` when the deflater sends it as it is.
 */
export function deflatedDataFrame(
  deflater: FrameDeflater,
  payload: Buffer,
  binary: boolean,
  room: string | undefined,
  offset: number | undefined,
  epoch: string | undefined,
): Buffer | undefined {
  return deflater.frame(serverBody(...dataMessage(payload, binary, room, offset, epoch)), binary);
}

/** The `msg` message of an application message, and the binary payload it carries, if any. */
function dataMessage(
  payload: Buffer,
  binary: boolean,
  room: string | undefined,
  offset: number | undefined,
  epoch: string | undefined,
): [DataMessage, Buffer | undefined] {
  const message: DataMessage = { t: 'msg' };
  if (room !== undefined) message.r = room;
  if (offset !== undefined) {
    message.o = offset;
    message.e = epoch;
  }
  if (binary) return [message, payload];
  message.d = payload.toString('utf8');
  return [message, undefined];
}

/** The `resync` frame: a room's stream skipped ahead; start over after this position. */
export function resyncFrame(room: string, position: HistoryPosition): Buffer {
  const message: ResyncMessage = { t: 'resync', r: room, o: position.offset, e: position.epoch };
  return serverFrame(message);
}

/** Welcomes a client whose session is open, then writes its replay and what was held meanwhile. */
export function writeWelcome(client: HeldSink, welcome: WelcomeMessage, replay: Buffer[]): void {
  client.release(serverFrame(welcome), replay);
}

/** Tells a client it is in a room now (from this position, for a room that keeps history). */
export function writeJoined(client: V1Sink, room: string, position?: HistoryPosition): void {
  if (!client.v1) return;
  const message: JoinedMessage =
    position === undefined
      ? { t: 'joined', r: room }
      : { t: 'joined', r: room, o: position.offset, e: position.epoch };
  client.writeFrame(serverFrame(message));
}

/** Tells a client it is out of a room. */
export function writeLeft(client: V1Sink, room: string): void {
  if (client.v1) client.writeFrame(serverFrame({ t: 'left', r: room }));
}

/** Tells a room's members to start over from a position (encoded once for all of them). */
export function writeResync(
  members: Iterable<V1Sink>,
  room: string,
  position: HistoryPosition,
): void {
  const frame = resyncFrame(room, position);
  for (const client of members) if (client.v1) client.writeFrame(frame);
}

/**
 * Answers a `join`, `leave`, `req` or `presence` of this id: with a reply or an error, and, for a
 * binary reply, in a binary frame carrying `bytes`.
 */
export function writeAck(client: V1Sink, id: number, reply?: AckReply, bytes?: Buffer): void {
  const ack: AckMessage = { t: 'ack', id };
  if (reply?.error !== undefined) ack.error = reply.error;
  if (reply?.d !== undefined) ack.d = reply.d;
  client.writeFrame(serverFrame(ack, bytes));
}

/** Answers an operation of this id with an error. */
export function writeRefusal(
  client: V1Sink,
  id: number,
  code: ProtocolErrorCode,
  message: string,
): void {
  writeAck(client, id, { error: { code, message } });
}

/** Answers a message that has no id to answer with an error. */
export function writeError(client: V1Sink, code: ProtocolErrorCode, message: string): void {
  client.writeFrame(serverFrame({ t: 'error', code, message }));
}

/** Answers a `ping`. */
export function writePong(client: V1Sink): void {
  client.writeFrame(PONG);
}

/** Tells a client that everything it numbered up to `s` reached the application. */
export function writeReceived(client: V1Sink, s: number): void {
  if (client.open) client.writeFrame(serverFrame({ t: 'rcv', s }));
}

/** The `presence` snapshot of a room. */
export function presenceSnapshot(
  room: string,
  members: PresenceEntry[],
  users: number,
  partial = false,
): PresenceUpdateMessage {
  return partial
    ? { t: 'presence', r: room, m: members, n: users, p: 1 }
    : { t: 'presence', r: room, m: members, n: users };
}

/** A user's first connection entered a room (`pjoin`). */
export function presenceJoin(room: string, user: string, info: unknown): PresenceUpdateMessage {
  return info === undefined
    ? { t: 'pjoin', r: room, u: user }
    : { t: 'pjoin', r: room, u: user, i: info };
}

/** A user's last connection left a room (`pleave`). */
export function presenceLeave(room: string, user: string): PresenceUpdateMessage {
  return { t: 'pleave', r: room, u: user };
}

/** Writes a presence message to the watchers still open (encoded once for all of them). */
export function writePresence(watchers: Iterable<V1Sink>, message: PresenceUpdateMessage): void {
  const frame = serverFrame(message);
  for (const client of watchers) if (client.open) client.writeFrame(frame);
}

/** The same bytes for every `pong`. */
const PONG = serverFrame({ t: 'pong' });
