import { Buffer } from 'node:buffer';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocket } from 'ws';
import type { History, HistoryPosition } from '../contracts.js';
import { HandlerError, ProtocolError } from '../errors.js';
import type { NodeLog } from '../ops/logger.js';
import type { Traffic } from '../ops/traffic.js';
import type { PresenceService } from '../presence/presence-service.js';
import { CloseCode, TAKEN_OVER } from '../protocol/close-codes.js';
import { decodeClientFrame } from '../protocol/codec.js';
import {
  type ClientMessage,
  type HelloMessage,
  inboxOf,
  RESERVED_ROOM_PREFIX,
  type WelcomeMessage,
  type WelcomeRoom,
} from '../protocol/messages.js';
import type { Outgoing } from '../protocol/outgoing.js';
import { prepareMessage, type Sendable } from '../protocol/payload.js';
import {
  writeAck,
  writeError,
  writeLeft,
  writePong,
  writeReceived,
  writeRefusal,
  writeWelcome,
} from '../protocol/v1-writer.js';
import { type JoinOutcome, ReadTurns, type ReplayBudget } from '../rooms/room-stream.js';
import { sessionOwnerOf } from '../sessions/session-saver.js';
import {
  type KeptOnClose,
  type OpenedSession,
  SessionContendedError,
  type SessionLookup,
  SessionStoreUnavailableError,
  type Sessions,
  type StoredReply,
  type UpstreamRecord,
} from '../sessions/sessions.js';
import { typeName } from '../util/arguments.js';
import { closeReason } from '../util/close-reason.js';
import type { Pending } from '../util/pending.js';
import { inTime, LATE } from '../util/wait-at-most.js';
import type { Membership } from './membership.js';
import { type MessageInfo, ReceiptBatcher, UNNUMBERED, UpstreamLedger } from './upstream.js';
import type { V1Client } from './v1-client.js';

/**
 * What the endpoint needs of the node that holds the connections: the few things only the node
 * knows (its clients, its sockets, its counters).
 */
export interface V1Node {
  readonly nodeId: string;
  /** Whether a node (this one or another) is alive. */
  alive(nodeId: string): boolean;
  /**
   * Closes an older connection of the session, wherever it is, without waiting; false, closing
   * nothing, when a connection claimed the session after `claim`.
   */
  kick(sessionId: string, claim?: number): boolean;
  /**
   * Closes the connection that holds a session on node `holder` (this one or another); resolves
   * once that node has recorded the connection's close, or after `ms` without its answer. Only
   * connections that claimed the session before `claim` are closed.
   */
  takeOver(sessionId: string, holder: string, ms: number, claim: number): Promise<void>;
  /** Creates and registers the client of an opened session. */
  register(session: OpenedSession, ws: WebSocket, socket: Duplex, identity: unknown): V1Client;
  /** Starts taking the frames of a registered client's socket. */
  listen(ws: WebSocket): void;
  /** Takes one frame of a registered client, as if it had just arrived. */
  frame(client: V1Client, data: Buffer, isBinary: boolean): void;
  /**
   * Applies what came for the session while this node took it over: once its rooms are back (a
   * leave must find the client in the room it leaves), behind its welcome. With `drop`, forgets it:
   * a connection closed at once takes none of it (the record has the session's changes).
   */
  arrived(client: V1Client, drop?: boolean): void;
  /** Hands a client whose session is open (new or resumed) to the application. */
  connected(client: V1Client, request: IncomingMessage): void;
  /** Saves a client's session. */
  save(client: V1Client): Promise<void>;
  /**
   * Saves the session of a client closed right after its welcome with `close`: its record, marked
   * closed, gets `close` back if the client does not answer it (it was gone without being told).
   */
  closedAtOnce(client: V1Client, close: [code: number, reason: string]): void;
  /** Marks a session's record closed as it is, with `kept` (see `Sessions.markClosed`). */
  markClosed(id: string, conn: string, kept: KeptOnClose): void;
  /** Counts a limit that was hit. */
  limited(limit: 'rooms' | 'inFlight' | 'replay'): void;
  report(error: unknown): void;
  /** What the application's handlers still do: closing waits for it. */
  readonly handlers: Pending;
}

/**
 * The server options the endpoint reads: the server's resolved options are these. Its hooks are
 * called as plain functions, not as methods of the options (a hook written with `function` sees
 * no `this`).
 */
export interface V1Settings {
  readonly helloTimeoutMs: number;
  /** The largest frame a connection takes, told to the client in its `welcome`. */
  readonly maxPayload: number;
  readonly maxRoomsPerClient: number;
  readonly maxInFlightPerClient: number;
  /** How long `authorizeJoin` and `onRequest` may take before their answer is given up. */
  readonly hookTimeoutMs: number;
  /** What one resume may replay, over all its rooms. */
  readonly maxReplayBytes: number;
  readonly maxReplayEntries: number;
  /** Set when sessions keep their direct messages in a stream of their own. */
  readonly directHistory?: History;
  // Method syntax for the hooks: a server's options type them with its own Identity and its
  // public Client, which every connection the endpoint hands them is.
  sessionOwner(identity: unknown): string;
  /** Whether a client may join a room: a boolean, or a promise of one (else it is a no). */
  authorizeJoin?(client: HookClient, room: string): unknown;
  /** The reply to a request: text, bytes, nothing, or a promise of one of them. */
  onRequest?(client: HookClient, data: string | Buffer, info: MessageInfo): unknown;
}

/** A client as the hooks' types in {@link V1Settings} name it: the endpoint needs no more of it. */
type HookClient = Pick<V1Client, 'id' | 'identity'>;

/** The endpoint's collaborators. */
export interface V1Parts {
  node: V1Node;
  settings: V1Settings;
  sessions: Sessions;
  membership: Membership;
  /** Presence, when some rooms keep it. */
  presence: PresenceService | undefined;
  traffic: Traffic;
  log: NodeLog;
  /** Logs a connection closed for breaking the protocol (see `Reporter.violation`). */
  violation: (code: number, fields: { client?: string; reason: string }) => void;
}

/** A frame that came in behind the `hello`, before the session was open. */
type Queued = [data: Buffer, isBinary: boolean];

/**
 * The server side of `wscale.v1` (see `docs/protocol.md`): the `hello` that opens or resumes a
 * session, then every operation a client may send.
 */
export class V1Endpoint {
  readonly #node: V1Node;
  readonly #settings: V1Settings;
  readonly #sessions: Sessions;
  readonly #membership: Membership;
  readonly #presence: PresenceService | undefined;
  readonly #traffic: Traffic;
  readonly #log: NodeLog;
  readonly #logViolation: V1Parts['violation'];
  /** Connections that have not been welcomed yet. */
  readonly #opening = new Set<WebSocket>();
  /** Sessions being opened (their store calls, and what a resume that went meanwhile writes). */
  readonly #opens = new Set<Promise<unknown>>();
  /** Each connection's upstream bookkeeping (only clients that number what they send have one). */
  readonly #upstream = new WeakMap<V1Client, UpstreamLedger>();
  readonly #receipts: ReceiptBatcher<V1Client>;
  /** Each client's requests still being answered: the last save of its connection waits for them. */
  readonly #answering = new WeakMap<V1Client, Set<Promise<void>>>();
  /** Set once the node drains: numbered frames are left for the node the client moves to. */
  #draining = false;

  constructor(parts: V1Parts) {
    this.#node = parts.node;
    this.#settings = parts.settings;
    this.#sessions = parts.sessions;
    this.#membership = parts.membership;
    this.#presence = parts.presence;
    this.#traffic = parts.traffic;
    this.#log = parts.log;
    this.#logViolation = parts.violation;
    this.#receipts = new ReceiptBatcher(RECEIPT_DELAY_MS, (client) => {
      const last = this.#upstream.get(client)?.last;
      if (last !== undefined) writeReceived(client, last);
    });
  }

  /** What the session record keeps of a client's upstream. */
  upstreamRecord(client: V1Client): UpstreamRecord | undefined {
    return this.#upstream.get(client)?.record();
  }

  /** Whether the client's upstream changed since its session was last saved. */
  upstreamDirty(client: V1Client): boolean {
    return this.#upstream.get(client)?.dirty ?? false;
  }

  upstreamUnsaved(client: V1Client): void {
    this.#upstream.get(client)?.unsaved();
  }

  /** Whether requests the client sent are still being answered. */
  answering(client: V1Client): boolean {
    return (this.#answering.get(client)?.size ?? 0) > 0;
  }

  /**
   * Resolves once the requests the client sent have been answered and their replies kept, or after
   * {@link REPLY_WAIT_MS}: a connection that closed saves its session after this, so that a
   * request sent again after a resume gets the reply instead of `REPLY_LOST`.
   */
  answered(client: V1Client): Promise<void> {
    const running = this.#answering.get(client);
    if (running === undefined || running.size === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, REPLY_WAIT_MS);
      void Promise.allSettled(running).then(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  /** The client went away: no more receipts for it. */
  forget(client: V1Client): void {
    this.#receipts.forget(client);
  }

  /** How many connections are waiting for their `welcome`. */
  get opening(): number {
    return this.#opening.size;
  }

  /**
   * Takes a fresh `wscale.v1` connection: waits for its `hello`, then opens its session. Each
   * happens within `helloTimeoutMs`, or the connection is closed with 1013 (the client retries).
   */
  accept(ws: WebSocket, socket: Duplex, request: IncomingMessage, identity: unknown): void {
    // `undefined` until the hello; then the frames behind it (often in the same TCP segment), which
    // wait, in order, for the session. The socket is paused meanwhile, so they are at most what it
    // had already read. `null` once the connection was refused: what it still sends is dropped.
    let queued: Queued[] | null | undefined;
    const refuse = (code: number, reason: string) => {
      queued = null;
      close(ws, code, reason);
      // Read on, or the peer's answer to the close would never arrive.
      ws.resume();
    };
    /** Refuses a connection that sent something else before its hello, and logs it. */
    const noHello = (sent: string) => {
      refuse(CloseCode.PolicyViolation, 'hello expected');
      this.#logViolation(CloseCode.PolicyViolation, { reason: sent });
    };
    const { helloTimeoutMs } = this.#settings;
    // Stops the pending bound: the wait for the hello, or then the one for its session.
    let stop: () => void;
    const helloTimer = setTimeout(() => {
      // A node busy for longer than the bound (a storm of resumes) fires this before it reads a
      // hello that came in time: one more turn of the event loop reads what the socket holds
      // first. A hello still missing after it is closed with a code the client retries on: the
      // node cannot tell a client that said nothing from a hello it has not read yet.
      const grace = setImmediate(() => {
        if (queued === undefined) refuse(CloseCode.TryAgainLater, 'hello expected');
      });
      stop = () => clearImmediate(grace);
    }, helloTimeoutMs);
    stop = () => clearTimeout(helloTimer);
    this.#opening.add(ws);
    // Pings are no operation of a rate limit before the hello (there is no client to count
    // them): a few are answered, a flood of them is refused.
    let pings = 0;
    const onPing = () => {
      if (++pings === MAX_PINGS_BEFORE_HELLO + 1 && queued === undefined) {
        noHello('pings before hello');
      }
    };
    const settled = () => {
      stop();
      this.#opening.delete(ws);
      ws.off('message', onMessage).off('close', settled).off('ping', onPing);
    };
    const onMessage = (data: Buffer, isBinary: boolean) => {
      if (queued !== undefined) {
        queued?.push([data, isBinary]);
        return;
      }
      const message = this.#decode(ws, data, isBinary)?.message;
      if (message?.t !== 'hello') {
        if (message === undefined) queued = null;
        else noHello('hello expected');
        return;
      }
      queued = [];
      ws.pause();
      // The session is opened within the bound from its hello on, whenever that was read.
      stop();
      const openTimer = setTimeout(() => {
        if (queued !== null) refuse(CloseCode.TryAgainLater, 'session not opened in time');
      }, helloTimeoutMs);
      stop = () => clearTimeout(openTimer);
      this.#opened(this.#open(ws, socket, request, identity, message))
        .then((client) => {
          if (client === undefined) return;
          const behind = queued ?? [];
          settled();
          this.#node.listen(ws);
          for (const [frame, binary] of behind) this.#node.frame(client, frame, binary);
          ws.resume();
        })
        .catch((error) => {
          // Reported already (the store's failure): the client comes back later.
          if (error instanceof SessionStoreUnavailableError) {
            refuse(CloseCode.TryAgainLater, 'session store unavailable');
            return;
          }
          if (error instanceof SessionContendedError) {
            this.#log.write('debug', 'resume lost to other resumes of its session: closed 1013');
            refuse(CloseCode.TryAgainLater, 'the session is being resumed elsewhere');
            return;
          }
          this.#node.report(error);
          refuse(CloseCode.InternalError, 'session could not be opened');
        });
    };
    ws.on('message', onMessage).on('close', settled).on('ping', onPing);
  }

  /** Keeps a session's opening until it settles, for {@link V1Endpoint.openingsSettled}. */
  #opened<T>(opening: Promise<T>): Promise<T> {
    this.#opens.add(opening);
    const done = () => this.#opens.delete(opening);
    opening.then(done, done);
    return opening;
  }

  /**
   * Resolves once the sessions being opened now have settled: a resume whose connection a drain
   * closed before its claim came back still writes the record (see `#unclaimed`).
   */
  async openingsSettled(): Promise<void> {
    await Promise.allSettled([...this.#opens]);
  }

  /**
   * The node drains: from now on the numbered messages and requests clients send are not taken
   * (nor acknowledged). They come again on the node each client moves to, which hands them on; the
   * application's handlers here finish what they have.
   */
  drain(): void {
    this.#draining = true;
  }

  /** Closes the connections still opening (the node is draining). */
  closeOpening(code: number, reason: string): void {
    for (const ws of this.#opening) close(ws, code, reason);
  }

  /** Ends the connections still opening at once: they did not answer the close in time. */
  terminateOpening(): void {
    for (const ws of this.#opening) ws.terminate();
  }

  /** Handles one frame of a client whose session is open. */
  receive(client: V1Client, data: Buffer, isBinary: boolean): void {
    const decoded = this.#decode(client, data, isBinary);
    if (decoded !== undefined) this.#dispatch(client, decoded.message, decoded.binary);
  }

  /** Opens the session of a `hello` and welcomes the client; `undefined` if it left meanwhile. */
  async #open(
    ws: WebSocket,
    socket: Duplex,
    request: IncomingMessage,
    identity: unknown,
    hello: HelloMessage,
  ): Promise<V1Client | undefined> {
    const node = this.#node;
    // The welcome is due before `helloTimeoutMs` closes the connection: what its rooms' histories
    // have not answered by then (a store down before them took its own timeout) is `unavailable`.
    const { helloTimeoutMs } = this.#settings;
    const deadline =
      performance.now() + helloTimeoutMs - Math.min(WELCOME_MARGIN_MS, helloTimeoutMs / 4);
    const owner = sessionOwnerOf(this.#settings, identity);
    const lookup =
      hello.session === undefined ? undefined : await this.#handOver(hello.session, owner);
    const session = await this.#sessions.open(hello.session, owner, lookup);
    // Whether the previous connection recorded all it handed on: only a clean close says so, and
    // only if no connection since could not record (`u`: one was welcomed `unavailable`), nor
    // closed before the client sent again what may have been handed on (`doubt`). A new session
    // had no previous connection: nothing it is sent can have been handed on before.
    const named = session.resumed || session.reason === 'unavailable';
    const doubtful =
      named && (session.cleanlyClosed !== true || hello.u === 1 || session.record?.doubt === true);
    const ledger = new UpstreamLedger(session.record, doubtful);
    if (ws.readyState !== WebSocket.OPEN) {
      // Closed meanwhile (a drain): it is paused, so its close handshake would never finish.
      ws.terminate();
      // It claimed the session, and holds nothing: the record as it was, closed, and a close made
      // while the client was away still to be made.
      if (session.resumed) this.#unclaimed(session, ledger);
      return undefined;
    }
    // The session the token named (resumed, or kept while the store is down): an older
    // connection may still hold it. A later resume of the same token may have claimed it already
    // (tabs sharing a token): then this one holds nothing, and goes as if taken over.
    const claim = session.record?.claim;
    if (named && !node.kick(session.id, claim)) {
      close(ws, CloseCode.SessionTakenOver, TAKEN_OVER);
      ws.resume();
      return undefined;
    }
    this.#opening.delete(ws);
    const client = node.register(session, ws, socket, identity);
    this.#upstream.set(client, ledger);
    if (session.closeWith !== undefined) return this.#closeAtOnce(client, session, hello, ledger);
    client.hold();
    const { maxReplayBytes, maxReplayEntries } = this.#settings;
    // What the histories may be read for: the replay, and as much again in reads that end past it.
    const budget: ReplayBudget = {
      bytes: maxReplayBytes,
      entries: maxReplayEntries,
      reads: 2 * maxReplayBytes,
      turns: new ReadTurns(),
      deadline,
    };
    const own = new Set(session.record?.own);
    // All at once: a room waits for its history (a timeout, if it hangs) beside the others, not
    // behind them. Their replays follow the welcome in the record's order.
    const rejoin = async (room: string): Promise<Rejoined | undefined> => {
      if (own.has(room) && !(await this.#authorized(client, room))) {
        writeLeft(client, room);
        return undefined;
      }
      if (own.has(room)) client.markOwn(room);
      const told = hello.rooms?.[room];
      const joinedAt = joinedWhileAway(session, told, room);
      const seen = joinedAt ?? told;
      const from = seen === undefined ? undefined : { offset: seen.o, epoch: seen.e };
      const rejoined = await this.#rejoin(client, room, from, budget);
      // Its replay starts there: a client that did not list the room goes on from it.
      if (joinedAt !== undefined && rejoined.state.recovered) {
        rejoined.state.o = joinedAt.o;
        rejoined.state.e = joinedAt.e;
      }
      return rejoined;
    };
    const listed = session.record?.rooms ?? [];
    const joins = listed.map(rejoin);
    // A session whose direct messages are kept is in its own stream from its start, whether or not
    // its record says so yet (it is saved with its first room, or its refresh): a resumed one from
    // where its client says it was, and so is one the store could not read (the same session).
    const inbox = inboxOf(client.id);
    if (this.#settings.directHistory !== undefined && !listed.includes(inbox)) {
      const same = session.resumed || session.reason === 'unavailable';
      const seen = same ? hello.rooms?.[inbox] : undefined;
      const from = seen === undefined ? undefined : { offset: seen.o, epoch: seen.e };
      joins.push(this.#rejoin(client, inbox, from, budget));
    }
    const rejoined = await Promise.all(joins);
    const refused = listed.filter((_, i) => rejoined[i] === undefined);
    const rooms: Record<string, WelcomeRoom> = {};
    const replay: Buffer[] = [];
    for (const joined of rejoined) {
      if (joined === undefined) continue;
      rooms[joined.room] = joined.state;
      for (const message of joined.replay) replay.push(message.envelopeFrame());
    }
    // Closed meanwhile (by the client, or a drain or takeover whose close it has not answered): no
    // welcome, and the record stays as the resume found it (see SessionSaver.saveUnopened).
    if (closing(ws)) return undefined;
    writeWelcome(client, this.#welcome(client, session, rooms, ledger), replay);
    if (session.resumed) {
      const recovered = Object.values(rooms).every((room) => room.recovered);
      client.recovery = refused.length > 0 ? { recovered, rooms, refused } : { recovered, rooms };
      void node.save(client);
    } else if (session.reason === 'unavailable') {
      // Not in the store: tried with the periodic upstream saves until the store answers (then a
      // record of an earlier connection closes this one with 1012, and the resume gets it all).
      ledger.unsaved();
    }
    // What came for the session while this node took it over, behind the welcome (a close too).
    node.arrived(client);
    if (closing(ws)) return undefined;
    if (hello.session !== undefined) {
      const { result, ...fields } = this.#traffic.resumed(
        client.id,
        client.recovery,
        session.reason,
      );
      this.#log.write('debug', `resume ${result}`, fields);
    }
    node.connected(client, request);
    return client;
  }

  #welcome(
    client: V1Client,
    session: OpenedSession,
    rooms: Record<string, WelcomeRoom>,
    ledger: UpstreamLedger,
  ): WelcomeMessage {
    const welcome: WelcomeMessage = {
      t: 'welcome',
      session: session.token,
      client: client.id,
      node: this.#node.nodeId,
      resumed: session.resumed,
      rooms,
      s: ledger.last,
      m: this.#settings.maxPayload,
    };
    if (session.reason !== undefined) welcome.reason = session.reason;
    return welcome;
  }

  /**
   * A resume the server closed while the client was away: welcomed and closed at once, as the
   * connection would have been then (its close code tells the client whether to come back); no
   * `connection` for it. It rejoins no room, reads no history and is sent nothing of its rooms:
   * each is told where the client is, which it keeps, and the next resume replays from there. Its
   * record stays as the resume found it (with the changes made since), marked closed.
   */
  #closeAtOnce(
    client: V1Client,
    session: OpenedSession,
    hello: HelloMessage,
    ledger: UpstreamLedger,
  ): V1Client {
    const rooms: Record<string, WelcomeRoom> = {};
    for (const room of session.record?.rooms ?? []) {
      const told = hello.rooms?.[room];
      const noPosition = this.#membership.keepsHistory(room) ? 'no-position' : 'no-history';
      rooms[room] = keptAt(joinedWhileAway(session, told, room) ?? told, noPosition);
    }
    const inbox = inboxOf(client.id);
    if (this.#settings.directHistory !== undefined && !(inbox in rooms)) {
      rooms[inbox] = keptAt(hello.rooms?.[inbox], 'no-position');
    }
    writeWelcome(client, this.#welcome(client, session, rooms, ledger), []);
    this.#node.closedAtOnce(client, session.closeWith!);
    this.#node.arrived(client, true);
    client.close(...session.closeWith!);
    return client;
  }

  /** A resume that claimed the session but went before it was registered: holds nothing. */
  #unclaimed(session: OpenedSession, ledger: UpstreamLedger): void {
    const close = session.closeWith;
    this.#node.markClosed(session.id, session.conn, {
      ...ledger.record(),
      ...(close && { close }),
    });
  }

  /**
   * When a connection on a live node still holds the session (that node has not seen it drop
   * yet), has it closed and waits a moment for its node to say it recorded what it handed on: the
   * resume then knows exactly which of the client's messages arrived, and none comes twice. A node
   * that was killed but is not known dead yet never says it: one bounded wait, no store reads.
   * Yields the session's read for `open` to start from, unless the holder was asked to let go.
   */
  async #handOver(token: string, owner: string): Promise<SessionLookup | undefined> {
    const lookup = await this.#sessions.lookup(token, owner);
    const holder = lookup?.holder;
    if (holder === undefined || holder.owner !== owner || !this.#node.alive(holder.node)) {
      return lookup;
    }
    // This resume's claim comes after the one it read: a connection that claimed the session
    // since (a resume of the same token at once) is not the holder it asks to let go.
    await this.#node.takeOver(holder.id, holder.node, HANDOVER_MS, (holder.claim ?? 0) + 1);
    // The holder recorded its close meanwhile (or did not answer): the session is read again.
    return undefined;
  }

  async #rejoin(
    client: V1Client,
    room: string,
    from: HistoryPosition | undefined,
    budget: ReplayBudget,
  ): Promise<Rejoined> {
    let outcome: JoinOutcome | undefined;
    try {
      outcome = await this.#membership.join(client, room, from, false, budget);
    } catch (error) {
      this.#node.report(error);
      return { room, state: { recovered: false, reason: 'unavailable' }, replay: [] };
    }
    if (outcome === undefined) {
      return { room, state: { recovered: false, reason: 'no-history' }, replay: [] };
    }
    const { position } = outcome;
    // No position when the stream could not read its own (`unavailable`): the client keeps its.
    const state: WelcomeRoom =
      position.epoch === ''
        ? { recovered: outcome.recovered }
        : { recovered: outcome.recovered, o: position.offset, e: position.epoch };
    if (from === undefined) {
      state.recovered = false;
      state.reason = 'no-position';
    } else if (outcome.reason !== undefined) {
      state.reason = outcome.reason;
      if (outcome.overBudget === true) this.#node.limited('replay');
    }
    return { room, state, replay: outcome.replay };
  }

  #dispatch(client: V1Client, message: ClientMessage, binary: Buffer | undefined): void {
    const payload = binary ?? ('d' in message && message.d !== undefined ? message.d : '');
    switch (message.t) {
      case 'msg': {
        if (message.s !== undefined && this.#draining) return;
        if (message.s !== undefined && client.inboxFull) {
          // Numbered: acknowledged once taken. Not taken, it comes again on the next connection,
          // by which time the application listens (or has the kept ones in hand).
          close(client, CloseCode.TryAgainLater, 'the application has not read its messages');
          this.#log.write('warn', 'inbox full before the application listened: closed 1013', {
            client: client.id,
          });
          return;
        }
        const info = this.#admit(client, message);
        if (typeof info === 'object') client.receive(payload, binary !== undefined, info);
        return;
      }
      case 'req': {
        if (message.s !== undefined && this.#draining) return;
        const info = this.#admit(client, message);
        if (info === 'duplicate') this.#answerAgain(client, message);
        else if (typeof info === 'object') {
          this.#answer(
            client,
            message.id,
            () => this.#track(client, this.#request(client, message, payload, info)),
            message.s,
          );
        }
        return;
      }
      case 'join':
        this.#answer(client, message.id, () =>
          this.#membership.inOrder(client, message.r, () =>
            this.#join(client, message.id, message.r),
          ),
        );
        return;
      case 'leave':
        void this.#membership.inOrder(client, message.r, () =>
          this.#leave(client, message.id, message.r),
        );
        return;
      case 'ping':
        writePong(client);
        return;
      case 'presence': {
        const presence = this.#presence;
        const refused = presence === undefined ? 'NOT_FOUND' : presence.watch(client, message.r);
        if (refused === undefined) writeAck(client, message.id);
        else {
          writeRefusal(
            client,
            message.id,
            refused,
            `no presence of "${message.r}" for this client`,
          );
        }
        return;
      }
      case 'hello':
        writeError(client, 'BAD_REQUEST', 'hello was already said');
        return;
      default:
        writeError(
          client,
          'UNKNOWN_OP',
          `unknown message type "${String((message as { t: unknown }).t).slice(0, 64)}"`,
        );
    }
  }

  /**
   * Runs an operation that ends in an `ack`, within the client's operations in flight. A numbered
   * request refused `BUSY` keeps that answer as its reply: sent again, it is told `BUSY` again, not
   * that it was handled.
   */
  #answer(client: V1Client, id: number, operation: () => Promise<void>, s?: number): void {
    if (client.inFlight >= this.#settings.maxInFlightPerClient) {
      this.#node.limited('inFlight');
      writeRefusal(client, id, BUSY.error.code, BUSY.error.message);
      if (s !== undefined) this.#upstream.get(client)?.keepReply(s, BUSY);
      return;
    }
    client.inFlight++;
    this.#node.handlers.track(
      operation()
        .catch((error) => {
          this.#node.report(error);
          writeRefusal(client, id, 'UNAVAILABLE', 'the operation failed');
        })
        .finally(() => client.inFlight--),
    );
  }

  /**
   * Takes a numbered `msg` or `req` into the client's upstream (and owes it a `rcv`): yields what
   * the application is told about it, `duplicate` when it was handed on already, or `backwards`
   * when its number broke the protocol (the connection is closed with 1002).
   */
  #admit(
    client: V1Client,
    message: { s?: number; p?: 1 },
  ): MessageInfo | 'duplicate' | 'backwards' {
    const ledger = message.s === undefined ? undefined : this.#upstream.get(client);
    if (ledger === undefined) return UNNUMBERED;
    const admission = ledger.admit(message.s!, message.p === 1);
    if (admission === 'backwards') {
      const reason = `upstream number ${message.s} went backwards (last ${ledger.last}) without p`;
      this.#violation(client, CloseCode.ProtocolError, reason);
      return admission;
    }
    this.#receipts.owe(client);
    if (admission === 'duplicate') return admission;
    return { id: `${client.id}:${message.s}`, redelivered: admission === 'redelivery' };
  }

  /** Counts a request among the client's requests being answered until it is. */
  #track(client: V1Client, request: Promise<void>): Promise<void> {
    let running = this.#answering.get(client);
    if (running === undefined) {
      running = new Set();
      this.#answering.set(client, running);
    }
    running.add(request);
    return request.finally(() => running.delete(request));
  }

  /** A request sent again that was handled before: the kept reply, if there is one. */
  #answerAgain(client: V1Client, message: { id: number; s?: number }): void {
    const kept = this.#upstream.get(client)?.replyTo(message.s!);
    if (kept === undefined) {
      writeRefusal(
        client,
        message.id,
        'REPLY_LOST',
        'handled before; its reply is not kept (or was given on this connection already)',
      );
    } else {
      writeAck(client, message.id, kept, kept.b === undefined ? undefined : base64(kept.b));
    }
  }

  async #request(
    client: V1Client,
    message: { id: number; s?: number },
    data: string | Buffer,
    info: MessageInfo,
  ): Promise<void> {
    const { reply, bytes } = await this.#reply(client, data, info);
    if (message.s !== undefined) this.#upstream.get(client)?.keepReply(message.s, reply, bytes);
    writeAck(client, message.id, reply, bytes);
  }

  /** Runs the application's request handler: its reply, or the error that answers instead. */
  async #reply(
    client: V1Client,
    data: string | Buffer,
    info: MessageInfo,
  ): Promise<{ reply: Omit<StoredReply, 's' | 'b'>; bytes?: Buffer }> {
    const { onRequest } = this.#settings;
    if (onRequest === undefined) {
      return {
        reply: { error: { code: 'NOT_FOUND', message: 'the server has no request handler' } },
      };
    }
    let result: unknown;
    try {
      result = await this.#hook('onRequest', () => onRequest(client, data, info));
    } catch (error) {
      this.#node.report(new HandlerError('onRequest', error));
      return { reply: HANDLER_FAILED };
    }
    if (result === LATE) return { reply: HANDLER_FAILED };
    if (result === undefined) return { reply: {} };
    if (!isSendable(result)) {
      this.#node.report(wrongType('onRequest', result, 'a string or bytes'));
      return { reply: HANDLER_FAILED };
    }
    const { bytes, binary } = prepareMessage(result);
    return binary ? { reply: {}, bytes } : { reply: { d: bytes.toString('utf8') } };
  }

  async #join(client: V1Client, id: number, room: string): Promise<void> {
    if (!this.#roomLeft(client, id, room)) return;
    // An empty name is no room the application can name (`wss.to('')` refuses it).
    const named = room !== '' && !room.startsWith(RESERVED_ROOM_PREFIX);
    if (!named || !(await this.#authorized(client, room))) {
      this.#traffic.joinRefused('FORBIDDEN');
      return writeRefusal(client, id, 'FORBIDDEN', `may not join "${room}"`);
    }
    // Checked again: other joins of the client may have finished while this one was authorized.
    if (!this.#roomLeft(client, id, room)) return;
    // Marked first: the join saves the session, and leaving (or failing) unmarks it.
    client.markOwn(room);
    try {
      await this.#membership.join(client, room);
    } catch (error) {
      this.#node.report(error);
      this.#traffic.joinRefused('UNAVAILABLE');
      return writeRefusal(client, id, 'UNAVAILABLE', `could not join "${room}"`);
    }
    writeAck(client, id);
  }

  /** Whether the client may be in one more room; if not, its join is answered `LIMIT`. */
  #roomLeft(client: V1Client, id: number, room: string): boolean {
    const max = this.#settings.maxRoomsPerClient;
    if (client.inRoom(room) || client.ownRooms.length < max) return true;
    this.#node.limited('rooms');
    this.#traffic.joinRefused('LIMIT');
    writeRefusal(client, id, 'LIMIT', `already in ${max} rooms`);
    return false;
  }

  /** Whether `authorizeJoin` lets the client into a room; a throw or a non-boolean is a no. */
  async #authorized(client: V1Client, room: string): Promise<boolean> {
    const { authorizeJoin } = this.#settings;
    if (authorizeJoin === undefined) return false;
    let allowed: unknown;
    try {
      allowed = await this.#hook('authorizeJoin', () => authorizeJoin(client, room));
    } catch (error) {
      this.#node.report(new HandlerError('authorizeJoin', error));
      return false;
    }
    if (allowed === LATE) return false;
    if (typeof allowed === 'boolean') return allowed;
    this.#node.report(wrongType('authorizeJoin', allowed, 'a boolean'));
    return false;
  }

  /**
   * Calls an application hook within `hookTimeoutMs`: what it returned, awaited, or `LATE` (emitted
   * as a `HandlerError`) once it took longer; what it settles to later is ignored.
   */
  async #hook(name: string, call: () => unknown): Promise<unknown> {
    const ms = this.#settings.hookTimeoutMs;
    const result = await inTime(call(), ms);
    if (result === LATE) this.#node.report(new HandlerError(name, `no answer within ${ms} ms`));
    return result;
  }

  async #leave(client: V1Client, id: number, room: string): Promise<void> {
    await this.#membership.leave(client, room).catch((error) => this.#node.report(error));
    writeAck(client, id);
  }

  /** Decodes a frame; a malformed one closes the connection with 1007 and yields `undefined`. */
  #decode(
    target: WebSocket | V1Client,
    data: Buffer,
    isBinary: boolean,
  ): { message: ClientMessage; binary?: Buffer } | undefined {
    try {
      const { message, binary } = decodeClientFrame(isBinary ? data : data.toString('utf8'));
      if (binary === undefined) return { message };
      const { buffer, byteOffset, byteLength } = binary;
      return { message, binary: Buffer.from(buffer, byteOffset, byteLength) };
    } catch (error) {
      if (!(error instanceof ProtocolError)) throw error;
      this.#violation(target, CloseCode.InvalidPayload, error.message);
      return undefined;
    }
  }

  /** Closes a connection that broke the protocol, and logs why. */
  #violation(target: WebSocket | V1Client, code: CloseCode, reason: string): void {
    close(target, code, reason);
    const fields = { client: 'id' in target ? target.id : undefined, reason };
    this.#logViolation(code, fields);
  }
}

/** A room of a resume, rejoined: what the welcome says of it, and what it replays after it. */
interface Rejoined {
  room: string;
  state: WelcomeRoom;
  replay: Outgoing[];
}

/** The answer to an operation over `maxInFlightPerClient`. */
const BUSY = {
  error: { code: 'BUSY', message: 'too many operations waiting for their ack' },
} as const satisfies Omit<StoredReply, 's'>;

/** The answer to a request whose handler threw or returned what cannot be sent. */
const HANDLER_FAILED = {
  error: { code: 'HANDLER_FAILED', message: 'the request handler failed' },
} as const satisfies Omit<StoredReply, 's'>;

/**
 * How long before `helloTimeoutMs` a resume's history reads give up (a quarter of it, if less): the
 * welcome, with its replays, is written in that time.
 */
const WELCOME_MARGIN_MS = 1000;
/** Pings a `wscale.v1` connection may send before its hello; one more closes it (1008). */
const MAX_PINGS_BEFORE_HELLO = 8;

/** How long a `rcv` waits to cover every frame a client sends meanwhile. */
const RECEIPT_DELAY_MS = 100;

/** How long a resume waits for a live node to let go of the session. */
const HANDOVER_MS = 250;
/** How long the last save of a closed connection waits for its requests' replies. */
const REPLY_WAIT_MS = 2000;

/** Closes a connection; the reason is cut to fit a close frame, whatever it quotes. */
function close(target: WebSocket | V1Client, code: number, reason: string): void {
  if (target instanceof WebSocket) target.close(code, closeReason(reason));
  else target.shut(code, reason);
}

/** The failure of a hook that returned a value of the wrong type. */
function wrongType(hook: string, value: unknown, expected: string): HandlerError {
  return new HandlerError(hook, new TypeError(`it returned ${typeName(value)}, not ${expected}`));
}

function isSendable(value: unknown): value is Sendable {
  return typeof value === 'string' || value instanceof ArrayBuffer || ArrayBuffer.isView(value);
}

function base64(text: string): Buffer {
  return Buffer.from(text, 'base64');
}

/**
 * Where a room the server joined the session to between connections starts (`record.at`): its
 * replay begins there, whatever the client says of an earlier time it was in it (it left
 * meanwhile), unless the client says it got past that (a connection since delivered more).
 */
function joinedWhileAway(
  session: OpenedSession,
  told: { o: number; e: string } | undefined,
  room: string,
): { o: number; e: string } | undefined {
  const at = session.record?.at?.[room];
  return at !== undefined && !(told?.e === at.e && told.o >= at.o) ? at : undefined;
}

/**
 * A room of a connection closed at once, in its welcome: where the client is in it, which it keeps
 * (the next resume replays from there), or why it has no place there.
 */
function keptAt(
  seen: { o: number; e: string } | undefined,
  noPosition: 'no-position' | 'no-history',
): WelcomeRoom {
  return seen === undefined
    ? { recovered: false, reason: noPosition }
    : { recovered: true, o: seen.o, e: seen.e };
}

/**
 * Whether a connection still opening is closing or closed: then it reads on (it was paused for its
 * `hello`), or the answer to its close would never arrive.
 */
function closing(ws: WebSocket): boolean {
  if (ws.readyState === WebSocket.OPEN) return false;
  ws.resume();
  return true;
}
