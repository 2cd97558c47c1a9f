import { inParts } from '../util/parts.js';
import type { PresenceChange, PresenceMember, PresenceStats } from './presence-types.js';
import type { Delta, EntryWire } from './presence-wire.js';

/** One connection of a member, as every node sees it. */
interface Entry {
  room: string;
  conn: string;
  user: string;
  info?: unknown;
  node: string;
  /** The node's incarnation: a restarted node's old entries are other connections than its new ones. */
  incarnation: string;
}

/** A room as this node sees it, cluster-wide: users, their connections, and the counts. */
interface RoomView {
  /** user → (node + conn) → entry. */
  users: Map<string, Map<string, Entry>>;
  connections: number;
  /**
   * Changes with every connection that comes or goes (a member's info is its first connection's):
   * what a snapshot built from the view is valid for.
   */
  version: number;
  /**
   * The users in order, kept until one joins or leaves: the snapshots of a resume storm and the
   * pages of a list sort once.
   */
  sorted?: string[];
}

/** What this node knows of another node's entries. */
interface Replica {
  incarnation: string;
  /** Sequence number of the last delta applied (meaningful only when `synced`). */
  seq: number;
  synced: boolean;
  /** room + conn → entry. */
  entries: Map<string, Entry>;
  /** Deltas that arrived while not synced, applied after the snapshot. */
  buffer: { seq: number; delta: Delta }[];
  /** The node is gone: its entries are removed at this time unless it comes back. */
  deadline?: number;
  /** When a snapshot was last asked for. */
  askedAt?: number;
  /** A snapshot arriving in parts. */
  parts?: { seq: number; incarnation: string; got: Map<number, EntryWire[]>; count: number };
}

/** A local entry: who holds it, and, when its connection dropped, until when it is kept. */
interface LocalEntry {
  holder: object;
  entry: Entry;
  away?: number;
}

/** A delta this node must publish, numbered in its sequence. */
export interface Outgoing {
  seq: number;
  delta: Delta;
}

const NOTHING: readonly Outgoing[] = [];

/** How many deltas of one node may wait for its snapshot before they are dropped and asked again. */
const MAX_BUFFERED = 10_000;

/**
 * The replicated presence view of one node: pure (no timers, no I/O; time is passed in), so it is
 * tested with fakes. Each node is the only writer of its own entries and numbers its deltas; the
 * others apply them in order, notice a gap (or a new incarnation) and then ask for a snapshot.
 * A user-level `join` or `leave` is reported when a user's count of connections in a room goes
 * from 0 to 1 or from 1 to 0 in this view, which every node computes alike.
 */
export class PresenceTracker {
  readonly nodeId: string;
  readonly incarnation: string;
  readonly #graceMs: number;
  readonly #changed: (room: string, change: PresenceChange, quiet: boolean) => void;
  readonly #rooms = new Map<string, RoomView>();
  readonly #replicas = new Map<string, Replica>();
  readonly #local = new Map<string, LocalEntry>();
  /** The keys of the local entries whose connection dropped: what {@link expire} looks at. */
  readonly #away = new Set<string>();
  #seq = 0;
  /** The last room view version given: a room emptied and filled again never repeats one. */
  #versions = 0;
  #outbox: Outgoing[] = [];
  /**
   * While this node builds its first view (see {@link begin}): the soonest and the latest it
   * stops, or undefined once it has.
   */
  #starting?: { soonest: number; latest: number };
  /** Changes are applied without telling: a view being built is no news. */
  #quiet = false;

  constructor(
    nodeId: string,
    incarnation: string,
    graceMs: number,
    /**
     * A user came to or went from a room. `quiet` while this node builds its first view: the
     * change is no news (no event), but a client already shown the room must be told.
     */
    changed: (room: string, change: PresenceChange, quiet: boolean) => void,
  ) {
    this.nodeId = nodeId;
    this.incarnation = incarnation;
    this.#graceMs = graceMs;
    this.#changed = changed;
  }

  /**
   * This node starts: what the others' first snapshots bring was there before it, so it is
   * applied with no event (a `join` is a user's first connection anywhere, not the first one this
   * node hears of). Every live node ticks within a heartbeat, so after `soonestMs` this node knows
   * them all; it stops starting once it holds every one of them, or after `latestMs` at most.
   */
  begin(now: number, soonestMs: number, latestMs: number): void {
    this.#starting = { soonest: now + soonestMs, latest: now + latestMs };
  }

  /** Whether this node is still building its first view (see {@link begin}). */
  get starting(): boolean {
    return this.#starting !== undefined;
  }

  /** This node's last sequence number. */
  get seq(): number {
    return this.#seq;
  }

  /** Takes the deltas to publish, in order. */
  take(): readonly Outgoing[] {
    const taken = this.#outbox;
    // Asked after every delta received: nothing to take, nothing allocated.
    if (taken.length === 0) return NOTHING;
    this.#outbox = [];
    return taken;
  }

  // ---- local connections ----

  /**
   * A local connection is in a room. `holder` names the connection object (a resume makes a new
   * one). `back`: a resume put it back in a room its session was in. To a node that builds its
   * first view, this one or another (told by the delta), that is no news: the user was present
   * on the node it left, which that node may never hear from (killed, or drained before it asked
   * it for a snapshot).
   */
  join(
    holder: object,
    room: string,
    conn: string,
    user: string,
    info?: unknown,
    back = false,
  ): void {
    const key = entryKey(room, conn);
    const local = this.#local.get(key);
    if (local !== undefined && local.entry.user === user) {
      // The same connection back on this node (a resume) or joining again: nothing changes.
      local.holder = holder;
      local.away = undefined;
      this.#away.delete(key);
      return;
    }
    if (local !== undefined) this.leave(local.holder, room, conn);
    const entry: Entry = { room, conn, user, node: this.nodeId, incarnation: this.incarnation };
    if (info !== undefined) entry.info = info;
    this.#local.set(key, { holder, entry });
    this.#addQuietWhileStarting(entry, back);
    this.#emit(back ? { j: toWire(entry), b: 1 } : { j: toWire(entry) });
  }

  /** A local connection left a room on purpose (or closed for good): it leaves now. */
  leave(holder: object, room: string, conn: string): void {
    const key = entryKey(room, conn);
    const local = this.#local.get(key);
    if (local === undefined || local.holder !== holder) return;
    this.#removeLocal(key, local, true);
  }

  /**
   * A local connection dropped: its entry stays for the grace period, so a resume (here or on any
   * node) is no leave. It stays even when the connection is back elsewhere already: a leave
   * published now could reach a third node before that node hears of the resume (the broker
   * orders one publisher's messages, not two publishers'), and would show as a leave and a join.
   */
  drop(holder: object, room: string, conn: string, now: number): void {
    const key = entryKey(room, conn);
    const local = this.#local.get(key);
    if (local === undefined || local.holder !== holder) return;
    // Its session taken over elsewhere, it is away from then on, not from when its socket ends.
    local.away ??= now + this.#graceMs;
    this.#away.add(key);
  }

  // ---- other nodes ----

  /** A delta of another node. Returns whether that node must be asked for a snapshot. */
  receive(node: string, incarnation: string, seq: number, delta: Delta, now: number): boolean {
    if (node === this.nodeId) return false;
    const replica = this.#replica(node, incarnation, now);
    if (replica.synced && seq <= replica.seq) return false;
    if (!replica.synced && replica.seq === 0 && seq === 1 && replica.entries.size === 0) {
      replica.synced = true; // a node's first delta: its state before it was empty
    }
    if (replica.synced && seq === replica.seq + 1) {
      this.#apply(node, replica, delta);
      replica.seq = seq;
      return false;
    }
    if (replica.synced) this.#unsync(replica);
    if (replica.buffer.length >= MAX_BUFFERED) replica.buffer = [];
    replica.buffer.push({ seq, delta });
    return this.#shouldAsk(replica, now);
  }

  /** Another node's periodic word: its sequence number. Returns whether to ask for a snapshot. */
  tick(node: string, incarnation: string, seq: number, now: number): boolean {
    if (node === this.nodeId) return false;
    const replica = this.#replica(node, incarnation, now);
    if (replica.synced && seq > replica.seq) this.#unsync(replica);
    if (!replica.synced && seq === 0 && replica.entries.size === 0) {
      replica.synced = true;
      return false;
    }
    return !replica.synced && this.#shouldAsk(replica, now);
  }

  /** A part of another node's snapshot: its entries at sequence number `seq`. */
  snapshotPart(
    node: string,
    incarnation: string,
    seq: number,
    part: number,
    count: number,
    entries: EntryWire[],
    now: number,
  ): void {
    if (node === this.nodeId) return;
    const replica = this.#replica(node, incarnation, now);
    if (replica.synced && seq <= replica.seq) return;
    let parts = replica.parts;
    if (parts === undefined || parts.seq !== seq || parts.incarnation !== incarnation) {
      parts = { seq, incarnation, got: new Map(), count };
      replica.parts = parts;
    }
    parts.got.set(part, entries);
    if (parts.got.size < parts.count) return;
    replica.parts = undefined;
    // The first snapshot of a node, while this node builds its view: those users were there.
    this.#quiet = this.#starting !== undefined && !replica.synced && replica.seq === 0;
    try {
      this.#replace(replica, parts.got.values(), node, incarnation);
    } finally {
      this.#quiet = false;
    }
    replica.seq = seq;
    replica.synced = true;
    replica.askedAt = undefined;
    replica.deadline = undefined;
    const buffered = replica.buffer.sort((a, b) => a.seq - b.seq);
    replica.buffer = [];
    for (const { seq: s, delta } of buffered) {
      if (s <= replica.seq) continue;
      if (s !== replica.seq + 1) {
        this.#unsync(replica);
        replica.buffer.push({ seq: s, delta });
        continue;
      }
      this.#apply(node, replica, delta);
      replica.seq = s;
    }
    this.#started(now);
  }

  /**
   * This node's entries, for a snapshot: its sequence number and the entries in parts of at most
   * `partSize` entries and `partBytes` bytes of JSON (an entry larger alone still goes alone).
   */
  snapshot(
    partSize: number,
    partBytes = Number.POSITIVE_INFINITY,
  ): { seq: number; parts: EntryWire[][] } {
    const entries = [...this.#local.values()].map((local) => toWire(local.entry));
    return { seq: this.#seq, parts: inParts(entries, partSize, partBytes) };
  }

  /** Another node is gone: its entries go after the grace period unless it comes back. */
  nodeDown(node: string, now: number): void {
    const replica = this.#replicas.get(node);
    if (replica !== undefined) replica.deadline ??= now + this.#graceMs;
  }

  /** Another node is back (or new): what this node has of it may be stale, so it asks again. */
  nodeUp(node: string): void {
    const replica = this.#replicas.get(node);
    if (replica === undefined) {
      // Not heard from yet: unknown until its snapshot (or its first delta) comes.
      this.#replicas.set(node, {
        incarnation: '',
        seq: 0,
        synced: false,
        entries: new Map(),
        buffer: [],
      });
      return;
    }
    replica.deadline = undefined;
    if (replica.synced) this.#unsync(replica);
  }

  /** Nodes whose entries this node does not have in full now (and old incarnations' keys). */
  unsynced(): string[] {
    const nodes: string[] = [];
    for (const [node, replica] of this.#replicas) if (!replica.synced) nodes.push(node);
    return nodes;
  }

  /** Nodes to ask for a snapshot now (not synced, and not asked recently). */
  toAsk(now: number): string[] {
    const nodes: string[] = [];
    for (const [node, replica] of this.#replicas) {
      if (!replica.synced && replica.deadline === undefined && this.#shouldAsk(replica, now)) {
        nodes.push(node);
      }
    }
    return nodes;
  }

  /**
   * Removes what has outlived its grace: local entries whose connection did not come back (a
   * `leave` is published for each) and the entries of nodes that are gone.
   */
  expire(now: number): void {
    this.#started(now);
    for (const key of this.#away) {
      const local = this.#local.get(key)!;
      if (local.away! <= now) this.#removeLocal(key, local);
    }
    for (const [node, replica] of this.#replicas) {
      if (replica.deadline === undefined || replica.deadline > now) continue;
      this.#replicas.delete(node);
      for (const entry of replica.entries.values()) this.#remove(entry);
    }
  }

  // ---- queries ----

  /** Users and connections in a room, from maintained counts: O(1). */
  stats(room: string): PresenceStats {
    const view = this.#rooms.get(room);
    return { users: view?.users.size ?? 0, connections: view?.connections ?? 0 };
  }

  /**
   * The version of a room's view: the same as long as its members and their info are, so
   * whatever was built from {@link members} and {@link stats} can be kept until it changes.
   */
  version(room: string): number {
    return this.#rooms.get(room)?.version ?? 0;
  }

  /** Members of a room in user order, at most `limit`, after the user `after`. */
  members(room: string, limit: number, after?: string): PresenceMember[] {
    const view = this.#rooms.get(room);
    if (view === undefined) return [];
    view.sorted ??= [...view.users.keys()].sort();
    const users = view.sorted;
    const start = after === undefined ? 0 : firstAfter(users, after);
    return users.slice(start, start + limit).map((user) => member(user, view.users.get(user)!));
  }

  // ---- internals ----

  #replica(node: string, incarnation: string, now: number): Replica {
    const known = this.#replicas.get(node);
    if (known !== undefined && (known.incarnation === incarnation || known.incarnation === '')) {
      known.incarnation = incarnation;
      return known;
    }
    if (known !== undefined && known.entries.size > 0) {
      // A restarted node: its old connections died with it, but they may come back (to it or
      // elsewhere) within the grace period, like those of a node that is gone.
      known.deadline ??= now + this.#graceMs;
      this.#replicas.set(`${node}\u0000${known.incarnation}`, known);
    }
    const fresh: Replica = { incarnation, seq: 0, synced: false, entries: new Map(), buffer: [] };
    this.#replicas.set(node, fresh);
    return fresh;
  }

  /** Ends the start once this node holds every live node's entries (or it waited long enough). */
  #started(now: number): void {
    const starting = this.#starting;
    if (starting === undefined || now < starting.soonest) return;
    if (now < starting.latest) {
      for (const replica of this.#replicas.values()) {
        if (!replica.synced && replica.deadline === undefined) return;
      }
    }
    this.#starting = undefined;
  }

  #unsync(replica: Replica): void {
    replica.synced = false;
    replica.askedAt = undefined;
  }

  #shouldAsk(replica: Replica, now: number): boolean {
    if (replica.askedAt !== undefined && now - replica.askedAt < ASK_AGAIN_MS) return false;
    replica.askedAt = now;
    return true;
  }

  #apply(node: string, replica: Replica, delta: Delta): void {
    if ('j' in delta) {
      const entry = fromWire(delta.j, node, replica.incarnation);
      const key = entryKey(entry.room, entry.conn);
      const old = replica.entries.get(key);
      if (old !== undefined) this.#removeRemote(replica, key, old);
      replica.entries.set(key, entry);
      this.#addQuietWhileStarting(entry, delta.b === 1);
      return;
    }
    const [room, conn] = delta.l;
    const key = entryKey(room, conn);
    const old = replica.entries.get(key);
    if (old !== undefined) this.#removeRemote(replica, key, old);
    if (delta.p !== 1) return;
    // The connection resumed on that node and left on purpose there: what this node kept of it
    // for a resume is not waiting for one any more, nor what it keeps of a gone node's.
    const local = this.#local.get(key);
    if (local?.away !== undefined) this.#removeLocal(key, local, true);
    else this.#forgetKept(key);
  }

  /**
   * A connection left a room on purpose: gone nodes' entries of it (kept for a resume, which came)
   * go now, not at their deadline. A live node's entry stays: it may be the connection's own
   * there, heard before this leave; that node removes it itself.
   */
  #forgetKept(key: string): void {
    for (const replica of this.#replicas.values()) {
      if (replica.deadline === undefined) continue;
      const kept = replica.entries.get(key);
      if (kept !== undefined) this.#removeRemote(replica, key, kept);
    }
  }

  /** Makes a replica's entries a snapshot's. */
  #replace(
    replica: Replica,
    lists: Iterable<EntryWire[]>,
    node: string,
    incarnation: string,
  ): void {
    const next = new Map<string, Entry>();
    for (const list of lists) {
      for (const wire of list) {
        const entry = fromWire(wire, node, incarnation);
        next.set(entryKey(entry.room, entry.conn), entry);
      }
    }
    for (const [key, entry] of replica.entries) {
      if (!next.has(key)) this.#removeRemote(replica, key, entry);
    }
    for (const [key, entry] of next) {
      const old = replica.entries.get(key);
      if (old?.user === entry.user) continue;
      if (old !== undefined) this.#removeRemote(replica, key, old);
      this.#addRemote(replica, key, entry);
    }
  }

  /** Adds an entry; one a resume put `back` makes no event while this node builds its first view. */
  #addQuietWhileStarting(entry: Entry, back: boolean): void {
    this.#quiet = back && this.#starting !== undefined;
    try {
      this.#add(entry);
    } finally {
      this.#quiet = false;
    }
  }

  #addRemote(replica: Replica, key: string, entry: Entry): void {
    replica.entries.set(key, entry);
    this.#add(entry);
  }

  #removeRemote(replica: Replica, key: string, entry: Entry): void {
    replica.entries.delete(key);
    this.#remove(entry);
  }

  #add(entry: Entry): void {
    let view = this.#rooms.get(entry.room);
    if (view === undefined) {
      view = { users: new Map(), connections: 0, version: 0 };
      this.#rooms.set(entry.room, view);
    }
    let connections = view.users.get(entry.user);
    const first = connections === undefined;
    if (connections === undefined) {
      connections = new Map();
      view.users.set(entry.user, connections);
    }
    const key = connKey(entry);
    if (!connections.has(key)) view.connections++;
    connections.set(key, entry);
    view.version = ++this.#versions;
    if (!first) return;
    view.sorted = undefined;
    this.#changed(entry.room, change('join', entry), this.#quiet);
  }

  #remove(entry: Entry): void {
    const view = this.#rooms.get(entry.room);
    const connections = view?.users.get(entry.user);
    if (view === undefined || connections === undefined) return;
    if (!connections.delete(connKey(entry))) return;
    view.connections--;
    view.version = ++this.#versions;
    if (connections.size > 0) return;
    view.users.delete(entry.user);
    view.sorted = undefined;
    if (view.users.size === 0) this.#rooms.delete(entry.room);
    this.#changed(entry.room, change('leave', entry), this.#quiet);
  }

  /** A local entry leaves: this node's view and the others' (by the delta published). */
  #removeLocal(key: string, local: LocalEntry, onPurpose = false): void {
    this.#local.delete(key);
    this.#away.delete(key);
    this.#remove(local.entry);
    const left: [string, string] = [local.entry.room, local.entry.conn];
    this.#emit(onPurpose ? { l: left, p: 1 } : { l: left });
    if (onPurpose) this.#forgetKept(key);
  }

  #emit(delta: Delta): void {
    this.#outbox.push({ seq: ++this.#seq, delta });
  }
}

/** How long before a snapshot that did not come is asked for again. */
const ASK_AGAIN_MS = 1000;

function entryKey(room: string, conn: string): string {
  return `${room}\u0000${conn}`;
}

/** Where a connection is in a member's list: sorts by node, then id. */
function connKey(entry: Entry): string {
  return `${entry.node}\u0000${entry.conn}\u0000${entry.incarnation}`;
}

function toWire(entry: Entry): EntryWire {
  return entry.info === undefined
    ? [entry.room, entry.conn, entry.user]
    : [entry.room, entry.conn, entry.user, entry.info];
}

function fromWire(wire: EntryWire, node: string, incarnation: string): Entry {
  const [room, conn, user, info] = wire;
  const entry: Entry = { room, conn, user, node, incarnation };
  if (info !== undefined) entry.info = info;
  return entry;
}

function change(type: 'join' | 'leave', entry: Entry): PresenceChange {
  return entry.info === undefined
    ? { type, user: entry.user }
    : { type, user: entry.user, info: entry.info };
}

/** The index of the first of the sorted `users` after `after`. */
function firstAfter(users: string[], after: string): number {
  let low = 0;
  let high = users.length;
  while (low < high) {
    const mid = (low + high) >>> 1;
    if (users[mid]! <= after) low = mid + 1;
    else high = mid;
  }
  return low;
}

/** A member as listed: its info is its first connection's (in node, id order), the same everywhere. */
function member(user: string, connections: Map<string, Entry>): PresenceMember {
  const keys = [...connections.keys()];
  // Most members have one connection: nothing to sort.
  if (keys.length > 1) keys.sort();
  const first = connections.get(keys[0]!)!;
  const listed: PresenceMember = {
    user,
    connections: keys.map((key) => {
      const entry = connections.get(key)!;
      return { id: entry.conn, node: entry.node };
    }),
  };
  if (first.info !== undefined) listed.info = first.info;
  return listed;
}
