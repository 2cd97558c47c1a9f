import type { IncomingMessage } from 'node:http';
import type { BrokerStatus } from '../contracts.js';
import type { PresenceChange } from '../presence/presence-types.js';
import type { Sendable, SendOptions } from '../protocol/payload.js';
import type { Client } from '../transport/client.js';

/** Events of a `ScaledWebSocketServer`. */
export interface ServerEvents<Identity, Data extends object> {
  /**
   * A client connected to this node: every client, raw or `wscale.v1`, new or resumed, comes in
   * here. A `wscale.v1` client that resumed its session has `client.resumed` set, its rooms and
   * `data` restored, and `client.recovery` saying per room whether what it missed was replayed.
   */
  connection: [client: Client<Identity, Data>, request: IncomingMessage];
  /** Something failed that did not stop the node: a throwing handler, a bad frame, a broker error. */
  error: [error: Error];
  /** Another node was heard from for the first time (or again after it was gone). */
  nodeUp: [nodeId: string];
  /** Another node said goodbye or stopped sending heartbeats. */
  nodeDown: [nodeId: string];
  /** The broker's connection changed state. */
  brokerStatus: [status: BrokerStatus, error?: Error];
  /**
   * A user joined a presence room (its first connection anywhere) or left it (its last one, after
   * the grace period when it dropped). Every node emits it, once per change.
   */
  presence: [room: string, change: PresenceChange];
}

/** Options of cross-node queries. */
export interface QueryOptions {
  /** How long to wait for other nodes. @default the server's `requestTimeoutMs` */
  timeoutMs?: number;
}

/**
 * Operations on one client wherever in the cluster it is connected. Each resolves once sent: on
 * its way to the node holding the client (or written into a `wscale.v1` session's record), not a
 * receipt; for an id no node holds it resolves too.
 */
export interface RemoteClient {
  /** Sends a message to the client. */
  send(data: Sendable, options?: SendOptions): Promise<void>;
  /** Makes the client join a room. */
  join(room: string): Promise<void>;
  /** Makes the client leave a room. */
  leave(room: string): Promise<void>;
  /**
   * Closes the client's connection. A `wscale.v1` client between connections, or one that does
   * not answer the close (gone without its node knowing), is closed so right after its resume.
   */
  close(code?: number, reason?: string): Promise<void>;
}
