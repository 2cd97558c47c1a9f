import type { IncomingMessage } from 'node:http';
import type { BrokerStatus } from '../contracts.js';
import type { WelcomeRoom } from '../protocol/messages.js';
import type { Client } from './client.js';
import type { Sendable, SendOptions } from './payload.js';

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
}

/** What a resume restored (see `Client.recovery`). */
export interface ResumeInfo {
  /** Whether every missed message of every room was replayed. */
  recovered: boolean;
  /** Per room of the session: whether every missed message was replayed, and if not, why. */
  rooms: Record<string, WelcomeRoom>;
}

/** A client's description in cross-node query answers. */
export interface ClientInfo {
  id: string;
  nodeId: string;
  rooms: string[];
}

/** Options of cross-node queries. */
export interface QueryOptions {
  /** How long to wait for other nodes. @default the server's `requestTimeoutMs` */
  timeoutMs?: number;
}

/** Counters of one node. */
export interface ServerStats {
  /** Clients connected to this node now. */
  connections: number;
  /** Messages dropped for slow consumers. */
  dropped: number;
  /** Clients closed with 1013 because they could not keep up. */
  slowConsumersClosed: number;
  /** How often each limit was hit. */
  limited: LimitCounters;
}

/** How often each of a node's limits was hit (see the options of the same names). */
export interface LimitCounters {
  /** Joins refused with `LIMIT`: the client was in `maxRoomsPerClient` rooms. */
  rooms: number;
  /** Joins and requests refused with `BUSY`: `maxInFlightPerClient` were waiting. */
  inFlight: number;
  /** Clients closed with 1008 for sending more than `maxOpsPerSecond`. */
  rate: number;
  /** Upgrades refused with 503: the node held `maxConnections`. */
  connections: number;
  /** Upgrades refused with 403: the `Origin` is not in `allowedOrigins`. */
  origins: number;
  /** Upgrades refused with 503: `authenticate` took longer than `authenticateTimeoutMs`. */
  authenticateTimeouts: number;
  /** Session saves that kept the `data` saved before: the new one passed `maxSessionDataBytes`. */
  sessionData: number;
  /** Resumes that replayed less than was missed: past `maxReplayBytes` or `maxReplayEntries`. */
  replay: number;
}

/** Operations on one client wherever in the cluster it is connected. */
export interface RemoteClient {
  /** Sends a message to the client. */
  send(data: Sendable, options?: SendOptions): Promise<void>;
  /** Makes the client join a room. */
  join(room: string): Promise<void>;
  /** Makes the client leave a room. */
  leave(room: string): Promise<void>;
  /** Closes the client's connection. */
  close(code?: number, reason?: string): Promise<void>;
}
