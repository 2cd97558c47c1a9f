import type { Buffer } from 'node:buffer';
import type { ResumeInfo } from '../ops/node-stats.js';
import type { PresenceClient } from '../presence/presence-client.js';
import type { HeldSink } from '../protocol/v1-writer.js';
import type { RoomMember } from '../rooms/room-member.js';
import type { SavedClient } from '../sessions/session-saver.js';
import type { MessageInfo } from './upstream.js';

/**
 * A local connection as the `wscale.v1` endpoint sees it: a room member, a presence client, a
 * session to save, held while its session opens, and what the endpoint keeps on it. The
 * transport's connection is one; the endpoint never sees more of it.
 */
export interface V1Client extends RoomMember, PresenceClient, HeldSink, SavedClient {
  /** Its joins and requests waiting for their `ack`. */
  inFlight: number;
  /** For a resumed client: per room, whether what it missed was replayed. */
  recovery: ResumeInfo | undefined;
  /** Holds what is written to it until {@link HeldSink.release}. */
  hold(): void;
  /** Holds what is written to it until the function returned is called, or `ms` passed. */
  pause(ms: number): () => void;
  /** Marks a room as joined by the client's own `join` (authorized again when it resumes). */
  markOwn(room: string): void;
  /** Whether a message now would be past what is kept for a `message` listener still to come. */
  readonly inboxFull: boolean;
  /** Hands a message it sent to the application. */
  receive(data: string | Buffer, isBinary: boolean, info: MessageInfo): void;
  close(code?: number, reason?: string): void;
}
