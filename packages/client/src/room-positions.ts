import { isInbox, LIMITS, type Position, type WelcomeRoom } from '@wscale/core/protocol';

/**
 * The rooms the client is in and, for rooms that keep history, the offset and epoch of the last
 * message it delivered. This is what `hello` presents on resume and what drops duplicates.
 */
export class RoomPositions {
  /** Room → last position, or `undefined` for a room without history (yet). */
  readonly #rooms = new Map<string, Position | undefined>();

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
   * never moves the position back: what was delivered stays delivered.
   */
  joined(room: string, o: number | undefined, e: string | undefined): void {
    const current = this.#rooms.get(room);
    if (o === undefined || e === undefined) {
      this.#rooms.set(room, current);
      return;
    }
    if (current !== undefined && current.e === e && current.o >= o) return;
    this.#rooms.set(room, { o, e });
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
    return this.#rooms.delete(room);
  }

  /**
   * Applies a `welcome` that resumed the session: its rooms are the session's rooms. A recovered
   * room keeps the client's own position (the missed messages follow, and must not count as
   * duplicates); a room that was not recovered starts from the position the server gives. Returns
   * the rooms the client thought it was in that the session no longer has.
   */
  resumed(rooms: Record<string, WelcomeRoom>): string[] {
    const gone = this.rooms.filter((room) => !(room in rooms));
    for (const room of gone) this.#rooms.delete(room);
    for (const [room, state] of Object.entries(rooms)) {
      if (state.recovered && this.#rooms.get(room) !== undefined) continue;
      const position =
        state.o !== undefined && state.e !== undefined ? { o: state.o, e: state.e } : undefined;
      this.#rooms.set(room, position);
    }
    return gone;
  }

  /** Replaces every room (a new session). Returns the rooms the client was in that are gone. */
  reset(rooms: Record<string, WelcomeRoom> = {}): string[] {
    const gone = this.rooms.filter((room) => !(room in rooms));
    this.#rooms.clear();
    for (const [room, state] of Object.entries(rooms)) {
      this.joined(room, state.o, state.e);
    }
    return gone;
  }

  /** The positions to present in `hello`, at most the protocol's limit of rooms. */
  snapshot(): Record<string, Position> {
    const out: Record<string, Position> = {};
    let count = 0;
    for (const [room, position] of this.#rooms) {
      if (position === undefined) continue;
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
