import type { Outgoing } from '../protocol/outgoing.js';
import type { V1Sink } from '../protocol/v1-writer.js';

/**
 * A local connection as the rooms see it: its room list, and the two ways it is written to (a
 * room's messages, framed once per node, and the `joined` / `resync` it is told as a `wscale.v1`
 * client). The transport's connection is one; the rooms never see more of it.
 */
export interface RoomMember extends V1Sink {
  /** Whether the connection is over: a member that is gone is not added. */
  readonly gone: boolean;
  /** The rooms it is in, without a copy. */
  readonly roomList: readonly string[];
  inRoom(room: string): boolean;
  addRoom(room: string): void;
  removeRoom(room: string): void;
  /** Writes one of a room's messages (within the send budget); `false` if it was not written. */
  deliver(message: Outgoing): boolean;
  /** Closes the connection for the server's own reason (the client comes back and resumes). */
  shut(code: number, reason: string): void;
}
