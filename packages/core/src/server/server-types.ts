import type { IncomingMessage } from 'node:http';
import type { BrokerStatus } from '../contracts.js';
import type { JoinRefusal, OutCounters, QueryCounters, ResumeCounters } from '../ops/traffic.js';
import type { PresenceChange } from '../presence/presence-types.js';
import type { WelcomeRoom } from '../protocol/messages.js';
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
  /** Rooms with members on this node. */
  rooms: number;
  /** Room memberships of this node's clients (a client in three rooms counts three). */
  subscriptions: number;
  /**
   * Frames received from connected clients: application messages and, from `wscale.v1` clients,
   * protocol frames (join, leave, ping…; a hello comes before the client and is not counted).
   */
  messagesIn: number;
  /** Bytes of the frames received from clients (payloads, without WebSocket framing). */
  bytesIn: number;
  /** Frames written to clients, by kind (a broadcast to a room of 100 here counts 100). */
  messagesOut: OutCounters;
  /** Bytes written to clients, by kind (whole WebSocket frames). */
  bytesOut: OutCounters;
  /** Of `dropped`, the volatile messages (the others were dropped by `slowConsumer: 'drop'`). */
  droppedVolatile: number;
  /** Resumes of `wscale.v1` sessions, by result. */
  resumes: ResumeCounters;
  /** Cross-node queries this node asked. */
  queries: QueryCounters;
  /** `wscale.v1` joins refused, by the code of their `ack` (`LIMIT` also counts in `limited.rooms`). */
  joinsRefused: Partial<Record<JoinRefusal, number>>;
  /** Publishes waiting for the broker to come back (brokers built on `BaseBroker`; else 0). */
  brokerQueue: number;
  /**
   * Messages this node compressed for permessage-deflate sockets: once per message, whatever
   * the number of sockets it went to (a payload no smaller compressed is then sent as it is).
   */
  compressed: number;
}

/** One recent resume, in {@link NodeStats.recentResumes}. */
export interface ResumeRecord {
  /** When (ms since the epoch). */
  at: number;
  /** The client's id (after a failed resume, the id of its new session). */
  client: string;
  /** Every missed message replayed, some room not, or no resume (a new session). */
  result: 'recovered' | 'partial' | 'failed';
  /** Why not: the first unrecovered room's reason, or why the session was not resumed. */
  reason?: string;
}

/** One node's view of itself, as `fetchStats()` gathers it from every node. */
export interface NodeStats {
  /** The node's id. */
  nodeId: string;
  /** When the node took it (ms since the epoch): rates are the difference of two over their time. */
  at: number;
  /** Its broker's state. */
  broker: BrokerStatus;
  /** Its counters (`wss.stats` on that node). */
  stats: ServerStats;
  /** The last resumes on this node, newest last (at most 20). */
  recentResumes: ResumeRecord[];
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
