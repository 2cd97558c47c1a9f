import { isInbox, LIMITS, type Position, type WelcomeRoom } from '@wscale/core/protocol';

/**
 * The rooms the client is in and, for rooms that keep history, the offset and epoch of the last
 * message it delivered. This is what `hello` presents on resume and what drops duplicates.
 */
export class RoomPositions {
  /** Room → last position, or `undefined` for a room without history (yet). */
  readonly #rooms = new Map<string, Position | undefined>();
  /**
   * The positions of rooms the session keeps but the connection is not in: it was welcomed while
   * the server could not read the session (`unavailable`), which lives on in the store with its
   * rooms. The next `hello` presents them, so that the resume giving the rooms back replays what
   * was missed meanwhile.
   */
  readonly #kept = new Map<string, Position>();

  /** The rooms the client is in (not the session's stream of direct messages, also kept here). */
  get rooms(): string[] {
    return [...this.#rooms.keys()].filter((room) => !isInbox(room));
  }

  has(room: string): boolean {
    return this.#rooms.has(room);
  }

  /** The last position in `room`, if it keeps history. */
  get(room: string): Position | undefined {
    const position = this.#rooms.get(room);
    return position && { ...position };
  }

  /**
   * The client was put in `room`; messages after `o` follow. Within the same epoch a lower offset
   * never moves the position back: what was delivered stays delivered. Returns whether messages
   * were missed: the room's position was kept for a resume, and the join starts past it (they
   * will not be replayed, this connection goes on from `o`).
   */
  joined(room: string, o: number | undefined, e: string | undefined): boolean {
    const kept = this.#kept.get(room);
    this.#kept.delete(room);
    const current = this.#rooms.get(room) ?? kept;
    if (o === undefined || e === undefined || (current?.e === e && current.o >= o)) {
      this.#rooms.set(room, current);
      return false;
    }
    this.#rooms.set(room, { o, e });
    return kept !== undefined;
  }

  /**
   * Whether a message at `o`/`e` in `room` is new; if so it becomes the room's position. A message
   * at or below the last offset of the same epoch is a duplicate; a new epoch starts over.
   */
  accept(room: string, o: number, e: string): boolean {
    const current = this.#rooms.get(room);
    if (current !== undefined && current.e === e && o <= current.o) return false;
    this.#rooms.set(room, { o, e });
    return true;
  }

  /** The server could not keep the stream whole: start over from `o`/`e`. */
  resync(room: string, o: number, e: string): void {
    this.#rooms.set(room, { o, e });
  }

  /** The client left `room`. Returns whether it was in it. */
  remove(room: string): boolean {
    this.#kept.delete(room);
    return this.#rooms.delete(room);
  }

  /**
   * Applies a `welcome` that resumed the session: its rooms are the session's rooms. A recovered
   * room keeps the client's own position (the missed messages follow, and must not count as
   * duplicates), and so does one whose history could not be read (`unavailable`); another room
   * that was not recovered starts from the position the server gives. Returns
   * the rooms the client thought it was in that the session no longer has (`gone`), and those it
   * did not list that the session has (`back`: kept through a connection welcomed `unavailable`,
   * or put in by the server just before a drop).
   */
  resumed(rooms: Record<string, WelcomeRoom>): { gone: string[]; back: string[] } {
    const gone = this.rooms.filter((room) => !(room in rooms));
    for (const room of gone) this.#rooms.delete(room);
    const back: string[] = [];
    for (const [room, state] of Object.entries(rooms)) {
      if (!this.#rooms.has(room)) {
        this.#rooms.set(room, this.#kept.get(room));
        if (!isInbox(room)) back.push(room);
      }
      // Not read (`unavailable`): the next resume asks from where the client was, again.
      const kept = state.recovered || state.reason === 'unavailable';
      if (kept && this.#rooms.get(room) !== undefined) continue;
      const position =
        state.o !== undefined && state.e !== undefined ? { o: state.o, e: state.e } : undefined;
      this.#rooms.set(room, position);
    }
    // What the session no longer has is not presented again.
    this.#kept.clear();
    return { gone, back };
  }

  /**
   * Replaces every room (a new session). Returns the rooms the client was in that are gone. With
   * `keep`, it is the same session, welcomed while the server could not read it (`unavailable`):
   * the connection is in the rooms listed only, but the session in the store still has the
   * others, whose positions the next `hello` presents until a resume gives the rooms back.
   */
  reset(rooms: Record<string, WelcomeRoom> = {}, keep = false): string[] {
    const gone = this.rooms.filter((room) => !(room in rooms));
    if (!keep) this.#kept.clear();
    for (const room of gone) {
      const position = this.#rooms.get(room);
      if (keep && position !== undefined) this.#kept.set(room, position);
    }
    const before = keep ? new Map(this.#rooms) : undefined;
    this.#rooms.clear();
    for (const [room, state] of Object.entries(rooms)) {
      // The same session's stream, recovered from where the client was (its direct messages'):
      // the missed messages follow, and must not count as duplicates. Not read (`unavailable`):
      // the next resume asks from where the client was, again.
      const own = state.recovered || state.reason === 'unavailable' ? before?.get(room) : undefined;
      if (own !== undefined) this.#rooms.set(room, own);
      else this.joined(room, state.o, state.e);
    }
    return gone;
  }

  /**
   * The positions to present in `hello` (those kept for a resume too), at most the protocol's
   * limit of rooms.
   */
  snapshot(): Record<string, Position> {
    const out: Record<string, Position> = {};
    let count = 0;
    for (const [room, position] of [...this.#rooms, ...this.#kept]) {
      if (position === undefined || room in out) continue;
      if (++count > LIMITS.rooms) break;
      out[room] = { ...position };
    }
    return out;
  }

  /** Restores positions saved with {@link RoomPositions.snapshot}. */
  restore(positions: Record<string, Position>): void {
    for (const [room, { o, e }] of Object.entries(positions)) this.#rooms.set(room, { o, e });
  }
}
