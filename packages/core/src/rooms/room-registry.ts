import type { History, HistoryPosition, Unsubscribe } from '../contracts.js';
import { CloseCode } from '../protocol/close-codes.js';
import type { Outgoing } from '../protocol/outgoing.js';
import { writeJoined, writeResync } from '../protocol/v1-writer.js';
import type { RoomMember } from './room-member.js';
import { EntrySize, type JoinOutcome, type ReplayBudget, RoomStream } from './room-stream.js';

interface Room<Member extends RoomMember> {
  members: Set<Member>;
  /** The broker subscription of the room's topic, shared by all its local members. */
  subscription: Promise<Unsubscribe>;
  /** The room's order, when it keeps history. */
  stream?: RoomStream<Member>;
  /** Joins waiting for their turn in the stream, one per client; the room stays while any is. */
  joining: Map<Member, Promise<unknown>>;
}

/** What the registry needs from its node. */
export interface RoomHost {
  /** Subscribes a room's topic; `deliver` gets messages of other nodes. */
  subscribe(room: string, deliver: (message: Outgoing) => void): Promise<Unsubscribe>;
  /** The history a room keeps, if any. */
  historyOf(room: string): History | undefined;
  /**
   * A message for a room that keeps history came without its position: its sender (a `Publisher`
   * or a node) keeps no history for the room. It is delivered live, and never replayed.
   */
  unnumbered(room: string): void;
  error(error: unknown): void;
}

/**
 * The rooms of one node: which local clients are in which room, and one broker subscription per
 * room that has local members, taken by the first member and dropped with the last. Rooms that
 * keep history deliver through a {@link RoomStream}, in offset order. A member is told (`joined`)
 * when it is in a room, and (`resync`) when a history room's stream skipped ahead.
 */
export class RoomRegistry<Member extends RoomMember = RoomMember> {
  readonly #rooms = new Map<string, Room<Member>>();
  /** How large the entries its rooms' replays read are, for sizing first pages. */
  readonly #entrySize = new EntrySize();
  readonly #host: RoomHost;

  constructor(host: RoomHost) {
    this.#host = host;
  }

  /** Local members of a room (empty when none). */
  /** Whether `room` keeps history. */
  keepsHistory(room: string): boolean {
    return this.#host.historyOf(room) !== undefined;
  }

  members(room: string): ReadonlySet<Member> {
    return this.#rooms.get(room)?.members ?? EMPTY;
  }

  /** Rooms with at least one local member. */
  names(): string[] {
    return [...this.#rooms.keys()];
  }

  /**
   * Has every history room deliver what its history holds past what this node delivered: the
   * broker is back, and what was published while it was not reached no one here.
   */
  catchUp(): void {
    for (const { stream } of this.#rooms.values()) stream?.catchUp();
  }

  /** Delivers a message to a room's local members (in offset order for history rooms). */
  deliver(room: string, message: Outgoing): void {
    const state = this.#rooms.get(room);
    if (state !== undefined) this.#dispatch(room, state, message);
  }

  /**
   * Adds a client to a room. For a history room, `from` is the last position the client saw: what
   * it missed comes back in the outcome's `replay`; without `from` it starts at the current end.
   * With `announce`, the client is told it joined, in order with the room's messages. Resolves
   * once broadcasts to the room from every node reach the client; rejects, leaving the client
   * out, when the room's broker subscription fails (the next join subscribes again). A client
   * whose connection is over by the time it gets here is not added.
   */
  async join(
    client: Member,
    room: string,
    from?: HistoryPosition,
    announce = true,
    budget?: ReplayBudget,
  ): Promise<JoinOutcome | undefined> {
    if (client.gone) return undefined;
    const state = this.#state(room);
    // Joined, or joining: a second join waits for the first, and is not announced again.
    const joining = state.joining.get(client);
    if (state.members.has(client) || joining !== undefined) {
      await (joining ?? state.subscription);
      // It left while the first join waited: this one is a join of its own.
      if (joining !== undefined && !client.inRoom(room)) {
        return this.join(client, room, from, announce, budget);
      }
      return undefined;
    }
    client.addRoom(room);
    try {
      const stream = state.stream;
      if (stream !== undefined) {
        const joined = (async () => {
          // A member of a room that could not subscribe would hear nothing from other nodes.
          await state.subscription;
          // Announced only to a client still in the room when its turn comes (it may have left).
          // A join made at a position (on another node, before it came here) replays what the
          // room got since (or, when its log restarted, what the new one holds), behind its
          // `joined` and before anything live.
          const admitted = announce
            ? (outcome: JoinOutcome) => {
                if (!client.inRoom(room)) return;
                const at = outcome.recovered && from !== undefined ? from : outcome.position;
                writeJoined(client, room, at);
                for (const message of outcome.replay) client.deliver(message);
              }
            : undefined;
          return stream.join(client, from, admitted, budget);
        })();
        state.joining.set(client, joined);
        try {
          return await joined;
        } finally {
          state.joining.delete(client);
          // It may have left while it waited for its turn.
          if (!client.inRoom(room)) await this.#dropIfEmpty(room, state);
        }
      }
      state.members.add(client);
      // Told `joined` once broadcasts from every node reach it: a join the broker refuses (down,
      // or a permission) is answered with its error alone, and the client never holds the room.
      await state.subscription;
      if (announce && client.inRoom(room)) writeJoined(client, room);
      return undefined;
    } catch (error) {
      await this.#remove(client, room, state);
      throw error;
    }
  }

  async leave(client: Member, room: string): Promise<void> {
    const state = this.#rooms.get(room);
    if (state === undefined || !client.inRoom(room)) return;
    await this.#remove(client, room, state);
  }

  /** Removes a client from every room it is in (it disconnected). */
  async leaveAll(client: Member): Promise<void> {
    await Promise.all([...client.roomList].map((room) => this.leave(client, room)));
  }

  #state(room: string): Room<Member> {
    let state = this.#rooms.get(room);
    if (state !== undefined) return state;
    const created: Room<Member> = {
      members: new Set(),
      subscription: Promise.resolve(noop),
      joining: new Map(),
    };
    created.subscription = this.#host.subscribe(room, (message) => {
      if (this.#rooms.get(room) === created) this.#dispatch(room, created, message);
    });
    const history = this.#host.historyOf(room);
    if (history !== undefined) {
      created.stream = new RoomStream(
        room,
        history,
        {
          members: () => created.members,
          admit: (client) => {
            if (client.inRoom(room)) created.members.add(client);
          },
          resync: (position, except) =>
            writeResync(
              except === undefined || except.size === 0
                ? created.members
                : [...created.members].filter((member) => !except.has(member)),
              room,
              position,
            ),
          recover: (members) => {
            for (const member of members) {
              if (created.members.has(member)) {
                member.shut(CloseCode.ServiceRestart, `the history of "${room}" answers again`);
              }
            }
          },
          error: (error) => this.#host.error(error),
          entrySize: this.#entrySize,
        },
        created.subscription,
      );
    }
    state = created;
    this.#rooms.set(room, state);
    return state;
  }

  #dispatch(room: string, state: Room<Member>, message: Outgoing): void {
    if (state.stream !== undefined) {
      if (message.offset !== undefined) {
        state.stream.receive(message);
        return;
      }
      this.#host.unnumbered(room);
    }
    for (const client of state.members) client.deliver(message);
  }

  async #remove(client: Member, room: string, state: Room<Member>): Promise<void> {
    state.members.delete(client);
    client.removeRoom(room);
    await this.#dropIfEmpty(room, state);
  }

  async #dropIfEmpty(room: string, state: Room<Member>): Promise<void> {
    if (state.members.size > 0 || state.joining.size > 0 || this.#rooms.get(room) !== state) return;
    this.#rooms.delete(room);
    const unsubscribe = await state.subscription.catch(() => noop);
    await unsubscribe();
  }
}

const EMPTY: ReadonlySet<never> = new Set();
const noop: Unsubscribe = async () => undefined;
