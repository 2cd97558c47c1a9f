import type { Broker, Unsubscribe } from '../contracts.js';
import {
  type BusFrame,
  type BusHeader,
  BusKind,
  decodeBusFrame,
  encodeBusFrame,
} from './bus-codec.js';

/** What the mesh hands to its server. */
export interface MeshHandlers {
  /**
   * A broadcast, a direct operation or news of where a client is, from another node (own frames
   * are filtered out).
   */
  deliver(frame: BusFrame): void;
  /** Answers another node's question. */
  answer(type: string, argument: unknown): unknown;
  nodeUp(nodeId: string): void;
  nodeDown(nodeId: string): void;
  /** A frame that could not be decoded or handled. */
  error(error: unknown): void;
}

/** Timing of the mesh, in ms. */
export interface MeshTiming {
  heartbeatMs: number;
  timeoutMs: number;
}

/** The answers of a cross-node question. */
export interface MeshAnswers {
  /** Each answering node's answer, by node id. */
  answers: Map<string, unknown>;
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
  expected: Set<string>;
  answers: Map<string, unknown>;
  done: () => void;
}

/**
 * One node's place in the cluster: the topics it listens on, node heartbeats and liveness, and
 * request/response between nodes. Everything here is the same for every broker.
 *
 * Topics: `<prefix>all` (every node), `<prefix>node:<id>` (one node: answers, and direct operations
 * for its clients), `<prefix>room:<name>` (nodes with local members of a room).
 */
export class NodeMesh {
  readonly #broker: Broker;
  readonly #nodeId: string;
  readonly #prefix: string;
  readonly #timing: MeshTiming;
  readonly #handlers: MeshHandlers;
  readonly #alive = new Map<string, number>();
  readonly #pending = new Map<number, PendingRequest>();
  readonly #unsubscribes: Unsubscribe[] = [];
  #requestId = 0;
  #timer: NodeJS.Timeout | undefined;

  constructor(
    broker: Broker,
    nodeId: string,
    prefix: string,
    timing: MeshTiming,
    handlers: MeshHandlers,
  ) {
    this.#broker = broker;
    this.#nodeId = nodeId;
    this.#prefix = prefix;
    this.#timing = timing;
    this.#handlers = handlers;
  }

  /** Subscribes the node's topics and announces the node. */
  async start(): Promise<void> {
    const onFrame = (bytes: Uint8Array) => this.#receive(bytes);
    this.#unsubscribes.push(
      await this.#broker.subscribe(this.#allTopic, onFrame),
      await this.#broker.subscribe(this.nodeTopic(this.#nodeId), onFrame),
    );
    this.#timer = setInterval(() => this.#beat(), this.#timing.heartbeatMs);
    this.#timer.unref();
    await this.#publish(this.#allTopic, BusKind.Heartbeat, { n: this.#nodeId, a: 'hello' });
  }

  /** Says goodbye and drops the node's subscriptions. */
  async stop(): Promise<void> {
    clearInterval(this.#timer);
    for (const pending of this.#pending.values()) pending.done();
    await this.#publish(this.#allTopic, BusKind.Bye, { n: this.#nodeId }).catch(() => undefined);
    await Promise.all(this.#unsubscribes.splice(0).map((unsubscribe) => unsubscribe()));
  }

  /** Other nodes currently alive. */
  get nodes(): string[] {
    return [...this.#alive.keys()];
  }

  get #allTopic(): string {
    return topics.all(this.#prefix);
  }

  /** The topic of one node. */
  nodeTopic(nodeId: string): string {
    return topics.node(this.#prefix, nodeId);
  }

  /** The topic of one room. */
  roomTopic(room: string): string {
    return topics.room(this.#prefix, room);
  }

  /** Listens to a room's topic; the listener gets other nodes' frames only. */
  subscribeRoom(room: string, listener: (frame: BusFrame) => void): Promise<Unsubscribe> {
    return this.#broker.subscribe(this.roomTopic(room), (bytes) => {
      const frame = this.#decode(bytes);
      if (frame !== undefined && frame.header.n !== this.#nodeId) listener(frame);
    });
  }

  /** Publishes a broadcast to one room's nodes, or to every node when `room` is undefined. */
  broadcast(room: string | undefined, header: BusHeader, payload: Uint8Array, flags: number) {
    const topic = room === undefined ? this.#allTopic : this.roomTopic(room);
    return this.#broker.publish(topic, encodeBusFrame(BusKind.Broadcast, header, payload, flags));
  }

  /** Publishes a frame to one node, or to every node when `node` is undefined. */
  send(
    kind: BusKind,
    node: string | undefined,
    header: BusHeader,
    payload?: Uint8Array,
    flags?: number,
  ): Promise<void> {
    const topic = node === undefined ? this.#allTopic : this.nodeTopic(node);
    return this.#broker.publish(topic, encodeBusFrame(kind, header, payload, flags));
  }

  /** Whether another node is alive, as far as this node knows. */
  isAlive(nodeId: string): boolean {
    return this.#alive.has(nodeId);
  }

  /**
   * Asks every other live node a question. Resolves with the answers that came within
   * `timeoutMs`, naming the nodes that did not answer: never an all-or-nothing failure.
   */
  async request(type: string, argument: unknown, timeoutMs: number): Promise<MeshAnswers> {
    const expected = new Set(this.#alive.keys());
    const answers = new Map<string, unknown>();
    if (expected.size > 0) {
      const id = ++this.#requestId;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => pending.done(), timeoutMs);
        const pending: PendingRequest = {
          expected,
          answers,
          done: () => {
            clearTimeout(timer);
            this.#pending.delete(id);
            resolve();
          },
        };
        this.#pending.set(id, pending);
        this.#publish(this.#allTopic, BusKind.Request, {
          n: this.#nodeId,
          i: id,
          q: type,
          a: argument,
        }).catch(() => pending.done());
      });
    }
    return { answers, missing: [...expected].filter((node) => !answers.has(node)) };
  }

  #receive(bytes: Uint8Array): void {
    const frame = this.#decode(bytes);
    if (frame === undefined) return;
    const { header } = frame;
    if (header.n === this.#nodeId) return;
    // Only a node says hello, beats and asks: a `Publisher` also writes here but is no node.
    const { kind } = frame;
    if (kind === BusKind.Heartbeat || kind === BusKind.Request || kind === BusKind.Response) {
      this.#seen(header.n);
    }
    switch (frame.kind) {
      case BusKind.Broadcast:
      case BusKind.Direct:
      case BusKind.Moved:
      case BusKind.Located:
      case BusKind.Released:
        this.#handlers.deliver(frame);
        return;
      case BusKind.Heartbeat:
        if (header.a === 'hello') {
          this.#publish(this.nodeTopic(header.n), BusKind.Heartbeat, { n: this.#nodeId }).catch(
            this.#handlers.error,
          );
        }
        return;
      case BusKind.Bye:
        this.#forget(header.n);
        return;
      case BusKind.Request:
        this.#answer(header);
        return;
      case BusKind.Response:
        this.#collect(header);
        return;
    }
  }

  #answer(header: BusHeader): void {
    let answer: unknown;
    try {
      answer = this.#handlers.answer(header.q ?? '', header.a);
    } catch (error) {
      this.#handlers.error(error);
      return;
    }
    const response: BusHeader = { n: this.#nodeId, i: header.i, a: answer };
    this.#publish(this.nodeTopic(header.n), BusKind.Response, response).catch(this.#handlers.error);
  }

  #collect(header: BusHeader): void {
    const pending = header.i === undefined ? undefined : this.#pending.get(header.i);
    if (pending === undefined || !pending.expected.has(header.n)) return;
    pending.answers.set(header.n, header.a);
    if (answeredAll(pending)) pending.done();
  }

  #seen(nodeId: string): void {
    const known = this.#alive.has(nodeId);
    this.#alive.set(nodeId, Date.now());
    if (!known) this.#handlers.nodeUp(nodeId);
  }

  #forget(nodeId: string): void {
    if (!this.#alive.delete(nodeId)) return;
    for (const pending of this.#pending.values()) {
      if (pending.expected.delete(nodeId) && answeredAll(pending)) pending.done();
    }
    this.#handlers.nodeDown(nodeId);
  }

  #beat(): void {
    const oldest = Date.now() - this.#timing.timeoutMs;
    for (const [nodeId, seen] of this.#alive) if (seen < oldest) this.#forget(nodeId);
    this.#publish(this.#allTopic, BusKind.Heartbeat, { n: this.#nodeId }).catch(() => undefined);
  }

  #publish(topic: string, kind: BusKind, header: BusHeader): Promise<void> {
    return this.#broker.publish(topic, encodeBusFrame(kind, header));
  }

  #decode(bytes: Uint8Array): BusFrame | undefined {
    try {
      return decodeBusFrame(bytes);
    } catch (error) {
      this.#handlers.error(error);
      return undefined;
    }
  }
}

function answeredAll(pending: PendingRequest): boolean {
  for (const node of pending.expected) if (!pending.answers.has(node)) return false;
  return true;
}
