import type { History, HistoryPosition } from '../contracts.js';
import type { NotRecoveredReason } from '../protocol/messages.js';
import type { AnyClient } from '../server/client.js';
import { Outgoing } from '../server/outgoing.js';

/** How a client's place in a room was settled when it joined. */
export interface JoinOutcome {
  position: HistoryPosition;
  /** Whether everything after the client's last offset is in `replay` (always true on a fresh join). */
  recovered: boolean;
  reason?: NotRecoveredReason;
  /** Missed messages, oldest first, to write to the client before anything live. */
  replay: Outgoing[];
}

/** What a stream needs from the node. */
export interface StreamHost {
  /** Local members a message goes to. */
  members(): Iterable<AnyClient>;
  /** Adds a member; from then on it receives the room's messages. */
  admit(client: AnyClient): void;
  /** Tells local `wscale.v1` members the stream skipped ahead and they must start over. */
  resync(position: HistoryPosition): void;
  error(error: unknown): void;
}

type Step = () => void | Promise<void>;

/**
 * The node-side order of one history room: every local member receives the room's messages in
 * offset order, each once, whatever order the broker brings them in. A message that arrives ahead
 * of a gap waits while the gap is filled from the history; a message already delivered is dropped.
 * Joins and resumes take their place in the same sequence, so a client's replay and the live
 * messages after it meet with no gap and no duplicate.
 *
 * When nothing is pending and a message is the next one, it is delivered at once: the sequence
 * costs nothing on the hot path.
 */
export class RoomStream {
  readonly #room: string;
  readonly #history: History;
  readonly #host: StreamHost;
  readonly #steps: Step[] = [];
  #busy = false;
  #epoch = '';
  #last = 0;

  constructor(room: string, history: History, host: StreamHost, subscribed: Promise<unknown>) {
    this.#room = room;
    this.#history = history;
    this.#host = host;
    // The start position is read once the subscription exists, so nothing after it is missed.
    this.#enqueue(async () => {
      await subscribed;
      const position = await this.#history.position(room);
      this.#epoch = position.epoch;
      this.#last = position.offset;
    });
  }

  /** Takes a message of this room (offset and epoch set) from this node or another. */
  receive(message: Outgoing): void {
    if (
      !this.#busy &&
      this.#steps.length === 0 &&
      message.epoch === this.#epoch &&
      message.offset === this.#last + 1
    ) {
      this.#last = message.offset;
      this.#fanOut(message);
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
    client: AnyClient,
    from?: HistoryPosition,
    admitted?: (position: HistoryPosition) => void,
  ): Promise<JoinOutcome> {
    return new Promise((resolve, reject) => {
      this.#enqueue(async () => {
        try {
          const outcome = await this.#catchUp(from);
          this.#host.admit(client);
          admitted?.(outcome.position);
          resolve(outcome);
        } catch (error) {
          reject(error);
        }
      });
    });
  }

  async #catchUp(from: HistoryPosition | undefined): Promise<JoinOutcome> {
    const position = { offset: this.#last, epoch: this.#epoch };
    const outcome = (recovered: boolean, reason?: NotRecoveredReason, replay: Outgoing[] = []) => ({
      position,
      recovered,
      reason,
      replay,
    });
    if (from === undefined) return outcome(true);
    if (from.epoch !== this.#epoch) return outcome(false, 'epoch-changed');
    // A client ahead of this node saw messages still on their way here; its dedupe drops them.
    if (from.offset >= this.#last) return outcome(true);
    const missed = this.#last - from.offset;
    let read: Awaited<ReturnType<History['read']>>;
    try {
      read = await this.#history.read(this.#room, from, missed);
    } catch (error) {
      this.#host.error(error);
      return outcome(false, 'unavailable');
    }
    if (!read.ok) return outcome(false, read.reason);
    if (read.entries.length !== missed) return outcome(false, 'too-old');
    return outcome(
      true,
      undefined,
      read.entries.map((entry) => Outgoing.fromHistory(this.#room, entry, this.#epoch)),
    );
  }

  async #accept(message: Outgoing): Promise<void> {
    const offset = message.offset!;
    if (message.epoch !== this.#epoch) {
      // The room's log restarted (or this node's position predates it): follow the new epoch.
      this.#epoch = message.epoch!;
      this.#last = offset - 1;
      this.#host.resync({ offset: this.#last, epoch: this.#epoch });
    }
    if (offset <= this.#last) return;
    if (offset > this.#last + 1) await this.#fill(offset - 1);
    this.#last = offset;
    this.#fanOut(message);
  }

  /** Delivers the messages between the last one delivered and `upTo` from the history. */
  async #fill(upTo: number): Promise<void> {
    const from = { offset: this.#last, epoch: this.#epoch };
    try {
      const read = await this.#history.read(this.#room, from, upTo - this.#last);
      if (read.ok) {
        for (const entry of read.entries) {
          if (entry.offset <= this.#last || entry.offset > upTo) continue;
          if (entry.offset !== this.#last + 1) break;
          this.#last = entry.offset;
          this.#fanOut(Outgoing.fromHistory(this.#room, entry, this.#epoch));
        }
      }
    } catch (error) {
      this.#host.error(error);
    }
    if (this.#last < upTo) {
      this.#last = upTo;
      this.#host.resync({ offset: upTo, epoch: this.#epoch });
    }
  }

  #fanOut(message: Outgoing): void {
    for (const client of this.#host.members()) client.deliver(message);
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
