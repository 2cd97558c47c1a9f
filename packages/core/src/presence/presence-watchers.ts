import {
  presenceJoin,
  presenceLeave,
  presenceSnapshot,
  writePresence,
} from '../protocol/v1-writer.js';
import type { PresenceClient } from './presence-client.js';
import type { PresenceChange, PresenceMember } from './presence-types.js';

/**
 * The `wscale.v1` clients of this node that asked for a room's presence: each gets the room's
 * snapshot when it asks (again after every resume), then every join and leave. A change is
 * encoded once per node, whatever the number of watchers.
 */
export class PresenceWatchers {
  readonly #rooms = new Map<string, Set<PresenceClient>>();

  /** Starts sending a room's changes to a client, after the snapshot it is given now. */
  watch(client: PresenceClient, room: string, members: PresenceMember[], users: number): void {
    let watchers = this.#rooms.get(room);
    if (watchers === undefined) {
      watchers = new Set();
      this.#rooms.set(room, watchers);
    }
    watchers.add(client);
    const entries = members.map((member) =>
      member.info === undefined ? { u: member.user } : { u: member.user, i: member.info },
    );
    writePresence([client], presenceSnapshot(room, entries, users));
  }

  /** Stops sending a room's changes to a client (it left the room, or went away). */
  unwatch(client: PresenceClient, room: string): void {
    const watchers = this.#rooms.get(room);
    if (watchers?.delete(client) && watchers.size === 0) this.#rooms.delete(room);
  }

  /** Tells the room's watchers that a user joined or left. */
  changed(room: string, change: PresenceChange): void {
    const watchers = this.#rooms.get(room);
    if (watchers === undefined) return;
    const message =
      change.type === 'join'
        ? presenceJoin(room, change.user, change.info)
        : presenceLeave(room, change.user);
    writePresence(watchers, message);
  }
}
