/** What one node says of itself: its counters, its clients in cross-node answers, its resumes. */
import type { BrokerStatus } from '../contracts.js';
import type { WelcomeRoom } from '../protocol/messages.js';
import type { JoinRefusal, OutCounters, QueryCounters, ResumeCounters } from './traffic.js';

/** A client's description in cross-node query answers. */
export interface ClientInfo {
  id: string;
  nodeId: string;
  rooms: string[];
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
  /**
   * Connections closed for breaking the protocol, by the close code this node sent (`1002` a frame
   * `ws` refused, `1007` bad UTF-8 or compressed data, `1008` no hello first, `1009` too large):
   * such a client seldom answers the close, so its `close` event (and `disconnects`) says 1006.
   */
  violations: Record<string, number>;
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
  /**
   * Sends (`to().send()`, `broadcast()`, `client(id)`'s operations), `client.join()` and
   * `client.leave()` of this node that failed. Each also rejected its promise; one nobody awaited
   * is counted here and logged (`warn`), and does not end the process as an unhandled rejection.
   */
  failedSends: number;
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

/** What a resume restored (see `Client.recovery`). */
export interface ResumeInfo {
  /** Whether every missed message of every room was replayed. */
  recovered: boolean;
  /** Per room of the session: whether every missed message was replayed, and if not, why. */
  rooms: Record<string, WelcomeRoom>;
  /**
   * Rooms the session had joined by itself that `authorizeJoin` no longer allows: the client is
   * out of them (it was sent `left`). Absent when there is none.
   */
  refused?: string[];
}
