import type { V1Sink } from '../protocol/v1-writer.js';

/**
 * A local connection as presence sees it: who it is, its rooms, and how it is written presence
 * frames. The transport's connection is one; presence never sees more of it.
 */
export interface PresenceClient extends V1Sink {
  readonly id: string;
  /** What `authenticate` returned: the rules' hooks and `sessionOwner` read it. */
  readonly identity: unknown;
  inRoom(room: string): boolean;
}
