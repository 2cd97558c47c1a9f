import type { Buffer } from 'node:buffer';
import {
  presenceJoin,
  presenceLeave,
  presenceSnapshot,
  serverFrame,
  writePresence,
} from '../protocol/v1-writer.js';
import type { PresenceClient } from './presence-client.js';
import type { PresenceChange, PresenceMember } from './presence-types.js';

/** A room's members as a snapshot lists them: at most the listed ones, and the count of users. */
export interface PresenceListing {
  members: PresenceMember[];
  users: number;
}

/** The watchers of a room, and the room's snapshot frame as last built for them. */
interface Watched {
  clients: Set<PresenceClient>;
  /** The snapshot frame, while the room's view is still at `version` (and whole or not). */
  frame?: Buffer;
  version: number;
  partial?: boolean;
}

/**
 * The `wscale.v1` clients of this node that asked for a room's presence: each gets the room's
 * snapshot when it asks (again after every resume), then every join and leave. A change is
 * encoded once per node, whatever the number of watchers, and so is a snapshot: every ask between
 * two changes of the room (a resume storm, or one client asking again and again) is answered with
 * the same bytes, so an ask costs a write, not a list of the room.
 */
export class PresenceWatchers {
  readonly #rooms = new Map<string, Watched>();

  /**
   * Starts sending a room's changes to a client, after the snapshot it is given now: the one built
   * for the room's view at `version`, else a new one of what `list` gives; `partial` (the node is
   * still learning the others' members) marks it so.
   */
  watch(
    client: PresenceClient,
    room: string,
    version: number,
    list: () => PresenceListing,
    partial = false,
  ): void {
    let watched = this.#rooms.get(room);
    if (watched === undefined) {
      watched = { clients: new Set(), version };
      this.#rooms.set(room, watched);
    }
    watched.clients.add(client);
    if (watched.frame === undefined || watched.version !== version || watched.partial !== partial) {
      watched.frame = snapshotFrame(room, list(), partial);
      watched.version = version;
      watched.partial = partial;
    }
    if (client.open) client.writeFrame(watched.frame);
  }

  /** Whether a client watches a room. */
  watches(client: PresenceClient, room: string): boolean {
    return this.#rooms.get(room)?.clients.has(client) === true;
  }

  /** Stops sending a room's changes to a client (it left the room, or went away). */
  unwatch(client: PresenceClient, room: string): void {
    const watched = this.#rooms.get(room);
    // The last watcher gone, the room's snapshot goes too: it is kept for watched rooms only.
    if (watched?.clients.delete(client) && watched.clients.size === 0) this.#rooms.delete(room);
  }

  /** Tells the room's watchers that a user joined or left. */
  changed(room: string, change: PresenceChange): void {
    const watched = this.#rooms.get(room);
    if (watched === undefined) return;
    // Out of date now: not held until the next ask, which builds a new one.
    watched.frame = undefined;
    const message =
      change.type === 'join'
        ? presenceJoin(room, change.user, change.info)
        : presenceLeave(room, change.user);
    writePresence(watched.clients, message);
  }
}

function snapshotFrame(
  room: string,
  { members, users }: PresenceListing,
  partial: boolean,
): Buffer {
  const entries = members.map((member) =>
    member.info === undefined ? { u: member.user } : { u: member.user, i: member.info },
  );
  return serverFrame(presenceSnapshot(room, entries, users, partial));
}
