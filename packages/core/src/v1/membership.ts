import type { HistoryPosition } from '../contracts.js';
import type { PresenceService } from '../presence/presence-service.js';
import { writeLeft } from '../protocol/v1-writer.js';
import type { RoomRegistry } from '../rooms/room-registry.js';
import type { JoinOutcome, ReplayBudget } from '../rooms/room-stream.js';
import type { V1Client } from './v1-client.js';

/**
 * Joins and leaves of the node's clients, whoever asks (a client's `join`, `client.join()`, a
 * direct operation from another node, a resume): the room, the client's presence in it, and, for a
 * `wscale.v1` client, its `joined` / `left` and its session saved with the room.
 */
export class Membership {
  readonly #rooms: RoomRegistry<V1Client>;
  readonly #presence: PresenceService | undefined;
  readonly #clients: ReadonlyMap<string, V1Client>;
  readonly #save: (client: V1Client) => Promise<void>;
  /** The last join or leave asked of each client's room, while one runs. */
  readonly #running = new WeakMap<V1Client, Map<string, Promise<void>>>();

  constructor(
    rooms: RoomRegistry<V1Client>,
    presence: PresenceService | undefined,
    /** The node's connected clients: one that is no longer among them enters no presence. */
    clients: ReadonlyMap<string, V1Client>,
    /** Saves a `wscale.v1` client's session. */
    save: (client: V1Client) => Promise<void>,
  ) {
    this.#rooms = rooms;
    this.#presence = presence;
    this.#clients = clients;
    this.#save = save;
  }

  /** Whether `room` keeps history. */
  keepsHistory(room: string): boolean {
    return this.#rooms.keepsHistory(room);
  }

  /**
   * Runs a join or leave of a client's room after the ones asked before it for that room, by the
   * client or by the application: a join waits for `authorizeJoin`, the broker and the store, and
   * a leave asked meanwhile must not run first (it would find the client not yet in the room, and
   * the join would put it there after). Rejects as `operation` does.
   */
  inOrder<T>(client: V1Client, room: string, operation: () => Promise<T>): Promise<T> {
    let rooms = this.#running.get(client);
    if (rooms === undefined) {
      rooms = new Map();
      this.#running.set(client, rooms);
    }
    const next = (rooms.get(room) ?? DONE).then(operation);
    const last = next.then(
      () => undefined,
      () => undefined,
    );
    rooms.set(room, last);
    void last.then(() => {
      if (rooms.get(room) === last) rooms.delete(room);
    });
    return next;
  }

  /**
   * Puts a client in a room (see {@link RoomRegistry.join}). With `announce` (a join, not a resume
   * putting the client back where it was), it is told `joined` and its session is saved before
   * this resolves: a join that was acknowledged survives this node.
   */
  async join(
    client: V1Client,
    room: string,
    from?: HistoryPosition,
    announce = true,
    budget?: ReplayBudget,
  ): Promise<JoinOutcome | undefined> {
    // Told `joined` only once its session has the room: a node that dies right after cannot
    // resume the client without it (a server's own `client.join()` has no ack to wait for).
    const resume = client.v1 && announce ? client.pause(SAVE_HOLD_MS) : undefined;
    try {
      const outcome = await this.#rooms.join(client, room, from, announce, budget);
      if (client.inRoom(room) && this.#clients.get(client.id) === client) {
        this.#presence?.entered(client, room, !announce);
      }
      if (resume !== undefined) await this.#save(client);
      return outcome;
    } finally {
      resume?.();
    }
  }

  /** Takes a client out of a room; a `wscale.v1` client is told `left` and its session saved. */
  async leave(client: V1Client, room: string): Promise<void> {
    if (!client.inRoom(room)) return;
    // As for a join: told `left` once the session no longer has the room.
    const resume = client.v1 ? client.pause(SAVE_HOLD_MS) : undefined;
    try {
      await this.#rooms.leave(client, room);
      this.#presence?.left(client, room);
      if (!client.v1) return;
      writeLeft(client, room);
      await this.#save(client);
    } finally {
      resume?.();
    }
  }
}

/**
 * How long a join or leave holds its client's frames for the session save at most: a store that
 * does not answer delays the client's traffic this long, not its whole timeout.
 */
const SAVE_HOLD_MS = 1000;

const DONE: Promise<void> = Promise.resolve();
