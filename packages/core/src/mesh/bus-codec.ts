import { Buffer } from 'node:buffer';
import { ProtocolError } from '../errors.js';
import type { ClientInfo, NodeStats } from '../ops/node-stats.js';
import { MessageFlag } from '../protocol/outgoing.js';

/**
 * What nodes say to each other over the broker. One frame: a fixed 6-byte prefix (kind, flags,
 * header length), a small header whose shape depends on the kind (the sending node first, binary
 * for the kinds sent per message, JSON for the others; see {@link encodeBusFrame}), then the
 * application's payload bytes untouched, so a broadcast's payload is never re-encoded between
 * nodes. Nodes of different versions do not share a broker: the layout may change between them.
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
 * `t`, when it was sent (the sender's clock, ms): a node keeps a connection of the session it
 * opened after that (a broker outage can hold the frame back for long). `g`, the claim the new
 * connection made in the session's record: a node keeps a connection of a later claim, whatever
 * the clocks say.
 */
export interface MovedHeader {
  n: string;
  c: string;
  a: [code: number, reason: string];
  d?: string;
  t?: number;
  g?: number;
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

/**
 * Header of a {@link BusKind.Response}: node `n`'s answer to question `i`. A list too large for the
 * broker comes in parts, in order, each but the last with `m` (more to come).
 */
export type ResponseHeader = Answer & { n: string; i: number; m?: 1 };

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
/** Top bit of a string's length field: its bytes are UTF-16LE (else ASCII). */
const WIDE = 0x8000_0000;

/** Operations of a {@link BusKind.Direct}, as their byte. */
const OPERATIONS = ['send', 'join', 'leave', 'close'] as const;

/** Bits of a `Direct` header's field byte: which optional fields follow. */
const DirectField = { r: 1, position: 2, d: 4, h: 8, w: 16, l: 32 } as const;
const DIRECT_FIELDS = 63;

/** Bits of a `Broadcast` header's field byte. */
const BroadcastField = { r: 1, x: 2, position: 4 } as const;
const BROADCAST_FIELDS = 7;

/**
 * Encodes one bus frame into a single buffer.
 *
 * After the 6-byte prefix (kind, flags, header length) the header starts with the sending node's
 * id (see {@link senderField}), at the same place in every frame, so a node can tell its own
 * frames without decoding them. `Broadcast` and `Direct` headers, which travel with every
 * message, follow in a fixed binary layout (no JSON to write or parse); the other kinds, rare,
 * follow as JSON. Strings are a 4-byte length, then ASCII, or UTF-16LE when the top bit of the
 * length is set (so any JavaScript string, lone surrogates included, comes back unchanged).
 */
export function encodeBusFrame(
  message: BusMessage,
  payload: Uint8Array = EMPTY,
  flags = 0,
  /** Bytes left free in front of the frame (for a broker's stamp). */
  room = 0,
): Buffer {
  let json: string | undefined;
  // A direct frame's client id is measured once, for its size and its writing.
  let clientAscii = true;
  let size = PREFIX + nodeIdSize(message.header.n);
  switch (message.kind) {
    case BusKind.Broadcast:
      size += broadcastSize(message.header);
      break;
    case BusKind.Direct:
      clientAscii = isAscii(message.header.c);
      size += directSize(message.header, clientAscii);
      break;
    case BusKind.Announce:
    case BusKind.Beat:
    case BusKind.Bye:
      break;
    default: {
      // `n` is written above: left out of the JSON (`undefined` is not written).
      json = JSON.stringify({ ...message.header, n: undefined });
      size += Buffer.byteLength(json);
    }
  }
  const headerEnd = size;
  const frame = Buffer.allocUnsafe(room + size + payload.length);
  frame[room] = message.kind;
  frame[room + 1] = flags;
  putUint32(frame, room + 2, headerEnd - PREFIX);
  let at = writeNodeId(frame, room + PREFIX, message.header.n);
  if (message.kind === BusKind.Broadcast) at = writeBroadcast(frame, at, message.header);
  else if (message.kind === BusKind.Direct) {
    at = writeDirect(frame, at, message.header, clientAscii);
  } else if (json !== undefined) at += frame.write(json, at);
  frame.set(payload, at);
  return frame;
}

/**
 * The size of the frame {@link encodeBusFrame} makes of a broadcast or direct `message` carrying
 * `payloadLength` bytes (no room in front).
 */
export function messageFrameSize(
  message: Extract<BusMessage, { kind: BusKind.Broadcast | BusKind.Direct }>,
  payloadLength: number,
): number {
  const body =
    message.kind === BusKind.Broadcast
      ? broadcastSize(message.header)
      : directSize(message.header, isAscii(message.header.c));
  return PREFIX + nodeIdSize(message.header.n) + body + payloadLength;
}

/**
 * The bytes a frame sent by node `nodeId` starts its header with: a node compares them with
 * {@link isSentBy} to skip its own frames (a broker echoes them) before decoding anything.
 */
export function senderField(nodeId: string): Buffer {
  const field = Buffer.allocUnsafe(stringSize(nodeId));
  writeString(field, 0, nodeId);
  return field;
}

/**
 * Whether `bytes` is a frame whose sending node is the one {@link senderField} was built for.
 * Compared from the end, where node ids differ most often (`node-1`, `node-2`): a frame of another
 * node, which every node receives for each message, is told apart at its first byte compared.
 */
export function isSentBy(bytes: Uint8Array, sender: Buffer): boolean {
  if (bytes.length < PREFIX + sender.length) return false;
  for (let i = sender.length - 1; i >= 0; i--) if (bytes[PREFIX + i] !== sender[i]) return false;
  return true;
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
  const headerLength = readUint32(view, 2);
  const payloadStart = PREFIX + headerLength;
  if (payloadStart > view.length) throw new ProtocolError('bus frame header overruns the frame');
  const kind = view[0]!;
  const flags = view[1]!;
  const payload = view.subarray(payloadStart);
  const reader = new Reader(view, PREFIX, payloadStart);
  const n = reader.nodeId();
  // Checked field by field as it is read: a broadcast is decoded on every node, for every message.
  switch (kind) {
    case BusKind.Broadcast:
      return { kind, flags, payload, header: readBroadcast(reader, n) };
    case BusKind.Direct:
      return { kind, flags, payload, header: readDirect(reader, n) };
    case BusKind.Announce:
    case BusKind.Beat:
    case BusKind.Bye:
      reader.end(kind);
      return { kind, flags, payload, header: { n } };
  }
  if (!(kind in BusKind)) throw new ProtocolError(`unknown bus frame kind ${kind}`);
  const header: Sent = { ...parseHeader(reader.rest()), n };
  switch (kind) {
    case BusKind.Moved:
      if (isMoved(header)) return { kind, flags, payload, header };
      break;
    case BusKind.Located:
      if (isLocated(header)) return { kind, flags, payload, header };
      break;
    case BusKind.Released:
      if (isReleased(header)) return { kind, flags, payload, header };
      break;
    case BusKind.Request:
      if (isRequest(header)) return { kind, flags, payload, header };
      break;
    case BusKind.Response:
      if (isResponse(header)) return { kind, flags, payload, header };
      break;
  }
  throw malformed(kind);
}

function malformed(kind: number): ProtocolError {
  return new ProtocolError(`bus frame of kind ${BusKind[kind]} with a malformed header`);
}

/** Whether a string is written a byte per character (else as UTF-16LE). */
function isAscii(value: string): boolean {
  return Buffer.byteLength(value) === value.length;
}

/** Bytes of a string as {@link writeString} writes it. */
function stringSize(value: string, ascii = isAscii(value)): number {
  return 4 + (ascii ? value.length : value.length * 2);
}

function stringsSize(values: readonly string[]): number {
  let size = 4;
  for (const value of values) size += stringSize(value);
  return size;
}

function writeString(frame: Buffer, at: number, value: string, ascii = isAscii(value)): number {
  if (ascii) {
    putUint32(frame, at, value.length);
    return at + 4 + frame.write(value, at + 4, 'latin1');
  }
  putUint32(frame, at, value.length * 2 + WIDE);
  return at + 4 + frame.write(value, at + 4, 'utf16le');
}

/** Bytes of a node id as {@link writeNodeId} writes it. */
function nodeIdSize(id: string): number {
  return nodeIds.field(id)?.length ?? stringSize(id);
}

/** Writes a node id as {@link writeString} would: copied from the fields kept, if it is kept. */
function writeNodeId(frame: Buffer, at: number, id: string): number {
  const field = nodeIds.field(id);
  if (field === undefined) return writeString(frame, at, id);
  frame.set(field, at);
  return at + field.length;
}

function writeStrings(frame: Buffer, at: number, values: readonly string[]): number {
  putUint32(frame, at, values.length);
  let next = at + 4;
  for (const value of values) next = writeString(frame, next, value);
  return next;
}

// Numbers (offsets, hops, close codes) are doubles: any number a header holds comes back as it was.

function broadcastSize({ r, x, s, e }: BroadcastHeader): number {
  let size = 1;
  if (r !== undefined) size += stringsSize(r);
  if (x !== undefined) size += stringsSize(x);
  if (s !== undefined) size += 8 + stringSize(e!);
  return size;
}

function writeBroadcast(frame: Buffer, at: number, { r, x, s, e }: BroadcastHeader): number {
  frame[at] =
    (r === undefined ? 0 : BroadcastField.r) |
    (x === undefined ? 0 : BroadcastField.x) |
    (s === undefined ? 0 : BroadcastField.position);
  let next = at + 1;
  if (r !== undefined) next = writeStrings(frame, next, r);
  if (x !== undefined) next = writeStrings(frame, next, x);
  if (s !== undefined) next = writeString(frame, frame.writeDoubleBE(s, next), e!);
  return next;
}

function readBroadcast(reader: Reader, n: string): BroadcastHeader {
  const fields = reader.byte();
  if ((fields & ~BROADCAST_FIELDS) !== 0) throw malformed(BusKind.Broadcast);
  const header: BroadcastHeader = { n };
  if ((fields & BroadcastField.r) !== 0) header.r = reader.strings();
  if ((fields & BroadcastField.x) !== 0) header.x = reader.strings();
  if ((fields & BroadcastField.position) !== 0) {
    header.s = reader.count(BusKind.Broadcast);
    header.e = reader.string('epoch');
  }
  reader.end(BusKind.Broadcast);
  return header;
}

function directSize(header: DirectHeader, clientAscii: boolean): number {
  let size = 2 + stringSize(header.c, clientAscii);
  if (header.o === 'join' || header.o === 'leave') size += stringSize(header.a);
  else if (header.o === 'close') size += 8 + stringSize(header.a[1]);
  if (header.r !== undefined) size += stringSize(header.r[0]);
  if (header.s !== undefined) size += 8 + stringSize(header.e!);
  if (header.d !== undefined) size += nodeIdSize(header.d);
  if (header.h !== undefined) size += 8;
  if (header.w !== undefined) size += nodeIdSize(header.w);
  return size;
}

function writeDirect(
  frame: Buffer,
  at: number,
  header: DirectHeader,
  clientAscii: boolean,
): number {
  const { r, s, d, h, w } = header;
  frame[at] = OPERATIONS.indexOf(header.o);
  frame[at + 1] =
    (r === undefined ? 0 : DirectField.r) |
    (s === undefined ? 0 : DirectField.position) |
    (d === undefined ? 0 : DirectField.d) |
    (h === undefined ? 0 : DirectField.h) |
    (w === undefined ? 0 : DirectField.w) |
    (header.l === undefined ? 0 : DirectField.l);
  let next = writeString(frame, at + 2, header.c, clientAscii);
  if (header.o === 'join' || header.o === 'leave') {
    next = writeString(frame, next, header.a);
  } else if (header.o === 'close') {
    next = writeString(frame, frame.writeDoubleBE(header.a[0], next), header.a[1]);
  }
  if (r !== undefined) next = writeString(frame, next, r[0]);
  if (s !== undefined) next = writeString(frame, frame.writeDoubleBE(s, next), header.e!);
  if (d !== undefined) next = writeNodeId(frame, next, d);
  if (h !== undefined) next = frame.writeDoubleBE(h, next);
  if (w !== undefined) next = writeNodeId(frame, next, w);
  return next;
}

function readDirect(reader: Reader, n: string): DirectHeader {
  const kind = BusKind.Direct;
  const operation = OPERATIONS[reader.byte()];
  const fields = reader.byte();
  if (operation === undefined || (fields & ~DIRECT_FIELDS) !== 0) throw malformed(kind);
  const c = reader.string('client id');
  let header: DirectHeader;
  if (operation === 'send') {
    header = { o: operation, n, c };
  } else if (operation === 'close') {
    const code = reader.double(kind);
    header = { o: operation, a: [code, reader.string('close reason')], n, c };
  } else {
    header = { o: operation, a: reader.string('room'), n, c };
  }
  if ((fields & DirectField.r) !== 0) header.r = [reader.string('stream')];
  if ((fields & DirectField.position) !== 0) {
    header.s = reader.count(kind);
    header.e = reader.string('epoch');
  }
  if ((fields & DirectField.d) !== 0) header.d = reader.nodeId();
  if ((fields & DirectField.h) !== 0) header.h = reader.count(kind);
  if ((fields & DirectField.w) !== 0) header.w = reader.nodeId();
  if ((fields & DirectField.l) !== 0) header.l = 1;
  reader.end(kind);
  return header;
}

/** Reads a binary header, field by field; anything short or out of range is a `ProtocolError`. */
class Reader {
  readonly #view: Buffer;
  #at: number;
  readonly #end: number;
  /** Whether the string read last is UTF-16LE. */
  #wide = false;

  constructor(view: Buffer, at: number, end: number) {
    this.#view = view;
    this.#at = at;
    this.#end = end;
  }

  byte(): number {
    if (this.#at >= this.#end) throw new ProtocolError('bus frame header cut short');
    return this.#view[this.#at++]!;
  }

  double(kind: BusKind): number {
    const at = this.#at;
    if (at + 8 > this.#end) throw malformed(kind);
    this.#at = at + 8;
    return this.#view.readDoubleBE(at);
  }

  /** A number that is an offset or a count: a safe integer, not negative. */
  count(kind: BusKind): number {
    const value = this.double(kind);
    if (!isCount(value)) throw malformed(kind);
    return value;
  }

  string(what: string): string {
    return this.#decode(this.#skip(what));
  }

  /** A node id: the same string as the last time its bytes came, if they came lately. */
  nodeId(): string {
    const at = this.#at;
    const start = this.#skip('node id');
    return nodeIds.known(this.#view, at, this.#at) ?? nodeIds.keep(this.#decode(start));
  }

  /** The string whose bytes {@link Reader.#skip} just moved past, from `start`. */
  #decode(start: number): string {
    return this.#view.toString(this.#wide ? 'utf16le' : 'latin1', start, this.#at);
  }

  /**
   * Moves past the next string, checked; returns where its bytes start (they end where the reader
   * now is, and are UTF-16LE when {@link Reader.#wide} is set).
   */
  #skip(what: string): number {
    const at = this.#at;
    if (at + 4 > this.#end)
      throw new ProtocolError(`bus frame header cut short before its ${what}`);
    const field = readUint32(this.#view, at);
    const wide = field >= WIDE;
    const length = wide ? field - WIDE : field;
    const start = at + 4;
    const end = start + length;
    if (end > this.#end || (wide && length % 2 !== 0)) {
      throw new ProtocolError(`bus frame header with a malformed ${what}`);
    }
    this.#at = end;
    this.#wide = wide;
    return start;
  }

  strings(): string[] {
    const at = this.#at;
    if (at + 4 > this.#end) throw new ProtocolError('bus frame header cut short before a list');
    const count = readUint32(this.#view, at);
    // Each string takes 4 bytes at least: a count beyond that is a lie, refused before looping.
    if (count * 4 > this.#end - at - 4)
      throw new ProtocolError('bus frame list overruns its header');
    this.#at = at + 4;
    const values: string[] = [];
    for (let i = 0; i < count; i++) values.push(this.string('list entry'));
    return values;
  }

  /** The JSON text left in the header. */
  rest(): string {
    const text = this.#view.toString('utf8', this.#at, this.#end);
    this.#at = this.#end;
    return text;
  }

  /** Checks that nothing is left over. */
  end(kind: BusKind): void {
    if (this.#at !== this.#end) throw malformed(kind);
  }
}

/**
 * Node ids are in every frame, and a cluster has few. The ones met last are kept with their field
 * (length, then bytes): a frame's node id is copied in, not measured and written as a string, and
 * read back as the string kept, not decoded into a new one that each map lookup by it would hash
 * again. A handful, of short ids: more nodes, or longer ids, only cost what any string costs.
 */
class NodeIds {
  readonly #ids: string[] = [];
  readonly #fields: Buffer[] = [];
  #next = 0;

  /** The field of `id`, as {@link writeString} writes it, kept from now on; none if too long. */
  field(id: string): Buffer | undefined {
    const ids = this.#ids;
    for (let k = 0; k < ids.length; k++) if (ids[k] === id) return this.#fields[k]!;
    if (id.length > MAX_KEPT_ID) return undefined;
    const field = Buffer.allocUnsafeSlow(stringSize(id));
    writeString(field, 0, id);
    const slot = this.#next;
    this.#next = (slot + 1) % KEPT_NODE_IDS;
    this.#ids[slot] = id;
    this.#fields[slot] = field;
    return field;
  }

  /** The id whose field is `view[at..end)`, if it is one kept. */
  known(view: Buffer, at: number, end: number): string | undefined {
    const length = end - at;
    const fields = this.#fields;
    next: for (let k = 0; k < fields.length; k++) {
      const field = fields[k]!;
      if (field.length !== length) continue;
      // From the end: ids of one cluster tend to differ there (`node-1`, `node-2`).
      for (let i = length - 1; i >= 0; i--) if (field[i] !== view[at + i]) continue next;
      return this.#ids[k];
    }
    return undefined;
  }

  /** Keeps a node id just decoded (unless too long); returns it. */
  keep(id: string): string {
    this.field(id);
    return id;
  }
}

const KEPT_NODE_IDS = 16;
/** Node ids are names or UUIDs: a longer one is not kept (its field would take 4 + 128 bytes). */
const MAX_KEPT_ID = 64;
const nodeIds = new NodeIds();

function readUint32(bytes: Uint8Array, at: number): number {
  return (
    ((bytes[at]! << 24) | (bytes[at + 1]! << 16) | (bytes[at + 2]! << 8) | bytes[at + 3]!) >>> 0
  );
}

function putUint32(bytes: Uint8Array, at: number, value: number): void {
  bytes[at] = value >>> 24;
  bytes[at + 1] = value >>> 16;
  bytes[at + 2] = value >>> 8;
  bytes[at + 3] = value;
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

/** A parsed header, with the node id read before it. */
type Sent = Fields & NodeHeader;

function isMoved(header: Sent): header is Sent & MovedHeader {
  return (
    isString(header.c) &&
    isCloseArgument(header.a) &&
    optional(header.d, isString) &&
    optional(header.t, isCount) &&
    optional(header.g, isCount)
  );
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
  const { i, q, a, m } = header;
  // An answer comes from a node of this version, which built it from the same types.
  if (!isCount(i)) return false;
  // Only a list comes in parts.
  if (m !== undefined && (m !== 1 || !Array.isArray(a))) return false;
  if (q === 'rooms') return isStrings(a);
  if (q === 'clients') return Array.isArray(a);
  return q === 'stats' && isObject(a);
}

function optional<T>(value: unknown, is: (value: unknown) => value is T): value is T | undefined {
  return value === undefined || is(value);
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
