import { ProtocolError } from '../errors.js';

/**
 * What nodes say to each other over the broker. One frame: a fixed 6-byte prefix (kind, flags,
 * header length), a small JSON header, then the application's payload bytes untouched, so a
 * broadcast's payload is never re-encoded between nodes.
 */
export enum BusKind {
  /** A message for the members of some rooms (or everyone), minus some clients. */
  Broadcast = 1,
  /** An operation on one client, wherever it is connected. */
  Direct = 2,
  /** A node says it is alive. */
  Heartbeat = 3,
  /** A node is leaving on purpose. */
  Bye = 4,
  /** A question to every node. */
  Request = 5,
  /** One node's answer to a question. */
  Response = 6,
  /** A session is now held by the sending node: whoever held it closes it and forwards to it. */
  Moved = 7,
  /** Tells a sender which node holds a client (`a`), or that it should stop routing there. */
  Located = 8,
  /**
   * Answers a `Moved` that named this node as the holder: the session's connection here has
   * recorded its close (or there is none), so the node taking it over may read the record.
   */
  Released = 10,
}

/** Flag bits of a bus frame. */
export const BusFlag = {
  /** The payload is binary (a WebSocket binary frame), not UTF-8 text. */
  Binary: 1,
  /** The payload may be dropped for a slow consumer. */
  Volatile: 2,
} as const;

/** The JSON header of a bus frame; short keys because it travels with every message. */
export interface BusHeader {
  /** Sending node id. */
  n: string;
  /** Rooms a broadcast is for; absent means everyone. */
  r?: string[];
  /** Client ids a broadcast skips. */
  x?: string[];
  /** Target client id of a direct operation. */
  c?: string;
  /** Direct operation. */
  o?: DirectOp;
  /** Argument of a direct operation or answer of a response. */
  a?: unknown;
  /** Request id. */
  i?: number;
  /** Request type. */
  q?: string;
  /** Offset of a history room's message. */
  s?: number;
  /** Epoch of a history room's message. */
  e?: string;
  /**
   * The node a direct operation was routed to (absent: it went to every node); on a `Moved`, the
   * node that held the session, which answers `Released`.
   */
  d?: string;
  /** How many times a direct operation was passed on by a node that did not hold the client. */
  h?: number;
  /** The node that first sent a direct operation that was passed on. */
  w?: string;
  /** Set on a direct operation sent to every node: the holder answers where the client is. */
  l?: 1;
}

/** Operations a node can ask of a client held by another node. */
export type DirectOp = 'send' | 'join' | 'leave' | 'close';

/** A decoded bus frame. */
export interface BusFrame {
  kind: BusKind;
  flags: number;
  header: BusHeader;
  payload: Buffer;
}

const PREFIX = 6;
const EMPTY = Buffer.alloc(0);

/** Encodes one bus frame into a single buffer. */
export function encodeBusFrame(
  kind: BusKind,
  header: BusHeader,
  payload: Uint8Array = EMPTY,
  flags = 0,
): Buffer {
  // Written straight into the frame: no buffer of its own to allocate and copy from.
  const json = JSON.stringify(header);
  const jsonLength = Buffer.byteLength(json);
  const frame = Buffer.allocUnsafe(PREFIX + jsonLength + payload.length);
  frame[0] = kind;
  frame[1] = flags;
  frame.writeUInt32BE(jsonLength, 2);
  frame.write(json, PREFIX);
  frame.set(payload, PREFIX + jsonLength);
  return frame;
}

/** Decodes a bus frame; the payload is a view of `bytes`, not a copy. */
export function decodeBusFrame(bytes: Uint8Array): BusFrame {
  const view = Buffer.isBuffer(bytes)
    ? bytes
    : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (view.length < PREFIX) throw new ProtocolError('bus frame shorter than its prefix');
  const kind = view[0]!;
  if (!(kind in BusKind)) throw new ProtocolError(`unknown bus frame kind ${kind}`);
  const headerLength = view.readUInt32BE(2);
  const payloadStart = PREFIX + headerLength;
  if (payloadStart > view.length) throw new ProtocolError('bus frame header overruns the frame');
  const header = parseHeader(view.toString('utf8', PREFIX, payloadStart));
  if (typeof header?.n !== 'string') throw new ProtocolError('bus frame without a node id');
  return { kind, flags: view[1]!, header, payload: view.subarray(payloadStart) };
}

function parseHeader(json: string): BusHeader | null {
  try {
    return JSON.parse(json) as BusHeader | null;
  } catch {
    throw new ProtocolError('bus frame header is not JSON');
  }
}
