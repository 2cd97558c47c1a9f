import type { PresenceEntry } from '@wscale/core/protocol';
import { TypedEmitter } from './emitter.js';

/** A user in a room, as a client sees it. */
export interface PresenceMember {
  /** The user's key (the server's session owner of that user). */
  user: string;
  /** The public info the server chose for the user, if any. */
  info?: unknown;
}

/** The events of a {@link PresenceView}. */
export interface PresenceViewEvents {
  /** A user is now in the room (its first connection anywhere in the cluster). */
  join: (member: PresenceMember) => void;
  /** A user is no longer in the room (its last connection left, or dropped and did not come back). */
  leave: (member: PresenceMember) => void;
  /** The list changed (after one or more `join`/`leave`, or a snapshot that changed nothing). */
  change: (members: PresenceMember[]) => void;
  /**
   * The client is no longer in the room (it left, was taken out, or lost it with its session): the
   * view keeps its last list and is not updated again. Ask `presence()` again after a new `join`.
   */
  end: () => void;
}

/**
 * Who is in a room, kept up to date by the server: a snapshot when the client asks (and again after
 * every resume), then every join and leave. A snapshot is merged here: only users that really came
 * or went are reported, so a resume never shows as everyone leaving and coming back.
 */
export class PresenceView extends TypedEmitter<PresenceViewEvents> {
  /** The room. */
  readonly room: string;
  readonly #members = new Map<string, PresenceMember>();
  #total = 0;
  #synced = false;
  #ended = false;

  /** @internal */
  constructor(room: string) {
    super();
    this.room = room;
  }

  /** The members listed, by user key (a very large room's snapshot lists the first 1000). */
  get members(): ReadonlyMap<string, PresenceMember> {
    return this.#members;
  }

  /** How many users the room has, listed or not. */
  get count(): number {
    return this.#total;
  }

  /** Whether a snapshot has arrived since the view was created. */
  get synced(): boolean {
    return this.#synced;
  }

  /** Whether the view ended (see the `end` event): it is no longer updated. */
  get ended(): boolean {
    return this.#ended;
  }

  /** @internal The client left the room. An ended view is not updated again. */
  end(): void {
    if (this.#ended) return;
    this.#ended = true;
    this.emit('end');
  }

  /**
   * @internal The server's snapshot replaces the list; only real differences are reported. A list
   * cut short (a room of more than the 1000 listed) proves nothing about the users it leaves out: a
   * user the snapshot does not list leaves only if the snapshot is whole, and a user it lists comes
   * only if the list before it was whole. A `partial` one (its node just started and has not heard
   * of every member yet; the whole one follows) is merged into the list: it takes no one out.
   */
  snapshot(entries: readonly PresenceEntry[], total: number, partial = false): void {
    if (this.#ended) return;
    const next = new Map<string, PresenceMember>();
    for (const entry of entries) next.set(entry.u, member(entry));
    const wholeSnapshot = total <= next.size && !partial;
    const wholeBefore = !this.#synced || this.#total <= this.#members.size;
    const members = [...this.#members.values()];
    const gone = wholeSnapshot ? members.filter((old) => !next.has(old.user)) : [];
    const come = wholeBefore
      ? [...next.values()].filter((fresh) => !this.#members.has(fresh.user))
      : [];
    if (partial) {
      for (const old of members) if (!next.has(old.user)) next.set(old.user, old);
    }
    this.#members.clear();
    for (const [user, fresh] of next) this.#members.set(user, fresh);
    this.#total = Math.max(total, next.size);
    this.#synced = true;
    for (const old of gone) this.emit('leave', old);
    for (const fresh of come) this.emit('join', fresh);
    this.#changed();
  }

  /** @internal */
  joined(entry: PresenceEntry): void {
    if (this.#ended || this.#members.has(entry.u)) return;
    const fresh = member(entry);
    this.#members.set(fresh.user, fresh);
    this.#total++;
    this.emit('join', fresh);
    this.#changed();
  }

  /** @internal */
  left(user: string): void {
    if (this.#ended) return;
    const old = this.#members.get(user);
    this.#total = Math.max(this.#members.size - (old ? 1 : 0), this.#total - 1);
    if (old === undefined) return;
    this.#members.delete(user);
    this.emit('leave', old);
    this.#changed();
  }

  /** Emits `change`; the list is copied only when someone listens. */
  #changed(): void {
    if (this.listens('change')) this.emit('change', [...this.#members.values()]);
  }
}

function member(entry: PresenceEntry): PresenceMember {
  return entry.i === undefined ? { user: entry.u } : { user: entry.u, info: entry.i };
}
