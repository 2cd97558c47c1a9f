import { until } from '@wscale/core/testing';
import { describe, expect, it, vi } from 'vitest';
import type {
  History,
  HistoryEntry,
  HistoryPosition,
  HistoryReadResult,
  Unsubscribe,
} from '../../src/contracts.js';
import type { ServerMessage } from '../../src/protocol/messages.js';
import { Outgoing } from '../../src/protocol/outgoing.js';
import { RoomRegistry } from '../../src/rooms/room-registry.js';
import {
  EntrySize,
  HISTORY_TIMEOUT_MS,
  type JoinOutcome,
  type ReplayBudget,
  RoomStream,
  type StreamHost,
} from '../../src/rooms/room-stream.js';
import type { AnyClient } from '../../src/transport/client.js';
import { Gate } from './gate.js';

// Unit tests of a history room's order (docs/architecture.md, "History rooms: order and repair";
// docs/guarantees.md, "Rooms with history") with a history and members that are fakes: each test
// decides what the history holds, when its reads answer and in which order the broker brings
// messages. Everything is observed where a client would see it: what each member is written, in
// which order, and what a join is told.

const ROOM = 'chat';
const A = 'epoch-a';
const B = 'epoch-b';
const WAIT_MS = 2000;

/** A history in memory whose answers a test controls. */
class FakeHistory implements History {
  epoch = A;
  last = 0;
  readonly #entries = new Map<number, Uint8Array>();
  /** Reads (and what they asked for) so far. */
  readonly reads: Array<{ after: HistoryPosition; limit: number | undefined }> = [];
  /** Offsets up to this one were trimmed: a read that needs them answers `too-old`. */
  trimmedThrough = 0;
  /** Offsets the history silently lacks (a read returns the entries around them). */
  readonly holes = new Set<number>();
  /** When set, reads (and position reads) throw. */
  failing = false;
  /** Holds reads in flight (position reads are never held). */
  readonly gate = new Gate();
  /** When set, reads and position reads never answer. */
  hanging = false;
  /** Position reads so far. */
  positions = 0;

  /** Appends a text message and returns it as the broker would bring it. */
  publish(text: string, binary = false): Outgoing {
    const message = new Outgoing(Buffer.from(text), binary, false, ROOM);
    this.last += 1;
    this.#entries.set(this.last, message.historyPayload());
    return message.at(ROOM, this.last, this.epoch);
  }

  /** Appends `count` messages, `m<offset>` each; returns them in order. */
  publishMany(count: number, size = 0): Outgoing[] {
    return Array.from({ length: count }, () => this.publish(`m${this.last + 1}`.padEnd(size, '.')));
  }

  /** The log is lost: a new epoch starting from offset 0. */
  restart(epoch: string): void {
    this.epoch = epoch;
    this.last = 0;
    this.#entries.clear();
  }

  async append(_room: string, payload: Uint8Array): Promise<HistoryPosition> {
    this.last += 1;
    this.#entries.set(this.last, payload);
    return { offset: this.last, epoch: this.epoch };
  }

  async read(_room: string, after: HistoryPosition, limit?: number): Promise<HistoryReadResult> {
    this.reads.push({ after, limit });
    await this.gate.pass();
    if (this.hanging) await new Promise(() => undefined);
    if (this.failing) throw new Error('history down');
    const position = { offset: this.last, epoch: this.epoch };
    if (after.epoch !== this.epoch) return { ok: false, reason: 'epoch-changed', position };
    if (after.offset < this.trimmedThrough) return { ok: false, reason: 'too-old', position };
    const entries: HistoryEntry[] = [];
    for (let offset = after.offset + 1; offset <= this.last; offset++) {
      if (entries.length === (limit ?? Number.POSITIVE_INFINITY)) break;
      const payload = this.#entries.get(offset);
      if (payload !== undefined && !this.holes.has(offset)) entries.push({ offset, payload });
    }
    return { ok: true, epoch: this.epoch, entries };
  }

  async position(): Promise<HistoryPosition> {
    this.positions++;
    if (this.hanging) await new Promise(() => undefined);
    if (this.failing) throw new Error('history down');
    return { offset: this.last, epoch: this.epoch };
  }

  async close(): Promise<void> {}
}

/**
 * A local member as the room sees it: it records what it is written, in order. `m3` is the message
 * at offset 3, `resync 9/epoch-a` a resync, `joined 4` its join being announced at offset 4.
 */
class FakeMember {
  readonly seen: string[] = [];
  readonly #rooms: string[] = [];
  gone = false;

  deliver(message: Outgoing): boolean {
    if (this.shutWith !== undefined) return false; // closing: nothing more is written
    this.seen.push(message.bytes.toString());
    return true;
  }

  /** The code the server closed it with, if it did. */
  shutWith: number | undefined;

  shut(code: number): void {
    this.shutWith = code;
    this.seen.push(`closed ${code}`);
  }

  /** It speaks `wscale.v1`: it is told `joined` and `resync`. */
  readonly v1 = true;
  readonly open = true;

  /** A `wscale.v1` frame it is written (a server's frame: unmasked, text), as it reads it. */
  writeFrame(frame: Buffer): boolean {
    const length = frame[1]! & 0x7f;
    const start = length === 126 ? 4 : length === 127 ? 10 : 2;
    this.told(JSON.parse(frame.subarray(start).toString()) as ServerMessage);
    return true;
  }

  told(message: ServerMessage): void {
    if (message.t === 'joined') this.seen.push(`joined ${message.o}`);
    if (message.t === 'resync') this.seen.push(`resync ${message.o}/${message.e}`);
  }

  /** The messages it was written (resyncs and announcements left out). */
  get messages(): string[] {
    return this.seen.filter((entry) => entry.startsWith('m'));
  }

  addRoom(room: string): void {
    if (!this.#rooms.includes(room)) this.#rooms.push(room);
  }

  removeRoom(room: string): void {
    const index = this.#rooms.indexOf(room);
    if (index !== -1) this.#rooms.splice(index, 1);
  }

  inRoom(room: string): boolean {
    return this.#rooms.includes(room);
  }

  get roomList(): readonly string[] {
    return this.#rooms;
  }

  get asClient(): AnyClient {
    return this as unknown as AnyClient;
  }
}

/** A stream over `history` with its members and what it told them, as the room registry wires it. */
function open(history: FakeHistory, subscribed: Promise<unknown> = Promise.resolve()) {
  const members = new Set<FakeMember>();
  const errors: unknown[] = [];
  const host: StreamHost = {
    members: () => [...members].map((member) => member.asClient),
    admit: (client) => members.add(client as unknown as FakeMember),
    resync: ({ offset, epoch }, except) => {
      for (const member of members) {
        if (!except?.has(member.asClient))
          member.told({ t: 'resync', r: ROOM, o: offset, e: epoch });
      }
    },
    recover: (list) => {
      for (const member of list) (member as unknown as FakeMember).shut(1012);
    },
    error: (error) => errors.push(error),
    entrySize: new EntrySize(),
  };
  const stream = new RoomStream(ROOM, history, host, subscribed);
  return {
    stream,
    errors,
    /** Admits a member (at the end, or after `from`), announcing it as the registry does. */
    join(member: FakeMember, from?: HistoryPosition, budget?: ReplayBudget): Promise<JoinOutcome> {
      const announce = ({ position: { offset, epoch } }: JoinOutcome) =>
        member.told({ t: 'joined', r: ROOM, o: offset, e: epoch });
      return stream.join(member.asClient, from, announce, budget);
    },
    /** A member already in the room, admitted at the current end. */
    async member(): Promise<FakeMember> {
      const member = new FakeMember();
      await stream.join(member.asClient);
      return member;
    },
    /** Resolves once every step queued before it is done (a fresh join takes its turn in order). */
    async settled(): Promise<void> {
      await stream.join(new FakeMember().asClient);
    },
  };
}

/**
 * A room of 30 messages with a member, and a client whose join from offset 25 waits for its
 * history read until the test lets it through.
 */
async function joinInFlight() {
  const history = new FakeHistory();
  history.publishMany(30);
  const room = open(history);
  const member = await room.member();
  const release = history.gate.hold();
  const late = new FakeMember();
  const joining = room.join(late, { offset: 25, epoch: A });
  await until(() => history.reads.length === 1, WAIT_MS, 'the join read');
  return { history, room, member, late, joining, release };
}

const names = (messages: Outgoing[]) => messages.map((message) => message.bytes.toString());
const range = (from: number, to: number) =>
  Array.from({ length: to - from + 1 }, (_, i) => `m${from + i}`);

describe('RoomStream: order', () => {
  it('delivers messages in offset order, each once, whatever order the broker brings them in', async () => {
    const history = new FakeHistory();
    const room = open(history);
    const member = await room.member();
    const [m1, m2, m3, m4, m5] = history.publishMany(5);
    for (const message of [m3!, m1!, m5!, m2!, m4!, m3!, m1!]) room.stream.receive(message);
    await room.settled();
    expect(member.seen).toEqual(range(1, 5));
  });

  it('holds a message that arrives ahead of a gap while the gap is read, then drops the late copies', async () => {
    const history = new FakeHistory();
    const room = open(history);
    const member = await room.member();
    const [m1, m2, m3] = history.publishMany(3);
    const release = history.gate.hold();
    room.stream.receive(m3!);
    await until(() => history.reads.length === 1, WAIT_MS, 'the gap read');
    // The late ones arrive while the read is out: nothing may overtake m3's wait.
    room.stream.receive(m1!);
    room.stream.receive(m2!);
    expect(member.seen).toEqual([]);
    release();
    await room.settled();
    expect(member.seen).toEqual(['m1', 'm2', 'm3']);
  });

  it('writes the next message at once, without reading the history', async () => {
    const history = new FakeHistory();
    const room = open(history);
    const member = await room.member();
    for (const message of history.publishMany(3)) {
      room.stream.receive(message);
      expect(member.seen.at(-1)).toBe(message.bytes.toString());
    }
    expect(history.reads).toEqual([]);
  });
});

describe('RoomStream: gaps', () => {
  it('fills a message the broker lost from the history, in order, with no resync', async () => {
    const history = new FakeHistory();
    const room = open(history);
    const member = await room.member();
    const [m1, , m3] = history.publishMany(3);
    room.stream.receive(m1!);
    room.stream.receive(m3!);
    await room.settled();
    expect(member.seen).toEqual(['m1', 'm2', 'm3']);
    expect(history.reads).toEqual([{ after: { offset: 1, epoch: A }, limit: 1 }]);
  });

  it('sends resync before the next message when the history no longer holds the gap', async () => {
    const history = new FakeHistory();
    const room = open(history);
    const member = await room.member();
    const messages = history.publishMany(10);
    room.stream.receive(messages[0]!);
    history.trimmedThrough = 5;
    room.stream.receive(messages[9]!);
    await room.settled();
    expect(member.seen).toEqual(['m1', `resync 9/${A}`, 'm10']);
  });

  it('delivers the part of a gap the history holds up to a hole, then resyncs past it', async () => {
    const history = new FakeHistory();
    const room = open(history);
    const member = await room.member();
    const messages = history.publishMany(6);
    history.holes.add(3);
    room.stream.receive(messages[0]!);
    room.stream.receive(messages[5]!);
    await room.settled();
    // m4 and m5 are in the history, but after a hole: writing them would hide that m3 is lost.
    expect(member.seen).toEqual(['m1', 'm2', `resync 5/${A}`, 'm6']);
  });

  it('reports a failed gap read and resyncs, and the stream goes on', async () => {
    const history = new FakeHistory();
    const room = open(history);
    const member = await room.member();
    const messages = history.publishMany(4);
    room.stream.receive(messages[0]!);
    history.failing = true;
    room.stream.receive(messages[2]!);
    await room.settled();
    history.failing = false;
    room.stream.receive(messages[3]!);
    await room.settled();
    expect(member.seen).toEqual(['m1', `resync 2/${A}`, 'm3', 'm4']);
    expect(room.errors).toEqual([expect.objectContaining({ message: 'history down' })]);
  });

  it('never replays across a hole it resynced over: a join from before it reads the history', async () => {
    const history = new FakeHistory();
    const room = open(history);
    await room.member();
    const messages = history.publishMany(10);
    for (const message of messages.slice(0, 3)) room.stream.receive(message);
    history.trimmedThrough = 5;
    room.stream.receive(messages[9]!);
    await room.settled();
    const late = new FakeMember();
    const outcome = await room.join(late, { offset: 2, epoch: A });
    expect(outcome).toMatchObject({ recovered: false, reason: 'too-old', replay: [] });
    expect(outcome.position).toEqual({ offset: 10, epoch: A });
  });
});

describe('RoomStream: joins', () => {
  it('admits a fresh join at the current end; it gets what follows and nothing before', async () => {
    const history = new FakeHistory();
    history.publishMany(3);
    const room = open(history);
    const member = new FakeMember();
    const outcome = await room.join(member);
    expect(outcome).toEqual({ position: { offset: 3, epoch: A }, recovered: true, replay: [] });
    room.stream.receive(history.publish('m4'));
    await room.settled();
    expect(member.seen).toEqual(['joined 3', 'm4']);
  });

  it('replays a short gap from what it delivered lately, without reading the history', async () => {
    const history = new FakeHistory();
    const room = open(history);
    await room.member();
    for (const message of history.publishMany(20)) room.stream.receive(message);
    const outcome = await room.join(new FakeMember(), { offset: 15, epoch: A });
    expect(outcome).toMatchObject({ recovered: true, position: { offset: 20, epoch: A } });
    expect(names(outcome.replay)).toEqual(range(16, 20));
    expect(outcome.replay.map((message) => [message.room, message.offset, message.epoch])).toEqual(
      [16, 17, 18, 19, 20].map((offset) => [ROOM, offset, A]),
    );
    expect(history.reads).toEqual([]);
  });

  it('replays text and binary messages as they were sent, from memory and from the history', async () => {
    const history = new FakeHistory();
    const room = open(history);
    await room.member();
    const sent = [history.publish('m1', true), history.publish('m2'), history.publish('m3', true)];
    for (const message of sent) room.stream.receive(message);
    const fromMemory = await room.join(new FakeMember(), { offset: 0, epoch: A });
    const fromHistory = await open(history).join(new FakeMember(), { offset: 0, epoch: A });
    expect(history.reads).toHaveLength(1);
    for (const { replay } of [fromMemory, fromHistory]) {
      expect(replay.map((m) => [m.bytes.toString(), m.binary, m.offset])).toEqual([
        ['m1', true, 1],
        ['m2', false, 2],
        ['m3', true, 3],
      ]);
    }
  });

  it('reads an older gap from the history', async () => {
    const history = new FakeHistory();
    history.publishMany(50);
    const room = open(history);
    const outcome = await room.join(new FakeMember(), { offset: 40, epoch: A });
    expect(outcome).toMatchObject({ recovered: true, position: { offset: 50, epoch: A } });
    expect(names(outcome.replay)).toEqual(range(41, 50));
    expect(history.reads).toEqual([{ after: { offset: 40, epoch: A }, limit: 10 }]);
  });

  it('gets everything after its position exactly once when messages arrive during its history read', async () => {
    const { history, room, member, late, joining, release } = await joinInFlight();
    // Live messages go on to the members while the join's read is out, and are kept for it.
    for (const message of history.publishMany(3)) room.stream.receive(message);
    expect(member.messages).toEqual(range(31, 33));
    expect(late.seen).toEqual([]);
    release();
    const outcome = await joining;
    room.stream.receive(history.publish('m34'));
    await room.settled();
    expect(outcome).toMatchObject({ recovered: true, position: { offset: 33, epoch: A } });
    // What it is written: its replay (the caller writes it behind the announcement), then live.
    const got = [...names(outcome.replay), ...late.messages];
    expect(got).toEqual(range(26, 34));
    expect(late.seen).toEqual(['joined 33', 'm34']);
  });

  it('gets a gap the stream fills while its own read is out exactly once', async () => {
    const { history, room, member, late, joining, release } = await joinInFlight();
    // m31 is late on the broker: m32 makes the stream read the gap while the join's read is out.
    // Both answer at once, and the fill delivers m31 and m32 as the join's answer comes back.
    const [, m32] = history.publishMany(2);
    room.stream.receive(m32!);
    await until(() => history.reads.length === 2, WAIT_MS, 'the gap read');
    release();
    const outcome = await joining;
    await room.settled();
    expect(member.messages).toEqual(['m31', 'm32']);
    expect([...names(outcome.replay), ...late.messages]).toEqual(range(26, 32));
  });

  it('says too-old when the stream resyncs over a hole while its read is out', async () => {
    const { history, room, member, late, joining } = await joinInFlight();
    // m31 is lost by the broker and missing from the history: the stream skips it.
    const messages = history.publishMany(3);
    history.holes.add(31);
    room.stream.receive(messages[2]!);
    await until(() => history.reads.length === 2, WAIT_MS, 'the gap read');
    history.gate.answer(1);
    await until(() => member.seen.length === 2, WAIT_MS, 'the resync');
    expect(member.seen).toEqual([`resync 32/${A}`, 'm33']);
    history.gate.answer(0);
    // Told plainly that it lost messages, never a replay that joins live messages over the hole.
    expect(await joining).toMatchObject({ recovered: false, reason: 'too-old', replay: [] });
    room.stream.receive(history.publish('m34'));
    await room.settled();
    expect(late.seen).toEqual(['joined 33', 'm34']);
  });

  it('settles two joins waiting on the history at once, each with its own replay', async () => {
    const history = new FakeHistory();
    history.publishMany(40);
    const room = open(history);
    const release = history.gate.hold();
    const first = room.join(new FakeMember(), { offset: 10, epoch: A });
    const second = room.join(new FakeMember(), { offset: 30, epoch: A });
    await until(() => history.reads.length === 2, WAIT_MS, 'both reads');
    room.stream.receive(history.publish('m41'));
    release();
    const [one, two] = await Promise.all([first, second]);
    expect(names(one.replay)).toEqual(range(11, 41));
    expect(names(two.replay)).toEqual(range(31, 41));
  });

  it('tells a client ahead of this node that it has everything (its own dedupe drops the rest)', async () => {
    const history = new FakeHistory();
    history.publishMany(5);
    const room = open(history);
    await room.join(new FakeMember());
    // Two more are kept and on their way to this node; the client saw them elsewhere.
    history.publish('m6');
    history.publish('m7');
    const outcome = await room.join(new FakeMember(), { offset: 7, epoch: A });
    expect(outcome).toEqual({ position: { offset: 5, epoch: A }, recovered: true, replay: [] });
  });

  it('says too-old, with no partial replay, when the history lost part of the gap', async () => {
    const history = new FakeHistory();
    history.publishMany(30);
    history.holes.add(28);
    const room = open(history);
    const member = new FakeMember();
    const outcome = await room.join(member, { offset: 20, epoch: A });
    expect(outcome).toMatchObject({ recovered: false, reason: 'too-old', replay: [] });
    // It is in the room all the same, from the current end.
    room.stream.receive(history.publish('m31'));
    await room.settled();
    expect(member.seen).toEqual(['joined 30', 'm31']);
  });

  it('says too-old when the history trimmed the gap', async () => {
    const history = new FakeHistory();
    history.publishMany(30);
    history.trimmedThrough = 25;
    const room = open(history);
    const outcome = await room.join(new FakeMember(), { offset: 20, epoch: A });
    expect(outcome).toMatchObject({ recovered: false, reason: 'too-old', replay: [] });
  });

  it('says unavailable and reports the error when the history read fails; once it reads again, the client is closed to resume from its own place before any message moves it', async () => {
    const history = new FakeHistory();
    history.publishMany(30);
    const room = open(history);
    const member = await room.member();
    history.failing = true;
    const back = new FakeMember();
    const outcome = await room.join(back, { offset: 20, epoch: A });
    expect(outcome).toMatchObject({ recovered: false, reason: 'unavailable', replay: [] });
    expect(room.errors).toHaveLength(1);
    history.failing = false;
    room.stream.receive(history.publish('m31'));
    await room.settled();
    expect(back.seen).toEqual(['joined 30', 'closed 1012']);
    expect(member.messages).toEqual(['m31']);
    // Its resume is replayed from where it was.
    const resumed = await room.join(new FakeMember(), { offset: 20, epoch: A });
    expect(names(resumed.replay)).toEqual(range(21, 31));
  });

  it('lets a client admitted unavailable go on live when the history still cannot give its gap', async () => {
    const history = new FakeHistory();
    history.publishMany(30);
    const room = open(history);
    await room.settled();
    history.failing = true;
    const failed = new FakeMember();
    await room.join(failed, { offset: 20, epoch: A });
    room.stream.receive(history.publish('m31'));
    await room.settled();
    // The history trimmed the gap by the time it answered: a resume would not be replayed it.
    history.failing = false;
    const trimmed = new FakeMember();
    await room.join(trimmed, { offset: 10, epoch: A }, { bytes: 1e6, entries: 1e6, deadline: 0 });
    history.trimmedThrough = 20;
    room.stream.receive(history.publish('m32'));
    await room.settled();
    expect(failed.seen).toEqual(['joined 30', 'm31', 'm32']);
    expect(trimmed.seen).toEqual(['joined 31', 'm32']);
  });

  it('reads the start position again for a join when the history was down as the stream began', async () => {
    const history = new FakeHistory();
    history.publishMany(10);
    history.failing = true;
    const room = open(history);
    const down = await room.join(new FakeMember(), { offset: 8, epoch: A });
    expect(down).toMatchObject({ recovered: false, reason: 'unavailable', replay: [] });
    history.failing = false;
    const up = await room.join(new FakeMember(), { offset: 8, epoch: A });
    expect(up).toMatchObject({ recovered: true, position: { offset: 10, epoch: A } });
    expect(names(up.replay)).toEqual(['m9', 'm10']);
  });
  it('closes a member that came back while the history was down once it can be read, to resume from its own place: never resynced past what it missed', async () => {
    const history = new FakeHistory();
    history.publishMany(10);
    history.failing = true;
    const room = open(history);
    const back = new FakeMember();
    const down = await room.join(back, { offset: 8, epoch: A });
    expect(down).toMatchObject({ recovered: false, reason: 'unavailable' });
    history.failing = false;
    // The history answers again; the next message shows the stream where it is.
    room.stream.receive(history.publish('m11'));
    await until(() => back.shutWith !== undefined, WAIT_MS, 'the member to be closed');
    expect(back.shutWith).toBe(1012);
    expect(back.seen.filter((seen) => !seen.startsWith('joined'))).toEqual(['closed 1012']);
    // Its resume is replayed from where it was.
    const resumed = await room.join(new FakeMember(), { offset: 8, epoch: A });
    expect(names(resumed.replay)).toEqual(['m9', 'm10', 'm11']);
  });

  it('answers the joins queued behind a start position that got no answer at once, not one timeout each', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    try {
      const history = new FakeHistory();
      history.publishMany(10);
      history.hanging = true;
      const room = open(history);
      // A storm of resumes into a room this node had no stream for: all queue behind its start.
      const joins = Array.from({ length: 3 }, () =>
        room.join(new FakeMember(), { offset: 8, epoch: A }),
      );
      let answered = 0;
      for (const join of joins) void join.then(() => answered++);
      await vi.advanceTimersByTimeAsync(HISTORY_TIMEOUT_MS);
      expect(answered).toBe(joins.length);
      for (const outcome of await Promise.all(joins)) {
        expect(outcome).toMatchObject({ recovered: false, reason: 'unavailable', replay: [] });
      }
      expect(history.positions).toBe(1);
    } finally {
      vi.useRealTimers();
    }
  });
});

describe('RoomStream: epochs', () => {
  it('follows a new epoch on the live path: resync to its start, then its messages', async () => {
    const history = new FakeHistory();
    const room = open(history);
    const member = await room.member();
    for (const message of history.publishMany(3)) room.stream.receive(message);
    history.restart(B);
    for (const message of history.publishMany(2)) room.stream.receive(message);
    await room.settled();
    expect(member.seen).toEqual(['m1', 'm2', 'm3', `resync 0/${B}`, 'm1', 'm2']);
  });

  it('says epoch-changed to a join from the old epoch and replays it the new one from its start, as the members were; replays a join from the new one', async () => {
    const history = new FakeHistory();
    const room = open(history);
    await room.member();
    for (const message of history.publishMany(3)) room.stream.receive(message);
    history.restart(B);
    for (const message of history.publishMany(4)) room.stream.receive(message);
    await room.settled();
    const old = await room.join(new FakeMember(), { offset: 2, epoch: A });
    expect(old).toMatchObject({
      position: { offset: 0, epoch: B },
      recovered: false,
      reason: 'epoch-changed',
    });
    expect(names(old.replay)).toEqual(['m1', 'm2', 'm3', 'm4']);
    expect(old.replay.every((message) => message.epoch === B)).toBe(true);

    const current = await room.join(new FakeMember(), { offset: 2, epoch: B });
    expect(names(current.replay)).toEqual(['m3', 'm4']);
    expect(current.replay.every((message) => message.epoch === B)).toBe(true);
  });

  it('replays a join from an old epoch the new log from the history when the node no longer holds its start', async () => {
    const history = new FakeHistory();
    const room = open(history);
    await room.member();
    for (const message of history.publishMany(3)) room.stream.receive(message);
    history.restart(B);
    for (const message of history.publishMany(300)) room.stream.receive(message);
    await room.settled();
    const reads = history.reads.length;
    const old = await room.join(new FakeMember(), { offset: 2, epoch: A });
    expect(history.reads.length).toBeGreaterThan(reads);
    expect(old).toMatchObject({ position: { offset: 0, epoch: B }, reason: 'epoch-changed' });
    expect(names(old.replay)).toEqual(range(1, 300));
  });

  it('admits a join from another epoch unavailable while the history cannot say whether the log restarted, and closes it to resume once it can, to be replayed the new log', async () => {
    const history = new FakeHistory();
    const room = open(history);
    const member = await room.member();
    for (const message of history.publishMany(3)) room.stream.receive(message);
    history.restart(B);
    for (const message of history.publishMany(5)) room.stream.receive(message);
    await room.settled();
    history.failing = true;
    // A node that never saw epoch A: only the history could tell it was left.
    const fresh = open(history);
    history.failing = false;
    await fresh.settled();
    history.failing = true;
    const back = new FakeMember();
    const outcome = await fresh.join(back, { offset: 2, epoch: A });
    expect(outcome).toMatchObject({ recovered: false, reason: 'unavailable', replay: [] });
    history.failing = false;
    fresh.stream.receive(history.publish('m6'));
    await fresh.settled();
    expect(back.seen).toEqual(['joined 5', 'closed 1012']);
    const again = await fresh.join(new FakeMember(), { offset: 2, epoch: A });
    expect(again).toMatchObject({ position: { offset: 0, epoch: B }, reason: 'epoch-changed' });
    expect(names(again.replay)).toEqual(range(1, 6));
    expect(member.seen.at(-1)).toBe('m5');
  });

  it('says epoch-changed to a join when the history answers that its log restarted', async () => {
    const history = new FakeHistory();
    history.publishMany(30);
    const room = open(history);
    await room.settled();
    // No message of the new log reached this node yet: only the read can tell.
    history.restart(B);
    const outcome = await room.join(new FakeMember(), { offset: 20, epoch: A });
    expect(outcome).toMatchObject({ recovered: false, reason: 'epoch-changed', replay: [] });
  });

  it('says epoch-changed to a join whose history read was out when the epoch changed', async () => {
    const { history, room, member, joining, release } = await joinInFlight();
    // The live path learns of the new epoch first; the old read then answers from the old log.
    history.restart(B);
    room.stream.receive(history.publish('m1'));
    await until(() => member.messages.includes('m1'), WAIT_MS, 'the new epoch followed');
    history.epoch = A;
    release();
    const outcome = await joining;
    expect(outcome).toMatchObject({ recovered: false, reason: 'epoch-changed' });
    // Given the new log from its start, as the member that stayed was.
    expect(outcome.position).toEqual({ offset: 0, epoch: B });
    expect(names(outcome.replay)).toEqual(['m1']);
  });
});

describe('RoomStream: late messages of an old epoch', () => {
  it('drops a message of the epoch it left: no resync back, no stale message', async () => {
    const history = new FakeHistory();
    const room = open(history);
    const member = await room.member();
    const [a1, a2, a3] = history.publishMany(3);
    room.stream.receive(a1!);
    room.stream.receive(a2!);
    history.restart(B);
    const [b1, b2] = history.publishMany(2);
    room.stream.receive(b1!);
    room.stream.receive(a3!); // late, of the old log
    room.stream.receive(b2!);
    await room.settled();
    expect(member.seen).toEqual(['m1', 'm2', `resync 0/${B}`, 'm1', 'm2']);
  });

  it('drops a message of an epoch older than the one it started in', async () => {
    const history = new FakeHistory();
    const [stale] = history.publishMany(1);
    history.restart(B);
    const room = open(history);
    const member = await room.member();
    room.stream.receive(stale!);
    room.stream.receive(history.publish('m1'));
    await room.settled();
    expect(member.seen).toEqual(['m1']);
  });
});

describe('RoomStream: a history that does not answer', () => {
  it('settles a join whose read never answers as a failed read does, and the room goes on', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    try {
      const history = new FakeHistory();
      history.publishMany(30);
      const room = open(history);
      const member = await room.member();
      history.hanging = true;
      const late = new FakeMember();
      const joining = room.join(late, { offset: 20, epoch: A });
      await until(() => history.reads.length === 1, WAIT_MS, 'the join read');
      await vi.advanceTimersByTimeAsync(HISTORY_TIMEOUT_MS);
      const outcome = await joining;
      expect(outcome).toMatchObject({ recovered: false, reason: 'unavailable', replay: [] });
      expect(room.errors).toMatchObject([{ code: 'HISTORY_FAILED' }]);
      // It collects nothing more for the join; once the history answers, the next message
      // closes the late one to resume from its own place, and goes to the other, once.
      history.hanging = false;
      room.stream.receive(history.publish('m31'));
      await room.settled();
      expect(late.seen).toEqual(['joined 30', 'closed 1012']);
      expect(member.messages).toEqual(['m31']);
    } finally {
      vi.useRealTimers();
    }
  });

  it('resyncs past a gap whose read never answers, and delivers what follows', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    try {
      const history = new FakeHistory();
      const room = open(history);
      const member = await room.member();
      const [, m2, m3] = history.publishMany(3);
      history.hanging = true;
      room.stream.receive(m2!); // m1 lost: the gap read never answers
      room.stream.receive(m3!);
      await until(() => history.reads.length === 1, WAIT_MS, 'the gap read');
      await vi.advanceTimersByTimeAsync(HISTORY_TIMEOUT_MS);
      await room.settled();
      expect(member.seen).toEqual([`resync 1/${A}`, 'm2', 'm3']);
    } finally {
      vi.useRealTimers();
    }
  });
});

describe('RoomStream: replay budget', () => {
  it('says too-old (over budget) without reading a gap longer than the entries left', async () => {
    const history = new FakeHistory();
    history.publishMany(100);
    const room = open(history);
    const member = new FakeMember();
    const budget = { entries: 10, bytes: 1_000_000 };
    const outcome = await room.join(member, { offset: 50, epoch: A }, budget);
    expect(outcome).toEqual({
      position: { offset: 100, epoch: A },
      recovered: false,
      reason: 'too-old',
      replay: [],
      overBudget: true,
    });
    expect(history.reads).toEqual([]);
    expect(budget).toEqual({ entries: 10, bytes: 1_000_000 });
    room.stream.receive(history.publish('m101'));
    await room.settled();
    expect(member.seen).toEqual(['joined 100', 'm101']);
  });

  it('says too-old (over budget) for a replay from memory past the bytes left', async () => {
    const history = new FakeHistory();
    const room = open(history);
    await room.member();
    for (const message of history.publishMany(10, 100)) room.stream.receive(message);
    const budget = { entries: 100, bytes: 450 };
    const outcome = await room.join(new FakeMember(), { offset: 5, epoch: A }, budget);
    expect(outcome).toMatchObject({ recovered: false, reason: 'too-old', overBudget: true });
    expect(outcome.replay).toEqual([]);
    expect(budget).toEqual({ entries: 100, bytes: 450 });
  });

  it('takes each replay out of the budget it shares with the other rooms of a resume', async () => {
    const history = new FakeHistory();
    history.publishMany(100, 10);
    const room = open(history);
    const budget = { entries: 15, bytes: 10_000 };
    const first = await room.join(new FakeMember(), { offset: 90, epoch: A }, budget);
    expect(first.replay).toHaveLength(10);
    expect(budget).toEqual({ entries: 5, bytes: 9_900 });
    const second = await room.join(new FakeMember(), { offset: 90, epoch: A }, budget);
    expect(second).toMatchObject({ recovered: false, reason: 'too-old', overBudget: true });
    const third = await room.join(new FakeMember(), { offset: 96, epoch: A }, budget);
    expect(names(third.replay)).toEqual(range(97, 100).map((name) => name.padEnd(10, '.')));
    expect(budget).toEqual({ entries: 1, bytes: 9_860 });
  });
});

describe('RoomStream: memory', () => {
  it('keeps a bounded window of what it delivered: a long run still reads old gaps from the history', async () => {
    const history = new FakeHistory();
    const room = open(history);
    await room.member();
    // 20 000 messages of 1 KiB: 20 MiB went through; far less of it may stay in memory.
    for (const message of history.publishMany(20_000, 1024)) room.stream.receive(message);
    const recent = await room.join(new FakeMember(), { offset: 19_990, epoch: A });
    expect(recent.replay).toHaveLength(10);
    expect(history.reads).toEqual([]);
    const old = await room.join(new FakeMember(), { offset: 10_000, epoch: A });
    expect(old.recovered).toBe(true);
    expect(old.replay).toHaveLength(10_000);
    expect(history.reads).toEqual([{ after: { offset: 10_000, epoch: A }, limit: 10_000 }]);
  });

  it('forgets what it delivered in an epoch when the epoch changes', async () => {
    const history = new FakeHistory();
    const room = open(history);
    await room.member();
    for (const message of history.publishMany(5)) room.stream.receive(message);
    history.restart(B);
    for (const message of history.publishMany(5)) room.stream.receive(message);
    await room.settled();
    // Offsets 1-5 of epoch B are in memory; nothing of epoch A may be replayed as if it were B's.
    const outcome = await room.join(new FakeMember(), { offset: 0, epoch: B });
    expect(names(outcome.replay)).toEqual(range(1, 5));
    expect(outcome.replay.every((message) => message.epoch === B)).toBe(true);
  });
});

describe('RoomStream: start', () => {
  it('reads its start position only once the room is subscribed, so nothing after it is missed', async () => {
    const history = new FakeHistory();
    history.publishMany(3);
    let subscribe!: () => void;
    const room = open(history, new Promise<void>((resolve) => (subscribe = resolve)));
    const member = new FakeMember();
    const joining = room.join(member);
    // Published after the stream was made but before the subscription: not live for this node.
    history.publishMany(2);
    subscribe();
    expect(await joining).toMatchObject({ position: { offset: 5, epoch: A }, recovered: true });
  });
});

/** A registry over one history room, with the broker subscription a test delivers through. */
function registry(history: FakeHistory) {
  const subscribed: string[] = [];
  const unsubscribed: string[] = [];
  const errors: unknown[] = [];
  const failSubscribe = { next: false };
  let deliver: ((message: Outgoing) => void) | undefined;
  const fake = (client: unknown) => client as FakeMember;
  // The registry tells a member `joined` and `resync` through this host, or (after #11's
  // protocol/v1-writer) by writing the frames to the member: the fake reads both the same way.
  const host = {
    async subscribe(room: string, onMessage: (message: Outgoing) => void): Promise<Unsubscribe> {
      subscribed.push(room);
      if (failSubscribe.next) {
        failSubscribe.next = false;
        throw new Error('broker down');
      }
      deliver = onMessage;
      return async () => {
        unsubscribed.push(room);
      };
    },
    historyOf: (room: string) => (room === ROOM ? history : undefined),
    joined: (client: unknown, room: string, position: HistoryPosition | undefined) =>
      fake(client).told({ t: 'joined', r: room, o: position?.offset, e: position?.epoch }),
    resync: (room: string, members: Iterable<unknown>, { offset, epoch }: HistoryPosition) => {
      for (const member of members)
        fake(member).told({ t: 'resync', r: room, o: offset, e: epoch });
    },
    unnumbered: () => undefined,
    error: (error: unknown) => errors.push(error),
  };
  const rooms = new RoomRegistry(host);
  const broker = (message: Outgoing) => deliver?.(message);
  return { rooms, subscribed, unsubscribed, errors, failSubscribe, broker };
}

describe('RoomRegistry with a history room', () => {
  it('orders what the broker brings through the room stream', async () => {
    const history = new FakeHistory();
    const { rooms, broker } = registry(history);
    const member = new FakeMember();
    await rooms.join(member.asClient, ROOM);
    const [m1, m2, m3] = history.publishMany(3);
    broker(m2!);
    broker(m3!);
    broker(m1!);
    await until(() => member.messages.length === 3, WAIT_MS, 'three messages');
    expect(member.seen).toEqual(['joined 0', 'm1', 'm2', 'm3']);
  });

  it('leaves a client out when the subscription fails, and subscribes again on the next join', async () => {
    const history = new FakeHistory();
    const { rooms, subscribed, failSubscribe, errors } = registry(history);
    failSubscribe.next = true;
    const member = new FakeMember();
    await expect(rooms.join(member.asClient, ROOM)).rejects.toThrow('broker down');
    expect(member.inRoom(ROOM)).toBe(false);
    expect(rooms.names()).toEqual([]);
    const outcome = await rooms.join(member.asClient, ROOM);
    expect(outcome).toMatchObject({ recovered: true, position: { offset: 0, epoch: A } });
    expect([...rooms.members(ROOM)]).toEqual([member]);
    expect(subscribed).toEqual([ROOM, ROOM]);
    expect(errors).toEqual([]);
  });

  it('announces a client that joins twice at once only once', async () => {
    const history = new FakeHistory();
    history.publishMany(5);
    const { rooms } = registry(history);
    const member = new FakeMember();
    const outcomes = await Promise.all([
      rooms.join(member.asClient, ROOM),
      rooms.join(member.asClient, ROOM),
    ]);
    expect(member.seen).toEqual(['joined 5']);
    expect(outcomes.filter((outcome) => outcome !== undefined)).toHaveLength(1);
    expect([...rooms.members(ROOM)]).toEqual([member]);
  });

  it('joins again a client that left while its first join waited for the history', async () => {
    const history = new FakeHistory();
    history.publishMany(30);
    const { rooms } = registry(history);
    const release = history.gate.hold();
    const member = new FakeMember();
    const first = rooms.join(member.asClient, ROOM, { offset: 20, epoch: A });
    await until(() => history.reads.length === 1, WAIT_MS, 'the join read');
    await rooms.leave(member.asClient, ROOM);
    const again = rooms.join(member.asClient, ROOM);
    release();
    await Promise.all([first, again]);
    expect(member.inRoom(ROOM)).toBe(true);
    expect([...rooms.members(ROOM)]).toEqual([member]);
  });

  it('leaves nothing behind, and announces nothing, when a client leaves while its join waits for the history', async () => {
    const history = new FakeHistory();
    history.publishMany(30);
    const { rooms, subscribed, unsubscribed, errors } = registry(history);
    const release = history.gate.hold();
    const member = new FakeMember();
    const joining = rooms.join(member.asClient, ROOM, { offset: 20, epoch: A });
    await until(() => history.reads.length === 1, WAIT_MS, 'the join read');
    await rooms.leave(member.asClient, ROOM);
    // The room stays while the join is pending: it must not unsubscribe under it.
    expect(unsubscribed).toEqual([]);
    release();
    await joining;
    expect(rooms.members(ROOM).size).toBe(0);
    expect(rooms.names()).toEqual([]);
    expect(member.inRoom(ROOM)).toBe(false);
    // Gone before its turn came: no `joined` for a room it is not in.
    expect(member.seen).toEqual([]);
    expect(subscribed).toEqual([ROOM]);
    expect(unsubscribed).toEqual([ROOM]);
    expect(errors).toEqual([]);
  });
});
