import { Buffer } from 'node:buffer';
import { createHash, randomBytes } from 'node:crypto';
import { LimitExceededError } from '../errors.js';
import {
  type BusFrameOf,
  BusKind,
  type DirectHeader,
  type LocatedHeader,
  type MovedHeader,
  type ReleasedHeader,
} from './bus-codec.js';
import type { ClientFrame, NodeMesh } from './node-mesh.js';

/** A direct operation as it travels between nodes. */
export type DirectFrame = BusFrameOf<BusKind.Direct>;

/** What the router uses of the node mesh. */
export type RouterMesh = Pick<NodeMesh, 'nodeId' | 'isAlive' | 'toNode'>;

/** The node's local clients, as the router reaches them. */
export interface DirectTarget {
  /** Applies a direct operation to the local client it names; false when this node has none. */
  apply(frame: DirectFrame): boolean;
  /**
   * Closes the local client of a session another node took over (unless it claimed the session
   * after `claim`, or without one opened after `sentAt`, when given); false when there was none.
   */
  release(id: string, code: number, reason: string, sentAt?: number, claim?: number): boolean;
  /** The last save of the session's connection that closed here, while it is under way. */
  recorded(id: string): Promise<void> | undefined;
  /**
   * An operation routed here for a client this node does not hold and did not hand over: true
   * when the target places it itself (a join, leave or close of a session, in its record).
   */
  unheld(frame: DirectFrame): boolean;
}

const NO_PAYLOAD = new Uint8Array(0);
/** Where-is entries a node keeps, and sessions it remembers handing over (least recent dropped). */
const MAX_LOCATED = 50_000;
const MAX_MOVED = 10_000;
/** How often a direct operation may be passed on between nodes before it goes to every node. */
const MAX_HOPS = 2;
/** Operations kept for a session being taken over, until its connection is registered. */
const MAX_ARRIVING = 1024;
const ARRIVING_MS = 30_000;
/**
 * How long a claim heard of overtakes the resumes of the session that claim less: resumes of one
 * token at once race within moments. Past it, the store's claim decides alone (a store restored
 * from an older copy counts its claims again from a lower number).
 */
const CLAIM_MEMORY_MS = 5000;

/** A takeover waiting for the session's holder to let go of it. */
interface Release {
  holder: string;
  done(): void;
}

interface Arrival {
  frames: DirectFrame[];
  timer: NodeJS.Timeout;
}

/**
 * Sends a direct operation (`wss.client(id).send()` and friends) to the one node that holds the
 * client, instead of to every node, so its cost does not grow with the cluster.
 *
 * Where a client is comes, in this order, from: what the cluster told this node (`Located`
 * answers and `Moved` announcements, kept in a bounded cache), then the node tag a raw client's id
 * starts with (raw clients never move). With neither, the operation goes to every node as before,
 * asking the holder to say where it is, so the next one goes straight there.
 *
 * A `wscale.v1` session moves when it resumes elsewhere. The new holder announces `Moved` to every
 * node (this is also what closes the old connection), marks the session as arriving, and keeps
 * operations routed to it until the connection is registered. The old holder remembers where the
 * session went and passes on routed operations that still reach it, and tells their sender. A
 * node that gets a routed operation for a client it knows nothing of sends it to every node. So a
 * routed operation follows one path and is applied at most once, by the node that holds the
 * client; it is never dropped where sending it to every node would have delivered it.
 */
export class DirectRouter {
  readonly #mesh: RouterMesh;
  readonly #target: DirectTarget;
  readonly #report: (error: unknown) => void;
  readonly #nodeId: string;
  readonly #tag: string;
  /** Node tags of the nodes alive (this one included), for raw client ids. */
  readonly #tags = new Map<string, string>();
  /** Where clients are, as the cluster told this node (least recently learned dropped first). */
  readonly #located = new Map<string, string>();
  /** Sessions this node held and another took over, to the node that took them. */
  readonly #moved = new Map<string, string>();
  /**
   * The last claim of each session this node heard of, and when (least recently heard dropped
   * first; forgotten after `CLAIM_MEMORY_MS`).
   */
  readonly #claims = new Map<string, { claim: number; at: number }>();
  /** Sessions this node is taking over, with the operations that came for them meanwhile. */
  readonly #arriving = new Map<string, Arrival>();
  /** Takeovers waiting for the old holder to say it recorded the session's close. */
  readonly #releasing = new Map<string, Set<Release>>();

  constructor(mesh: RouterMesh, target: DirectTarget, report: (error: unknown) => void) {
    this.#mesh = mesh;
    this.#target = target;
    this.#report = report;
    this.#nodeId = mesh.nodeId;
    this.#tag = tagOf(this.#nodeId);
    this.#tags.set(this.#tag, this.#nodeId);
  }

  /** A new raw client id: this node's tag, then random. */
  newClientId(): string {
    // Decoded from one buffer, so the id is one flat string, not a pair joined (it lives as long
    // as the connection, and a joined pair costs twice the memory).
    return Buffer.from(`${this.#tag}.${randomBytes(12).toString('base64url')}`).toString('latin1');
  }

  /** A node is alive: raw client ids with its tag route to it. */
  nodeUp(nodeId: string): void {
    this.#tags.set(tagOf(nodeId), nodeId);
  }

  /**
   * A node is gone, and its raw clients with it: their ids no longer name a node, and takeovers
   * from it wait no longer (it recorded what it could).
   */
  nodeDown(nodeId: string): void {
    const tag = tagOf(nodeId);
    if (this.#tags.get(tag) === nodeId) this.#tags.delete(tag);
    for (const waiting of this.#releasing.values()) {
      for (const release of waiting) if (release.holder === nodeId) release.done();
    }
  }

  /** Sends a direct operation for a client this node does not hold. */
  send(header: DirectHeader, payload: Uint8Array, flags: number): Promise<void> {
    const id = header.c;
    const arrival = this.#arriving.get(id);
    if (arrival !== undefined) {
      // The session is being taken over by this very node: it is written once registered.
      const frame: DirectFrame = {
        kind: BusKind.Direct,
        flags,
        header,
        payload: Buffer.from(payload),
      };
      if (arrival.frames.length >= MAX_ARRIVING) return Promise.reject(tooManyArriving(id));
      arrival.frames.push(frame);
      return Promise.resolve();
    }
    const node = this.#where(id);
    // A raw client of this node that is gone: nobody else can hold it.
    if (node === this.#nodeId) return Promise.resolve();
    if (node !== undefined) header.d = node;
    else {
      // Passed on by a node it was routed to: to every node now, for whichever holds it.
      delete header.d;
      header.l = 1;
    }
    return this.#mesh.toNode(node, { kind: BusKind.Direct, header }, payload, flags);
  }

  /**
   * Sends a direct operation to the node that holds its client, as the session's record says; to
   * every node when that one is not alive.
   */
  sendToHolder(node: string, header: DirectHeader): Promise<void> {
    if (!this.#mesh.isAlive(node)) return this.send(header, NO_PAYLOAD, 0);
    header.d = node;
    return this.#mesh.toNode(node, { kind: BusKind.Direct, header });
  }

  /**
   * A session is taken over by this node: every node hears it (the old holder closes its
   * connection), and operations routed here wait for {@link arrived}.
   */
  claim(id: string, code: number, reason: string, holder?: string, claim?: number): Promise<void> {
    if (claim !== undefined) this.#heard(id, claim);
    this.#located.delete(id);
    this.#moved.delete(id);
    const previous = this.#arriving.get(id);
    if (previous !== undefined) clearTimeout(previous.timer);
    const timer = setTimeout(() => this.#arriving.delete(id), ARRIVING_MS);
    timer.unref();
    this.#arriving.set(id, { frames: previous?.frames ?? [], timer });
    const header: MovedHeader = { n: this.#nodeId, c: id, a: [code, reason], t: Date.now() };
    if (holder !== undefined) header.d = holder;
    if (claim !== undefined) header.g = claim;
    return this.#mesh.toNode(undefined, { kind: BusKind.Moved, header });
  }

  /**
   * Whether a connection, on any node, claimed session `id` after `claim`, as far as this node
   * heard: a resume whose claim was overtaken holds nothing.
   */
  claimedAfter(id: string, claim: number): boolean {
    const heard = this.#claims.get(id);
    return heard !== undefined && heard.claim > claim && Date.now() - heard.at < CLAIM_MEMORY_MS;
  }

  /** A claim not overtaken (each caller checked {@link claimedAfter}). */
  #heard(id: string, claim: number): void {
    const now = Date.now();
    // Heard in order: those forgotten by now are first.
    for (const [session, heard] of this.#claims) {
      if (now - heard.at < CLAIM_MEMORY_MS) break;
      this.#claims.delete(session);
    }
    remember(this.#claims, id, { claim, at: now }, MAX_MOVED);
  }

  /**
   * Takes a session over from the node that holds it (this one or another): the holder closes
   * the session's connection and answers once it has recorded the close. Resolves on that
   * answer, or after `ms` without one (a node that was killed says nothing). With `claim`, only
   * connections that claimed the session before it are closed.
   */
  takeOver(
    id: string,
    holder: string,
    code: number,
    reason: string,
    ms: number,
    claim?: number,
  ): Promise<void> {
    const released = new Promise<void>((resolve) => {
      const waiting = this.#releasing.get(id) ?? new Set();
      this.#releasing.set(id, waiting);
      const release: Release = {
        holder,
        done: () => {
          clearTimeout(timer);
          waiting.delete(release);
          if (waiting.size === 0 && this.#releasing.get(id) === waiting) this.#releasing.delete(id);
          resolve();
        },
      };
      const timer = setTimeout(release.done, ms);
      waiting.add(release);
    });
    const local = holder === this.#nodeId;
    if (local) this.#target.release(id, code, reason, undefined, claim);
    this.claim(id, code, reason, local ? undefined : holder, claim).catch(this.#report);
    if (local) void (this.#target.recorded(id) ?? Promise.resolve()).then(() => this.#released(id));
    return released;
  }

  /** The session's connection is registered here: the operations that came for it meanwhile. */
  arrived(id: string): DirectFrame[] {
    const arrival = this.#arriving.get(id);
    if (arrival === undefined) return [];
    clearTimeout(arrival.timer);
    this.#arriving.delete(id);
    return arrival.frames;
  }

  /** Takes a `Direct`, `Moved`, `Located` or `Released` frame from another node. */
  receive(frame: Exclude<ClientFrame, BusFrameOf<BusKind.Broadcast>>): void {
    if (frame.kind === BusKind.Moved) this.#onMoved(frame.header);
    else if (frame.kind === BusKind.Located) this.#onLocated(frame.header);
    else if (frame.kind === BusKind.Released) this.#released(frame.header.c);
    else this.#onDirect(frame);
  }

  /**
   * Kept short, the rest in {@link DirectRouter.#passOn}: it runs for every direct message, and V8
   * optimizes a function only after more calls the longer it is.
   */
  #onDirect(frame: DirectFrame): void {
    const { header } = frame;
    if (this.#arriving.size > 0 && this.#wait(frame)) return;
    if (this.#target.apply(frame)) {
      if (header.l === 1) this.#tell(header.w ?? header.n, header.c, this.#nodeId);
    } else if (header.d === this.#nodeId) {
      // An operation sent to every node is the holder's alone: passing it on could apply it twice.
      this.#passOn(frame);
    }
  }

  /**
   * Keeps an operation for a session this node is taking over, until {@link arrived}: applied
   * before the session's rooms are back, a leave would find the client in no room.
   */
  #wait(frame: DirectFrame): boolean {
    const arrival = this.#arriving.get(frame.header.c);
    if (arrival === undefined) return false;
    if (arrival.frames.length < MAX_ARRIVING) arrival.frames.push(frame);
    else this.#report(tooManyArriving(frame.header.c));
    return true;
  }

  /** Whether this node is taking over client `id`'s session (its operations wait for it). */
  arriving(id: string): boolean {
    return this.#arriving.has(id);
  }

  /** An operation routed here for a client this node does not hold (now): on to where it went. */
  #passOn(frame: DirectFrame): void {
    const { header } = frame;
    const id = header.c;
    const origin = header.w ?? header.n;
    if (this.#wait(frame)) return;
    const hops = (header.h ?? 0) + 1;
    const next: DirectHeader = { ...header, n: this.#nodeId, w: origin, h: hops };
    const moved = this.#moved.get(id);
    if (moved !== undefined && hops <= MAX_HOPS && this.#mesh.isAlive(moved)) {
      next.d = moved;
      this.#pass(moved, next, frame);
      this.#tell(origin, id, moved);
      return;
    }
    if (this.#hinted(id) === this.#nodeId) return;
    this.#tell(origin, id, undefined);
    if (hops <= MAX_HOPS && this.#target.unheld({ ...frame, header: next })) return;
    delete next.d;
    next.l = 1;
    this.#pass(undefined, next, frame);
  }

  #onMoved(header: MovedHeader): void {
    const { c: id, n: node, g: claim } = header;
    if (claim !== undefined) {
      // Overtaken by a later claim (resumes of one token at once): that one holds the session.
      if (this.claimedAfter(id, claim)) return;
      this.#heard(id, claim);
    }
    remember(this.#located, id, node, MAX_LOCATED);
    const [code, reason] = header.a;
    if (this.#target.release(id, code, reason, header.t, claim)) {
      remember(this.#moved, id, node, MAX_MOVED);
    } else {
      // Only the node that held the session last passes operations on: one path, never two.
      this.#moved.delete(id);
    }
    const arrival = this.#arriving.get(id);
    if (arrival !== undefined && node !== this.#nodeId) {
      // Taken over by another node before this one's connection took hold (it went away during
      // its resume): what came for the session here goes on to that node.
      clearTimeout(arrival.timer);
      this.#arriving.delete(id);
      remember(this.#moved, id, node, MAX_MOVED);
      for (const frame of arrival.frames) this.#passOn(frame);
    }
    // Asked as the holder: answers once the connection's close is recorded (at once without one).
    if (header.d !== this.#nodeId) return;
    const answer: ReleasedHeader = { n: this.#nodeId, c: id };
    void (this.#target.recorded(id) ?? Promise.resolve())
      .then(() => this.#mesh.toNode(node, { kind: BusKind.Released, header: answer }))
      .catch(this.#report);
  }

  /** The old holder of a session let it go: the takeovers waiting for it go on. */
  #released(id: string): void {
    for (const release of this.#releasing.get(id) ?? []) release.done();
  }

  #onLocated(header: LocatedHeader): void {
    const id = header.c;
    if (header.a !== undefined && header.a !== this.#nodeId) {
      remember(this.#located, id, header.a, MAX_LOCATED);
    } else if (this.#located.get(id) === header.n) {
      this.#located.delete(id);
    }
  }

  /** The node a client is on, as far as this node knows. */
  #where(id: string): string | undefined {
    const located = this.#located.get(id);
    if (located !== undefined && this.#mesh.isAlive(located)) return located;
    return this.#hinted(id);
  }

  /** The live node a raw client id names. */
  #hinted(id: string): string | undefined {
    const dot = id.indexOf('.');
    return dot > 0 ? this.#tags.get(id.slice(0, dot)) : undefined;
  }

  #pass(node: string | undefined, header: DirectHeader, frame: DirectFrame): void {
    this.#mesh
      .toNode(node, { kind: BusKind.Direct, header }, frame.payload, frame.flags)
      .catch(this.#report);
  }

  /** Tells a sender where a client is (`node`), or to stop routing it to this node. */
  #tell(origin: string, id: string, node: string | undefined): void {
    // A publisher (not a node) routes nothing: nobody to tell.
    if (origin === this.#nodeId || !this.#mesh.isAlive(origin)) return;
    const header: LocatedHeader = { n: this.#nodeId, c: id };
    if (node !== undefined) header.a = node;
    this.#mesh.toNode(origin, { kind: BusKind.Located, header }).catch(this.#report);
  }
}

/** An operation for a session being taken over, past the most kept for it: not applied. */
function tooManyArriving(id: string): LimitExceededError {
  return new LimitExceededError(
    `client ${id}: ${MAX_ARRIVING} operations wait for its session's takeover; this one is dropped`,
  );
}

/** A node's tag in raw client ids: short, and the same on every node. */
function tagOf(nodeId: string): string {
  return createHash('sha256').update(nodeId).digest('base64url').slice(0, 8);
}

/** Sets an entry as the most recent, dropping the least recent beyond `max`. */
function remember<T>(map: Map<string, T>, key: string, value: T, max: number): void {
  map.delete(key);
  map.set(key, value);
  if (map.size > max) map.delete(map.keys().next().value!);
}
