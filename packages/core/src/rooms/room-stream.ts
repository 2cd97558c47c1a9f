import type { Buffer } from 'node:buffer';
import type { History, HistoryPosition, HistoryReadResult } from '../contracts.js';
import { HistoryError } from '../errors.js';
import type { NotRecoveredReason } from '../protocol/messages.js';
import { Outgoing } from '../protocol/outgoing.js';
import type { RoomMember } from './room-member.js';

/** How a client's place in a room was settled when it joined. */
export interface JoinOutcome {
  position: HistoryPosition;
  /** Whether everything after the client's last offset is in `replay` (always true on a fresh join). */
  recovered: boolean;
  reason?: NotRecoveredReason;
  /** Missed messages, oldest first, to write to the client before anything live. */
  replay: Outgoing[];
  /** Set when the replay was left out (`too-old`) because it did not fit the replay budget. */
  overBudget?: boolean;
}

/** What a resume may still replay, over all its rooms; each replay takes its share. */
export interface ReplayBudget {
  bytes: number;
  entries: number;
  /**
   * Bytes it may still read from the histories, replayed or not: a read that ends past the
   * budget costs the store and the node too. Once spent, a room with a gap is `too-old` unread.
   */
  reads?: number;
  /** The turns of a resume's history reads, given when its rooms rejoin at once. */
  turns?: ReadTurns;
  /**
   * When the resume's welcome is due (a `performance.now()` time): a room whose join has not
   * settled by then (its history has not answered) says `unavailable`.
   */
  deadline?: number;
}

/**
 * The history reads of one resume's rooms, which rejoin at once (see {@link ReplayBudget.turns}).
 * A history is read a page at a time, in the order asked, each page sized in its turn by what the
 * pages before it left of the budget and told of the entries' size: so the resume reads what room
 * after room did. (Side by side, pages sized by a guess each read past the budget: a node that
 * had replayed small entries read the whole first page of every room of large ones at once.) A
 * history that failed a read is not read again in the resume: each would wait a whole timeout.
 */
export class ReadTurns {
  /** Per history, the page read asked last. */
  readonly #last = new Map<History, Promise<unknown>>();
  readonly #failed = new Set<History>();

  /**
   * Reads a page of `history` in its turn: `plan` sizes it then (`undefined`: the budget is
   * spent, and this resolves `undefined` unread), `read` reads it. Rejects with {@link SKIPPED},
   * unread, when a read of the same history failed in this resume.
   */
  page(
    history: History,
    plan: () => number | undefined,
    read: (limit: number) => Promise<HistoryReadResult>,
  ): Promise<HistoryReadResult | undefined> {
    const turn = (this.#last.get(history) ?? Promise.resolve()).then(async () => {
      if (this.#failed.has(history)) throw SKIPPED;
      const limit = plan();
      if (limit === undefined) return undefined;
      try {
        return await read(limit);
      } catch (error) {
        this.#failed.add(history);
        throw error;
      }
    });
    this.#last.set(
      history,
      turn.catch(() => undefined),
    );
    return turn;
  }
}

/** What a page read of a history that failed earlier in the same resume rejects with. */
const SKIPPED = new HistoryError('not read: this history failed a read of the same resume');

/** What a stream needs from the node. */
export interface StreamHost<Member extends RoomMember = RoomMember> {
  /** Local members a message goes to. */
  members(): Iterable<Member>;
  /** Adds a member; from then on it receives the room's messages. */
  admit(client: Member): void;
  /**
   * Tells local `wscale.v1` members the stream skipped ahead and they must start over (all but
   * `except`).
   */
  resync(position: HistoryPosition, except?: ReadonlySet<Member>): void;
  /**
   * Closes members whose place this stream could not read when they came back (see
   * `RoomStream.#behind`), now that it can: they resume and are replayed from their own place.
   */
  recover(members: Iterable<Member>): void;
  error(error: unknown): void;
  /** The size of the entries the node's replays read lately, shared by its rooms. */
  readonly entrySize: EntrySize;
}

/**
 * A running mean of the size of the history entries a node's replays read: it sizes the first
 * page of a room whose recent messages this node did not see, so that a resume reads little past
 * its budget even in rooms of large messages.
 */
export class EntrySize {
  #mean = 0;

  add(bytes: number): void {
    this.#mean = this.#mean === 0 ? bytes : this.#mean + (bytes - this.#mean) / 16;
  }

  /** The mean, or 0 before any entry was read. */
  get mean(): number {
    return this.#mean;
  }
}

/** A message this node delivered lately, kept to replay short gaps without reading the history. */
interface Recent {
  offset: number;
  bytes: Buffer;
  binary: boolean;
}

/** A join waiting for its history read; live messages meanwhile are kept for it. */
interface Catcher {
  from: HistoryPosition;
  /** The stream's last offset when the read started: the read covers up to it. */
  upTo: number;
  epoch: string;
  /** Messages delivered while the read was out, to replay after it. */
  live: Outgoing[];
  /** Whether the stream skipped messages it could not fill while the read was out. */
  skipped: boolean;
  /**
   * The join's budget, if it has one: the most entries and bytes it may still replay (the read
   * stops past them), and the reads each page takes from.
   */
  budget: ReplayBudget | undefined;
  settle: (outcome: JoinOutcome) => void;
}

type Step = () => void | Promise<void>;

/** How many recent messages, and bytes, a stream keeps for replays. */
const RECENT_COUNT = 256;
const RECENT_BYTES = 256 * 1024;
/** Epochs a stream left, remembered to drop their late messages. */
const PAST_EPOCHS = 8;

/**
 * How long a stream waits for one answer of its history (a read or a position): one that does
 * not come in time counts as a failed read (a join is told `unavailable`, a gap is resynced over),
 * so a history that hangs neither stalls the room nor holds a join forever. Below the 10 s default
 * of `helloTimeoutMs`, so a resume is welcomed before its connection is given up.
 */
export const HISTORY_TIMEOUT_MS = 5000;

/**
 * The node-side order of one history room: every local member receives the room's messages in
 * offset order, each once, whatever order the broker brings them in. A message that arrives ahead
 * of a gap waits while the gap is filled from the history; a message already delivered is dropped.
 * Joins and resumes take their place in the same sequence, so a client's replay and the live
 * messages after it meet with no gap and no duplicate.
 *
 * When nothing is pending and a message is the next one, it is delivered at once: the sequence
 * costs nothing on the hot path. A resume whose gap is among the last messages this node delivered
 * is replayed from memory; a longer one reads the history without holding the room's live messages
 * back for anyone else.
 */
export class RoomStream<Member extends RoomMember = RoomMember> {
  readonly #room: string;
  readonly #history: History;
  readonly #host: StreamHost<Member>;
  readonly #steps: Step[] = [];
  /** Reads of the history's position that failed so far. */
  #positionFailures = 0;
  readonly #recent: Recent[] = [];
  readonly #catchers = new Set<Catcher>();
  #recentBytes = 0;
  /** Epochs this stream left, newest last: their late messages are dropped. */
  readonly #past: string[] = [];
  #busy = false;
  /** Empty until the start position was read (it is not while the history is unreachable). */
  #epoch = '';
  #last = 0;
  /**
   * Members admitted `unavailable` while the stream did not know its position, with the place
   * they came back from: what they missed is still in the history, and what the stream delivers
   * from here on would move their place past it. Once the position is known they are closed to
   * resume (see {@link StreamHost.recover}), never resynced.
   */
  #behind = new Set<Member>();
  /**
   * Members admitted `unavailable` with a gap the stream knew of but could not read (the read
   * failed, or did not answer in time), with the offset each came back from. Before the stream's
   * next message reaches them, it reads the history past the earliest: if the history holds what
   * they missed, they are closed to resume and be replayed it (see {@link StreamHost.recover});
   * if not, they go on live, past a gap their welcome told them of.
   */
  #stranded = new Map<Member, number>();

  constructor(
    room: string,
    history: History,
    host: StreamHost<Member>,
    subscribed: Promise<unknown>,
  ) {
    this.#room = room;
    this.#history = history;
    this.#host = host;
    // The start position is read once the subscription exists, so nothing after it is missed.
    this.#enqueue(async () => {
      try {
        await subscribed;
      } catch {
        // Joins fail with the subscription and the room is dropped: there is nothing to read.
        return;
      }
      this.#known(await this.#position());
    });
  }

  /**
   * Delivers what the history holds past this stream's end: after the broker came back from an
   * outage (or cut this node off), what was published meanwhile reached no one here, and without a
   * later message nothing would show the gap. What the history cannot give is a `resync`.
   */
  catchUp(): void {
    this.#enqueue(async () => {
      const now = await this.#position();
      if (this.#epoch === '') return this.#adopt(now);
      if (now.epoch !== this.#epoch) {
        if (!(await this.#isNewEpoch(now.epoch))) return;
        this.#follow(now.epoch);
      }
      if (this.#stranded.size > 0) await this.#rescue();
      if (now.offset > this.#last) await this.#fill(now.offset);
    });
  }

  /** Takes a message of this room (offset and epoch set) from this node or another. */
  receive(message: Outgoing): void {
    if (
      !this.#busy &&
      this.#steps.length === 0 &&
      message.epoch === this.#epoch &&
      message.offset === this.#last + 1 &&
      this.#stranded.size === 0
    ) {
      this.#deliver(message);
      return;
    }
    this.#enqueue(() => this.#accept(message));
  }

  /**
   * Admits a client at the current end of the stream, or, given the last position it saw, after
   * replaying what it missed. `admitted` runs at the moment it is admitted, before any later
   * message reaches it.
   */
  join(
    client: Member,
    from?: HistoryPosition,
    admitted?: (outcome: JoinOutcome) => void,
    budget?: ReplayBudget,
  ): Promise<JoinOutcome> {
    return new Promise((resolve, reject) => {
      let done = false;
      let late: NodeJS.Timeout | undefined;
      /** The room's log restarted since `from`: the join is replayed the new one from its start. */
      let restarted = false;
      /** Whether this is the join's first outcome (a deadline and a read may both come). */
      const first = () => {
        if (done) return false;
        done = true;
        clearTimeout(late);
        return true;
      };
      const settle = (settled: JoinOutcome) => {
        if (!first()) return;
        let outcome = budget === undefined ? settled : withinBudget(settled, budget);
        if (restarted) outcome = fromStart(outcome);
        this.#host.admit(client);
        admitted?.(outcome);
        if (from !== undefined && outcome.reason === 'unavailable') this.#strand(client, from);
        resolve(outcome);
      };
      // A resume says plainly that the room is unavailable, and a new join (announced) fails: its
      // member, at no known position, would later be handed the room's whole log as if it were new.
      const unavailable = (error: unknown) => {
        if (done) return;
        if (from === undefined && admitted !== undefined) {
          if (first()) reject(error);
          return;
        }
        const position = { offset: this.#last, epoch: this.#epoch };
        settle({ position, recovered: false, reason: 'unavailable', replay: [] });
      };
      const deadline = budget?.deadline;
      if (deadline !== undefined) {
        // Its turn may come behind a history read that waits out its whole timeout.
        late = setTimeout(
          () =>
            unavailable(new HistoryError(`the history of "${this.#room}" did not answer in time`)),
          Math.max(0, deadline - performance.now()),
        );
      }
      const failures = this.#positionFailures;
      this.#enqueue(async () => {
        if (done) return;
        if (this.#epoch === '') {
          // The history was unreachable when the stream began: without its position nothing can
          // be compared, so read it now; if that fails, the room is unavailable. Not read again
          // when a read already failed while this join waited for its turn: the joins queued
          // behind a history that does not answer would each wait a whole timeout more, past
          // `helloTimeoutMs`.
          if (this.#positionFailures !== failures) {
            return unavailable(new HistoryError(`the history of "${this.#room}" is unreachable`));
          }
          try {
            this.#known(await this.#position());
          } catch (error) {
            this.#host.error(error);
            return unavailable(error);
          }
        }
        let since = from;
        if (from !== undefined && from.epoch !== this.#epoch) {
          const left = await this.#left(from.epoch);
          // Whether its place is in a log this room left, the history could not say: as for a
          // gap it could not read, the client keeps its place until it can.
          if (left === undefined) {
            return unavailable(new HistoryError(`the history of "${this.#room}" is unreachable`));
          }
          if (left) {
            // As a member that stayed is resynced to the new log's start and given what it
            // holds, not past it: the old log's tail is lost, the new one's start is not.
            restarted = true;
            since = { offset: 0, epoch: this.#epoch };
          }
        }
        if (from !== undefined && from.epoch === this.#epoch && from.offset > this.#last) {
          // Ahead of this node: what it saw is still on its way here (the history has it), or
          // the log went back in its epoch (it has not): then the client starts over from here.
          const now = await this.#position().catch(() => undefined);
          if (now !== undefined && now.epoch === from.epoch && now.offset < from.offset) {
            const position = { offset: this.#last, epoch: this.#epoch };
            return settle({ position, recovered: false, reason: 'epoch-changed', replay: [] });
          }
        }
        // Its deadline came while the history was asked: it was admitted `unavailable`.
        if (done) return;
        const outcome = this.#fromMemory(since);
        if (outcome !== undefined) return settle(outcome);
        const catcher: Catcher = {
          from: since!,
          upTo: this.#last,
          epoch: this.#epoch,
          live: [],
          skipped: false,
          budget,
          settle,
        };
        this.#catchers.add(catcher);
        void this.#catchUp(catcher);
      });
    });
  }

  /** Keeps a member admitted `unavailable` from `from` for its recovery (`#behind`, `#stranded`). */
  #strand(client: Member, from: HistoryPosition): void {
    if (this.#epoch === '') {
      this.#behind.add(client);
      return;
    }
    // From a log the room may have left: what it missed is the current one from its start.
    const after = from.epoch === this.#epoch ? from.offset : 0;
    if (after < this.#last) this.#stranded.set(client, after);
  }

  /** Before the next message reaches the stranded members: closes them to resume, if it can. */
  async #rescue(): Promise<void> {
    const stranded = this.#stranded;
    this.#stranded = new Map();
    let after = this.#last;
    for (const offset of stranded.values()) after = Math.min(after, offset);
    try {
      const read = await this.#readHistory({ offset: after, epoch: this.#epoch }, 1);
      if (read.ok && read.entries[0]?.offset === after + 1) this.#host.recover(stranded.keys());
    } catch (error) {
      this.#host.error(error);
    }
  }

  /**
   * Whether the stream has left `epoch` for its own: one it followed from, or one the history
   * says is not its current one while the stream's is (a log that restarted before the stream
   * began). Not when the history is ahead of the stream; `undefined` when it cannot say.
   */
  async #left(epoch: string): Promise<boolean | undefined> {
    if (this.#past.includes(epoch)) return true;
    try {
      return (await this.#position()).epoch === this.#epoch;
    } catch (error) {
      this.#host.error(error);
      return undefined;
    }
  }

  /** Settles a join without reading the history, when that is possible. */
  #fromMemory(from: HistoryPosition | undefined): JoinOutcome | undefined {
    const position = { offset: this.#last, epoch: this.#epoch };
    if (from === undefined) return { position, recovered: true, replay: [] };
    if (from.epoch !== this.#epoch) {
      return { position, recovered: false, reason: 'epoch-changed', replay: [] };
    }
    // A client ahead of this node saw messages still on their way here; its dedupe drops them.
    if (from.offset >= this.#last) return { position, recovered: true, replay: [] };
    const first = this.#recent[0]?.offset;
    if (first === undefined || from.offset + 1 < first) return undefined;
    const replay = this.#recent
      .slice(from.offset + 1 - first)
      .map((m) => new Outgoing(m.bytes, m.binary, false, this.#room, m.offset, this.#epoch));
    return { position, recovered: true, replay };
  }

  /** Reads what a joining client missed from the history; live messages keep flowing meanwhile. */
  async #catchUp(catcher: Catcher): Promise<void> {
    // A gap longer than the join may replay is not worth reading.
    const read =
      catcher.upTo - catcher.from.offset > (catcher.budget?.entries ?? Number.POSITIVE_INFINITY)
        ? TOO_LONG
        : await this.#read(catcher);
    // The live messages are taken in the turn the client is admitted: a gap fill may have
    // delivered more while the read's answer came back.
    this.#catchers.delete(catcher);
    const position = { offset: this.#last, epoch: this.#epoch };
    if (this.#epoch !== catcher.epoch) return catcher.settle(this.#sinceRestart(catcher, position));
    const outcome = read.recovered ? this.#withLive(read, catcher) : read;
    catcher.settle({ ...outcome, position });
  }

  /**
   * The outcome of a join whose read was out while the room's log restarted: the new log's
   * messages the stream delivered since its start (the join kept them), if they are all of it;
   * else it goes on from here.
   */
  #sinceRestart(catcher: Catcher, position: HistoryPosition): JoinOutcome {
    const fresh = catcher.live.filter((message) => message.epoch === this.#epoch);
    const whole =
      fresh.length === this.#last && fresh.every((message, i) => message.offset === i + 1);
    return whole && fresh.length > 0
      ? {
          recovered: false,
          reason: 'epoch-changed',
          replay: fresh,
          position: { ...position, offset: 0 },
        }
      : { recovered: false, reason: 'epoch-changed', replay: [], position };
  }

  /** A whole replay from the history, followed by what was delivered since, if that is whole. */
  #withLive(read: Omit<JoinOutcome, 'position'>, catcher: Catcher): Omit<JoinOutcome, 'position'> {
    // The members were told to resync; a client admitted after it would miss the skipped part.
    if (catcher.skipped) return { recovered: false, reason: 'too-old', replay: [] };
    return { ...read, replay: [...read.replay, ...catcher.live] };
  }

  /**
   * Reads the gap from the history, in pages sized to what is left of the byte budget: a resume
   * from far back in a room of large messages stops once past it, instead of pulling the whole gap
   * from the store only to answer `too-old`.
   */
  async #read(catcher: Catcher): Promise<Omit<JoinOutcome, 'position'>> {
    const { from, upTo, budget } = catcher;
    try {
      const replay: Outgoing[] = [];
      let bytes = 0;
      let failed: NotRecoveredReason | undefined;
      while (replay.length < upTo - from.offset) {
        const after = replay.at(-1)?.offset ?? from.offset;
        let taken = 0;
        // Taken in before its turn ends: the next page is sized by what this one read and cost.
        const take = async (limit: number) => {
          const read = await this.#readHistory({ offset: after, epoch: from.epoch }, limit);
          if (!read.ok) return read;
          for (const entry of read.entries) {
            if (entry.offset <= after || entry.offset > upTo) continue;
            // Counted as the replay's budget counts them: the message, not how the history keeps it.
            const message = Outgoing.fromHistory(this.#room, entry, from.epoch);
            bytes += message.bytes.length;
            this.#host.entrySize.add(message.bytes.length);
            if (budget?.reads !== undefined) budget.reads -= message.bytes.length;
            replay.push(message);
            taken++;
          }
          return read;
        };
        const plan = () => this.#plan(catcher, after, replay.length, bytes);
        const read = await this.#page(budget, plan, take);
        if (read === undefined) return TOO_LONG;
        if (!read.ok) {
          failed = read.reason;
          break;
        }
        if (taken === 0) break;
        if (bytes > replayable(catcher)) return TOO_LONG;
      }
      const whole =
        failed === undefined &&
        replay.length === upTo - from.offset &&
        replay.every((message, i) => message.offset === from.offset + 1 + i);
      if (!whole) return { recovered: false, reason: failed ?? 'too-old', replay: [] };
      return { recovered: true, replay };
    } catch (error) {
      if (error !== SKIPPED) this.#host.error(error);
      return UNAVAILABLE;
    }
  }

  /**
   * The next page of a replay's read, past `after`, `count` entries of `bytes` read so far; none
   * once the resume may read no more. Without a budget, all at once; else a first page of what the
   * budget holds at the size of the room's entries, then as many as what it still holds at the
   * size read so far; each with one more, to pass it.
   */
  #plan(catcher: Catcher, after: number, count: number, bytes: number): number | undefined {
    const { budget, upTo } = catcher;
    if (budget?.reads !== undefined && budget.reads <= 0) return undefined;
    const maxBytes = replayable(catcher);
    if (!Number.isFinite(maxBytes)) return upTo - after;
    const fits =
      bytes === 0
        ? firstPage(maxBytes, this.#entrySize())
        : Math.ceil(((maxBytes - bytes) * count) / bytes) + 1;
    return Math.min(upTo - after, Math.max(1, fits));
  }

  /** Reads a page, in its turn among the resume's rooms when they rejoin at once. */
  #page(
    budget: ReplayBudget | undefined,
    plan: () => number | undefined,
    read: (limit: number) => Promise<HistoryReadResult>,
  ): Promise<HistoryReadResult | undefined> {
    if (budget?.turns !== undefined) return budget.turns.page(this.#history, plan, read);
    const limit = plan();
    return limit === undefined ? Promise.resolve(undefined) : read(limit);
  }

  /**
   * The size of this room's entries, as far as the node knows: its recent messages', or else the
   * entries the node's replays read lately; 0 when it knows nothing of either.
   */
  #entrySize(): number {
    const recent = this.#recent.length;
    return recent > 0 ? this.#recentBytes / recent : this.#host.entrySize.mean;
  }

  async #accept(message: Outgoing): Promise<void> {
    const offset = message.offset!;
    if (message.epoch !== this.#epoch) {
      if (!(await this.#isNewEpoch(message.epoch!))) return;
      if (this.#epoch === '') this.#adopt({ offset: offset - 1, epoch: message.epoch! });
      else this.#follow(message.epoch!);
    }
    if (offset <= this.#last) {
      if (!this.#rewound(message)) return;
      // The log went back in the same epoch (a store restored from an older copy): the messages
      // from here on are new ones at offsets already delivered. Members are told to go back too.
      this.#last = offset - 1;
      this.#recent.length = 0;
      this.#recentBytes = 0;
      for (const catcher of this.#catchers) catcher.skipped = true;
      this.#resync({ offset: this.#last, epoch: this.#epoch });
    }
    if (this.#stranded.size > 0) await this.#rescue();
    if (offset > this.#last + 1) await this.#fill(offset - 1);
    this.#deliver(message);
  }

  /**
   * Whether a message at an offset already delivered is not the one delivered there: one
   * remembered at that offset had other bytes. (A copy of one delivered, as a live message that
   * comes after a gap fill brought it, has the same bytes and is dropped.)
   */
  #rewound(message: Outgoing): boolean {
    const first = this.#recent[0]?.offset;
    if (first === undefined || message.offset! < first) return false;
    const kept = this.#recent[message.offset! - first];
    return kept !== undefined && !kept.bytes.equals(message.bytes);
  }

  /**
   * Whether a message's epoch, not the stream's, is the room's new one, and not a late message of
   * an older one: the history says which (if it cannot, the message is followed).
   */
  async #isNewEpoch(epoch: string): Promise<boolean> {
    if (this.#past.includes(epoch)) return false;
    let current: string;
    try {
      current = (await this.#position()).epoch;
    } catch (error) {
      this.#host.error(error);
      return true;
    }
    if (current === epoch) return true;
    this.#leftEpoch(epoch);
    return false;
  }

  /**
   * The stream never knew where the log was (its history was unreachable): it goes on from
   * `position`, without handing on the log before it, which its members were never told they missed.
   */
  #adopt(position: HistoryPosition): void {
    this.#host.resync(position, this.#known(position));
  }

  /**
   * The stream's position, read at last: members that came back meanwhile resume (`#behind`).
   * Returns them.
   */
  #known(position: HistoryPosition): ReadonlySet<Member> {
    ({ offset: this.#last, epoch: this.#epoch } = position);
    const behind = this.#behind;
    if (behind.size === 0) return behind;
    this.#behind = new Set();
    this.#host.recover(behind);
    return behind;
  }

  /**
   * The room's log restarted (or this node's position predates it): the stream follows the new
   * epoch from its start, which the history fills if its first messages did not come live.
   */
  #follow(epoch: string): void {
    if (this.#epoch !== '') this.#leftEpoch(this.#epoch);
    this.#epoch = epoch;
    this.#last = 0;
    this.#recent.length = 0;
    this.#recentBytes = 0;
    this.#resync({ offset: 0, epoch });
  }

  /** Tells the members to start over from `position`: a place they kept is past, stranded or not. */
  #resync(position: HistoryPosition): void {
    this.#stranded.clear();
    this.#host.resync(position);
  }

  #leftEpoch(epoch: string): void {
    this.#past.push(epoch);
    if (this.#past.length > PAST_EPOCHS) this.#past.shift();
  }

  #position(): Promise<HistoryPosition> {
    return this.#answered(this.#history.position(this.#room), 'position').catch((error) => {
      this.#positionFailures++;
      throw error;
    });
  }

  #readHistory(after: HistoryPosition, limit: number): Promise<HistoryReadResult> {
    return this.#answered(this.#history.read(this.#room, after, limit), 'read');
  }

  /** The history's answer, or a {@link HistoryError} when it does not come in time. */
  #answered<T>(answer: Promise<T>, what: string): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        const message = `history ${what} of "${this.#room}" did not answer in ${HISTORY_TIMEOUT_MS} ms`;
        reject(new HistoryError(message));
      }, HISTORY_TIMEOUT_MS);
    });
    return Promise.race([answer, late]).finally(() => clearTimeout(timer));
  }

  /** Delivers the messages between the last one delivered and `upTo` from the history. */
  async #fill(upTo: number): Promise<void> {
    const from = { offset: this.#last, epoch: this.#epoch };
    try {
      const read = await this.#readHistory(from, upTo - this.#last);
      if (read.ok) {
        for (const entry of read.entries) {
          if (entry.offset <= this.#last || entry.offset > upTo) continue;
          if (entry.offset !== this.#last + 1) break;
          this.#deliver(Outgoing.fromHistory(this.#room, entry, this.#epoch));
        }
      }
    } catch (error) {
      this.#host.error(error);
    }
    if (this.#last < upTo) {
      this.#last = upTo;
      this.#recent.length = 0;
      this.#recentBytes = 0;
      for (const catcher of this.#catchers) catcher.skipped = true;
      this.#resync({ offset: upTo, epoch: this.#epoch });
    }
  }

  /** Writes the next message to the members, and keeps it for joins still catching up. */
  #deliver(message: Outgoing): void {
    this.#last = message.offset!;
    for (const client of this.#host.members()) client.deliver(message);
    for (const catcher of this.#catchers) catcher.live.push(message);
    this.#remember(message);
  }

  #remember(message: Outgoing): void {
    const recent = this.#recent;
    recent.push({ offset: message.offset!, bytes: message.bytes, binary: message.binary });
    this.#recentBytes += message.bytes.length;
    while (recent.length > RECENT_COUNT || this.#recentBytes > RECENT_BYTES) {
      this.#recentBytes -= recent.shift()!.bytes.length;
    }
  }

  #enqueue(step: Step): void {
    this.#steps.push(step);
    if (!this.#busy) void this.#run();
  }

  async #run(): Promise<void> {
    this.#busy = true;
    while (this.#steps.length > 0) {
      const step = this.#steps.shift()!;
      try {
        await step();
      } catch (error) {
        this.#host.error(error);
      }
    }
    this.#busy = false;
  }
}

/** Entries a replay's first read asks for; the next ones are sized to the byte budget left. */
const FIRST_PAGE = 16;

/** The bytes a replay may still take: the rooms a resume rejoins beside it take their share. */
function replayable(catcher: Catcher): number {
  return catcher.budget?.bytes ?? Number.POSITIVE_INFINITY;
}

/**
 * Entries a replay's first read asks for: what `maxBytes` holds at the room's entry `size` (0:
 * unknown), and one more.
 */
function firstPage(maxBytes: number, size: number): number {
  if (size === 0) return FIRST_PAGE;
  return Math.min(FIRST_PAGE, Math.floor(maxBytes / size) + 1);
}

const TOO_LONG: Omit<JoinOutcome, 'position'> = {
  recovered: false,
  reason: 'too-old',
  replay: [],
  overBudget: true,
};

const UNAVAILABLE: Omit<JoinOutcome, 'position'> = {
  recovered: false,
  reason: 'unavailable',
  replay: [],
};

/**
 * A join replayed a restarted log from its start: no recovery (what the client missed of the old
 * log is lost), and its place is that start, which the replay follows. A join not replayed
 * (over its budget, unavailable) is left as it is.
 */
function fromStart(outcome: JoinOutcome): JoinOutcome {
  if (!outcome.recovered) return outcome;
  const start = { offset: 0, epoch: outcome.position.epoch };
  const position = outcome.replay.length > 0 ? start : outcome.position;
  return { ...outcome, recovered: false, reason: 'epoch-changed', position };
}

/** The outcome, or `too-old` when its replay does not fit what is left of the budget. */
function withinBudget(outcome: JoinOutcome, budget: ReplayBudget): JoinOutcome {
  let bytes = 0;
  for (const message of outcome.replay) bytes += message.bytes.length;
  if (outcome.replay.length <= budget.entries && bytes <= budget.bytes) {
    budget.entries -= outcome.replay.length;
    budget.bytes -= bytes;
    return outcome;
  }
  return { ...TOO_LONG, position: outcome.position };
}
