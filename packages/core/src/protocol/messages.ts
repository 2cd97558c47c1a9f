/**
 * The `wscale.v1` messages, as TypeScript types. `docs/protocol.md` is the normative description;
 * this module and `codec.ts` are shared by the server and `@wscale/client`, so they use no Node
 * built-in and no server code.
 *
 * Every message has a type `t`. Application payloads travel in `d` as text, or, when binary, as
 * the payload of a binary frame whose header is the message without `d`.
 */

/** The subprotocol name, sent in `Sec-WebSocket-Protocol`. */
export const PROTOCOL = 'wscale.v1';

/**
 * Room names starting with `~` are the server's own: a client may not join them. `~direct:<client>`
 * is a session's stream of direct messages (when the server keeps one): it appears in `welcome`,
 * `joined` and `msg` like a room, and a client treats its messages as direct ones.
 */
export const RESERVED_ROOM_PREFIX = '~';
const INBOX_PREFIX = '~direct:';

/** The name of a session's direct-message stream. */
export function inboxOf(clientId: string): string {
  return `${INBOX_PREFIX}${clientId}`;
}

/** Whether a room name is a session's direct-message stream. */
export function isInbox(room: string): boolean {
  return room.startsWith(INBOX_PREFIX);
}

/** A position in a room's history: offset and epoch. */
export interface Position {
  /** Offset of the last message seen (0 before the first). */
  o: number;
  /** Epoch of the room's log the offset belongs to. */
  e: string;
}

/** Why a room was not recovered on resume. */
export type NotRecoveredReason =
  /** The room keeps no history: messages sent while away are gone. */
  | 'no-history'
  /** The gap is older than the history keeps. */
  | 'too-old'
  /** The room's log was lost and restarted; old offsets mean nothing. */
  | 'epoch-changed'
  /** The history could not be read (the store is down). */
  | 'unavailable'
  /** The client gave no position for the room, so what it missed is unknown. */
  | 'no-position';

/** A room's state in a `welcome`. */
export interface WelcomeRoom {
  /** Whether every message missed while away was replayed, in order, right after `welcome`. */
  recovered: boolean;
  reason?: NotRecoveredReason;
  /**
   * Current position, for rooms that keep history; for a recovered room the server joined the
   * session to while it was away (the `hello` could not list it), where its replay starts.
   */
  o?: number;
  e?: string;
}

/** Why a session was not resumed. */
export type NotResumedReason =
  /** No token was presented: a new session. */
  | 'new'
  /** The token's signature did not verify. */
  | 'invalid-token'
  /** The session expired (or never existed). */
  | 'expired'
  /** The session belongs to another identity. */
  | 'forbidden'
  /** The session store could not be read. */
  | 'unavailable';

/** Stable codes of protocol errors (`error` messages and failed `ack`s). */
export type ProtocolErrorCode =
  | 'UNKNOWN_OP'
  | 'BAD_REQUEST'
  | 'FORBIDDEN'
  | 'NOT_FOUND'
  | 'HANDLER_FAILED'
  | 'UNAVAILABLE'
  /** A request sent again after a reconnect was handled before, and its reply is no longer kept. */
  | 'REPLY_LOST'
  /** A `join` past the most rooms a client may be in. */
  | 'LIMIT'
  /** A `join` or `req` past the most a client may have waiting for their `ack`. */
  | 'BUSY';

/** Client → server: the first message of a connection. */
export interface HelloMessage {
  t: 'hello';
  /** Session token from an earlier `welcome`, to resume. */
  session?: string;
  /** Last position seen per room, to recover what was missed. */
  rooms?: Record<string, Position>;
  /**
   * Set when a connection of the session was welcomed `unavailable` since the last one that was
   * not: it may have handed on messages it could not record, so what is sent again counts as a
   * possible redelivery.
   */
  u?: 1;
}

/** Client → server: ask to join a room (the server may refuse). */
export interface JoinMessage {
  t: 'join';
  id: number;
  r: string;
}

/** Client → server: leave a room. */
export interface LeaveMessage {
  t: 'leave';
  id: number;
  r: string;
}

/**
 * Numbering of what a client sends (`msg` and `req`), so that nothing is lost when a connection or
 * a node dies: the server acknowledges with `rcv` and drops what it has already handed on.
 */
export interface Upstream {
  /** Upstream sequence number: 1, 2, 3… per session, in sending order. */
  s?: number;
  /** 1 when the frame was already sent on an earlier connection (it is sent again). */
  p?: 1;
}

/** Either way: an application message. From the server, `r`/`o`/`e` say which room and where. */
export interface DataMessage extends Upstream {
  t: 'msg';
  d?: string;
  r?: string;
  o?: number;
  e?: string;
}

/** Client → server: a request the server acknowledges with an `ack` of the same id. */
export interface RequestMessage extends Upstream {
  t: 'req';
  id: number;
  d?: string;
}

/** Client → server: an application-level ping (browsers cannot send WebSocket pings). */
export interface PingMessage {
  t: 'ping';
}

/** Server → client: the answer to `hello`. */
export interface WelcomeMessage {
  t: 'welcome';
  /** The session token to present on the next connection. */
  session: string;
  /** This client's id, stable across resumes. */
  client: string;
  /** The node the connection is on. */
  node: string;
  resumed: boolean;
  reason?: NotResumedReason;
  rooms: Record<string, WelcomeRoom>;
  /**
   * The highest upstream sequence number of this session the server had recorded: the client
   * sends again, in order, what it numbered after it and has not seen acknowledged.
   */
  s?: number;
  /**
   * The largest frame the server takes, in bytes (its `maxPayload`): a larger one closes the
   * connection with 1009, so a client refuses to send it.
   */
  m?: number;
}

/** Server → client: the client was put in a room (by the server or its own `join`). */
export interface JoinedMessage {
  t: 'joined';
  r: string;
  o?: number;
  e?: string;
}

/** Server → client: the client was taken out of a room. */
export interface LeftMessage {
  t: 'left';
  r: string;
}

/** Server → client: the answer to `join`, `leave` or `req`. */
export interface AckMessage {
  t: 'ack';
  id: number;
  d?: string;
  error?: { code: ProtocolErrorCode; message: string };
}

/** Server → client: a room's stream could not be kept whole; start over from this position. */
export interface ResyncMessage {
  t: 'resync';
  r: string;
  o: number;
  e: string;
}

/** Server → client: a message that could not be handled and has no id to answer. */
export interface ErrorMessage {
  t: 'error';
  code: ProtocolErrorCode;
  message: string;
}

/** Server → client: answer to `ping`. */
export interface PongMessage {
  t: 'pong';
}

/**
 * Server → client: every upstream frame up to sequence number `s` reached the application
 * (cumulative; sent at most every few milliseconds, not once per frame).
 */
export interface ReceivedMessage {
  t: 'rcv';
  s: number;
}

/**
 * Client → server: send me the presence of a room I am in (a `presence` snapshot, then `pjoin` and
 * `pleave` as users come and go, until I leave the room or the connection ends). Answered with an
 * `ack` of the same id, after the snapshot. Ask again after every resume: the snapshot replaces
 * what the client had.
 */
export interface PresenceRequestMessage {
  t: 'presence';
  id: number;
  r: string;
}

/** A member in a `presence` snapshot: its user key and public info. */
export interface PresenceEntry {
  u: string;
  i?: unknown;
}

/** Server → client: the members of a room now (at most a server-chosen number, by user key). */
export interface PresenceSnapshotMessage {
  t: 'presence';
  r: string;
  m: PresenceEntry[];
  /** How many users the room has (more than `m` lists when the list was capped). */
  n: number;
  /**
   * 1: the node is still learning the members the other nodes hold (it just started): `m` lists
   * some of them only, proves no one gone, and a whole snapshot follows.
   */
  p?: 1;
}

/** Server → client: a user's first connection entered a room, anywhere in the cluster. */
export interface PresenceJoinMessage {
  t: 'pjoin';
  r: string;
  u: string;
  i?: unknown;
}

/** Server → client: a user's last connection left a room (after the grace period if it dropped). */
export interface PresenceLeaveMessage {
  t: 'pleave';
  r: string;
  u: string;
}

/** The presence messages a server sends. */
export type PresenceUpdateMessage =
  | PresenceSnapshotMessage
  | PresenceJoinMessage
  | PresenceLeaveMessage;

/** Everything a client may send. */
export type ClientMessage =
  | HelloMessage
  | JoinMessage
  | LeaveMessage
  | DataMessage
  | RequestMessage
  | PingMessage
  | PresenceRequestMessage;

/** Everything a server may send. */
export type ServerMessage =
  | WelcomeMessage
  | JoinedMessage
  | LeftMessage
  | DataMessage
  | AckMessage
  | ResyncMessage
  | ErrorMessage
  | PongMessage
  | ReceivedMessage
  | PresenceUpdateMessage;

/** Bounds every decoder enforces. */
export const LIMITS = {
  /** Longest room name, in UTF-16 code units. */
  room: 256,
  /** Longest session token. */
  token: 512,
  /** Longest epoch. */
  epoch: 128,
  /** Most rooms in a `hello`. */
  rooms: 1024,
  /** Largest JSON header of a binary frame, in bytes. */
  binaryHeader: 16 * 1024,
  /** Largest request id. */
  id: 2 ** 31 - 1,
} as const;
