import { Buffer } from 'node:buffer';
import { randomBytes } from 'node:crypto';
import type { Broker, Unsubscribe } from '../contracts.js';
import { HandlerError } from '../errors.js';
import { topics } from '../mesh/node-mesh.js';
import { CloseCode } from '../protocol/close-codes.js';
import { isInbox, type ProtocolErrorCode } from '../protocol/messages.js';
import { toTests } from '../rooms/history-rules.js';
import { partBytes } from '../util/parts.js';
import type { PresenceClient } from './presence-client.js';
import { PresenceTracker } from './presence-tracker.js';
import type {
  PresenceChange,
  PresenceList,
  PresenceQuery,
  PresenceRule,
  PresenceStats,
} from './presence-types.js';
import { type PresenceListing, PresenceWatchers } from './presence-watchers.js';
import { decodePresence, encodePresence, type PresenceWire } from './presence-wire.js';

/** What presence needs from its node. */
export interface PresenceHost {
  readonly broker: Broker;
  readonly nodeId: string;
  readonly topicPrefix: string;
  readonly rules: PresenceRule<PresenceClient>[];
  readonly graceMs: number;
  /** How often this node tells the others its sequence number. */
  readonly tickMs: number;
  /** How long a node may be silent and still count as alive (`nodeTimeoutMs`). */
  readonly timeoutMs: number;
  /** A client's user key (its session owner; empty when anonymous). */
  owner(client: PresenceClient): string;
  /** Whether another node is alive now. */
  alive(nodeId: string): boolean;
  changed(room: string, change: PresenceChange): void;
  report(error: unknown): void;
}

/** Largest `info` of a member, in bytes of JSON. */
const MAX_INFO_BYTES = 1024;
/** Most entries per snapshot message. */
const SNAPSHOT_PART = 500;
/** Most members in a client's snapshot and in one page of `wss.presence()`. */
const LIST_LIMIT = 1000;

/**
 * Presence on one node: takes its local clients' joins, leaves and drops into the
 * {@link PresenceTracker}, publishes its deltas, applies the other nodes' deltas and snapshots,
 * and keeps the local watchers told. Built on the {@link Broker} contract alone, so it works on
 * every broker with no adapter code.
 */
export class PresenceService {
  readonly #host: PresenceHost;
  readonly #matches: ((room: string) => boolean)[];
  readonly #tracker: PresenceTracker;
  readonly #watchers = new PresenceWatchers();
  readonly #unsubscribes: Unsubscribe[] = [];
  readonly #timers: NodeJS.Timeout[] = [];
  /** Clients given a partial snapshot while this node built its first view (see {@link watch}). */
  readonly #partly: Array<{ client: PresenceClient; room: string }> = [];
  #stopped = false;

  constructor(host: PresenceHost) {
    this.#host = host;
    this.#matches = host.rules.map((rule, i) => toTests(rule?.rooms, `presence[${i}].rooms`));
    this.#tracker = new PresenceTracker(
      host.nodeId,
      randomBytes(6).toString('base64url'),
      host.graceMs,
      (room, change, quiet) => {
        // A client shown the room before this node's view was whole is told what it missed.
        this.#watchers.changed(room, change);
        if (!quiet) host.changed(room, change);
      },
    );
  }

  get #allTopic(): string {
    return topics.presence(this.#host.topicPrefix);
  }

  #nodeTopic(nodeId: string): string {
    return topics.presenceNode(this.#host.topicPrefix, nodeId);
  }

  /** Subscribes the presence topics and starts the timers. */
  async start(): Promise<void> {
    const { tickMs, timeoutMs } = this.#host;
    // Every live node ticks within a heartbeat: after two, this node has heard of them all; one
    // paused meanwhile (a stop in the world, a busy loop) still counts as alive on the others
    // until their timeout, and its entries were there before this node: it waits as long.
    this.#tracker.begin(
      Date.now(),
      Math.max(2 * tickMs, timeoutMs),
      Math.max(4 * tickMs, timeoutMs + tickMs),
    );
    const broker = this.#host.broker;
    const onMessage = (bytes: Uint8Array) => this.#receive(bytes);
    this.#unsubscribes.push(
      await broker.subscribe(this.#allTopic, onMessage),
      await broker.subscribe(this.#nodeTopic(this.#host.nodeId), onMessage),
    );
    const stepMs = Math.min(1000, Math.max(20, Math.floor(this.#host.graceMs / 10)));
    this.#every(stepMs, () => {
      this.#tracker.expire(Date.now());
      this.#flush();
      this.#wholeToPartly();
    });
    this.#every(this.#host.tickMs, () => this.#tick());
    this.#tick();
  }

  /**
   * Stops presence on this node (it drains or closes): it publishes nothing more, so its entries
   * stay in the other nodes' views until it is gone plus the grace period, and the clients that
   * resume elsewhere meanwhile make no leave.
   */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    for (const timer of this.#timers) clearInterval(timer);
    await Promise.all(this.#unsubscribes.splice(0).map((unsubscribe) => unsubscribe()));
  }

  /** Whether a room keeps presence (a session's own direct-message stream never does). */
  tracks(room: string): boolean {
    return !isInbox(room) && this.#matches.some((test) => test(room));
  }

  /** A local client is in a room; `back` when a resume put it back there (see the tracker's `join`). */
  entered(client: PresenceClient, room: string, back: boolean): void {
    const rule = this.#rule(room);
    if (this.#stopped || rule === undefined) return;
    let user: string;
    try {
      user = this.#host.owner(client) || client.id;
    } catch (error) {
      this.#host.report(new HandlerError('sessionOwner', error));
      return;
    }
    this.#tracker.join(client, room, client.id, user, this.#info(rule, client), back);
    this.#flush();
  }

  /** A local client left a room on purpose. */
  left(client: PresenceClient, room: string): void {
    this.#watchers.unwatch(client, room);
    if (this.#stopped || !this.tracks(room)) return;
    this.#tracker.leave(client, room, client.id);
    this.#flush();
  }

  /**
   * A local client's connection closed. Closed on purpose (1000): it leaves now. Else it is kept
   * for the grace period, in which it may resume on any node with no leave.
   */
  closed(client: PresenceClient, rooms: readonly string[], code: number): void {
    for (const room of rooms) this.#watchers.unwatch(client, room);
    if (this.#stopped) return;
    const now = Date.now();
    for (const room of rooms) {
      if (!this.tracks(room)) continue;
      if (code === CloseCode.Normal) this.#tracker.leave(client, room, client.id);
      else this.#tracker.drop(client, room, client.id, now);
    }
    this.#flush();
  }

  /**
   * A local client's session was taken over by a connection on another node: it is away from now
   * on, as a dropped one, though its socket may end only later (a peer that no longer answers
   * holds it until `closeTimeoutMs`). So a leave on purpose of the connection that took over ends
   * it at once, and a later close of its socket changes nothing.
   */
  released(client: PresenceClient, rooms: readonly string[]): void {
    this.closed(client, rooms, CloseCode.SessionTakenOver);
  }

  /**
   * A client asks for a room's presence: it is written the room's snapshot (built once per change
   * of the room, whoever asks and however often) and watches the room from then on. While this
   * node builds its first view (it just started), the snapshot is marked partial, and the whole
   * one follows once the view is: a client told of some members only must not take the others
   * for gone.
   */
  watch(client: PresenceClient, room: string): ProtocolErrorCode | undefined {
    if (!this.tracks(room)) return 'NOT_FOUND';
    if (!client.inRoom(room)) return 'FORBIDDEN';
    const starting = this.#tracker.starting;
    this.#watchers.watch(client, room, this.#tracker.version(room), this.#listing(room), starting);
    if (starting) this.#partly.push({ client, room });
    return undefined;
  }

  #listing(room: string): () => PresenceListing {
    const tracker = this.#tracker;
    return () => ({ members: tracker.members(room, LIST_LIMIT), users: tracker.stats(room).users });
  }

  /** Once this node's first view is whole: the whole snapshot to each client given a partial one. */
  #wholeToPartly(): void {
    if (this.#partly.length === 0 || this.#tracker.starting) return;
    for (const { client, room } of this.#partly.splice(0)) {
      if (!client.open || !this.#watchers.watches(client, room)) continue;
      this.#watchers.watch(client, room, this.#tracker.version(room), this.#listing(room));
    }
  }

  nodeUp(nodeId: string): void {
    this.#tracker.nodeUp(nodeId);
    this.#ask(nodeId);
  }

  nodeDown(nodeId: string): void {
    this.#tracker.nodeDown(nodeId, Date.now());
  }

  stats(room: string): PresenceStats {
    return this.#tracker.stats(room);
  }

  list(room: string, query: PresenceQuery = {}): PresenceList {
    const limit = Math.max(1, Math.min(query.limit ?? LIST_LIMIT, LIST_LIMIT));
    // One more than asked tells whether there is a next page.
    const members = this.#tracker.members(room, limit + 1, query.after);
    const list: PresenceList = {
      ...this.#tracker.stats(room),
      members: members.slice(0, limit),
      missing: this.#missing(),
    };
    if (members.length > limit) list.next = members[limit - 1]!.user;
    return list;
  }

  #missing(): string[] {
    return this.#tracker.unsynced().filter((node) => this.#host.alive(node));
  }

  #rule(room: string): PresenceRule<PresenceClient> | undefined {
    if (isInbox(room)) return undefined;
    const index = this.#matches.findIndex((test) => test(room));
    return index < 0 ? undefined : this.#host.rules[index];
  }

  #info(rule: PresenceRule<PresenceClient>, client: PresenceClient): unknown {
    if (rule.info === undefined) return undefined;
    try {
      const info = rule.info(client);
      if (info === undefined) return undefined;
      const json = JSON.stringify(info);
      if (Buffer.byteLength(json) > MAX_INFO_BYTES) {
        throw new RangeError(`presence info is over ${MAX_INFO_BYTES} bytes of JSON`);
      }
      return JSON.parse(json);
    } catch (error) {
      this.#host.report(new HandlerError('presence info', error));
      return undefined;
    }
  }

  #receive(bytes: Uint8Array): void {
    if (this.#stopped) return;
    const message = decodePresence(bytes);
    if (message === undefined || message.n === this.#host.nodeId) return;
    const now = Date.now();
    const tracker = this.#tracker;
    switch (message.k) {
      case 'd':
        if (tracker.receive(message.n, message.x, message.s, message.d, now)) this.#ask(message.n);
        this.#flush(); // a leave there may end a connection kept here
        break;
      case 't':
        if (tracker.tick(message.n, message.x, message.s, now)) this.#ask(message.n);
        break;
      case 'q':
        this.#answer(message.n);
        break;
      case 's':
        tracker.snapshotPart(message.n, message.x, message.s, message.p, message.m, message.e, now);
        this.#flush();
        this.#wholeToPartly();
        break;
    }
  }

  #answer(nodeId: string): void {
    // Parts that fit what the broker carries (a NATS server's `max_payload`).
    const bytes = partBytes(this.#host.broker.maxPayloadBytes);
    const { seq, parts } = this.#tracker.snapshot(SNAPSHOT_PART, bytes);
    const base = { k: 's' as const, n: this.#host.nodeId, x: this.#tracker.incarnation, s: seq };
    for (const [p, entries] of parts.entries()) {
      this.#publish(this.#nodeTopic(nodeId), { ...base, p, m: parts.length, e: entries });
    }
  }

  /** Asks a node for its snapshot; a lost question is asked again at a later tick. */
  #ask(nodeId: string): void {
    this.#publish(this.#nodeTopic(nodeId), { k: 'q', n: this.#host.nodeId }, false);
  }

  #tick(): void {
    if (this.#stopped) return;
    const tracker = this.#tracker;
    // Best effort: the next tick says the same, so a failed one is not worth an error.
    const tick = { k: 't' as const, n: this.#host.nodeId, x: tracker.incarnation, s: tracker.seq };
    this.#publish(this.#allTopic, tick, false);
    for (const node of tracker.toAsk(Date.now())) if (this.#host.alive(node)) this.#ask(node);
  }

  /** Publishes the tracker's new deltas, in order. */
  #flush(): void {
    const { nodeId } = this.#host;
    const x = this.#tracker.incarnation;
    for (const { seq, delta } of this.#tracker.take()) {
      this.#publish(this.#allTopic, { k: 'd', n: nodeId, x, s: seq, d: delta });
    }
  }

  /** Publishes a message; a failure is reported when `report` (a lost delta heals at a tick). */
  #publish(topic: string, message: PresenceWire, report = true): void {
    this.#host.broker.publish(topic, encodePresence(message)).catch((error) => {
      if (report && !this.#stopped) this.#host.report(error);
    });
  }

  #every(ms: number, run: () => void): void {
    const timer = setInterval(run, ms);
    timer.unref();
    this.#timers.push(timer);
  }
}
