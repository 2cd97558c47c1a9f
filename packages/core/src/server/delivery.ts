import type { History, HistoryPosition, Unsubscribe } from '../contracts.js';
import { MessageTooLargeError, ServerClosedError } from '../errors.js';
import { BusKind, type DirectHeader, type DirectOperation } from '../mesh/bus-codec.js';
import { type DirectFrame, DirectRouter, type DirectTarget } from '../mesh/direct-router.js';
import {
  broadcastMessage,
  type ClientFrame,
  directMessage,
  type MeshListener,
  type NodeMesh,
} from '../mesh/node-mesh.js';
import type { Reporter } from '../ops/reporter.js';
import type { PresenceService } from '../presence/presence-service.js';
import { CloseCode, TAKEN_OVER } from '../protocol/close-codes.js';
import { MessageFlag, type Outgoing, OutKind } from '../protocol/outgoing.js';
import type { Sendable, SendOptions } from '../protocol/payload.js';
import { type RoomHost, RoomRegistry } from '../rooms/room-registry.js';
import { SessionTokens } from '../sessions/session-token.js';
import type { ChangePlace, SessionChange } from '../sessions/sessions.js';
import type { AnyClient } from '../transport/client.js';
import type { Takeovers } from '../transport/connections.js';
import { OneAtATime } from '../util/one-at-a-time.js';
import type { BroadcastTarget } from './broadcast.js';
import type { HistoryRule } from './options.js';
import {
  checkDirect,
  checkSize,
  directHeader,
  historyLookup,
  isSessionChange,
  joinedAt,
  joinedFrom,
  keepsDirect,
  keptDirect,
  markJoinedAt,
  NO_BYTES,
  type Publication,
  publishBroadcast,
  type SessionChangeHeader,
} from './publication.js';

/** The server options delivery applies (see `ServerOptions`). */
export interface DeliverySettings {
  readonly history: HistoryRule[];
  readonly directHistory?: History | undefined;
}

/**
 * The session records delivery writes: the last saves of the connections a node closes, and the
 * joins, leaves and closes of sessions.
 */
export interface SessionRecords {
  /** Starts the last save of a closed `wscale.v1` connection's session. */
  saveClosed(client: AnyClient): void;
  /** That save, while it is under way. */
  closing(id: string): Promise<void> | undefined;
  /** A join, leave or close for a session no connection here holds (see `changeSession`). */
  changeSession(id: string, change: SessionChange, at?: HistoryPosition): Promise<ChangePlace>;
  /** Joins a connection here to a room at once (it is this change's turn). */
  /** With `from`, the position the join was made at: what the room got since is replayed. */
  joinNow(client: AnyClient, room: string, from?: HistoryPosition): Promise<void>;
  /** Makes a connection here leave a room at once. */
  leaveNow(client: AnyClient, room: string): Promise<void>;
}

/** Where the nodes that come and go are announced: the server's events. */
export interface NodeEvents {
  emit(event: 'nodeUp' | 'nodeDown', nodeId: string): boolean;
}

/**
 * How messages reach clients: a broadcast written to the local members of its rooms and published
 * for the other nodes, a direct operation applied here or routed to the node that holds its
 * client, and what other nodes send this one. Owns the node's rooms and its direct router.
 */
export class Delivery implements BroadcastTarget, DirectTarget, MeshListener, RoomHost, Takeovers {
  /** The node's rooms and their local members. */
  readonly rooms: RoomRegistry<AnyClient>;
  /** Where direct operations go. */
  readonly router: DirectRouter;
  /** Where a room keeps its history, if it does. */
  readonly historyOf: (room: string) => History | undefined;
  readonly #mesh: NodeMesh;
  /** The node's connected clients, by id. */
  readonly #clients: Map<string, AnyClient>;
  readonly #directHistory: History | undefined;
  readonly #presence: PresenceService | undefined;
  readonly #reporter: Reporter;
  readonly #events: NodeEvents;
  readonly #sessions: SessionRecords;
  #draining = false;
  /** History rooms a message came to without its position, warned of once each. */
  readonly #unnumbered = new Set<string>();
  /** Senders of a session's direct message without its place in `directHistory`, warned of once. */
  readonly #unkept = new Set<string>();
  /** Joins, leaves and closes of sessions going to their records, in order for each session. */
  readonly #sessionChanges = new OneAtATime();

  constructor(
    mesh: NodeMesh,
    clients: Map<string, AnyClient>,
    settings: DeliverySettings,
    presence: PresenceService | undefined,
    reporter: Reporter,
    events: NodeEvents,
    sessions: SessionRecords,
  ) {
    this.#mesh = mesh;
    this.#clients = clients;
    this.#directHistory = settings.directHistory;
    this.#presence = presence;
    this.#reporter = reporter;
    this.#events = events;
    this.#sessions = sessions;
    this.historyOf = historyLookup(settings.history, settings.directHistory);
    this.rooms = new RoomRegistry<AnyClient>(this);
    this.router = new DirectRouter(mesh, this, reporter.report);
  }

  unnumbered(room: string): void {
    if (this.#unnumbered.has(room) || this.#unnumbered.size >= MAX_UNNUMBERED) return;
    this.#unnumbered.add(room);
    this.#reporter.log.write(
      'warn',
      'a message for a room that keeps history came without its position: its sender (a Publisher or a node) keeps no history for the room; delivered live, never replayed',
      { room },
    );
  }

  /**
   * A direct message for a session, not volatile, that came without its place in the session's
   * stream to a node that keeps one: its sender (a `Publisher` or a node) has no `directHistory`.
   * Delivered live to a connected client; to one between connections it is lost, and its resume
   * cannot tell. Warned of once per sender.
   */
  #checkKept(frame: DirectFrame): void {
    const { header } = frame;
    if (header.o !== 'send' || header.r !== undefined || (frame.flags & MessageFlag.Volatile) !== 0)
      return;
    const sender = header.w ?? header.n;
    if (this.#unkept.has(sender) || this.#unkept.size >= MAX_UNNUMBERED) return;
    if (!SessionTokens.isSessionId(header.c)) return;
    this.#unkept.add(sender);
    this.#reporter.log.write(
      'warn',
      'a direct message for a session came without its place in the session’s stream: its sender (a Publisher or a node) has no directHistory; delivered live, lost for a client between connections',
      { sender, client: header.c },
    );
  }

  /** From now on sending fails with `ServerClosedError`: the node is draining. */
  drain(): void {
    this.#draining = true;
  }

  /** Sends to the members of `rooms` (everyone when there is none) on every node. */
  broadcast(
    rooms: readonly string[],
    except: readonly string[],
    data: Sendable,
    options?: SendOptions,
  ): Promise<void> {
    if (this.#draining) return this.#reporter.sends.track(Promise.reject(new ServerClosedError()));
    return this.#reporter.sends.track(
      publishBroadcast(
        this.#mesh.nodeId,
        rooms,
        except,
        data,
        options,
        this.historyOf,
        this.#mesh.maxPayloadBytes,
        this.#send,
      ),
    );
  }

  /**
   * Hands a broadcast to the broker first, so the other nodes can start their fan-out while this
   * one does its own; local members get it whatever the broker answers, unless it is larger than
   * the broker carries: then nobody does. Settles as the publish.
   */
  readonly #send = (group: readonly string[], { message, header }: Publication): Promise<void> => {
    const room = group.length === 1 ? group[0] : undefined;
    const kind = BusKind.Broadcast;
    let published: Promise<void>;
    try {
      published = this.#mesh.toRoom(room, { kind, header }, message.bytes, message.flags);
    } catch (error) {
      if (error instanceof MessageTooLargeError) return Promise.reject(error);
      published = Promise.reject(error);
    }
    try {
      this.#deliverLocal(group, message);
    } catch (error) {
      // As a `finally` would: the publish's own failure first, else the fan-out's.
      return published.then(() => Promise.reject(error));
    }
    return published;
  };

  /** Writes a broadcast to the local clients it is for: the fan-out hot path. */
  #deliverLocal(rooms: readonly string[] | undefined, message: Outgoing): void {
    if (rooms === undefined || rooms.length === 0) {
      for (const client of this.#clients.values()) client.deliver(message);
    } else if (rooms.length === 1) {
      this.rooms.deliver(rooms[0]!, message);
    } else {
      const once = new Set<AnyClient>();
      for (const room of rooms) for (const client of this.rooms.members(room)) once.add(client);
      for (const client of once) client.deliver(message);
    }
  }

  /**
   * Applies an operation to client `id`, here or on the node that holds it. Without a stream to
   * keep it in, it goes at once: no step to wait for, so nothing but the broker's own promise.
   */
  direct(id: string, operation: DirectOperation, message?: Outgoing): Promise<void> {
    return this.#reporter.sends.track(this.#direct(id, operation, message));
  }

  #direct(id: string, operation: DirectOperation, message?: Outgoing): Promise<void> {
    try {
      if (this.#draining) throw new ServerClosedError();
      const header = directHeader(this.#mesh.nodeId, id, operation);
      checkDirect(header);
      checkSize(this.#mesh.maxPayloadBytes, { kind: BusKind.Direct, header }, message);
      if (keepsDirect(id, message, this.#directHistory)) {
        return this.#directKept(header, message!, this.#directHistory);
      }
      return this.#directTo(header, message);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** A direct message kept in the session's stream first, then sent with its place there. */
  async #directKept(
    header: DirectHeader,
    message: Outgoing,
    directHistory: History,
  ): Promise<void> {
    return this.#directTo(header, await keptDirect(header, message, directHistory));
  }

  #directTo(header: DirectHeader, message: Outgoing | undefined): Promise<void> {
    const id = header.c;
    const local = this.#clients.get(id);
    if (
      isSessionChange(header) &&
      (local === undefined || this.router.arriving(id) || this.#sessionChanges.has(id))
    ) {
      // Into the session's record too (the holder the router knows may have died a moment ago),
      // behind the changes of the session made before it.
      return this.#changeSession(header);
    }
    // A session this node is still taking over: the router keeps it with what came before it.
    if (local !== undefined && !this.router.arriving(id)) {
      return this.#applyDirect(local, header, message) ?? DONE;
    }
    return this.router.send(header, message?.bytes ?? NO_BYTES, message?.flags ?? 0);
  }

  /**
   * A join, leave or close for a session, sent from here or routed here, made once those made
   * before it for the session are: to its connection, if one is here by then; else written into
   * the session's record, then sent to the node that holds the session, if one does. A session
   * the store does not know: to every node, as any operation for a client whose node is unknown.
   */
  #changeSession(header: SessionChangeHeader): Promise<void> {
    return this.#sessionChanges.run(header.c, () => this.#changeSessionNow(header));
  }

  async #changeSessionNow(header: SessionChangeHeader): Promise<void> {
    const id = header.c;
    // Its turn, after the changes made before it: to the connection, if one holds it here (now).
    const local = this.router.arriving(id) ? undefined : this.#clients.get(id);
    if (local !== undefined) return this.#applyDirect(local, header, undefined) ?? DONE;
    // A connection of it that closed here: its last save first, which writes its rooms.
    await this.#sessions.closing(id);
    // A join passed on from the node it was sent to keeps where it was made.
    const at = joinedFrom(header) ?? (await joinedAt(header, this.historyOf));
    const place = await this.#sessions.changeSession(id, header, at);
    markJoinedAt(header, at);
    // A resume here taking the session over gets it too, behind its welcome (the record has it,
    // should that resume end before).
    const here = this.#applyHere(header);
    if (here !== undefined) return here;
    if (place === 'stored') return;
    if (place === 'unknown') return this.router.send(header, NO_BYTES, 0);
    if (place.holder !== this.#mesh.nodeId) return this.router.sendToHolder(place.holder, header);
    // The record says this node holds it. A resume here that claimed it a moment ago (before this
    // change was written) registers its connection within this turn of the event loop: it gets
    // the change then. Else the record is older than this node's connections (a node restarted
    // with the same id), and has the change for the resume to come.
    await new Promise<void>((resolve) => setImmediate(resolve));
    await this.#applyHere(header);
  }

  /**
   * A change for a session a connection here holds, or is taking over (kept for it until it is
   * registered); `undefined` when none does.
   */
  #applyHere(header: SessionChangeHeader): Promise<void> | undefined {
    if (this.router.arriving(header.c)) return this.router.send(header, NO_BYTES, 0);
    const local = this.#clients.get(header.c);
    return local === undefined ? undefined : (this.#applyDirect(local, header, undefined) ?? DONE);
  }

  /**
   * Closes an older connection of a session, wherever it is, without waiting (one that claimed the
   * session after `claim`, or opened after this and reaches its node after a broker outage, is
   * kept). False, and nothing closed, when a later claim is known: the new connection holds nothing.
   */
  kick(sessionId: string, claim?: number): boolean {
    if (claim !== undefined) {
      const here = this.#clients.get(sessionId)?.claim ?? 0;
      if (here > claim || this.router.claimedAfter(sessionId, claim)) return false;
    }
    this.release(sessionId, CloseCode.SessionTakenOver, TAKEN_OVER, undefined, claim);
    // Not awaited: the new connection already holds the session in the store, and a broker
    // that is down must not hold its welcome back.
    this.router
      .claim(sessionId, CloseCode.SessionTakenOver, TAKEN_OVER, undefined, claim)
      .catch(this.#reporter.report);
    return true;
  }

  /**
   * A session's connection is welcomed here: the operations that came for it while it was being
   * taken over are applied, or with `drop` forgotten (a connection closed at once takes none of
   * them: the session's changes are in its record).
   */
  arrived(client: AnyClient, drop = false): void {
    const arrived = this.router.arrived(client.id);
    if (drop) return;
    for (const frame of arrived) this.apply(frame);
  }

  apply(frame: DirectFrame): boolean {
    const client = this.#clients.get(frame.header.c);
    if (client === undefined) return false;
    try {
      this.#applyDirect(client, frame.header, directMessage(frame))?.catch(this.#reporter.report);
    } catch (error) {
      this.#reporter.report(error);
    }
    return true;
  }

  /** Closes the local connection of a session taken over elsewhere; from now on it is not here. */
  release(id: string, code: number, reason: string, sentAt?: number, claim?: number): boolean {
    const older = this.#clients.get(id);
    if (older === undefined || !olderThan(older, sentAt, claim)) return false;
    this.#clients.delete(id);
    older.shut(code, reason);
    // Gone now for presence too: its socket may end only after `closeTimeoutMs` (a peer that no
    // longer answers), and a leave of the connection that took over must not wait for that.
    this.#presence?.released(older, older.roomList);
    // Closed, it hands nothing more on: what it handed on can be recorded now, without waiting for
    // its peer to answer the close, so the node taking the session over can go on.
    if (older.v1) this.#sessions.saveClosed(older);
    return true;
  }

  unheld(frame: DirectFrame): boolean {
    const { header } = frame;
    if (!isSessionChange(header)) return false;
    this.#changeSession(header).catch(this.#reporter.report);
    return true;
  }

  inTurn(sessionId: string, change: () => Promise<void>): Promise<void> {
    return this.#sessionChanges.has(sessionId)
      ? this.#sessionChanges.run(sessionId, change)
      : change();
  }

  recorded(id: string): Promise<void> | undefined {
    return this.#sessions.closing(id);
  }

  /**
   * Takes a session over from the node that holds it: resolves once the holder recorded the close
   * of its connection, or after `ms` (a node that was killed says nothing). Only connections that
   * claimed the session before `claim` are closed.
   */
  takeOver(sessionId: string, holder: string, ms: number, claim: number): Promise<void> {
    const { router } = this;
    return router.takeOver(sessionId, holder, CloseCode.SessionTakenOver, TAKEN_OVER, ms, claim);
  }

  /** Applies an operation to a local client: at once, but for a join or a leave, which it returns. */
  #applyDirect(
    client: AnyClient,
    header: DirectHeader,
    message: Outgoing | undefined,
  ): Promise<void> | undefined {
    switch (header.o) {
      case 'send':
        if (message === undefined) return undefined;
        if (message.room === undefined) {
          client.deliver(message, OutKind.Direct);
        } else if (client.inRoom(message.room)) {
          // A kept direct message goes through the session's stream: in order, once.
          this.rooms.deliver(message.room, message);
        }
        // Else the session is still rejoining its stream, whose replay from the history (where
        // the message already is) brings it: writing it here too would send it twice.
        return undefined;
      // Its turn already: behind the session's changes made before it here, or from another node.
      case 'join':
        return this.#sessions.joinNow(client, header.a, joinedFrom(header));
      case 'leave':
        return this.#sessions.leaveNow(client, header.a);
      case 'close':
        client.close(...header.a);
        return undefined;
    }
  }

  deliver(frame: ClientFrame): void {
    if (frame.kind === BusKind.Broadcast) {
      this.#deliverLocal(frame.header.r, broadcastMessage(frame));
    } else {
      if (frame.kind === BusKind.Direct && this.#directHistory !== undefined)
        this.#checkKept(frame);
      this.router.receive(frame);
    }
  }

  nodeUp(nodeId: string): void {
    this.#reporter.log.write('info', 'node up', { peer: nodeId });
    this.router.nodeUp(nodeId);
    this.#presence?.nodeUp(nodeId);
    this.#events.emit('nodeUp', nodeId);
  }

  nodeDown(nodeId: string): void {
    this.#reporter.log.write('warn', 'node down', { peer: nodeId });
    this.router.nodeDown(nodeId);
    this.#presence?.nodeDown(nodeId);
    this.#events.emit('nodeDown', nodeId);
  }

  subscribe(room: string, deliver: (message: Outgoing) => void): Promise<Unsubscribe> {
    return this.#mesh.subscribeRoom(room, deliver);
  }

  error(error: unknown): void {
    this.#reporter.report(error);
  }
}

/** What a direct operation applied at once resolves with. */
const DONE = Promise.resolve();

/** How far two nodes' clocks may differ for a takeover's send time to order it with a connection. */
const CLOCK_SLACK_MS = 100;

/**
 * How many rooms {@link Delivery.unnumbered} warns of, and senders `#checkKept` does: a
 * misconfigured sender, not a flood.
 */
const MAX_UNNUMBERED = 100;

/**
 * Whether a connection came before a takeover: its claim of the session's record was earlier;
 * without claims on both sides, it opened before the takeover was sent (`sentAt`, when given: a
 * connection opened after it is a newer one of the session, not the one it meant; two nodes'
 * clocks differ, so within `CLOCK_SLACK_MS` it counts as older).
 */
function olderThan(connection: AnyClient, sentAt?: number, claim?: number): boolean {
  if (claim !== undefined && connection.claim !== undefined) return connection.claim < claim;
  return sentAt === undefined || (connection.openedAt ?? 0) <= sentAt + CLOCK_SLACK_MS;
}
