import type { RoomPattern } from '../rooms/history-rules.js';

/** Which rooms keep presence, and what each member shows of itself. */
export interface PresenceRule<Client = unknown> {
  /** Which rooms: a name, a name with `*` wildcards, a RegExp, or a list of them. */
  rooms: RoomPattern | RoomPattern[];
  /**
   * The public `info` of a member, from one of its connections (every member of the room and
   * every node sees it): a JSON value of at most 1 KiB. A throw or a larger value lists the
   * connection without info (and reports a `HandlerError`).
   * @default no info
   */
  info?: (client: Client) => unknown;
}

/** A user in a room, with its connections on every node. */
export interface PresenceMember {
  /** The user's key: its session owner (`sessionOwner`), or, for an anonymous client, its id. */
  user: string;
  /** What the rule's `info` hook returned for the user's first connection (by node, then id). */
  info?: unknown;
  /** The user's connections in the room, wherever they are. */
  connections: { id: string; node: string }[];
}

/** A user joined a room (its first connection) or left it (its last one), cluster-wide. */
export interface PresenceChange {
  type: 'join' | 'leave';
  user: string;
  info?: unknown;
}

/** Counts of a room's presence. */
export interface PresenceStats {
  /** Users in the room (members). */
  users: number;
  /** Their connections, on every node. */
  connections: number;
}

/** Options of `wss.presence(room)`. */
export interface PresenceQuery {
  /** Most members listed. @default 1000 */
  limit?: number;
  /** List members whose user key sorts after this one (the `next` of the previous page). */
  after?: string;
}

/** A page of a room's members. */
export interface PresenceList extends PresenceStats {
  /** Members in user key order. */
  members: PresenceMember[];
  /** The `after` of the next page, when there are more members. */
  next?: string;
  /**
   * Live nodes whose entries this node does not hold in full right now (it asked them and waits
   * for the answer): their members may be missing from this answer.
   */
  missing: string[];
}
