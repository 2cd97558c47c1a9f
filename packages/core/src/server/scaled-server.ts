import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { type WebSocket, WebSocketServer } from 'ws';
import { BaseBroker } from '../adapters/base-broker.js';
import { MemoryBroker } from '../adapters/memory/memory-broker.js';
import { MemoryStateStore } from '../adapters/memory/memory-state-store.js';
import type { Broker, BrokerStatus, History, StateStore } from '../contracts.js';
import {
  HandlerError,
  InvalidOptionError,
  LimitExceededError,
  ServerClosedError,
  UpgradeRejectedError,
  WscaleError,
} from '../errors.js';
import {
  BusFlag,
  type BusFrame,
  type BusHeader,
  BusKind,
  type DirectOp,
} from '../mesh/bus-codec.js';
import { DirectRouter } from '../mesh/direct-router.js';
import { type MeshAnswers, NodeMesh } from '../mesh/node-mesh.js';
import {
  type HealthOptions,
  type HealthReport,
  probeHistories,
  probeStateStore,
} from '../ops/health.js';
import { NodeLog } from '../ops/logger.js';
import { OutKind, Traffic } from '../ops/traffic.js';
import { PresenceService } from '../presence/presence-service.js';
import type {
  PresenceList,
  PresenceQuery,
  PresenceRule,
  PresenceStats,
} from '../presence/presence-types.js';
import { CloseCode } from '../protocol/close-codes.js';
import { FrameDeflater, offersForSharedWindow } from '../protocol/deflate.js';
import { isInbox, PROTOCOL } from '../protocol/messages.js';
import { Outgoing } from '../protocol/outgoing.js';
import type { Sendable, SendOptions } from '../protocol/payload.js';
import { RoomRegistry } from '../rooms/room-registry.js';
import { SessionTokens } from '../sessions/session-token.js';
import { Sessions } from '../sessions/sessions.js';
import { type AnyClient, Client, type ClientHost } from '../transport/client.js';
import { pathOf, refuse } from '../transport/upgrade-response.js';
import { SafeEmitter } from '../util/safe-emitter.js';
import { Membership } from '../v1/membership.js';
import { V1Endpoint, type V1Node } from '../v1/v1-endpoint.js';
import { BroadcastOperator } from './broadcast.js';
import type { ResolvedOptions, ServerOptions } from './options.js';
import {
  broadcastPublication,
  directPublication,
  historyLookup,
  remoteClient,
  roomGroups,
} from './publication.js';
import { resolveOptions } from './resolve-options.js';
import type {
  ClientInfo,
  LimitCounters,
  NodeStats,
  QueryOptions,
  RemoteClient,
  ServerEvents,
  ServerStats,
} from './server-types.js';

/**
 * A WebSocket server that is one node of a cluster. Clients connect to any node; a broadcast to a
 * room reaches its members on every node, and a message to one client finds the node that holds
 * it. Clients speaking `wscale.v1` get sessions that survive their node. Wraps `ws`.
 *
 * @example
 * ```ts
 * const wss = new ScaledWebSocketServer({ port: 8080, broker });
 * // Every client comes in here: new, raw, or a `wscale.v1` session resumed on this node.
 * wss.on('connection', (client) => {
 *   client.on('message', (text) => wss.to('lobby').send(text));
 *   if (!client.resumed) void client.join('lobby'); // a resumed client is back in its rooms
 * });
 * await wss.ready();
 * ```
 */
export class ScaledWebSocketServer<
  Identity = unknown,
  Data extends object = Record<string, unknown>,
> extends SafeEmitter<ServerEvents<Identity, Data>> {
  /** This node's id. */
  readonly nodeId: string;
  readonly #options: ResolvedOptions<Identity>;
  readonly #broker: Broker;
  readonly #ownsBroker: boolean;
  readonly #store: StateStore;
  readonly #ownedStore: StateStore | undefined;
  readonly #sessions: Sessions;
  readonly #historyOf: (room: string) => History | undefined;
  readonly #wss: WebSocketServer;
  readonly #http: Server | undefined;
  readonly #attached: Server | undefined;
  readonly #mesh: NodeMesh;
  readonly #router: DirectRouter;
  readonly #rooms: RoomRegistry<AnyClient>;
  readonly #membership: Membership;
  readonly #v1: V1Endpoint;
  /** Presence, when some rooms keep it. */
  readonly #presence: PresenceService | undefined;
  readonly #clients = new Map<string, Client<Identity, Data>>();
  readonly #corked: Duplex[] = [];
  readonly #started: Promise<void>;
  readonly #stats = { dropped: 0, slowConsumersClosed: 0 };
  readonly #traffic = new Traffic();
  readonly #log: NodeLog;
  readonly #limited: LimitCounters = {
    rooms: 0,
    inFlight: 0,
    rate: 0,
    connections: 0,
    origins: 0,
    authenticateTimeouts: 0,
    sessionData: 0,
    replay: 0,
  };
  /** Upgrades waiting for `authenticate`: connections too, for `maxConnections`. */
  #authenticating = 0;
  /** Set while an `error` is being emitted: an `error` listener that throws is not re-emitted. */
  #reporting = false;
  readonly #host: ClientHost;
  readonly #timers: NodeJS.Timeout[] = [];
  /** Last saves of closed connections, which a drain waits for. */
  readonly #finalSaves = new Set<Promise<void>>();
  #closing: Promise<void> | undefined;
  /** `ready()` resolved. */
  #up = false;

  constructor(options: ServerOptions<Identity>) {
    super();
    this.#options = resolveOptions(options, newId);
    this.nodeId = this.#options.nodeId;
    this.#log = new NodeLog(options.logger, this.nodeId);
    this.#ownsBroker = options.broker === undefined;
    this.#broker = options.broker ?? new MemoryBroker();
    this.#ownedStore = options.stateStore === undefined ? new MemoryStateStore() : undefined;
    this.#store = options.stateStore ?? this.#ownedStore!;
    this.#sessions = new Sessions(
      this.#store,
      new SessionTokens(options.sessionSecret ?? randomBytes(32).toString('base64url')),
      this.#options.topicPrefix,
      (error) => this.#report(error),
      this.nodeId,
    );
    this.#historyOf = historyLookup(this.#options.history, this.#options.directHistory);
    this.#wss = new WebSocketServer({
      noServer: true,
      clientTracking: false,
      // Every socket shares a node's compressed frames: no context may carry over on our side.
      perMessageDeflate: this.#options.perMessageDeflate !== undefined && {
        serverNoContextTakeover: true,
      },
      maxPayload: this.#options.maxPayload,
      handleProtocols: (protocols) => (protocols.has(PROTOCOL) ? PROTOCOL : false),
    });
    this.#host = this.#clientHost();
    this.#mesh = new NodeMesh(
      this.#broker,
      this.nodeId,
      this.#options.topicPrefix,
      { heartbeatMs: this.#options.nodeHeartbeatMs, timeoutMs: this.#options.nodeTimeoutMs },
      {
        deliver: (frame) => this.#onRemote(frame),
        answer: (type, argument) => this.#answer(type, argument),
        nodeUp: (nodeId) => {
          this.#log.write('info', 'node up', { peer: nodeId });
          this.#router.nodeUp(nodeId);
          this.#presence?.nodeUp(nodeId);
          this.emit('nodeUp', nodeId);
        },
        nodeDown: (nodeId) => {
          this.#log.write('warn', 'node down', { peer: nodeId });
          this.#router.nodeDown(nodeId);
          this.#presence?.nodeDown(nodeId);
          this.emit('nodeDown', nodeId);
        },
        error: (error) => this.#report(error),
      },
    );
    this.#router = this.#directRouter();
    this.#rooms = new RoomRegistry({
      // A session's direct messages come by the direct path, not on a room topic.
      subscribe: (room, deliver) =>
        isInbox(room)
          ? Promise.resolve(unsubscribed)
          : this.#mesh.subscribeRoom(room, (frame) => deliver(messageOf(frame))),
      historyOf: this.#historyOf,
      error: (error) => this.#report(error),
    });
    this.#presence = this.#presenceService();
    this.#membership = new Membership(this.#rooms, this.#presence, this.#clients, (client) =>
      this.#save(client),
    );
    this.#v1 = new V1Endpoint({
      node: this.#v1Node(),
      settings: this.#options,
      sessions: this.#sessions,
      membership: this.#membership,
      presence: this.#presence,
      traffic: this.#traffic,
      log: this.#log,
    });
    this.#broker.on('status', this.#onBrokerStatus);

    if (options.port !== undefined) {
      this.#http = createServer((_request, response) => {
        response.writeHead(426, { 'content-type': 'text/plain' }).end('Upgrade Required');
      });
      this.#http.on('upgrade', this.#onUpgrade);
    } else if (options.server !== undefined) {
      this.#attached = options.server as Server;
      this.#attached.on('upgrade', this.#onUpgrade);
    }
    this.#started = this.#start();
    this.#started.catch((error) => this.#report(error));
  }

  /** Resolves when the node listens and is part of the cluster; rejects if it could not start. */
  ready(): Promise<void> {
    return this.#started;
  }

  /** The address of the HTTP server this node listens on (with `port` or `server`). */
  address(): AddressInfo | null {
    const address = (this.#http ?? this.#attached)?.address();
    return typeof address === 'object' ? (address ?? null) : null;
  }

  /** Clients connected to this node, by id. */
  get clients(): ReadonlyMap<string, Client<Identity, Data>> {
    return this.#clients;
  }

  /** Ids of the other nodes currently alive. */
  get nodes(): string[] {
    return this.#mesh.nodes;
  }

  /**
   * The broker's connection state now. The `brokerStatus` event reports changes only: read this
   * first to start a gauge or a log from the current state.
   */
  get brokerStatus(): BrokerStatus {
    return this.#broker.status;
  }

  /** Counters of this node: gauges (connections, rooms) and totals since it started. */
  get stats(): ServerStats {
    let subscriptions = 0;
    for (const client of this.#clients.values()) {
      for (const room of client.roomList) if (!isInbox(room)) subscriptions++;
    }
    return {
      connections: this.#clients.size,
      ...this.#stats,
      limited: { ...this.#limited },
      rooms: this.#roomNames().length,
      subscriptions,
      ...this.#traffic.snapshot(),
      brokerQueue: this.#broker instanceof BaseBroker ? this.#broker.queued : 0,
      compressed: this.#host.deflater?.compressed ?? 0,
    };
  }

  /**
   * Whether this node can take clients, and the state of what it depends on. The state store and
   * each history store are probed with a read that must answer within `timeoutMs`.
   */
  async health(options?: HealthOptions): Promise<HealthReport> {
    // The node's own state as it is when asked; the probes answer a moment later.
    const http = this.#http ?? this.#attached;
    const listening = this.#up && (http === undefined || http.listening);
    const draining = this.#closing !== undefined;
    const ms = options?.timeoutMs ?? 1000;
    const probe = `${this.#options.topicPrefix}health`;
    const histories = this.#options.history.map((rule) => rule.store);
    if (this.#options.directHistory !== undefined) histories.push(this.#options.directHistory);
    const [stateStore, history] = await Promise.all([
      probeStateStore(this.#store, probe, ms),
      probeHistories(histories, probe, ms),
    ]);
    return {
      ready: listening && !draining,
      listening,
      draining,
      broker: this.#broker.status,
      stateStore,
      history,
      nodes: this.#mesh.nodes,
      connections: this.#clients.size,
    };
  }

  /** Starts a broadcast to the members of a room, on every node. */
  to(...rooms: string[]): BroadcastOperator {
    return new BroadcastOperator(this.#broadcastTarget, [...new Set(rooms)], []);
  }

  /** Starts a broadcast to everyone except some clients, on every node. */
  except(...clientIds: string[]): BroadcastOperator {
    return new BroadcastOperator(this.#broadcastTarget, [], clientIds);
  }

  /** Sends to every client of every node. */
  broadcast(data: Sendable, options?: SendOptions): Promise<void> {
    return this.#broadcast([], [], data, options);
  }

  /** Operations on one client by id, wherever it is connected. */
  client(id: string): RemoteClient {
    return remoteClient(id, (...operation) => this.#direct(...operation));
  }

  /**
   * Every room with members anywhere in the cluster. Nodes that do not answer within the timeout
   * are named in `missing`; their rooms are not included.
   */
  async fetchRooms(options?: QueryOptions): Promise<{ rooms: string[]; missing: string[] }> {
    const { answers, missing } = await this.#ask('rooms', undefined, options);
    const rooms = new Set(this.#roomNames());
    for (const answer of answers.values()) for (const room of answer as string[]) rooms.add(room);
    return { rooms: [...rooms].sort(), missing };
  }

  /**
   * Clients of a room (or every client) anywhere in the cluster, with partial answers: nodes that
   * do not answer within the timeout are named in `missing`.
   */
  async fetchClients(
    room?: string,
    options?: QueryOptions,
  ): Promise<{ clients: ClientInfo[]; missing: string[] }> {
    const { answers, missing } = await this.#ask('clients', room, options);
    const clients = this.#localClients(room);
    for (const answer of answers.values()) clients.push(...(answer as ClientInfo[]));
    return { clients, missing };
  }

  /**
   * Every node's view of itself (counters, broker status, recent resumes), this node's first.
   * Nodes that do not answer within the timeout are named in `missing`.
   */
  async fetchStats(options?: QueryOptions): Promise<{ nodes: NodeStats[]; missing: string[] }> {
    const { answers, missing } = await this.#ask('stats', undefined, options);
    return { nodes: [this.#nodeStats(), ...(answers.values() as Iterable<NodeStats>)], missing };
  }

  #nodeStats(): NodeStats {
    return {
      nodeId: this.nodeId,
      at: Date.now(),
      broker: this.#broker.status,
      stats: this.stats,
      recentResumes: [...this.#traffic.recentResumes],
    };
  }

  /**
   * The members of a presence room, cluster-wide, by user, in user key order (a page of at most
   * `query.limit`, default and most 1000; pass `next` as `after` for the next one). Answered from
   * this node's replicated view, with no round trip: `missing` names live nodes whose entries it
   * does not hold in full right now. Empty for a room that keeps no presence.
   */
  async presence(room: string, query?: PresenceQuery): Promise<PresenceList> {
    if (this.#closing !== undefined) throw new ServerClosedError();
    return (
      this.#presence?.list(room, query) ?? { users: 0, connections: 0, members: [], missing: [] }
    );
  }

  /** How many users and connections a presence room has, cluster-wide: O(1), from counters. */
  presenceStats(room: string): PresenceStats {
    return this.#presence?.stats(room) ?? { users: 0, connections: 0 };
  }

  /**
   * Completes an upgrade the application received itself (with `noServer`, or from a framework
   * that owns the `upgrade` event). Runs `authenticate` first; a refusal answers with an HTTP
   * status and no WebSocket is created.
   */
  handleUpgrade(request: IncomingMessage, socket: Duplex, head: Buffer): void {
    this.#upgrade(request, socket, head).catch((error) => {
      // Nothing an upgrade does should throw; if it does, one socket goes, never the process.
      this.#report(error);
      socket.destroy();
    });
  }

  /**
   * Drains the node: stops accepting, saves the sessions of its `wscale.v1` clients, closes every
   * client with 1012 so it reconnects elsewhere, leaves the cluster, and resolves when all of that
   * is done. A rolling deploy that closes nodes this way loses nothing.
   */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  /** @internal */
  handlerFailed(error: unknown): void {
    this.#report(new HandlerError('server event', error));
  }

  async #start(): Promise<void> {
    // Presence listens first: the nodes that hear this one's hello ask it for its entries at once.
    await this.#presence?.start();
    await this.#mesh.start();
    if (this.#options.heartbeatIntervalMs > 0) {
      this.#every(this.#options.heartbeatIntervalMs, () => {
        for (const client of this.#clients.values()) client.heartbeat();
      });
    }
    // Connected sessions are written again well within their time to live.
    this.#every(Math.max(1000, this.#sessions.ttlMs / 3), () => {
      for (const client of this.#clients.values()) if (client.v1) this.#save(client);
    });
    // What clients sent is recorded in batches: a node that dies rewinds at most this far.
    this.#every(this.#options.upstreamSaveMs, () => {
      for (const client of this.#clients.values()) {
        if (client.v1 && this.#v1.upstreamDirty(client)) this.#save(client);
      }
    });
    const http = this.#http;
    if (http !== undefined) {
      await new Promise<void>((resolve, reject) => {
        http.once('error', reject);
        http.listen(this.#options.port, this.#options.host, () => {
          http.off('error', reject);
          resolve();
        });
      });
    }
    this.#up = true;
    this.#log.write('info', 'node started', { port: this.address()?.port });
  }

  #every(ms: number, run: () => void): void {
    const timer = setInterval(run, ms);
    timer.unref();
    this.#timers.push(timer);
  }

  async #close(): Promise<void> {
    await this.#started.catch(() => undefined);
    this.#log.write('info', 'node draining', { connections: this.#clients.size });
    // Its clients resume elsewhere within the grace period: presence says nothing of the drain.
    await this.#presence?.stop();
    for (const timer of this.#timers) clearInterval(timer);
    const clients = [...this.#clients.values()];
    // Listen before saving: a client that goes away while its session is saved must count too.
    const closed = clients.map(
      (client) => new Promise<void>((resolve) => client.once('close', () => resolve())),
    );
    await Promise.race([
      Promise.all(clients.filter((client) => client.v1).map((client) => this.#save(client))),
      sleep(this.#options.closeTimeoutMs),
    ]);
    this.#v1.closeOpening(CloseCode.ServiceRestart, 'draining');
    for (const client of clients) client.close(CloseCode.ServiceRestart, 'draining');
    const timer = setTimeout(() => {
      for (const client of clients) client.terminate();
      this.#v1.terminateOpening();
    }, this.#options.closeTimeoutMs);
    await Promise.all(closed);
    clearTimeout(timer);
    await Promise.race([Promise.all(this.#finalSaves), sleep(this.#options.closeTimeoutMs)]);
    await this.#mesh.stop();
    this.#broker.off('status', this.#onBrokerStatus);
    if (this.#ownsBroker) await this.#broker.close();
    await this.#ownedStore?.close();
    this.#wss.close();
    // Upgrades were answered 503 all along the drain; only now does the server stop taking them.
    this.#http?.off('upgrade', this.#onUpgrade);
    this.#attached?.off('upgrade', this.#onUpgrade);
    const http = this.#http;
    if (http?.listening) await new Promise((resolve) => http.close(resolve));
    this.#log.write('info', 'node stopped');
  }

  readonly #onUpgrade = (request: IncomingMessage, socket: Duplex, head: Buffer): void => {
    const path = this.#options.path;
    if (path !== undefined && pathOf(request) !== path) {
      // Someone else may own this path on a shared server; answer only when nobody would.
      if (this.#attached === undefined || this.#attached.listenerCount('upgrade') === 1) {
        refuse(socket, 400);
      }
      return;
    }
    this.handleUpgrade(request, socket, head);
  };

  async #upgrade(request: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    socket.on('error', ignore);
    const refusal = this.#refusal(request);
    if (refusal !== undefined) return refuse(socket, refusal);
    let identity: Identity = true as Identity;
    if (this.#options.authenticate !== undefined) {
      this.#authenticating++;
      const outcome = await this.#authenticate(request).finally(() => this.#authenticating--);
      if (typeof outcome === 'number') return refuse(socket, outcome);
      identity = outcome.identity;
      if (this.#closing !== undefined || socket.destroyed) return refuse(socket, 503);
    }
    // One compressed frame serves every socket: no client may narrow the window it is made with.
    const offers = request.headers['sec-websocket-extensions'];
    if (this.#options.perMessageDeflate !== undefined && offers !== undefined) {
      request.headers['sec-websocket-extensions'] = offersForSharedWindow(offers);
    }
    this.#wss.handleUpgrade(request, socket, head, (ws) => {
      socket.off('error', ignore);
      // From here to its end, a socket's errors (a bad frame, a reset) come as `error` events.
      ws.on('error', this.#socketEvents.error);
      if (ws.protocol === PROTOCOL) {
        this.#v1.accept(ws, socket, request, identity);
        return;
      }
      const client = this.#register(this.#router.newClientId(), ws, socket, identity, false);
      this.#listen(ws);
      this.emit('connection', client, request);
    });
  }

  /** The HTTP status an upgrade is refused with before `authenticate`, if it is. */
  #refusal(request: IncomingMessage): number | undefined {
    if (this.#closing !== undefined) return 503;
    const origins = this.#options.allowedOrigins;
    const origin = request.headers.origin;
    if (origins !== undefined && origin !== undefined && !origins.includes(origin)) {
      this.#limit('origins', { origin });
      return 403;
    }
    const connections = this.#clients.size + this.#v1.opening + this.#authenticating;
    if (connections >= this.#options.maxConnections) {
      this.#limit('connections', { connections });
      return 503;
    }
    return undefined;
  }

  /** Runs `authenticate` within its time: the identity, or the HTTP status to refuse with. */
  async #authenticate(request: IncomingMessage): Promise<{ identity: Identity } | number> {
    const ms = this.#options.authenticateTimeoutMs;
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<'late'>((resolve) => {
      timer = setTimeout(() => resolve('late'), ms);
    });
    try {
      const result = await Promise.race([this.#options.authenticate!(request), late]);
      if (result === 'late') {
        this.#limit('authenticateTimeouts');
        this.#report(new HandlerError('authenticate', `no answer within ${ms} ms`));
        return 503;
      }
      if (result === false || result === null || result === undefined) return 401;
      return { identity: result as Identity };
    } catch (error) {
      if (error instanceof UpgradeRejectedError) return error.status;
      this.#report(new HandlerError('authenticate', error));
      return 500;
    } finally {
      clearTimeout(timer);
    }
  }

  #register(
    id: string,
    ws: WebSocket,
    socket: Duplex,
    identity: Identity,
    v1: boolean,
    data?: Data,
  ): Client<Identity, Data> {
    const client = new Client<Identity, Data>(id, identity, ws, socket, this.#host, v1, data);
    this.#clients.set(id, client);
    // One set of handler functions for every socket (not four closures per client): the socket
    // is `this` in them, and names its client.
    (ws as TaggedSocket)[CLIENT] = client;
    ws.on('pong', this.#socketEvents.pong).on('close', this.#socketEvents.close);
    return client;
  }

  /** Starts taking the frames of a registered client's socket. */
  #listen(ws: WebSocket): void {
    ws.on('message', this.#socketEvents.message);
  }

  /** One frame from a client, within its rate limit. */
  #onFrame(client: AnyClient, frame: Buffer, isBinary: boolean): void {
    if (!client.open) return;
    client.markAlive();
    this.#traffic.messagesIn++;
    this.#traffic.bytesIn += frame.length;
    if (!client.takeOp()) {
      this.#limit('rate', { client: client.id });
      client.close(CloseCode.PolicyViolation, 'rate limit');
      return;
    }
    if (client.v1) this.#v1.receive(client, frame, isBinary);
    else client.receive(isBinary ? frame : frame.toString('utf8'), isBinary);
  }

  readonly #socketEvents = ((server) => ({
    message(this: TaggedSocket, frame: Buffer, isBinary: boolean) {
      server.#onFrame(this[CLIENT]!, frame, isBinary);
    },
    pong(this: TaggedSocket) {
      this[CLIENT]!.markAlive();
    },
    error(this: TaggedSocket, error: Error) {
      // A socket still opening has no client yet: `ws` closes it, and there is nobody to tell.
      this[CLIENT]?.emit('error', error);
    },
    close(this: TaggedSocket, code: number, reason: Buffer) {
      const client = this[CLIENT]!;
      if (client.v1) server.#finalSave(client);
      server.#presence?.closed(client, client.roomList, code);
      if (server.#clients.get(client.id) === client) server.#clients.delete(client.id);
      server.#rooms.leaveAll(client).catch((error) => server.#report(error));
      client.emit('close', code, reason.toString('utf8'));
      client.removeAllListeners();
    },
  }))(this);

  /** The node as the `wscale.v1` endpoint sees it. */
  #v1Node(): V1Node {
    return {
      nodeId: this.nodeId,
      alive: (nodeId) => nodeId === this.nodeId || this.#mesh.isAlive(nodeId),
      kick: (sessionId) => {
        this.#release(sessionId, CloseCode.SessionTakenOver, TAKEN_OVER);
        // Not awaited: the new connection already holds the session in the store, and a broker
        // that is down must not hold its welcome back.
        this.#router
          .claim(sessionId, CloseCode.SessionTakenOver, TAKEN_OVER)
          .catch((error) => this.#report(error));
      },
      register: (session, ws, socket, identity) => {
        const data = session.record?.data as Data | undefined;
        const client = this.#register(session.id, ws, socket, identity as Identity, true, data);
        client.conn = session.conn;
        const arrived = this.#router.arrived(session.id);
        // Operations that came while the session was being taken over wait behind its welcome.
        if (arrived.length > 0) client.hold();
        for (const frame of arrived) this.#applyRemote(client, frame);
        return client;
      },
      listen: (ws) => this.#listen(ws),
      frame: (client, frame, isBinary) => this.#onFrame(client, frame, isBinary),
      connected: (client, request) =>
        this.emit('connection', client as Client<Identity, Data>, request),
      save: (client) => this.#save(client),
      limited: (limit) => this.#limit(limit),
      report: (error) => this.#report(error),
    };
  }

  #presenceService(): PresenceService | undefined {
    const { presence, presenceGraceMs } = this.#options;
    if (presence.length === 0) return undefined;
    if (presenceGraceMs > this.#sessions.ttlMs) {
      throw new InvalidOptionError("presenceGraceMs must not exceed the state store's ttlMs");
    }
    return new PresenceService({
      broker: this.#broker,
      nodeId: this.nodeId,
      topicPrefix: this.#options.topicPrefix,
      rules: presence as PresenceRule<AnyClient>[],
      graceMs: presenceGraceMs,
      tickMs: this.#options.nodeHeartbeatMs,
      owner: (client) => this.#options.sessionOwner(client.identity as Identity),
      alive: (nodeId) => this.#mesh.isAlive(nodeId),
      changed: (room, change) => this.emit('presence', room, change),
      report: (error) => this.#report(error),
    });
  }

  #save(client: AnyClient): Promise<void> {
    const conn = client.conn;
    // A client that is gone was saved for the last time when it closed.
    if (conn === undefined || this.#clients.get(client.id) !== client) return Promise.resolve();
    return this.#sessions.save(client.id, conn, () => this.#record(client, [...client.roomList]));
  }

  /**
   * The last save of a connection that closed while this node lives: its rooms as they were, and
   * `live: false`, which tells a resume that everything handed on was recorded.
   */
  #finalSave(client: AnyClient): void {
    const conn = client.conn;
    this.#v1.forget(client);
    if (conn === undefined) return;
    const closed = { ...this.#record(client, [...client.roomList]), live: false };
    // With the replies of the requests still running, once they are kept (bounded): a resume
    // gets them.
    const saved = this.#v1.answered(client).then(() =>
      this.#sessions.save(client.id, conn, () => ({
        ...closed,
        ...this.#v1.upstreamRecord(client),
      })),
    );
    this.#finalSaves.add(saved);
    void saved.finally(() => this.#finalSaves.delete(saved));
  }

  #record(client: AnyClient, rooms: string[]) {
    return {
      owner: this.#options.sessionOwner(client.identity as Identity),
      data: this.#sessionData(client),
      rooms,
      own: [...client.ownRooms],
      ...this.#v1.upstreamRecord(client),
    };
  }

  /** The client's `data` to save, or `undefined` to keep what was saved: it is over its limit. */
  #sessionData(client: AnyClient): object | undefined {
    const bytes = Buffer.byteLength(JSON.stringify(client.data));
    if (bytes <= this.#options.maxSessionDataBytes) return client.data;
    this.#limit('sessionData', { client: client.id });
    this.#report(
      new LimitExceededError(
        `client ${client.id}: data is ${bytes} bytes, over maxSessionDataBytes ` +
          `(${this.#options.maxSessionDataBytes}); its session keeps the data saved before`,
      ),
    );
    return undefined;
  }

  #clientHost(): ClientHost {
    const deflate = this.#options.perMessageDeflate;
    return {
      join: async (client, room) => void (await this.#membership.join(client, room)),
      leave: (client, room) => this.#membership.leave(client, room),
      cork: (socket) => {
        if (socket.writableCorked > 0) {
          // A socket holding a lot already goes out now: what one tick holds stays bounded.
          if (socket.writableLength >= CORK_LIMIT) socket.uncork();
          return;
        }
        socket.cork();
        if (this.#corked.push(socket) === 1) process.nextTick(this.#uncork);
      },
      slowConsumer: (client, message) => {
        if (message !== undefined && (message.volatile || this.#options.slowConsumer === 'drop')) {
          client.countDropped(message);
          this.#stats.dropped++;
          if (message.volatile) this.#traffic.droppedVolatile++;
          return;
        }
        if (!client.open) return;
        this.#stats.slowConsumersClosed++;
        this.#log.write('warn', 'slow consumer closed 1013', { client: client.id });
        // Nothing more is written once it is closing; ws ends it if the close frame goes unread.
        client.close(CloseCode.TryAgainLater, 'send buffer full');
      },
      handlerFailed: (error) => this.#report(new HandlerError('client event', error)),
      dataChanged: (client) => this.#save(client),
      maxBufferedBytes: this.#options.maxBufferedBytes,
      maxOpsPerSecond: this.#options.maxOpsPerSecond,
      traffic: this.#traffic,
      deflater: deflate && new FrameDeflater(deflate.threshold, deflate.level),
    };
  }

  readonly #uncork = (): void => {
    for (const socket of this.#corked.splice(0)) socket.uncork();
  };

  readonly #broadcastTarget = {
    broadcast: (
      rooms: readonly string[],
      except: readonly string[],
      data: Sendable,
      options?: SendOptions,
    ) => this.#broadcast(rooms, except, data, options),
  };

  async #broadcast(
    rooms: readonly string[],
    except: readonly string[],
    data: Sendable,
    options?: SendOptions,
  ): Promise<void> {
    if (this.#closing !== undefined) throw new ServerClosedError();
    const groups = roomGroups(rooms, this.#historyOf);
    await Promise.all(
      groups.map(async (group) => {
        const { message, header } = await broadcastPublication(
          this.nodeId,
          group,
          except,
          data,
          options,
          this.#historyOf,
        );
        this.#deliverLocal(group, message);
        const room = group.length === 1 ? group[0] : undefined;
        await this.#mesh.broadcast(room, header, message.bytes, message.busFlags);
      }),
    );
  }

  /** Writes a broadcast to the local clients it is for: the fan-out hot path. */
  #deliverLocal(rooms: readonly string[] | undefined, message: Outgoing): void {
    if (rooms === undefined || rooms.length === 0) {
      for (const client of this.#clients.values()) client.deliver(message);
    } else if (rooms.length === 1) {
      this.#rooms.deliver(rooms[0]!, message);
    } else {
      const once = new Set<AnyClient>();
      for (const room of rooms) for (const client of this.#rooms.members(room)) once.add(client);
      for (const client of once) client.deliver(message);
    }
  }

  async #direct(id: string, op: DirectOp, argument: unknown, message?: Outgoing): Promise<void> {
    if (this.#closing !== undefined) throw new ServerClosedError();
    const { header, message: kept } = await directPublication(
      this.nodeId,
      id,
      op,
      argument,
      message,
      this.#options.directHistory,
    );
    message = kept;
    const local = this.#clients.get(id);
    if (local !== undefined) return this.#applyDirect(local, header, message);
    await this.#router.send(header, message?.bytes ?? EMPTY, message?.busFlags ?? 0);
  }

  #directRouter(): DirectRouter {
    return new DirectRouter({
      nodeId: this.nodeId,
      alive: (nodeId) => this.#mesh.isAlive(nodeId),
      publish: (kind, node, header, payload, flags) =>
        this.#mesh.send(kind, node, header, payload, flags),
      apply: (frame) => {
        const client = this.#clients.get(frame.header.c!);
        if (client === undefined) return false;
        this.#applyRemote(client, frame);
        return true;
      },
      release: (id, code, reason) => this.#release(id, code, reason),
      error: (error) => this.#report(error),
    });
  }

  #applyRemote(client: AnyClient, frame: BusFrame): void {
    this.#applyDirect(client, frame.header, messageOf(frame)).catch((error) => this.#report(error));
  }

  /** Closes the local connection of a session taken over elsewhere; from now on it is not here. */
  #release(id: string, code: number, reason: string): boolean {
    const older = this.#clients.get(id);
    if (older === undefined) return false;
    this.#clients.delete(id);
    older.close(code, reason);
    return true;
  }

  async #applyDirect(client: AnyClient, header: BusHeader, message?: Outgoing): Promise<void> {
    switch (header.o) {
      case 'send':
        if (message === undefined) return;
        if (message.room === undefined) {
          client.deliver(message, OutKind.Direct);
        } else if (client.inRoom(message.room)) {
          // A kept direct message goes through the session's stream: in order, once.
          this.#rooms.deliver(message.room, message);
        }
        // Else the session is still rejoining its stream, whose replay from the history (where
        // the message already is) brings it: writing it here too would send it twice.
        return;
      case 'join':
        return void (await this.#membership.join(client, String(header.a)));
      case 'leave':
        return this.#membership.leave(client, String(header.a));
      case 'close': {
        const [code, reason] = Array.isArray(header.a) ? header.a : [];
        client.close(Number(code ?? CloseCode.Normal), String(reason ?? ''));
        return;
      }
    }
  }

  #onRemote(frame: BusFrame): void {
    if (frame.kind === BusKind.Broadcast) this.#deliverLocal(frame.header.r, messageOf(frame));
    else this.#router.receive(frame);
  }

  #answer(type: string, argument: unknown): unknown {
    if (type === 'rooms') return this.#roomNames();
    if (type === 'clients') return this.#localClients(argument as string | undefined);
    if (type === 'stats') return this.#nodeStats();
    return undefined;
  }

  #localClients(room: string | undefined): ClientInfo[] {
    const clients = room === undefined ? this.#clients.values() : this.#rooms.members(room);
    return [...clients].map((client) => ({
      id: client.id,
      nodeId: this.nodeId,
      rooms: [...client.rooms],
    }));
  }

  /** The application's rooms with local members (not the sessions' direct-message streams). */
  #roomNames(): string[] {
    return this.#rooms.names().filter((room) => !isInbox(room));
  }

  async #ask(type: string, argument: unknown, options?: QueryOptions): Promise<MeshAnswers> {
    if (this.#closing !== undefined) throw new ServerClosedError();
    const started = performance.now();
    const ms = options?.timeoutMs ?? this.#options.requestTimeoutMs;
    const answers = await this.#mesh.request(type, argument, ms);
    this.#traffic.queried(performance.now() - started, answers.missing.length);
    if (answers.missing.length > 0) {
      this.#log.write('warn', `partial answer to ${type}`, { missing: answers.missing });
    }
    return answers;
  }

  /** Counts a limit hit, and logs it (debug: a client over its limit is the client's business). */
  #limit(limit: keyof LimitCounters, fields?: object): void {
    this.#limited[limit]++;
    this.#log.write('debug', `limit hit: ${limit}`, fields);
  }

  readonly #onBrokerStatus = (status: BrokerStatus, error?: Error): void => {
    const fields = { status, error: error?.message };
    this.#log.write(status === 'ready' ? 'info' : 'warn', `broker ${status}`, fields);
    this.emit('brokerStatus', status, error);
  };

  #report(error: unknown): void {
    const reported =
      error instanceof Error ? error : new WscaleError('HANDLER_FAILED', String(error));
    const code = reported instanceof WscaleError ? reported.code : undefined;
    this.#log.write('error', reported.message, { code, err: reported });
    if (this.listenerCount('error') === 0 || this.#reporting) {
      // A logger given took it; else it must not go unseen.
      if (!this.#log.enabled) process.emitWarning(reported);
      return;
    }
    this.#reporting = true;
    try {
      this.emit('error', reported);
    } finally {
      this.#reporting = false;
    }
  }
}

const EMPTY = Buffer.alloc(0);
const TAKEN_OVER = 'session resumed elsewhere';
/** Where a socket keeps its client, for the handlers every socket shares. */
const CLIENT = Symbol('wscale.client');
type TaggedSocket = WebSocket & { [CLIENT]?: AnyClient };
/** Bytes a socket may gather within one tick before they are written anyway. */
const CORK_LIMIT = 64 * 1024;

/** The message a frame from another node carries, ready for local fan-out. */
function messageOf(frame: BusFrame): Outgoing {
  const { header, flags } = frame;
  const room = header.r?.length === 1 ? header.r[0] : undefined;
  return new Outgoing(
    frame.payload,
    (flags & BusFlag.Binary) !== 0,
    (flags & BusFlag.Volatile) !== 0,
    room,
    header.s,
    header.e,
    header.x === undefined ? undefined : new Set(header.x),
  );
}

function newId(): string {
  return randomBytes(12).toString('base64url');
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

function ignore(): void {}

async function unsubscribed(): Promise<void> {}
