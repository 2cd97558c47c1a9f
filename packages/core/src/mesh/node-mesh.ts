import type { Buffer } from 'node:buffer';
import { setTimeout as delay } from 'node:timers/promises';
import type { Broker, Unsubscribe } from '../contracts.js';
import { InvalidOptionError } from '../errors.js';
import { isInbox } from '../protocol/messages.js';
import { Outgoing } from '../protocol/outgoing.js';
import { inParts, partBytes } from '../util/parts.js';
import { inTime } from '../util/wait-at-most.js';
import {
  type Answer,
  BusFlag,
  type BusFrame,
  type BusFrameOf,
  BusKind,
  type BusMessage,
  decodeBusFrame,
  isSentBy,
  type NodeHeader,
  type Query,
  type RequestHeader,
  type ResponseHeader,
  senderField,
} from './bus-codec.js';

/** A frame for the node's clients: a broadcast, a direct operation, news of where a client is. */
export type ClientFrame = BusFrameOf<
  BusKind.Broadcast | BusKind.Direct | BusKind.Moved | BusKind.Located | BusKind.Released
>;

/** What the mesh tells the node it belongs to. */
export interface MeshListener {
  /** A frame for clients, from another node (own frames are filtered out). */
  deliver(frame: ClientFrame): void;
  nodeUp(nodeId: string): void;
  nodeDown(nodeId: string): void;
}

/** Answers other nodes' questions. */
export interface Answerer {
  answer(query: Query): Answer;
}

/** Timing of the mesh, in ms. */
export interface MeshTiming {
  /** How often a node says it is alive. */
  beatMs: number;
  /** How long a node may stay silent before it counts as gone. */
  timeoutMs: number;
}

/** The answers of a cross-node question. */
export interface MeshAnswers {
  /** Each answering node's answer, by node id. */
  answers: Map<string, Answer>;
  /** Nodes that were alive when asked but did not answer in time. */
  missing: string[];
}

/**
 * The broker topics of a cluster: every node, one node (answers, and direct operations for its
 * clients), one room (nodes with local members of it). A `Publisher` writes to the same ones.
 */
export const topics = {
  all: (prefix: string): string => `${prefix}all`,
  node: (prefix: string, nodeId: string): string => `${prefix}node:${nodeId}`,
  room: (prefix: string, room: string): string => `${prefix}room:${room}`,
  /** Presence changes of every node, and one node's snapshots and the questions it is asked. */
  presence: (prefix: string): string => `${prefix}presence`,
  presenceNode: (prefix: string, nodeId: string): string => `${prefix}presence:${nodeId}`,
};

interface PendingRequest {
  question: Query['q'];
  expected: Set<string>;
  answers: Map<string, Answer>;
  /** The parts of a list answer that came so far, by node, while more are to come. */
  parts: Map<string, unknown[]>;
  done: () => void;
}

/**
 * One node's place in the cluster: the topics it listens on, node liveness (announce, beats, bye),
 * and request/response between nodes. Everything here is the same for every broker.
 *
 * Topics: `<prefix>all` (every node), `<prefix>node:<id>` (one node: answers, and direct operations
 * for its clients), `<prefix>room:<name>` (nodes with local members of a room).
 */
export class NodeMesh {
  readonly #broker: Broker;
  readonly #send: PublishFrame;
  readonly #nodeId: string;
  /** How this node's frames start their header: the broker's echoes of them are not decoded. */
  readonly #sender: Buffer;
  readonly #prefix: string;
  readonly #timing: MeshTiming;
  readonly #report: (error: unknown) => void;
  #listener: MeshListener | undefined;
  #answerer: Answerer | undefined;
  readonly #alive = new Map<string, number>();
  /** When a node was first heard of last (`performance.now()`): the newcomer's answers settle. */
  #newestAt = 0;
  /** Told when this node's own beat to itself comes back (see {@link NodeMesh.start}). */
  #echo: (() => void) | undefined;
  #stopped = false;
  /**
   * This node's announce and beats published (infinite once another node was found using its
   * id), and those heard back: a second node of its id makes more.
   */
  #ownSent = 0;
  #ownHeard = 0;
  readonly #pending = new Map<number, PendingRequest>();
  readonly #unsubscribes: Unsubscribe[] = [];
  #requestId = 0;
  #timer: NodeJS.Timeout | undefined;
  /**
   * Topic names built once, not once per frame: the same string every time is also one the
   * broker has hashed before (a Redis channel name is looked up by it).
   */
  readonly #allTopic: string;
  readonly #nodeTopics = new Map<string, string>();
  readonly #roomTopics = new Map<string, string>();

  constructor(
    broker: Broker,
    nodeId: string,
    prefix: string,
    timing: MeshTiming,
    /** Where frames that could not be decoded or handled are reported. */
    report: (error: unknown) => void,
    /** How frames are encoded and published on `broker` (`framePublisher` in server/). */
    send: PublishFrame,
  ) {
    this.#broker = broker;
    this.#send = send;
    this.#nodeId = nodeId;
    this.#sender = senderField(nodeId);
    this.#prefix = prefix;
    this.#allTopic = topics.all(prefix);
    this.#timing = timing;
    this.#report = report;
  }

  /**
   * Subscribes the node's topics, from now on telling `listener`, and announces the node. Resolves
   * once the nodes already running had their time to answer the announce, so that a query made
   * right after asks every one of them: a beat this node sends itself after the announce has come
   * back (the broker handed the announce on before it), then no node was heard of for the first
   * time for twice that round trip (at least {@link SETTLE_MS}); all within {@link DISCOVERY_MS}.
   */
  async start(listener: MeshListener, answerer: Answerer): Promise<void> {
    this.#listener = listener;
    this.#answerer = answerer;
    const onFrame = (bytes: Uint8Array) => this.#receive(bytes);
    this.#unsubscribes.push(
      await this.#broker.subscribe(this.#allTopic, onFrame),
      await this.#broker.subscribe(this.nodeTopic(this.#nodeId), onFrame),
    );
    this.#timer = setInterval(() => this.#beat(), this.#timing.beatMs);
    this.#timer.unref();
    const started = performance.now();
    const until = started + DISCOVERY_MS;
    const echoed = new Promise<void>((resolve) => {
      this.#echo = resolve;
    });
    this.#ownSent += 2;
    await this.#publish(this.#allTopic, { kind: BusKind.Announce, header: this.#header });
    await this.#publish(this.nodeTopic(this.#nodeId), { kind: BusKind.Beat, header: this.#header });
    await inTime(echoed, until - performance.now());
    this.#echo = undefined;
    const echoedAt = performance.now();
    const quiet = Math.max(SETTLE_MS, 2 * (echoedAt - started));
    for (;;) {
      const wait = Math.min(Math.max(this.#newestAt, echoedAt) + quiet, until) - performance.now();
      if (!(wait > 0) || this.#stopped) return;
      await delay(wait);
    }
  }

  /** Says goodbye and drops the node's subscriptions. */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearInterval(this.#timer);
    for (const pending of this.#pending.values()) pending.done();
    this.#alive.clear();
    const bye: BusMessage = { kind: BusKind.Bye, header: this.#header };
    await this.#publish(this.#allTopic, bye).catch(() => undefined);
    await Promise.all(this.#unsubscribes.splice(0).map((unsubscribe) => unsubscribe()));
  }

  /** This node's id. */
  get nodeId(): string {
    return this.#nodeId;
  }

  /** The largest frame the broker carries, if it has a limit ({@link Broker.maxPayloadBytes}). */
  get maxPayloadBytes(): number | undefined {
    return this.#broker.maxPayloadBytes;
  }

  /** The header of this node's liveness frames. */
  get #header(): NodeHeader {
    return { n: this.#nodeId };
  }

  /** Other nodes currently alive. */
  get nodes(): string[] {
    return [...this.#alive.keys()];
  }

  /** The topic of one node. */
  nodeTopic(nodeId: string): string {
    return named(this.#nodeTopics, nodeId, this.#prefix, topics.node);
  }

  /** The topic of one room. */
  roomTopic(room: string): string {
    return named(this.#roomTopics, room, this.#prefix, topics.room);
  }

  /** Listens to a room's topic: `deliver` gets the messages other nodes broadcast to it. */
  subscribeRoom(room: string, deliver: (message: Outgoing) => void): Promise<Unsubscribe> {
    // A session's direct messages come by the direct path, not on a room topic.
    if (isInbox(room)) return Promise.resolve(unsubscribed);
    return this.#broker.subscribe(this.roomTopic(room), (bytes) => {
      if (isSentBy(bytes, this.#sender)) return;
      const frame = this.#decode(bytes);
      // Only broadcasts are published on a room's topic.
      if (frame?.kind === BusKind.Broadcast) deliver(broadcastMessage(frame));
    });
  }

  /**
   * Publishes a frame to one room's nodes, or to every node when `room` is undefined. Throws what
   * publishing throws instead of rejecting (a frame larger than the broker carries): nothing was
   * sent, so the caller's own fan-out need not happen either.
   */
  toRoom(
    room: string | undefined,
    message: BusMessage,
    payload?: Uint8Array,
    flags?: number,
  ): Promise<void> {
    const topic = room === undefined ? this.#allTopic : this.roomTopic(room);
    return this.#send(topic, message, payload, flags);
  }

  /** Publishes a frame to one node, or to every node when `node` is undefined. */
  toNode(
    node: string | undefined,
    message: BusMessage,
    payload?: Uint8Array,
    flags?: number,
  ): Promise<void> {
    const topic = node === undefined ? this.#allTopic : this.nodeTopic(node);
    return this.#publish(topic, message, payload, flags);
  }

  /** Whether another node is alive, as far as this node knows. */
  isAlive(nodeId: string): boolean {
    return this.#alive.has(nodeId);
  }

  /**
   * Asks every other live node a question. Resolves with the answers that came within
   * `timeoutMs`, naming the nodes that did not answer: never an all-or-nothing failure.
   */
  async request(query: Query, timeoutMs: number): Promise<MeshAnswers> {
    const asked = [...this.#alive.keys()];
    // Who may still answer: a node declared gone while the question waits leaves it (there is
    // no point waiting for it), but stays among the missing.
    const expected = new Set(asked);
    const answers = new Map<string, Answer>();
    if (expected.size > 0) {
      const id = ++this.#requestId;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => pending.done(), timeoutMs);
        const pending: PendingRequest = {
          question: query.q,
          expected,
          answers,
          parts: new Map(),
          done: () => {
            clearTimeout(timer);
            this.#pending.delete(id);
            resolve();
          },
        };
        this.#pending.set(id, pending);
        const header = { ...query, n: this.#nodeId, i: id };
        this.#publish(this.#allTopic, { kind: BusKind.Request, header }).catch(() =>
          pending.done(),
        );
      });
    }
    return { answers, missing: asked.filter((node) => !answers.has(node)) };
  }

  #receive(bytes: Uint8Array): void {
    if (isSentBy(bytes, this.#sender)) {
      if (bytes[0] === BusKind.Beat || bytes[0] === BusKind.Announce) this.#heardOwn(bytes[0]);
      return;
    }
    const frame = this.#decode(bytes);
    if (frame === undefined) return;
    const from = frame.header.n;
    switch (frame.kind) {
      case BusKind.Broadcast:
      case BusKind.Direct:
      case BusKind.Moved:
      case BusKind.Located:
      case BusKind.Released:
        // A `Publisher` sends these too, but is no node: they say nothing of liveness.
        this.#listener?.deliver(frame);
        return;
      case BusKind.Announce:
        this.#seen(from);
        // The newcomer hears of this node now, not a beat later.
        this.#publish(this.nodeTopic(from), { kind: BusKind.Beat, header: this.#header }).catch(
          this.#report,
        );
        return;
      case BusKind.Beat:
        this.#seen(from);
        return;
      case BusKind.Bye:
        this.#forget(from);
        return;
      case BusKind.Request:
        this.#seen(from);
        this.#answer(frame.header);
        return;
      case BusKind.Response:
        this.#seen(from);
        this.#collect(frame.header);
        return;
    }
  }

  #answer(request: RequestHeader): void {
    let answer: Answer | undefined;
    try {
      answer = this.#answerer?.answer(request);
    } catch (error) {
      this.#report(error);
      return;
    }
    if (answer === undefined) return;
    const topic = this.nodeTopic(request.n);
    const parts = answerParts(answer, this.#broker.maxPayloadBytes);
    parts.forEach((part, index) => {
      const more = index < parts.length - 1 ? 1 : undefined;
      const header = { ...part, n: this.#nodeId, i: request.i, m: more } as ResponseHeader;
      this.#publish(topic, { kind: BusKind.Response, header }).catch(this.#report);
    });
  }

  #collect(response: ResponseHeader): void {
    const pending = this.#pending.get(response.i);
    if (pending === undefined || !pending.expected.has(response.n)) return;
    if (response.q !== pending.question) return;
    const node = response.n;
    const earlier = pending.parts.get(node);
    let answer: Answer = response;
    // The parts of a list come in order, from one node on one topic.
    if (earlier !== undefined || response.m === 1) {
      const list = earlier ?? [];
      for (const item of response.a as unknown[]) list.push(item);
      if (response.m === 1) {
        pending.parts.set(node, list);
        return;
      }
      pending.parts.delete(node);
      answer = { ...response, a: list } as Answer;
    }
    pending.answers.set(node, answer);
    if (answeredAll(pending)) pending.done();
  }

  #seen(nodeId: string): void {
    const known = this.#alive.has(nodeId);
    this.#alive.set(nodeId, Date.now());
    if (known) return;
    this.#newestAt = performance.now();
    this.#listener?.nodeUp(nodeId);
  }

  #forget(nodeId: string): void {
    if (!this.#alive.delete(nodeId)) return;
    for (const pending of this.#pending.values()) {
      if (pending.expected.delete(nodeId) && answeredAll(pending)) pending.done();
    }
    this.#listener?.nodeDown(nodeId);
  }

  /**
   * A beat or announce with this node's id came: its own, back from the broker, unless more come
   * than it sent. Then another node has its id, and each of the two gets the frames meant for the
   * other: reported once.
   */
  #heardOwn(kind: BusKind): void {
    if (kind === BusKind.Beat) this.#echo?.();
    if (++this.#ownHeard <= this.#ownSent) return;
    this.#ownSent = Number.POSITIVE_INFINITY;
    this.#report(
      new InvalidOptionError(
        `another node uses this node's id "${this.#nodeId}": node ids must be unique in the ` +
          'cluster, or each of the two gets messages meant for the other',
      ),
    );
  }

  #beat(): void {
    const oldest = Date.now() - this.#timing.timeoutMs;
    for (const [nodeId, seen] of this.#alive) if (seen < oldest) this.#forget(nodeId);
    const beat: BusMessage = { kind: BusKind.Beat, header: this.#header };
    this.#ownSent++;
    this.#publish(this.#allTopic, beat).catch(() => undefined);
  }

  /**
   * Every frame the node sends goes through here. Always a promise: a broker (the application's
   * own, perhaps) that throws instead of rejecting must not throw out of a timer or a close.
   */
  #publish(
    topic: string,
    message: BusMessage,
    payload?: Uint8Array,
    flags?: number,
  ): Promise<void> {
    try {
      return this.#send(topic, message, payload, flags);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  #decode(bytes: Uint8Array): BusFrame | undefined {
    try {
      return decodeBusFrame(bytes);
    } catch (error) {
      this.#report(error);
      return undefined;
    }
  }
}

/** Encodes a bus frame and publishes it to a topic, on the mesh's broker. */
export type PublishFrame = (
  topic: string,
  message: BusMessage,
  payload?: Uint8Array,
  flags?: number,
) => Promise<void>;

/** The message a broadcast from another node carries, ready for local fan-out. */
export function broadcastMessage(frame: BusFrameOf<BusKind.Broadcast>): Outgoing {
  const { x } = frame.header;
  return messageOf(frame, x === undefined ? undefined : new Set(x));
}

/** The message a direct operation from another node carries. */
export function directMessage(frame: BusFrameOf<BusKind.Direct>): Outgoing {
  return messageOf(frame, undefined);
}

function messageOf(
  { header, flags, payload }: BusFrameOf<BusKind.Broadcast | BusKind.Direct>,
  skip: Set<string> | undefined,
): Outgoing {
  const room = header.r?.length === 1 ? header.r[0] : undefined;
  const binary = (flags & BusFlag.Binary) !== 0;
  const volatile = (flags & BusFlag.Volatile) !== 0;
  return new Outgoing(payload, binary, volatile, room, header.s, header.e, skip);
}

/** Most names of nodes or rooms whose topics are kept (all are dropped past it: rooms come and go). */
const MAX_NAMED = 4096;
/** The least time a starting node waits, after its announce went round, for a node it did not know. */
const SETTLE_MS = 30;
/** The most time a starting node waits for the nodes already running to answer its announce. */
const DISCOVERY_MS = 1000;

/** The topic of a node or room, built by `build` the first time. */
function named(
  names: Map<string, string>,
  name: string,
  prefix: string,
  build: (prefix: string, name: string) => string,
): string {
  let topic = names.get(name);
  if (topic === undefined) {
    if (names.size >= MAX_NAMED) names.clear();
    topic = build(prefix, name);
    names.set(name, topic);
  }
  return topic;
}

async function unsubscribed(): Promise<void> {}

/**
 * An answer as it is sent: whole, or a list answer larger than a broker with a limit carries cut
 * into parts that each fit (an item too large alone still goes alone, and is refused).
 */
function answerParts(answer: Answer, limit: number | undefined): Answer[] {
  if (limit === undefined || !Array.isArray(answer.a)) return [answer];
  const items: unknown[] = answer.a;
  const parts = inParts(items, Number.POSITIVE_INFINITY, partBytes(limit));
  return parts.map((part) => ({ ...answer, a: part }) as Answer);
}

function answeredAll(pending: PendingRequest): boolean {
  for (const node of pending.expected) if (!pending.answers.has(node)) return false;
  return true;
}
