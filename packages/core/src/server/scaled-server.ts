import type { Buffer } from 'node:buffer';
import { randomBytes } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { MemoryBroker } from '../adapters/memory/memory-broker.js';
import { MemoryStateStore } from '../adapters/memory/memory-state-store.js';
import type { Broker, BrokerStatus, StateStore } from '../contracts.js';
import { HandlerError, InvalidOptionError, ServerClosedError } from '../errors.js';
import { NodeMesh } from '../mesh/node-mesh.js';
import {
  type DependencyStatus,
  type HealthOptions,
  type HealthReport,
  probeHistories,
  probeStateStore,
} from '../ops/health.js';
import { NodeLog } from '../ops/logger.js';
import type { ClientInfo, NodeStats, ServerStats } from '../ops/node-stats.js';
import { Reporter } from '../ops/reporter.js';
import { Traffic } from '../ops/traffic.js';
import type { PresenceClient } from '../presence/presence-client.js';
import { PresenceService } from '../presence/presence-service.js';
import type {
  PresenceList,
  PresenceQuery,
  PresenceRule,
  PresenceStats,
} from '../presence/presence-types.js';
import { CloseCode } from '../protocol/close-codes.js';
import type { Sendable, SendOptions } from '../protocol/payload.js';
import { SessionTokens } from '../sessions/session-token.js';
import { changeSession, Sessions } from '../sessions/sessions.js';
import type { Client, Connection } from '../transport/client.js';
import { Connections } from '../transport/connections.js';
import { UpgradeGate } from '../transport/upgrade-gate.js';
import { handlersOf, SafeEmitter } from '../util/safe-emitter.js';
import { waitAtMost } from '../util/wait-at-most.js';
import { Membership } from '../v1/membership.js';
import { type BroadcastOperator, broadcastOperator, EVERYONE, uniqueRooms } from './broadcast.js';
import { Delivery } from './delivery.js';
import type { ResolvedOptions, ServerOptions } from './options.js';
import { framePublisher, RemoteClientById } from './publication.js';
import { Queries } from './queries.js';
import { resolveOptions } from './resolve-options.js';
import type { QueryOptions, RemoteClient, ServerEvents } from './server-types.js';

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
  static {
    handlersOf(ScaledWebSocketServer, {
      failed: (server, error) => server.#reporter.report(new HandlerError('server event', error)),
      running: (server, work) => server.#reporter.handlers.track(work),
    });
  }

  /** This node's id. */
  readonly nodeId: string;
  readonly #options: ResolvedOptions<Identity>;
  readonly #broker: Broker;
  readonly #ownsBroker: boolean;
  readonly #store: StateStore;
  readonly #ownedStore: StateStore | undefined;
  readonly #reporter: Reporter;
  /** The clients connected to this node, by id: shared by the parts that must know who is here. */
  readonly #clients = new Map<string, Connection<Identity, Data>>();
  readonly #sessions: Sessions;
  readonly #mesh: NodeMesh;
  /** Presence, when some rooms keep it. */
  readonly #presence: PresenceService | undefined;
  readonly #delivery: Delivery;
  readonly #connections: Connections<Identity, Data>;
  readonly #queries: Queries;
  readonly #gate: UpgradeGate<Identity>;
  readonly #started: Promise<void>;
  readonly #timers: NodeJS.Timeout[] = [];
  #closing: Promise<void> | undefined;
  /** `ready()` resolved. */
  #up = false;
  /** Whether the broker was down or reconnecting since it was last ready. */
  #brokerWasDown = false;

  constructor(options: ServerOptions<Identity>) {
    super();
    const resolved = resolveOptions(options, newId);
    this.#options = resolved;
    this.nodeId = resolved.nodeId;
    this.#reporter = new Reporter(new NodeLog(options.logger, this.nodeId), this);
    const report = this.#reporter.report;
    this.#ownsBroker = options.broker === undefined;
    this.#broker = options.broker ?? new MemoryBroker();
    this.#ownedStore = options.stateStore === undefined ? new MemoryStateStore() : undefined;
    this.#store = options.stateStore ?? this.#ownedStore!;
    this.#sessions = new Sessions(
      this.#store,
      new SessionTokens(options.sessionSecret ?? randomBytes(32).toString('base64url')),
      resolved.topicPrefix,
      report,
      this.nodeId,
    );
    this.#mesh = new NodeMesh(
      this.#broker,
      this.nodeId,
      resolved.topicPrefix,
      { beatMs: resolved.nodeHeartbeatMs, timeoutMs: resolved.nodeTimeoutMs },
      report,
      framePublisher(this.#broker),
    );
    this.#presence = this.#presenceService();
    this.#delivery = new Delivery(
      this.#mesh,
      this.#clients,
      resolved,
      this.#presence,
      this.#reporter,
      this,
      // The connections' saver, made below: only called once clients are.
      {
        saveClosed: (client) => this.#connections.saver.saveClosed(client),
        closing: (id) => this.#connections.saver.closing(id),
        changeSession: (id, change, at) =>
          changeSession(this.#store, resolved.topicPrefix, id, change, at),
        joinNow: (client, room, from) => this.#connections.joinNow(client, room, from),
        leaveNow: (client, room) => this.#connections.leaveNow(client, room),
      },
    );
    const rooms = this.#delivery.rooms;
    // Membership saves through the connections' saver, made next: only called once clients are.
    const membership = new Membership(rooms, this.#presence, this.#clients, (client) =>
      this.#connections.saver.save(client),
    );
    const traffic = new Traffic();
    this.#connections = new Connections(
      this.#clients,
      resolved,
      {
        mesh: this.#mesh,
        sessions: this.#sessions,
        rooms,
        presence: this.#presence,
        membership,
        takeovers: this.#delivery,
        traffic,
        reporter: this.#reporter,
        ids: this.#delivery.router,
      },
      this,
    );
    this.#queries = new Queries(
      this.#mesh,
      this.#broker,
      this.#clients,
      rooms,
      this.#connections,
      traffic,
      this.#reporter,
      resolved.requestTimeoutMs,
    );
    this.#gate = new UpgradeGate(resolved, this.#connections, this.#reporter);
    this.#broker.on('status', this.#onBrokerStatus);
    this.#started = this.#start();
    this.#started.catch(report);
  }

  /**
   * Resolves when the node listens and is part of the cluster; rejects if it could not start, or
   * with `ServerClosedError` once `close()` was called (it will not listen, or no longer does).
   */
  ready(): Promise<void> {
    return this.#started.then(() => {
      if (this.#closing !== undefined) throw new ServerClosedError('the node was closed');
    });
  }

  /** The address of the HTTP server this node listens on (with `port` or `server`). */
  address(): AddressInfo | null {
    return this.#gate.address();
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
    return this.#queries.stats();
  }

  /**
   * Whether this node can take clients, and the state of what it depends on. The state store and
   * each history store are probed with a write (a key of its own, an empty entry in a reserved
   * room) that must be taken within `timeoutMs`.
   */
  async health(options?: HealthOptions): Promise<HealthReport> {
    // The node's own state as it is when asked; the probes answer a moment later.
    const listening = this.#up && this.#gate.listening;
    const draining = this.#closing !== undefined;
    const ms = options?.timeoutMs ?? 1000;
    const probe = `${this.#options.topicPrefix}health`;
    const histories = this.#options.history.map((rule) => rule.store);
    if (this.#options.directHistory !== undefined) histories.push(this.#options.directHistory);
    const [stateStore, history] = await Promise.all([
      // The node's own in-memory store, when none was given: sessions stay with this node.
      this.#ownedStore === undefined
        ? probeStateStore(this.#store, probe, ms)
        : Promise.resolve<DependencyStatus>('none'),
      probeHistories(histories, ms),
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

  /**
   * Starts a broadcast to the members of rooms, on every node; with no room (an empty list spread
   * into it), to nobody. `broadcast()` sends to everyone.
   */
  to(...rooms: string[]): BroadcastOperator {
    return broadcastOperator(this.#delivery, uniqueRooms(rooms), []);
  }

  /** Starts a broadcast to everyone except some clients, on every node. */
  except(...clientIds: string[]): BroadcastOperator {
    return broadcastOperator(this.#delivery, EVERYONE, clientIds);
  }

  /** Sends to every client of every node. */
  broadcast(data: Sendable, options?: SendOptions): Promise<void> {
    return this.#delivery.broadcast([], [], data, options);
  }

  /** Sends a direct operation: one function for every {@link client}, not one per call. */
  readonly #direct: Delivery['direct'] = (id, operation, message) =>
    this.#delivery.direct(id, operation, message);

  /**
   * Operations on one client by id, wherever it is connected. Call them on the object it returns
   * (`wss.client(id).send(data)`): its methods are shared, not bound to it.
   */
  client(id: string): RemoteClient {
    return new RemoteClientById(id, this.#direct);
  }

  /**
   * Every room with members anywhere in the cluster. Nodes that do not answer within the timeout
   * are named in `missing`; their rooms are not included.
   */
  fetchRooms(options?: QueryOptions): Promise<{ rooms: string[]; missing: string[] }> {
    return this.#queries.fetchRooms(options);
  }

  /**
   * Clients of a room (or every client) anywhere in the cluster, with partial answers: nodes that
   * do not answer within the timeout are named in `missing`.
   */
  fetchClients(
    room?: string,
    options?: QueryOptions,
  ): Promise<{ clients: ClientInfo[]; missing: string[] }> {
    return this.#queries.fetchClients(room, options);
  }

  /**
   * Every node's view of itself (counters, broker status, recent resumes), this node's first.
   * Nodes that do not answer within the timeout are named in `missing`.
   */
  fetchStats(options?: QueryOptions): Promise<{ nodes: NodeStats[]; missing: string[] }> {
    return this.#queries.fetchStats(options);
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
    this.#gate.handleUpgrade(request, socket, head);
  }

  /**
   * Drains the node: stops accepting, lets the application's handlers finish what clients sent
   * (the promises its event handlers returned, `onRequest` and `authorizeJoin` calls; each step
   * within `closeTimeoutMs`), saves the sessions of its `wscale.v1` clients, closes every client
   * with 1012 so it reconnects elsewhere, leaves the cluster, and resolves when all of that is
   * done. What `wscale.v1` clients send meanwhile goes to the node they move to. A rolling deploy
   * that closes nodes this way loses nothing.
   */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #start(): Promise<void> {
    // Presence listens first: the nodes that hear this node announce itself ask it for its
    // entries at once.
    await this.#presence?.start();
    await this.#mesh.start(this.#delivery, this.#queries);
    this.#connections.start();
    // Connected sessions are written again well within their time to live.
    this.#every(Math.max(1000, this.#sessions.ttlMs / 3), () => this.#connections.saver.saveAll());
    // What clients sent is recorded in batches: a node that dies rewinds at most this far.
    this.#every(this.#options.upstreamSaveMs, () => this.#connections.saver.saveAll(true));
    await this.#gate.listen();
    this.#up = true;
    this.#reporter.log.write('info', 'node started', { port: this.address()?.port });
  }

  #every(ms: number, run: () => void): void {
    const timer = setInterval(run, ms);
    timer.unref();
    this.#timers.push(timer);
  }

  async #close(): Promise<void> {
    // Upgrades are answered 503 and questions refused from the call on, and what `wscale.v1`
    // clients send is left for the nodes they move to.
    this.#gate.drain();
    this.#queries.drain();
    this.#connections.v1.drain();
    await this.#started.catch(() => undefined);
    const ms = this.#options.closeTimeoutMs;
    const log = this.#reporter.log;
    log.write('info', 'node draining', { connections: this.#clients.size });
    // The application's handlers finish what clients sent before, and may still send: a message
    // taken reaches its room, a request's reply its client. Then sends are refused.
    await waitAtMost(this.#reporter.handlers.settled(), ms);
    this.#delivery.drain();
    // Goodbyes to the other nodes wait for a broker that is up, not for one that is down (they
    // go out if it comes back before the application closes it).
    const goodbye = (done: Promise<void>) =>
      waitAtMost(done, this.#broker.status === 'ready' ? ms : 0);
    // Its clients resume elsewhere within the grace period: presence says nothing of the drain.
    if (this.#presence !== undefined) await goodbye(this.#presence.stop());
    for (const timer of this.#timers) clearInterval(timer);
    await waitAtMost(Promise.all(this.#connections.saver.saveAll()), ms);
    await this.#connections.closeAll(CloseCode.ServiceRestart, 'draining', ms);
    // Resumes under way write their records (one closed before its claim came back, too).
    await waitAtMost(this.#connections.v1.openingsSettled(), ms);
    await waitAtMost(this.#connections.saver.closedSaved(), ms);
    this.#connections.saver.stop();
    // Sends the application started before the drain (a history append, then a publish) go out
    // before the node leaves and its broker may be closed.
    await waitAtMost(this.#reporter.sends.settled(), ms);
    await goodbye(this.#mesh.stop());
    this.#broker.off('status', this.#onBrokerStatus);
    if (this.#ownsBroker) await this.#broker.close();
    await this.#ownedStore?.close();
    // Upgrades were answered 503 all along the drain; only now does the server stop taking them.
    await this.#gate.close();
    log.write('info', 'node stopped');
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
      // The rules' hooks are given the connections, which are the application's clients.
      rules: presence as unknown as PresenceRule<PresenceClient>[],
      graceMs: presenceGraceMs,
      tickMs: this.#options.nodeHeartbeatMs,
      timeoutMs: this.#options.nodeTimeoutMs,
      owner: (client) => {
        // Called as a plain function, as every hook.
        const { sessionOwner } = this.#options;
        return sessionOwner(client.identity as Identity);
      },
      alive: (nodeId) => this.#mesh.isAlive(nodeId),
      changed: (room, change) => this.emit('presence', room, change),
      report: this.#reporter.report,
    });
  }

  readonly #onBrokerStatus = (status: BrokerStatus, error?: Error): void => {
    // Back after an outage (not the first connect): what was published meanwhile came to no one.
    if (status === 'ready') {
      if (this.#brokerWasDown) this.#delivery.rooms.catchUp();
      this.#brokerWasDown = false;
    } else if (status === 'down' || status === 'reconnecting') this.#brokerWasDown = true;
    const fields = { status, error: error?.message };
    this.#reporter.log.write(status === 'ready' ? 'info' : 'warn', `broker ${status}`, fields);
    this.emit('brokerStatus', status, error);
  };
}

function newId(): string {
  return randomBytes(12).toString('base64url');
}
