import { ProtocolError } from '../errors.js';
import type { ClientInfo, NodeStats } from '../ops/node-stats.js';
import { MessageFlag } from '../protocol/outgoing.js';

/**
 * What nodes say to each other over the broker. One frame: a fixed 6-byte prefix (kind, flags,
 * header length), a small JSON header whose shape depends on the kind, then the application's
 * payload bytes untouched, so a broadcast's payload is never re-encoded between nodes.
 */
export enum BusKind {
  /** A message for the members of some rooms (or everyone), minus some clients. */
  Broadcast = 1,
  /** An operation on one client, wherever it is connected. */
  Direct = 2,
  /** A node says it is still alive (every `nodeHeartbeatMs`). */
  Beat = 3,
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
  /** A node joined the cluster: every node that hears it tells it that it is alive too. */
  Announce = 9,
  /**
   * Answers a `Moved` that named this node as the holder: the session's connection here has
   * recorded its close (or there is none), so the node taking it over may read the record.
   */
  Released = 10,
}

/** Flag bits of a bus frame: its message's own (binary, volatile). */
export const BusFlag = MessageFlag;

// Headers have short keys: they travel with every message. `n` (the sending node) is in all.

/** Header of a {@link BusKind.Broadcast}. */
export interface BroadcastHeader {
  /** Sending node id. */
  n: string;
  /** Rooms it is for; absent means everyone. */
  r?: string[];
  /** Client ids it skips. */
  x?: string[];
  /** Offset of a history room's message. */
  s?: number;
  /** Epoch of a history room's message. */
  e?: string;
}

/** Operations a node can ask of a client held by another node, with their arguments (`a`). */
export type DirectOperation =
  | { o: 'send' }
  | { o: 'join' | 'leave'; a: string }
  | { o: 'close'; a: [code: number, reason: string] };

/** Header of a {@link BusKind.Direct}: the operation, and how it is routed. */
export type DirectHeader = DirectOperation & {
  /** Sending node id (the last node that passed it on). */
  n: string;
  /** Target client id. */
  c: string;
  /** For a message kept in the session's stream: the stream, and its place there. */
  r?: [inbox: string];
  s?: number;
  e?: string;
  /** The node it was routed to (absent: it went to every node). */
  d?: string;
  /** How many times it was passed on by a node that did not hold the client. */
  h?: number;
  /** The node that first sent it, when it was passed on. */
  w?: string;
  /** Set when it went to every node: the holder answers where the client is. */
  l?: 1;
};

/**
 * Header of a {@link BusKind.Moved}: session `c` now lives on node `n`; close it with `a`. With
 * `d`, the node that held it, which answers {@link BusKind.Released} once it recorded the close.
 */
export interface MovedHeader {
  n: string;
  c: string;
  a: [code: number, reason: string];
  d?: string;
}

/** Header of a {@link BusKind.Released}: node `n` recorded the close of session `c`. */
export interface ReleasedHeader {
  n: string;
  c: string;
}

/** Header of a {@link BusKind.Located}: client `c` is on node `a`, or (no `a`) not on `n`. */
export interface LocatedHeader {
  n: string;
  c: string;
  a?: string;
}

/** Header of {@link BusKind.Announce}, {@link BusKind.Beat} and {@link BusKind.Bye}. */
export interface NodeHeader {
  n: string;
}

/** The questions nodes ask each other, each with its argument and its answer. */
export interface NodeQueries {
  /** The application's rooms with members on the node. */
  rooms: { argument: undefined; answer: string[] };
  /** The node's clients, of one room or all. */
  clients: { argument: string | undefined; answer: ClientInfo[] };
  /** The node's view of itself. */
  stats: { argument: undefined; answer: NodeStats };
}

/** A question's name. */
export type QueryName = keyof NodeQueries;

/** A question: its name (`q`) and argument (`a`). */
export type Query = { [Q in QueryName]: { q: Q; a?: NodeQueries[Q]['argument'] } }[QueryName];

/** An answer: the question's name (`q`), and what one node answered (`a`). */
export type Answer = { [Q in QueryName]: { q: Q; a: NodeQueries[Q]['answer'] } }[QueryName];

/** Header of a {@link BusKind.Request}: question `i` of node `n`. */
export type RequestHeader = Query & { n: string; i: number };

/** Header of a {@link BusKind.Response}: node `n`'s answer to question `i`. */
export type ResponseHeader = Answer & { n: string; i: number };

/** A frame's kind with the header that kind carries: one variant per kind. */
export type BusMessage =
  | { kind: BusKind.Broadcast; header: BroadcastHeader }
  | { kind: BusKind.Direct; header: DirectHeader }
  | { kind: BusKind.Moved; header: MovedHeader }
  | { kind: BusKind.Located; header: LocatedHeader }
  | { kind: BusKind.Released; header: ReleasedHeader }
  | { kind: BusKind.Announce | BusKind.Beat | BusKind.Bye; header: NodeHeader }
  | { kind: BusKind.Request; header: RequestHeader }
  | { kind: BusKind.Response; header: ResponseHeader };

/** A decoded bus frame. */
export type BusFrame = BusMessage & { flags: number; payload: Buffer };

/** A decoded frame of one kind. */
export type BusFrameOf<K extends BusKind> = Extract<BusFrame, { kind: K }>;

const PREFIX = 6;
const EMPTY = Buffer.alloc(0);

/** Encodes one bus frame into a single buffer. */
export function encodeBusFrame(
  message: BusMessage,
  payload: Uint8Array = EMPTY,
  flags = 0,
): Buffer {
  // Written straight into the frame: no buffer of its own to allocate and copy from.
  const json = JSON.stringify(message.header);
  const jsonLength = Buffer.byteLength(json);
  const frame = Buffer.allocUnsafe(PREFIX + jsonLength + payload.length);
  frame[0] = message.kind;
  frame[1] = flags;
  frame.writeUInt32BE(jsonLength, 2);
  frame.write(json, PREFIX);
  frame.set(payload, PREFIX + jsonLength);
  return frame;
}

/**
 * Decodes a bus frame; the payload is a view of `bytes`, not a copy. Throws a `ProtocolError` for
 * bytes that are not a frame of a known kind with that kind's header.
 */
export function decodeBusFrame(bytes: Uint8Array): BusFrame {
  const view = Buffer.isBuffer(bytes)
    ? bytes
    : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (view.length < PREFIX) throw new ProtocolError('bus frame shorter than its prefix');
  const headerLength = view.readUInt32BE(2);
  const payloadStart = PREFIX + headerLength;
  if (payloadStart > view.length) throw new ProtocolError('bus frame header overruns the frame');
  const flags = view[1]!;
  const payload = view.subarray(payloadStart);
  const header = parseHeader(view.toString('utf8', PREFIX, payloadStart));
  if (!isNode(header)) throw new ProtocolError('bus frame without a node id');
  const kind = view[0]!;
  // Checked field by field, in place: a broadcast is decoded on every node, for every message.
  switch (kind) {
    case BusKind.Broadcast:
      if (isBroadcast(header)) return { kind, flags, payload, header };
      break;
    case BusKind.Direct:
      if (isDirect(header)) return { kind, flags, payload, header };
      break;
    case BusKind.Moved:
      if (isMoved(header)) return { kind, flags, payload, header };
      break;
    case BusKind.Located:
      if (isLocated(header)) return { kind, flags, payload, header };
      break;
    case BusKind.Released:
      if (isReleased(header)) return { kind, flags, payload, header };
      break;
    case BusKind.Announce:
    case BusKind.Beat:
    case BusKind.Bye:
      // Their header is the node id, checked above.
      return { kind, flags, payload, header };
    case BusKind.Request:
      if (isRequest(header)) return { kind, flags, payload, header };
      break;
    case BusKind.Response:
      if (isResponse(header)) return { kind, flags, payload, header };
      break;
    default:
      throw new ProtocolError(`unknown bus frame kind ${kind}`);
  }
  throw new ProtocolError(`bus frame of kind ${BusKind[kind]} with a malformed header`);
}

/** A header as parsed, before its kind's shape is checked. */
type Fields = Partial<Record<string, unknown>>;

function parseHeader(json: string): Fields {
  let parsed: unknown;
  try {
    parsed = JSON.parse(json);
  } catch {
    throw new ProtocolError('bus frame header is not JSON');
  }
  if (!isObject(parsed)) throw new ProtocolError('bus frame header is not an object');
  return parsed;
}

/** A parsed header that has a node id. */
type Sent = Fields & NodeHeader;

function isNode(header: Fields): header is Sent {
  return isString(header.n);
}

function isBroadcast(header: Sent): header is Sent & BroadcastHeader {
  const { r, x, s, e } = header;
  return optional(r, isStrings) && optional(x, isStrings) && positioned(s, e);
}

function isDirect(header: Sent): header is Sent & DirectHeader {
  const { c, r, s, e, d, h, w, l, o, a } = header;
  return (
    isString(c) &&
    positioned(s, e) &&
    optional(r, isInbox) &&
    optional(d, isString) &&
    optional(h, isCount) &&
    optional(w, isString) &&
    (l === undefined || l === 1) &&
    (o === 'send' ||
      ((o === 'join' || o === 'leave') && isString(a)) ||
      (o === 'close' && isCloseArgument(a)))
  );
}

function isMoved(header: Sent): header is Sent & MovedHeader {
  return isString(header.c) && isCloseArgument(header.a) && optional(header.d, isString);
}

function isReleased(header: Sent): header is Sent & ReleasedHeader {
  return isString(header.c);
}

function isLocated(header: Sent): header is Sent & LocatedHeader {
  return isString(header.c) && optional(header.a, isString);
}

function isRequest(header: Sent): header is Sent & RequestHeader {
  const { i, q, a } = header;
  if (!isCount(i)) return false;
  return q === 'clients'
    ? optional(a, isString)
    : (q === 'rooms' || q === 'stats') && a === undefined;
}

function isResponse(header: Sent): header is Sent & ResponseHeader {
  const { i, q, a } = header;
  // An answer comes from a node of this version, which built it from the same types.
  if (!isCount(i)) return false;
  if (q === 'rooms') return isStrings(a);
  if (q === 'clients') return Array.isArray(a);
  return q === 'stats' && isObject(a);
}

function optional<T>(value: unknown, is: (value: unknown) => value is T): value is T | undefined {
  return value === undefined || is(value);
}

/** A history position: both halves or neither. */
function positioned(s: unknown, e: unknown): s is number | undefined {
  return s === undefined ? e === undefined : isCount(s) && typeof e === 'string';
}

function isString(value: unknown): value is string {
  return typeof value === 'string';
}

function isCount(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

function isStrings(value: unknown): value is string[] {
  return Array.isArray(value) && value.every(isString);
}

function isInbox(value: unknown): value is [string] {
  return Array.isArray(value) && value.length === 1 && typeof value[0] === 'string';
}

function isCloseArgument(value: unknown): value is [number, string] {
  return (
    Array.isArray(value) &&
    value.length === 2 &&
    typeof value[0] === 'number' &&
    typeof value[1] === 'string'
  );
}

function isObject(value: unknown): value is Fields {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
