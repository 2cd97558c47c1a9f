import { ProtocolError } from '../errors.js';
import { type ClientMessage, LIMITS, type Position, type ServerMessage } from './messages.js';

/**
 * Encoding and strict decoding of `wscale.v1` frames.
 *
 * Text frame: one JSON object. Binary frame: a 4-byte big-endian header length, that many bytes of
 * UTF-8 JSON header (the message without `d`), then the payload bytes. A frame that breaks the
 * protocol throws a {@link ProtocolError} (`PROTOCOL_ERROR`); the server then closes with 1007.
 */

/** A frame's content as decoded: the message, and the binary payload when the frame was binary. */
export interface Decoded<M> {
  message: M;
  /** The payload of a binary frame (then `message.d` is absent). */
  binary?: Uint8Array;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

/** Encodes a message as a text frame. */
export function encodeText(message: ClientMessage | ServerMessage): string {
  return JSON.stringify(message);
}

/** Encodes a message with a binary payload as a binary frame. */
export function encodeBinary(
  message: ClientMessage | ServerMessage,
  payload: Uint8Array,
): Uint8Array {
  const header = encoder.encode(JSON.stringify(message));
  const frame = new Uint8Array(4 + header.length + payload.length);
  new DataView(frame.buffer).setUint32(0, header.length);
  frame.set(header, 4);
  frame.set(payload, 4 + header.length);
  return frame;
}

/** Decodes a frame a client sent. Throws {@link ProtocolError} on anything malformed. */
export function decodeClientFrame(data: string | Uint8Array): Decoded<ClientMessage> {
  const { object, binary } = parseFrame(data);
  return { message: checkClientMessage(object, binary !== undefined), binary };
}

/** Decodes a frame a server sent. Throws {@link ProtocolError} on anything malformed. */
export function decodeServerFrame(data: string | Uint8Array): Decoded<ServerMessage> {
  const { object, binary } = parseFrame(data);
  if (typeof object.t !== 'string') throw new ProtocolError('message without a type');
  if (binary === undefined && object.d !== undefined && typeof object.d !== 'string') {
    throw new ProtocolError('d must be a string');
  }
  return { message: object as unknown as ServerMessage, binary };
}

function parseFrame(data: string | Uint8Array): {
  object: Record<string, unknown>;
  binary?: Uint8Array;
} {
  if (typeof data === 'string') return { object: parseObject(data) };
  if (data.length < 4) throw new ProtocolError('binary frame shorter than its header length');
  const length = new DataView(data.buffer, data.byteOffset, data.byteLength).getUint32(0);
  if (length > LIMITS.binaryHeader) throw new ProtocolError('binary frame header too large');
  if (4 + length > data.length) throw new ProtocolError('binary frame header overruns frame');
  let text: string;
  try {
    text = decoder.decode(data.subarray(4, 4 + length));
  } catch {
    throw new ProtocolError('binary frame header is not UTF-8');
  }
  const object = parseObject(text);
  if ('d' in object) throw new ProtocolError('binary frame header must not carry d');
  return { object, binary: data.subarray(4 + length) };
}

function parseObject(text: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new ProtocolError('frame is not JSON');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ProtocolError('frame is not a JSON object');
  }
  return value as Record<string, unknown>;
}

function checkClientMessage(m: Record<string, unknown>, binary: boolean): ClientMessage {
  switch (m.t) {
    case 'hello':
      if (m.session !== undefined) text(m.session, 'session', LIMITS.token);
      if (m.rooms !== undefined) positions(m.rooms);
      if (m.u !== undefined && m.u !== 1) throw new ProtocolError('hello u must be 1');
      return m as unknown as ClientMessage;
    case 'join':
    case 'leave':
      id(m.id);
      text(m.r, 'r', LIMITS.room);
      return m as unknown as ClientMessage;
    case 'req':
      id(m.id);
      payload(m, binary);
      upstream(m);
      return m as unknown as ClientMessage;
    case 'msg':
      payload(m, binary);
      upstream(m);
      return m as unknown as ClientMessage;
    case 'ping':
      return m as unknown as ClientMessage;
    case 'presence':
      id(m.id);
      text(m.r, 'r', LIMITS.room);
      return m as unknown as ClientMessage;
    default:
      if (typeof m.t !== 'string') throw new ProtocolError('message without a type');
      // An unknown type is not malformed: the server answers it with an error, not a close.
      return m as unknown as ClientMessage;
  }
}

function text(value: unknown, name: string, max: number): void {
  if (typeof value !== 'string' || value.length > max) {
    throw new ProtocolError(`${name} must be a string of at most ${max} characters`);
  }
}

function id(value: unknown): void {
  if (!Number.isInteger(value) || (value as number) < 0 || (value as number) > LIMITS.id) {
    throw new ProtocolError(`id must be a whole number from 0 to ${LIMITS.id}`);
  }
}

function payload(m: Record<string, unknown>, binary: boolean): void {
  if (!binary && m.d !== undefined && typeof m.d !== 'string') {
    throw new ProtocolError('d must be a string');
  }
}

function upstream(m: Record<string, unknown>): void {
  if (m.s !== undefined && !(Number.isSafeInteger(m.s) && (m.s as number) > 0)) {
    throw new ProtocolError('s must be a whole number from 1');
  }
  if (m.p !== undefined && m.p !== 1) throw new ProtocolError('p must be 1 when given');
}

function positions(value: unknown): void {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ProtocolError('rooms must be an object');
  }
  const entries = Object.entries(value);
  if (entries.length > LIMITS.rooms) throw new ProtocolError('too many rooms');
  for (const [room, position] of entries) {
    text(room, 'room', LIMITS.room);
    const p = position as Partial<Position> | null;
    if (
      typeof p !== 'object' ||
      p === null ||
      !Number.isSafeInteger(p.o) ||
      (p.o as number) < 0 ||
      typeof p.e !== 'string' ||
      p.e.length > LIMITS.epoch
    ) {
      throw new ProtocolError(`rooms["${room}"] must be { o: offset, e: epoch }`);
    }
  }
}
