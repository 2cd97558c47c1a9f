import type { NotRecoveredReason, NotResumedReason } from '../protocol/messages.js';
import { OutKind } from '../protocol/outgoing.js';
import type { ResumeInfo, ResumeRecord, ServerStats } from './node-stats.js';

/** Messages (or bytes) a node wrote to its clients, by kind. */
export interface OutCounters {
  /** Application messages sent to rooms or to everyone. */
  broadcast: number;
  /** Application messages sent to one client (`client.send`, `wss.client(id).send`). */
  direct: number;
  /** Missed messages replayed to a resuming `wscale.v1` client. */
  replay: number;
  /** `wscale.v1` protocol frames: welcome, ack, joined, left, resync, pong, error, rcv. */
  control: number;
}

/** How resumes went: a `wscale.v1` hello that presented a session token. */
export interface ResumeCounters {
  /** Resumed, and every room replayed what the client missed. */
  recovered: number;
  /** Resumed, but some room could not replay what was missed, by that room's reason. */
  partial: Partial<Record<NotRecoveredReason, number>>;
  /** Not resumed (the client got a new session), by reason. */
  failed: Partial<Record<NotResumedReason, number>>;
}

/** Why a client's `join` was refused: its `ack` error code. */
export type JoinRefusal = 'FORBIDDEN' | 'LIMIT' | 'UNAVAILABLE';

/** Cross-node queries this node asked (`fetchRooms`, `fetchClients`, `fetchStats`). */
export interface QueryCounters {
  /** Queries asked. */
  asked: number;
  /** Queries that some alive node did not answer in time (a partial answer). */
  partial: number;
  /** Seconds spent waiting for answers, summed over all queries. */
  seconds: number;
}

/**
 * The counters of one node beyond connections and limits: frames in and out, resumes, queries,
 * refused joins. Frames out are numbers in typed arrays indexed by kind: the fan-out adds to them
 * without allocating, and `wss.stats` copies them out.
 */
export class Traffic {
  messagesIn = 0;
  bytesIn = 0;
  /** Volatile messages dropped for slow consumers (the rest of `stats.dropped` is by policy). */
  droppedVolatile = 0;
  readonly #messagesOut = new Float64Array(4);
  readonly #bytesOut = new Float64Array(4);
  readonly resumes: ResumeCounters = { recovered: 0, partial: {}, failed: {} };
  readonly queries: QueryCounters = { asked: 0, partial: 0, seconds: 0 };
  /** Clients' joins refused, by the code of their `ack`. */
  readonly joinsRefused: Partial<Record<JoinRefusal, number>> = {};
  /** The last resumes, newest last. */
  readonly recentResumes: ResumeRecord[] = [];

  /** Counts one frame written (or queued) for a client. */
  out(kind: OutKind, bytes: number): void {
    this.#messagesOut[kind]!++;
    this.#bytesOut[kind]! += bytes;
  }

  /**
   * Counts a hello that presented a session token: resumed with what `recovery` says (by the
   * first unrecovered room's reason, a room that keeps history first: a room without any is
   * never recovered, and would hide the loss of one that has), or not resumed for `reason`.
   * Returns the record.
   */
  resumed(
    client: string,
    recovery: ResumeInfo | undefined,
    notResumed: string | undefined,
  ): ResumeRecord {
    const result = recovery === undefined ? 'failed' : recovery.recovered ? 'recovered' : 'partial';
    let reason = notResumed;
    if (recovery !== undefined) {
      const unrecovered = Object.values(recovery.rooms).filter((room) => !room.recovered);
      reason = (unrecovered.find((room) => room.reason !== 'no-history') ?? unrecovered[0])?.reason;
    }
    if (result === 'recovered') this.resumes.recovered++;
    else {
      const counts: Record<string, number> = this.resumes[result];
      const key = reason ?? 'unknown';
      counts[key] = (counts[key] ?? 0) + 1;
    }
    const record: ResumeRecord = { at: Date.now(), client, result };
    if (reason !== undefined) record.reason = reason;
    if (this.recentResumes.push(record) > RECENT_RESUMES) this.recentResumes.shift();
    return record;
  }

  joinRefused(code: JoinRefusal): void {
    this.joinsRefused[code] = (this.joinsRefused[code] ?? 0) + 1;
  }

  /** Counts a cross-node query that took `ms` and lacked `missing` nodes' answers. */
  queried(ms: number, missing: number): void {
    this.queries.asked++;
    if (missing > 0) this.queries.partial++;
    this.queries.seconds += ms / 1000;
  }

  /** The traffic part of `wss.stats`: copies, so a reader cannot change the counters. */
  snapshot(): Pick<ServerStats, TrafficStat> {
    return {
      messagesIn: this.messagesIn,
      bytesIn: this.bytesIn,
      messagesOut: counters(this.#messagesOut),
      bytesOut: counters(this.#bytesOut),
      droppedVolatile: this.droppedVolatile,
      resumes: structuredClone(this.resumes),
      queries: { ...this.queries },
      joinsRefused: { ...this.joinsRefused },
    };
  }
}

/** The members of `wss.stats` that {@link Traffic} keeps. */
type TrafficStat =
  | 'messagesIn'
  | 'bytesIn'
  | 'messagesOut'
  | 'bytesOut'
  | 'droppedVolatile'
  | 'resumes'
  | 'queries'
  | 'joinsRefused';

/** How many resumes a node keeps for the cluster view. */
const RECENT_RESUMES = 20;

function counters(values: Float64Array): OutCounters {
  return {
    broadcast: values[OutKind.Broadcast]!,
    direct: values[OutKind.Direct]!,
    replay: values[OutKind.Replay]!,
    control: values[OutKind.Control]!,
  };
}
