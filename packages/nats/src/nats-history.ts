import { randomBytes, randomUUID } from 'node:crypto';
import {
  DeliverPolicy,
  DiscardPolicy,
  JetStreamApiCodes,
  JetStreamApiError,
  type JetStreamClient,
  type JetStreamManager,
  jetstream,
  jetstreamManager,
  type LastForMsgRequest,
  type NextMsgRequest,
  RetentionPolicy,
  type SeqMsgRequest,
  type StoredMsg,
  type StreamConfig,
} from '@nats-io/jetstream';
import { headers, type MsgHdrs, type NatsConnection } from '@nats-io/transport-node';
import {
  type History,
  type HistoryEntry,
  HistoryError,
  type HistoryPosition,
  type HistoryReadResult,
  InvalidOptionError,
} from '@wscale/core';
import { type NatsConnectOptions, resolveConnection, watchReconnects } from './connection.js';
import { nanos } from './nanos.js';
import { forgettingIfGone, mayBeGone } from './stream-gone.js';
import {
  encodeToken,
  fitsControlLine,
  isSubjectPrefix,
  MAX_SUBJECT_BYTES,
} from './subject-token.js';
import { asTyped, runTyped } from './timeout.js';

/** Header holding an entry's offset in its room. */
export const OFFSET_HEADER = 'Wscale-Offset';
/** Header holding the epoch an entry belongs to. */
export const EPOCH_HEADER = 'Wscale-Epoch';
/** Header holding an entry's id, never the same twice: tells it from another at its sequence. */
const ENTRY_HEADER = 'Wscale-Entry';

/** Options of {@link NatsHistory}. */
export interface NatsHistoryOptions extends NatsConnectOptions {
  /**
   * The JetStream stream holding every room's history (created when missing). Nodes sharing a
   * history use the same stream and the same options.
   * @default 'wscale_history'
   */
  stream?: string;
  /**
   * Prefix of the stream's subjects: a room's entries are on `<prefix>m.<token(room)>` and its
   * epoch on `<prefix>e.<token(room)>`; the stream captures `<prefix>>`.
   * @default 'wscale-history.'
   */
  subjectPrefix?: string;
  /**
   * Entries kept per room (the stream's max messages per subject); older ones are trimmed.
   * @default 1000
   */
  maxEntries?: number;
  /**
   * Entries older than this are trimmed (the stream's max age).
   * @default 600000 (ten minutes)
   */
  maxAgeMs?: number;
  /**
   * Replicas of the stream when this history creates it (3 on a cluster survives a node's loss).
   * @default 1
   */
  replicas?: number;
  /**
   * How long one operation may take before it rejects with `HistoryError`.
   * @default 5000
   */
  timeoutMs?: number;
  /**
   * The `subjectPrefix` of the {@link NatsBroker}s that should receive every stored entry. When
   * set, the stream republishes each entry of room `r`, once stored, to the broker subject of
   * topic `r`, and {@link NatsHistory.appendAndPublish} is available. Leave it unset when the
   * application publishes history rooms through the broker itself, or they arrive twice.
   * @default undefined (no republish)
   */
  republishTo?: string;
  /**
   * How often one append retries after losing the race for an offset to another writer.
   * @default 100
   */
  maxAppendAttempts?: number;
}

/** The newest entry of a room, or where an empty room stands. */
interface Tail {
  /** Stream sequence of the newest entry; 0 when the room has none. */
  seq: number;
  offset: number;
  epoch: string;
  /** The newest entry's id; none when the room has none, or it was written without one. */
  entry?: string | undefined;
}

/** Where a room stood furthest, and the connection (see `#session`) on which that was checked. */
interface Furthest extends Tail {
  checked: number;
}

/** An append waiting for its batch. */
interface PendingAppend {
  build: (position: HistoryPosition) => Uint8Array;
  resolve: (position: HistoryPosition) => void;
  reject: (error: unknown) => void;
  /** Times it lost the race for its offset. */
  attempts: number;
  /** When it was asked for (Date.now()): it waits at most `timeoutMs` behind the others. */
  at: number;
}

const MAX_CACHED_ROOMS = 10_000;
/** Appends of one room published at once (see #appendBatch). */
const MAX_PIPELINED = 64;
/** nats-server's "wrong last msg ID" (`Nats-Expected-Last-Msg-Id` not met); nats.js has no name for it. */
const WRONG_LAST_MSG_ID = 10070;
/** Probes for a scan's start before it walks the room from its oldest entry instead. */
const MAX_PROBES = 16;
/**
 * Entries a scan of a single-replica stream reads with direct gets (at most this many at once)
 * rather than a consumer: the few entries a resume misses cost fewer round trips and far less of
 * the server's work than creating, pulling from and deleting a consumer.
 */
const MAX_DIRECT_SCAN = 64;

/** A scan of a room in flight, which concurrent reads of a range it covers share. */
interface Scan {
  epoch: string;
  first: number;
  last: number;
  entries: Promise<HistoryEntry[] | undefined>;
}

/**
 * A {@link History} on a JetStream stream: one subject per room, limited by the stream's max
 * messages per subject (`maxEntries`) and max age (`maxAgeMs`).
 *
 * Offsets are per room, not stream sequences: each entry carries its room offset and epoch in
 * headers, and an append is a JetStream publish that expects the room subject's last sequence to
 * be the one it read (`Nats-Expected-Last-Subject-Sequence`), retried on conflict. So offsets are
 * consecutive whatever the number of writers. The epoch of a room is a random id stored on the
 * room's epoch subject of the same stream before the room's first entry; see the README for why
 * that makes offsets unambiguous across trimming, expiry and stream recreation.
 */
export class NatsHistory implements History {
  readonly #stream: string;
  readonly #prefix: string;
  readonly #maxEntries: number;
  readonly #maxAgeMs: number;
  readonly #replicas: number;
  readonly #timeoutMs: number;
  readonly #republishTo: string | undefined;
  readonly #maxAttempts: number;
  readonly #connection: Promise<NatsConnection>;
  readonly #owned: boolean;
  /**
   * The last entry this instance wrote per room: spares a read before the next append. Only while
   * the connection stays up: see #forget.
   */
  readonly #tails = new Map<string, Tail>();
  /**
   * The furthest entry this instance saw per room, kept across reconnects: a room found behind it
   * in the same epoch, or without it at its sequence, went back (see #wentBack).
   */
  readonly #furthest = new Map<string, Furthest>();
  /** Appends of one room from this instance waiting for their turn: batches of one room run one at a time. */
  readonly #queued = new Map<string, PendingAppend[]>();
  readonly #scans = new Map<string, Scan[]>();
  #api: Promise<{ js: JetStreamClient; jsm: JetStreamManager }> | undefined;
  /** Whether single messages are read with direct gets (a single-replica stream: see #ensureStream). */
  #direct = false;
  /**
   * Counts the connection's drops and returns: a tail read before one may be of a stream that is
   * gone, and is neither used nor cached after it (see #appendBatch).
   */
  #session = 0;
  readonly #unwatch: () => void;
  #closed = false;

  constructor(options: NatsHistoryOptions = {}) {
    this.#stream = options.stream ?? 'wscale_history';
    this.#prefix = options.subjectPrefix ?? 'wscale-history.';
    this.#maxEntries = options.maxEntries ?? 1000;
    this.#maxAgeMs = options.maxAgeMs ?? 600_000;
    this.#replicas = options.replicas ?? 1;
    this.#timeoutMs = options.timeoutMs ?? 5000;
    this.#republishTo = options.republishTo;
    this.#maxAttempts = options.maxAppendAttempts ?? 100;
    if (!/^[-\w]+$/.test(this.#stream)) {
      throw new InvalidOptionError('stream may only hold letters, digits, "-" and "_"');
    }
    if (!isSubjectPrefix(this.#prefix)) {
      throw new InvalidOptionError('subjectPrefix must be literal tokens each followed by a dot');
    }
    if (!Number.isInteger(this.#maxEntries) || this.#maxEntries < 1) {
      throw new InvalidOptionError('maxEntries must be a whole number >= 1');
    }
    if (!(this.#maxAgeMs >= 1)) throw new InvalidOptionError('maxAgeMs must be >= 1');
    if (!Number.isInteger(this.#replicas) || this.#replicas < 1) {
      throw new InvalidOptionError('replicas must be a whole number >= 1');
    }
    if (!(this.#timeoutMs > 0)) throw new InvalidOptionError('timeoutMs must be > 0');
    if (!Number.isInteger(this.#maxAttempts) || this.#maxAttempts < 1) {
      throw new InvalidOptionError('maxAppendAttempts must be a whole number >= 1');
    }
    const republish = this.#republishTo;
    if (republish !== undefined) {
      if (!isSubjectPrefix(republish)) {
        throw new InvalidOptionError('republishTo must be a broker subjectPrefix, like "wscale."');
      }
      if (republish.startsWith(this.#prefix) || this.#prefix.startsWith(republish)) {
        throw new InvalidOptionError('republishTo and subjectPrefix must not overlap');
      }
    }
    const { connection, owned } = resolveConnection(options, 'wscale-history');
    this.#connection = connection;
    this.#owned = owned;
    this.#unwatch = watchReconnects(connection, () => this.#reconnected());
  }

  async append(room: string, payload: Uint8Array): Promise<HistoryPosition> {
    this.#checkRoom(room);
    return this.#append(room, () => payload);
  }

  /**
   * Appends an entry whose payload may depend on its own position, and (through the stream's
   * republish) delivers it to every {@link NatsBroker} subscribed to topic `room` with the
   * `republishTo` prefix: storing and broadcasting are one step, in offset order, and a message
   * is broadcast if and only if it was stored.
   *
   * `build` may run more than once (once per attempt when writers race); only the payload of the
   * winning attempt is stored and delivered. Requires the `republishTo` option.
   */
  async appendAndPublish(
    room: string,
    build: (position: HistoryPosition) => Uint8Array,
  ): Promise<HistoryPosition> {
    if (this.#republishTo === undefined) {
      throw new InvalidOptionError('appendAndPublish needs the republishTo option');
    }
    this.#checkRoom(room);
    return this.#append(room, build);
  }

  async read(room: string, after: HistoryPosition, limit = Infinity): Promise<HistoryReadResult> {
    this.#checkRoom(room);
    return this.#run('read', room, async ({ js, jsm }) => {
      const tail = await this.#tail(jsm, js, room);
      const position = { offset: tail.offset, epoch: tail.epoch };
      if (after.epoch !== tail.epoch) return { ok: false, reason: 'epoch-changed', position };
      if (after.offset >= tail.offset || !(limit > 0)) {
        return { ok: true, epoch: tail.epoch, entries: [] };
      }
      const first = after.offset + 1;
      const last = Math.min(tail.offset, after.offset + limit);
      const entries = await this.#entries({ js, jsm }, room, first, last, tail);
      if (entries === undefined) return { ok: false, reason: 'too-old', position };
      return { ok: true, epoch: tail.epoch, entries };
    });
  }

  async position(room: string): Promise<HistoryPosition> {
    this.#checkRoom(room);
    return this.#run('position', room, async ({ js, jsm }) => {
      const { offset, epoch } = await this.#tail(jsm, js, room);
      return { offset, epoch };
    });
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#tails.clear();
    this.#unwatch();
    if (!this.#owned) return;
    const nc = await this.#connection.catch(() => undefined);
    if (nc !== undefined && !nc.isClosed()) await nc.close();
  }

  /** The subject a room's entries are stored on. */
  entrySubject(room: string): string {
    return `${this.#prefix}m.${encodeToken(room)}`;
  }

  /** A room whose subject NATS would not take (it would close the connection) is refused. */
  #checkRoom(room: string): void {
    const subject = this.entrySubject(room);
    if (fitsControlLine(subject)) return;
    throw new HistoryError(
      `the room's subject is longer than NATS takes (${MAX_SUBJECT_BYTES} bytes): ${subject.slice(0, 64)}…`,
    );
  }

  #epochSubject(room: string): string {
    return `${this.#prefix}e.${encodeToken(room)}`;
  }

  #append(room: string, build: (position: HistoryPosition) => Uint8Array) {
    return new Promise<HistoryPosition>((resolve, reject) => {
      const pending: PendingAppend = { build, resolve, reject, attempts: 0, at: Date.now() };
      const queue = this.#queued.get(room);
      if (queue !== undefined) {
        queue.push(pending);
        return;
      }
      this.#queued.set(room, [pending]);
      void this.#drain(room);
    });
  }

  /** Appends a room's queued entries, in order, a batch at a time, until none is left. */
  async #drain(room: string): Promise<void> {
    const queue = this.#queued.get(room)!;
    // The rest of a burst made in this turn joins the first batch.
    await Promise.resolve();
    while (queue.length > 0) {
      this.#expire(room, queue);
      const batch = queue.splice(0, MAX_PIPELINED);
      let retry: PendingAppend[];
      try {
        retry = await this.#run('append', room, (api) => this.#appendBatch(api, room, batch));
      } catch (error) {
        for (const pending of batch) pending.reject(error);
        continue;
      }
      queue.unshift(...retry);
      // Another writer took this offset (or the room expired under us): read again and retry.
      if ((retry[0]?.attempts ?? 0) >= 3) {
        await new Promise((resolve) => setTimeout(resolve, Math.random() * 5));
      }
    }
    this.#queued.delete(room);
  }

  /**
   * Rejects the appends that waited `timeoutMs` behind others (the batches before them did not
   * answer): each is bounded by its own wait, not by how many came before it. Never sent, they
   * are not stored.
   */
  #expire(room: string, queue: PendingAppend[]): void {
    const now = Date.now();
    let waited = 0;
    while (waited < queue.length && now - queue[waited]!.at >= this.#timeoutMs) waited++;
    if (waited === 0) return;
    const error = new HistoryError(
      `NATS history append of "${room}" not sent within ${this.#timeoutMs} ms: the appends before it did not answer`,
    );
    for (const pending of queue.splice(0, waited)) pending.reject(error);
  }

  /**
   * Publishes a batch of a room's appends at once and settles those that are done; returns those
   * to try again (not stored), in order.
   *
   * The first expects the room's last sequence (the compare-and-set that keeps offsets
   * consecutive whatever the number of writers). On a single-replica stream the others follow it
   * without waiting for its answer: each carries a message id and expects the stream's last
   * message to be the one before it (`Nats-Expected-Last-Msg-Id`), so it is stored only right
   * after that one, at the next offset, and the first refusal stops the rest. A burst of
   * broadcasts then costs one round trip, not one each: they reach the brokers together and every
   * node writes them to a socket at once. Another room's entry in between only sends the rest
   * around again.
   */
  async #appendBatch(
    { js, jsm }: { js: JetStreamClient; jsm: JetStreamManager },
    room: string,
    batch: PendingAppend[],
  ): Promise<PendingAppend[]> {
    // A replicated stream checks an expected message id against its own view, which may lag.
    const sending = this.#direct ? batch : batch.slice(0, 1);
    const session = this.#session;
    const subject = this.entrySubject(room);
    const tail = this.#tails.get(room) ?? (await this.#tail(jsm, js, room));
    // Read before the connection dropped: maybe of a stream that is gone. Read it again.
    if (this.#session !== session) return batch;
    const ids = sending.length > 1 ? sending.map(() => randomUUID()) : [];
    const outcomes = await Promise.allSettled(
      sending.map(async (pending, i) => {
        const position = { offset: tail.offset + 1 + i, epoch: tail.epoch };
        const entry = entryId();
        const hdrs = headers();
        hdrs.set(OFFSET_HEADER, String(position.offset));
        hdrs.set(EPOCH_HEADER, position.epoch);
        hdrs.set(ENTRY_HEADER, entry);
        const ack = await js.publish(subject, pending.build(position), {
          headers: hdrs,
          expect: i === 0 ? { lastSubjectSequence: tail.seq } : { lastMsgID: ids[i - 1]! },
          ...(ids.length > 0 ? { msgID: ids[i]! } : {}),
          timeout: this.#timeoutMs,
        });
        return { seq: ack.seq, entry, ...position };
      }),
    );
    const retry: PendingAppend[] = [];
    let stored: Tail | undefined;
    outcomes.forEach((outcome, i) => {
      const pending = sending[i]!;
      if (outcome.status === 'fulfilled') {
        stored = outcome.value;
        pending.resolve({ offset: stored.offset, epoch: stored.epoch });
      } else if (!isConflict(outcome.reason)) {
        const failure = `NATS history append of "${room}" failed`;
        pending.reject(asTyped(outcome.reason, HistoryError, failure));
        this.#forgetIfGone(outcome.reason);
      } else if (i > 0 || ++pending.attempts < this.#maxAttempts) {
        // Only the first raced for its offset; the others were refused because it was.
        retry.push(pending);
      } else {
        pending.reject(
          new HistoryError(
            `append to "${room}" lost the race for an offset ${this.#maxAttempts} times in a row`,
          ),
        );
      }
    });
    const allStored = outcomes.every((outcome) => outcome.status === 'fulfilled');
    if (stored !== undefined && allStored && this.#session === session) {
      this.#remember(room, stored);
    } else {
      this.#tails.delete(room);
    }
    return [...retry, ...batch.slice(sending.length)];
  }

  #remember(room: string, tail: Tail): void {
    keep(this.#tails, room, tail);
    this.#saw(room, tail);
  }

  #saw(room: string, tail: Tail): void {
    const furthest = this.#furthest.get(room);
    if (furthest?.epoch === tail.epoch && furthest.offset > tail.offset) return;
    keep(this.#furthest, room, { ...tail, checked: this.#session });
  }

  /**
   * Where a room stands, read from the stream leader. A room that went back from where this
   * instance saw it in the same epoch is started over in a new one: its old offsets now name other
   * messages, and a client resuming from one must be told (`epoch-changed`), not handed those.
   */
  async #tail(jsm: JetStreamManager, js: JetStreamClient, room: string): Promise<Tail> {
    const tail = await this.#readTail(jsm, js, room);
    if (!(await this.#wentBack(jsm, room, tail))) {
      this.#saw(room, tail);
      return tail;
    }
    this.#furthest.delete(room);
    await this.#startOver(jsm, room, tail);
    const fresh = await this.#readTail(jsm, js, room);
    this.#saw(room, fresh);
    return fresh;
  }

  /**
   * Whether the room went back (the server's store put back to an older copy): it is behind the
   * furthest entry this instance saw of it in the same epoch, or, checked once after each
   * reconnect, that entry is no longer at its sequence (the log grew past it again, other entries
   * at the same offsets).
   */
  async #wentBack(jsm: JetStreamManager, room: string, tail: Tail): Promise<boolean> {
    const furthest = this.#furthest.get(room);
    if (furthest?.epoch !== tail.epoch) return false;
    if (furthest.offset > tail.offset) return true;
    if (furthest.checked === this.#session || furthest.entry === undefined) return false;
    if (furthest.offset === tail.offset) return tail.entry !== furthest.entry;
    const found = await this.#get(jsm, { seq: furthest.seq });
    // Not there: gone with the room's oldest entries, unless the stream has not reached it again.
    if (found === null) return tail.seq < furthest.seq;
    return (
      found.subject !== this.entrySubject(room) ||
      found.header?.get(ENTRY_HEADER) !== furthest.entry
    );
  }

  async #readTail(jsm: JetStreamManager, js: JetStreamClient, room: string): Promise<Tail> {
    const last = await this.#get(jsm, { last_by_subj: this.entrySubject(room) });
    if (last !== null) {
      const entry = last.header?.get(ENTRY_HEADER) || undefined;
      return { seq: last.seq, entry, ...parseEntry(last.header) };
    }
    return { seq: 0, offset: 0, epoch: await this.#epoch(jsm, js, room) };
  }

  /**
   * Drops a room's entries up to `tail` and its epoch, so the next read of it writes a new epoch.
   * Bounded by sequence: what another instance wrote since (it may have started the room over
   * first) stays.
   */
  async #startOver(jsm: JetStreamManager, room: string, tail: Tail): Promise<void> {
    const epoch = await this.#get(jsm, { last_by_subj: this.#epochSubject(room) });
    const stream = this.#stream;
    await jsm.streams.purge(stream, { filter: this.entrySubject(room), seq: tail.seq + 1 });
    if (epoch !== null && epoch.string() === tail.epoch) {
      await jsm.streams.purge(stream, { filter: this.#epochSubject(room), seq: epoch.seq + 1 });
    }
  }

  /**
   * The epoch of a room that has no entries: the one on its epoch subject, or a new random one
   * written there (compare-and-set, so concurrent callers agree on one).
   */
  async #epoch(jsm: JetStreamManager, js: JetStreamClient, room: string): Promise<string> {
    const subject = this.#epochSubject(room);
    for (let attempt = 0; attempt < this.#maxAttempts; attempt++) {
      const stored = await this.#get(jsm, { last_by_subj: subject });
      if (stored !== null) return stored.string();
      const epoch = randomUUID();
      try {
        await js.publish(subject, epoch, {
          expect: { lastSubjectSequence: 0 },
          timeout: this.#timeoutMs,
        });
        return epoch;
      } catch (error) {
        if (!isConflict(error)) throw error;
      }
    }
    throw new HistoryError(`could not settle the epoch of "${room}"`);
  }

  /**
   * Entries `first..last` of the room, or `undefined` when `first` was already trimmed. Entries
   * never change once stored, so a read whose range an in-flight scan of the same epoch covers
   * takes its part of that scan: a storm of resumes into one room reads the room once.
   */
  async #entries(
    api: { js: JetStreamClient; jsm: JetStreamManager },
    room: string,
    first: number,
    last: number,
    tail: Tail,
  ): Promise<HistoryEntry[] | undefined> {
    const covering = this.#scans
      .get(room)
      ?.find((s) => s.epoch === tail.epoch && s.first <= first && s.last >= last);
    if (covering !== undefined) {
      const shared = await covering.entries;
      // The shared scan started earlier and may have met a trim that spares this later range.
      if (shared !== undefined)
        return shared.slice(first - covering.first, last - covering.first + 1);
    }
    const scan: Scan = {
      epoch: tail.epoch,
      first,
      last,
      entries: this.#scan(api, room, first, last, tail),
    };
    const scans = this.#scans.get(room) ?? [];
    scans.push(scan);
    this.#scans.set(room, scans);
    try {
      return await scan.entries;
    } finally {
      scans.splice(scans.indexOf(scan), 1);
      if (scans.length === 0 && this.#scans.get(room) === scans) this.#scans.delete(room);
    }
  }

  /**
   * Entries `first..last` of the room, in order, or `undefined` when `first` was already trimmed.
   * An ordered consumer walks the room's subject from the first entry's stream sequence.
   */
  async #scan(
    { js, jsm }: { js: JetStreamClient; jsm: JetStreamManager },
    room: string,
    first: number,
    last: number,
    tail: Tail,
  ): Promise<HistoryEntry[] | undefined> {
    const start = await this.#startOf(jsm, room, first, tail);
    if (this.#direct && last - start.offset < MAX_DIRECT_SCAN) {
      return this.#walk(jsm, room, first, last, tail, start.seq);
    }
    // A single filter as a string: the array form needs nats-server 2.10.
    const consumer = await js.consumers.get(this.#stream, {
      filter_subjects: this.entrySubject(room),
      // The client's default keeps an idle ordered consumer for five minutes: one per read would
      // pile up on the server. It is deleted below; this only bounds one whose delete is lost.
      inactive_threshold: Math.max(this.#timeoutMs, 1000),
      ...(start.seq > 1
        ? { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: start.seq }
        : {}),
    });
    const messages = await consumer.consume({
      max_messages: Math.min(last - start.offset + 1, 256),
    });
    // Bounded like every operation: a scan that outlives it must not keep its consumer.
    const timer = setTimeout(() => void messages.close(), this.#timeoutMs);
    const entries: HistoryEntry[] = [];
    try {
      for await (const message of messages) {
        const { offset, epoch } = parseEntry(message.headers);
        if (epoch !== tail.epoch) return undefined;
        if (offset > first + entries.length) return undefined;
        if (offset === first + entries.length) entries.push({ offset, payload: message.data });
        if (entries.length === last - first + 1) return entries;
        if (message.info.pending === 0 || message.seq >= tail.seq) return undefined;
      }
      return undefined;
    } finally {
      clearTimeout(timer);
      await messages.close();
      void consumer.delete().catch(() => undefined);
    }
  }

  /**
   * Entries `first..last` of the room with direct gets from stream sequence `seq` (at or before
   * entry `first`), or `undefined` when `first` was already trimmed. The get for sequence `s`
   * answers the room's first entry at or after `s`, so gets for consecutive sequences answer
   * consecutive entries of the room: all at once for the entries still wanted (one round trip
   * when nothing else was written between them), again from past the last one answered while
   * some are missing.
   */
  async #walk(
    jsm: JetStreamManager,
    room: string,
    first: number,
    last: number,
    tail: Tail,
    seq: number,
  ): Promise<HistoryEntry[] | undefined> {
    const subject = this.entrySubject(room);
    const entries: HistoryEntry[] = [];
    let from = seq;
    while (from <= tail.seq) {
      const wanted = Math.min(last - first + 1 - entries.length, tail.seq - from + 1);
      const found = await Promise.all(
        Array.from({ length: wanted }, (_, i) =>
          this.#get(jsm, { seq: from + i, next_by_subj: subject }),
        ),
      );
      for (const message of found) {
        if (message === null || message.subject !== subject) return undefined;
        const { offset, epoch } = parseEntry(message.header);
        if (epoch !== tail.epoch) return undefined;
        const next = first + entries.length;
        // Before `first`, or the same entry answered for a later sequence.
        if (offset < next) continue;
        if (offset > next) return undefined;
        entries.push({ offset, payload: message.data });
        if (entries.length === last - first + 1) return entries;
      }
      // Answers come in order of sequence: go on past the last one.
      from = found.at(-1)!.seq + 1;
    }
    return undefined;
  }

  /**
   * A stream sequence at or before the room's entry `first`, close to it, and the offset of the
   * room's next entry from there (`first` itself when the probe hits; 1 when it falls back to the
   * stream's start), so a scan need not walk the room from its oldest entry.
   *
   * Entries `first..tail` sit at distinct sequences up to the tail's, so `first` is at most
   * `tail.offset - first` below it: when nothing else was written in between, the first probe
   * hits. Otherwise each probe finds how many of the room's entries still lie below it and steps
   * back twice as far as that suggests, so a busy stream costs a few probes, not a walk.
   */
  async #startOf(
    jsm: JetStreamManager,
    room: string,
    first: number,
    tail: Tail,
  ): Promise<{ seq: number; offset: number }> {
    const subject = this.entrySubject(room);
    let seq = tail.seq - (tail.offset - first);
    for (let probe = 0; probe < MAX_PROBES && seq > 1; probe++) {
      const found = await this.#get(jsm, { seq, next_by_subj: subject });
      if (found === null || found.subject !== subject) break;
      const { offset, epoch } = parseEntry(found.header);
      if (epoch !== tail.epoch) break;
      if (offset <= first) return { seq: found.seq, offset };
      seq = found.seq - (offset - first) * 2 ** (probe + 1);
    }
    return { seq: 1, offset: 1 };
  }

  /**
   * One message of the stream, read from its leader: a direct get when the stream has a single
   * replica (its one server leads it; a direct get spares the API's JSON and base64, most of the
   * server's CPU per get), else the API's message get, since a follower may answer a direct get.
   */
  #get(
    jsm: JetStreamManager,
    query: SeqMsgRequest | LastForMsgRequest | NextMsgRequest,
  ): Promise<StoredMsg | null> {
    if (this.#direct) return jsm.direct.getMessage(this.#stream, query);
    // `next_by_subj` is in nats-server 2.9's message get too; the client's type lacks it.
    return jsm.streams.getMessage(this.#stream, query as LastForMsgRequest);
  }

  async #run<T>(
    what: string,
    room: string,
    operation: (api: { js: JetStreamClient; jsm: JetStreamManager }) => Promise<T>,
  ): Promise<T> {
    if (this.#closed) throw new HistoryError('the history is closed');
    return forgettingIfGone(
      () =>
        runTyped(
          () => this.#open().then(operation),
          this.#timeoutMs,
          HistoryError,
          `NATS history ${what} of "${room}" failed`,
        ),
      () => this.#forget(),
    );
  }

  /**
   * If the stream is gone, or may be (an operation timed out: see {@link mayBeGone}), the next
   * operation checks it again and creates it if it is missing.
   */
  #forgetIfGone(error: unknown): void {
    if (mayBeGone(error)) this.#forget();
  }

  /**
   * The connection dropped, or is back, maybe on a server that lost its JetStream storage and
   * where another node has since created the stream again: a cached tail would then still match
   * that new stream's sequences and write into the lost log's epoch.
   */
  #reconnected(): void {
    this.#session++;
    this.#forget();
  }

  /**
   * Forgets what this instance knows of the stream (that it exists, its rooms' tails): the next
   * operation checks the stream with the stream API, creates it if it is missing (its rooms then
   * start a new epoch) and reads each room's tail again.
   */
  #forget(): void {
    this.#api = undefined;
    this.#tails.clear();
  }

  #open(): Promise<{ js: JetStreamClient; jsm: JetStreamManager }> {
    if (this.#api !== undefined) return this.#api;
    const opening = this.#connection.then(async (nc) => {
      const jsm = await jetstreamManager(nc, { timeout: this.#timeoutMs });
      await this.#ensureStream(jsm);
      return { js: jetstream(nc, { timeout: this.#timeoutMs }), jsm };
    });
    this.#api = opening;
    opening.catch(() => {
      if (this.#api === opening) this.#api = undefined;
    });
    return opening;
  }

  /**
   * Creates the stream, or brings an existing one's limits, republish rule and direct gets (on
   * when it has a single replica, see #get) to ours.
   */
  async #ensureStream(jsm: JetStreamManager): Promise<void> {
    const limits: Partial<StreamConfig> = {
      max_msgs_per_subject: this.#maxEntries,
      max_age: nanos(this.#maxAgeMs),
      duplicate_window: nanos(Math.min(this.#maxAgeMs, 120_000)),
    };
    this.#direct = false;
    const republish =
      this.#republishTo === undefined
        ? undefined
        : { src: `${this.#prefix}m.>`, dest: `${this.#republishTo}>` };
    let config: StreamConfig;
    try {
      config = (await jsm.streams.info(this.#stream)).config;
    } catch (error) {
      if (
        !(error instanceof JetStreamApiError && error.code === JetStreamApiCodes.StreamNotFound)
      ) {
        throw error;
      }
      try {
        await jsm.streams.add({
          name: this.#stream,
          subjects: [`${this.#prefix}>`],
          retention: RetentionPolicy.Limits,
          discard: DiscardPolicy.Old,
          num_replicas: this.#replicas,
          allow_direct: this.#replicas === 1,
          ...limits,
          ...(republish ? { republish } : {}),
        });
        this.#direct = this.#replicas === 1;
        return;
      } catch (addError) {
        // Another instance created it meanwhile: fall through and check its limits.
        config = (await jsm.streams.info(this.#stream).catch(() => Promise.reject(addError)))
          .config;
      }
    }
    if (config.republish?.src !== republish?.src || config.republish?.dest !== republish?.dest) {
      throw new HistoryError(
        `stream ${this.#stream} republishes ${describeRepublish(config.republish)}, but this ` +
          `history's republishTo asks for ${describeRepublish(republish)}: a stream's republish ` +
          'rule is not changed under running nodes (nats-server 2.9 refuses it, and nodes that ' +
          'publish themselves beside nodes that count on it would lose or double messages). ' +
          'Give the new setting its own stream, or stop every node and delete this one (and its history)',
      );
    }
    const direct = config.num_replicas === 1;
    const same =
      config.max_msgs_per_subject === limits.max_msgs_per_subject &&
      config.max_age === limits.max_age &&
      config.allow_direct === direct;
    // The client merges this into the current configuration.
    if (!same) await jsm.streams.update(this.#stream, { ...limits, allow_direct: direct });
    this.#direct = direct;
  }
}

function describeRepublish(rule: { src?: string; dest: string } | undefined): string {
  return rule === undefined ? 'nothing' : `${rule.src ?? '>'} to ${rule.dest}`;
}

/** This process's entry ids: random, then a count. */
const WRITER = randomBytes(9).toString('base64url');
let written = 0;

function entryId(): string {
  return `${WRITER}.${(written++).toString(36)}`;
}

/** Sets `key` last in `map`, dropping its oldest key past {@link MAX_CACHED_ROOMS}. */
function keep<V>(map: Map<string, V>, key: string, value: V): void {
  map.delete(key);
  map.set(key, value);
  if (map.size > MAX_CACHED_ROOMS) {
    const oldest = map.keys().next().value;
    if (oldest !== undefined) map.delete(oldest);
  }
}

function parseEntry(hdrs: MsgHdrs | undefined): { offset: number; epoch: string } {
  const offset = Number(hdrs?.get(OFFSET_HEADER));
  const epoch = hdrs?.get(EPOCH_HEADER) ?? '';
  if (!Number.isSafeInteger(offset) || offset < 1 || epoch === '') {
    throw new HistoryError('a history entry has no valid offset/epoch headers');
  }
  return { offset, epoch };
}

function isConflict(error: unknown): boolean {
  return (
    error instanceof JetStreamApiError &&
    (error.code === JetStreamApiCodes.StreamWrongLastSequence ||
      error.code === JetStreamApiCodes.StreamWrongLastSequenceUnknown ||
      error.code === WRONG_LAST_MSG_ID)
  );
}
