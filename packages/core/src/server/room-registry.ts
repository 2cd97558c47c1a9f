import type { Unsubscribe } from '../contracts.js';
import type { AnyClient as Client } from './client.js';

interface Room {
  members: Set<Client>;
  /** The broker subscription of the room's topic, shared by all its local members. */
  subscription: Promise<Unsubscribe>;
}

/**
 * The rooms of one node: which local clients are in which room, and one broker subscription per
 * room that has local members, taken by the first member and dropped with the last.
 */
export class RoomRegistry {
  readonly #rooms = new Map<string, Room>();
  readonly #subscribe: (room: string, isCurrent: () => boolean) => Promise<Unsubscribe>;

  /**
   * @param subscribe - subscribes a room's topic; the listener must check `isCurrent()` so a
   * subscription being torn down never delivers to the room's next incarnation.
   */
  constructor(subscribe: (room: string, isCurrent: () => boolean) => Promise<Unsubscribe>) {
    this.#subscribe = subscribe;
  }

  /** Local members of a room (empty when none). */
  members(room: string): ReadonlySet<Client> {
    return this.#rooms.get(room)?.members ?? EMPTY;
  }

  /** Rooms with at least one local member. */
  names(): string[] {
    return [...this.#rooms.keys()];
  }

  async join(client: Client, room: string): Promise<void> {
    let state = this.#rooms.get(room);
    if (state === undefined) {
      const created: Room = { members: new Set(), subscription: Promise.resolve(noop) };
      created.subscription = this.#subscribe(room, () => this.#rooms.get(room) === created);
      state = created;
      this.#rooms.set(room, state);
    }
    if (state.members.has(client)) return void (await state.subscription);
    state.members.add(client);
    client.memberships.add(room);
    try {
      await state.subscription;
    } catch (error) {
      this.#remove(client, room, state);
      throw error;
    }
  }

  async leave(client: Client, room: string): Promise<void> {
    const state = this.#rooms.get(room);
    if (state === undefined || !state.members.has(client)) return;
    await this.#remove(client, room, state);
  }

  /** Removes a client from every room it is in (it disconnected). */
  async leaveAll(client: Client): Promise<void> {
    await Promise.all([...client.memberships].map((room) => this.leave(client, room)));
  }

  async #remove(client: Client, room: string, state: Room): Promise<void> {
    state.members.delete(client);
    client.memberships.delete(room);
    if (state.members.size > 0 || this.#rooms.get(room) !== state) return;
    this.#rooms.delete(room);
    const unsubscribe = await state.subscription.catch(() => noop);
    await unsubscribe();
  }
}

const EMPTY: ReadonlySet<Client> = new Set();
const noop: Unsubscribe = async () => undefined;
