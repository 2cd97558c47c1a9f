import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, STATUS_CODES } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { type WebSocket, WebSocketServer } from 'ws';
import { MemoryBroker } from '../broker/memory-broker.js';
import { CloseCode } from '../close-codes.js';
import type { Broker, BrokerStatus } from '../contracts.js';
import {
  HandlerError,
  InvalidOptionError,
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
} from '../internal/bus-codec.js';
import { SafeEmitter } from '../internal/safe-emitter.js';
import { BroadcastOperator } from './broadcast.js';
import { type AnyClient, Client, type ClientHost } from './client.js';
import { type MeshAnswers, NodeMesh } from './node-mesh.js';
import type { ResolvedOptions, ServerOptions } from './options.js';
import { preparePayload, type Sendable, type SendOptions } from './payload.js';
import { RoomRegistry } from './room-registry.js';

/** Events of a {@link ScaledWebSocketServer}. */
export interface ServerEvents<Identity, Data extends object> {
  /** A client connected to this node. */
  connection: [client: Client<Identity, Data>, request: IncomingMessage];
  /** Something failed that did not stop the node: a throwing handler, a bad frame, a broker error. */
  error: [error: Error];
  /** Another node was heard from for the first time (or again after it was gone). */
  nodeUp: [nodeId: string];
  /** Another node said goodbye or stopped sending heartbeats. */
  nodeDown: [nodeId: string];
  /** The broker's connection changed state. */
  brokerStatus: [status: BrokerStatus, error?: Error];
}

/** A client's description in cross-node query answers. */
export interface ClientInfo {
  id: string;
  nodeId: string;
  rooms: string[];
}

/** Options of cross-node queries. */
export interface QueryOptions {
  /** How long to wait for other nodes. @default the server's `requestTimeoutMs` */
  timeoutMs?: number;
}

/** Counters of one node. */
export interface ServerStats {
  /** Clients connected to this node now. */
  connections: number;
  /** Messages dropped for slow consumers. */
  dropped: number;
  /** Clients closed with 1013 because they could not keep up. */
  slowConsumersClosed: number;
}

/** Operations on one client wherever in the cluster it is connected. */
export interface RemoteClient {
  /** Sends a message to the client. */
  send(data: Sendable, options?: SendOptions): Promise<void>;
  /** Makes the client join a room. */
  join(room: string): Promise<void>;
  /** Makes the client leave a room. */
  leave(room: string): Promise<void>;
  /** Closes the client's connection. */
  close(code?: number, reason?: string): Promise<void>;
}

const TRY_AGAIN_LATER = 'send buffer full';

/**
 * A WebSocket server that is one node of a cluster. Clients connect to any node; a broadcast to a
 * room reaches its members on every node, and a message to one client finds the node that holds
 * it. Wraps `ws`.
 *
 * @example
 * ```ts
 * const wss = new ScaledWebSocketServer({ port: 8080, broker });
 * wss.on('connection', (client) => {
 *   void client.join('lobby');
 *   client.on('message', (text) => wss.to('lobby').send(text));
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
  readonly #wss: WebSocketServer;
  readonly #http: Server | undefined;
  readonly #attached: Server | undefined;
  readonly #mesh: NodeMesh;
  readonly #rooms: RoomRegistry;
  readonly #clients = new Map<string, Client<Identity, Data>>();
  readonly #corked: Duplex[] = [];
  readonly #started: Promise<void>;
  readonly #stats = { dropped: 0, slowConsumersClosed: 0 };
  readonly #host: ClientHost;
  #heartbeat: NodeJS.Timeout | undefined;
  #closing: Promise<void> | undefined;

  constructor(options: ServerOptions<Identity>) {
    super();
    this.#options = resolveOptions(options);
    this.nodeId = this.#options.nodeId;
    this.#ownsBroker = options.broker === undefined;
    this.#broker = options.broker ?? new MemoryBroker();
    this.#wss = new WebSocketServer({
      noServer: true,
      clientTracking: false,
      perMessageDeflate: false,
      maxPayload: this.#options.maxPayload,
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
        nodeUp: (nodeId) => this.emit('nodeUp', nodeId),
        nodeDown: (nodeId) => this.emit('nodeDown', nodeId),
        error: (error) => this.#report(error),
      },
    );
    this.#rooms = new RoomRegistry((room, isCurrent) =>
      this.#mesh.subscribeRoom(room, (frame) => {
        if (isCurrent()) this.#onRemote(frame);
      }),
    );
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

  /** Counters of this node. */
  get stats(): ServerStats {
    return { connections: this.#clients.size, ...this.#stats };
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
    return {
      send: (data, options) => {
        const { bytes, binary } = preparePayload(data);
        return this.#direct(id, 'send', undefined, bytes, flagsOf(binary, options));
      },
      join: (room) => this.#direct(id, 'join', room),
      leave: (room) => this.#direct(id, 'leave', room),
      close: (code = CloseCode.Normal, reason = '') => this.#direct(id, 'close', [code, reason]),
    };
  }

  /**
   * Every room with members anywhere in the cluster. Nodes that do not answer within the timeout
   * are named in `missing`; their rooms are not included.
   */
  async fetchRooms(options?: QueryOptions): Promise<{ rooms: string[]; missing: string[] }> {
    const { answers, missing } = await this.#ask('rooms', undefined, options);
    const rooms = new Set(this.#rooms.names());
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
   * Completes an upgrade the application received itself (with `noServer`, or from a framework
   * that owns the `upgrade` event). Runs `authenticate` first; a refusal answers with an HTTP
   * status and no WebSocket is created.
   */
  handleUpgrade(request: IncomingMessage, socket: Duplex, head: Buffer): void {
    void this.#upgrade(request, socket, head);
  }

  /**
   * Shuts the node down gracefully: stops accepting, closes its clients with 1012 so they
   * reconnect elsewhere, leaves the cluster, and resolves when all of that is done.
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
    await this.#mesh.start();
    if (this.#options.heartbeatIntervalMs > 0) {
      this.#heartbeat = setInterval(() => {
        for (const client of this.#clients.values()) client.heartbeat();
      }, this.#options.heartbeatIntervalMs);
      this.#heartbeat.unref();
    }
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
  }

  async #close(): Promise<void> {
    await this.#started.catch(() => undefined);
    this.#http?.off('upgrade', this.#onUpgrade);
    this.#attached?.off('upgrade', this.#onUpgrade);
    clearInterval(this.#heartbeat);
    const closed = [...this.#clients.values()].map(
      (client) => new Promise<void>((resolve) => client.once('close', () => resolve())),
    );
    for (const client of this.#clients.values()) client.close(CloseCode.ServiceRestart, 'draining');
    const timer = setTimeout(() => {
      for (const client of this.#clients.values()) client.terminate();
    }, this.#options.closeTimeoutMs);
    await Promise.all(closed);
    clearTimeout(timer);
    await this.#mesh.stop();
    this.#broker.off('status', this.#onBrokerStatus);
    if (this.#ownsBroker) await this.#broker.close();
    this.#wss.close();
    const http = this.#http;
    if (http?.listening) await new Promise((resolve) => http.close(resolve));
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
    if (this.#closing !== undefined) return refuse(socket, 503);
    socket.on('error', ignore);
    let identity: Identity = true as Identity;
    const authenticate = this.#options.authenticate;
    if (authenticate !== undefined) {
      try {
        const result = await authenticate(request);
        if (result === false || result === null || result === undefined) return refuse(socket, 401);
        identity = result;
      } catch (error) {
        if (error instanceof UpgradeRejectedError) return refuse(socket, error.status);
        this.#report(new HandlerError('authenticate', error));
        return refuse(socket, 500);
      }
      if (this.#closing !== undefined || socket.destroyed) return refuse(socket, 503);
    }
    this.#wss.handleUpgrade(request, socket, head, (ws) => {
      socket.off('error', ignore);
      this.#accept(ws, socket, request, identity);
    });
  }

  #accept(ws: WebSocket, socket: Duplex, request: IncomingMessage, identity: Identity): void {
    const client = new Client<Identity, Data>(newId(), identity, ws, socket, this.#host);
    this.#clients.set(client.id, client);
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      client.markAlive();
      client.emit('message', isBinary ? data : data.toString('utf8'), isBinary);
    });
    ws.on('pong', () => client.markAlive());
    ws.on('error', (error) => client.emit('error', error));
    ws.on('close', (code, reason) => {
      this.#clients.delete(client.id);
      this.#rooms.leaveAll(client).catch((error) => this.#report(error));
      client.emit('close', code, reason.toString('utf8'));
      client.removeAllListeners();
    });
    this.emit('connection', client, request);
  }

  #clientHost(): ClientHost {
    return {
      join: (client, room) => this.#rooms.join(client, room),
      leave: (client, room) => this.#rooms.leave(client, room),
      cork: (socket) => {
        if (socket.writableCorked > 0) return;
        socket.cork();
        if (this.#corked.push(socket) === 1) process.nextTick(this.#uncork);
      },
      slowConsumer: (client, volatile) => {
        if (volatile || this.#options.slowConsumer === 'drop') {
          client.dropped++;
          this.#stats.dropped++;
          return;
        }
        this.#stats.slowConsumersClosed++;
        // Nothing more is written once it is closing; ws ends it if the close frame goes unread.
        client.close(CloseCode.TryAgainLater, TRY_AGAIN_LATER);
      },
      handlerFailed: (error) => this.#report(new HandlerError('client event', error)),
      maxBufferedBytes: this.#options.maxBufferedBytes,
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
    const { bytes, binary } = preparePayload(data);
    const flags = flagsOf(binary, options);
    const header: BusHeader = { n: this.nodeId };
    if (rooms.length > 0) header.r = rooms as string[];
    if (except.length > 0) header.x = except as string[];
    this.#deliverLocal(header, bytes, flags);
    await this.#mesh.broadcast(rooms.length === 1 ? rooms[0] : undefined, header, bytes, flags);
  }

  /** Writes a broadcast to the local clients it is for: the fan-out hot path. */
  #deliverLocal(header: BusHeader, bytes: Buffer, flags: number): void {
    const binary = (flags & BusFlag.Binary) !== 0;
    const volatile = (flags & BusFlag.Volatile) !== 0;
    const except = header.x === undefined ? undefined : new Set(header.x);
    const rooms = header.r;
    let targets: Iterable<AnyClient>;
    if (rooms === undefined) targets = this.#clients.values();
    else if (rooms.length === 1) targets = this.#rooms.members(rooms[0]!);
    else targets = new Set(rooms.flatMap((room) => [...this.#rooms.members(room)]));
    for (const client of targets) {
      if (except === undefined || !except.has(client.id)) client.deliver(bytes, binary, volatile);
    }
  }

  async #direct(
    id: string,
    op: DirectOp,
    argument: unknown,
    payload?: Buffer,
    flags = 0,
  ): Promise<void> {
    if (this.#closing !== undefined) throw new ServerClosedError();
    const header: BusHeader = { n: this.nodeId, c: id, o: op };
    if (argument !== undefined) header.a = argument;
    const local = this.#clients.get(id);
    if (local !== undefined) return this.#applyDirect(local, header, payload, flags);
    await this.#mesh.direct(header, payload ?? EMPTY, flags);
  }

  async #applyDirect(
    client: AnyClient,
    header: BusHeader,
    payload: Buffer | undefined,
    flags: number,
  ): Promise<void> {
    switch (header.o) {
      case 'send':
        client.deliver(
          payload ?? EMPTY,
          (flags & BusFlag.Binary) !== 0,
          (flags & BusFlag.Volatile) !== 0,
        );
        return;
      case 'join':
        return client.join(String(header.a));
      case 'leave':
        return client.leave(String(header.a));
      case 'close': {
        const [code, reason] = Array.isArray(header.a) ? header.a : [];
        client.close(Number(code ?? CloseCode.Normal), String(reason ?? ''));
        return;
      }
    }
  }

  #onRemote(frame: BusFrame): void {
    if (frame.kind === BusKind.Broadcast) {
      this.#deliverLocal(frame.header, frame.payload, frame.flags);
      return;
    }
    const client = frame.header.c === undefined ? undefined : this.#clients.get(frame.header.c);
    if (client !== undefined) {
      this.#applyDirect(client, frame.header, frame.payload, frame.flags).catch((error) =>
        this.#report(error),
      );
    }
  }

  #answer(type: string, argument: unknown): unknown {
    if (type === 'rooms') return this.#rooms.names();
    if (type === 'clients') return this.#localClients(argument as string | undefined);
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

  async #ask(type: string, argument: unknown, options?: QueryOptions): Promise<MeshAnswers> {
    if (this.#closing !== undefined) throw new ServerClosedError();
    return this.#mesh.request(type, argument, options?.timeoutMs ?? this.#options.requestTimeoutMs);
  }

  readonly #onBrokerStatus = (status: BrokerStatus, error?: Error): void => {
    this.emit('brokerStatus', status, error);
  };

  #report(error: unknown): void {
    const reported =
      error instanceof Error ? error : new WscaleError('HANDLER_FAILED', String(error));
    if (this.listenerCount('error') > 0) this.emit('error', reported);
    else process.emitWarning(reported);
  }
}

const EMPTY = Buffer.alloc(0);

function flagsOf(binary: boolean, options: SendOptions | undefined): number {
  return (binary ? BusFlag.Binary : 0) | (options?.volatile ? BusFlag.Volatile : 0);
}

function newId(): string {
  return randomBytes(12).toString('base64url');
}

function pathOf(request: IncomingMessage): string {
  const url = request.url ?? '/';
  const query = url.indexOf('?');
  return query === -1 ? url : url.slice(0, query);
}

function ignore(): void {}

function refuse(socket: Duplex, status: number): void {
  if (socket.destroyed) return;
  const text = STATUS_CODES[status] ?? 'Error';
  socket.end(
    `HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: ${Buffer.byteLength(text)}\r\n\r\n${text}`,
  );
}

function resolveOptions<Identity>(options: ServerOptions<Identity>): ResolvedOptions<Identity> {
  const modes = [
    options.port !== undefined,
    options.server !== undefined,
    options.noServer === true,
  ];
  if (modes.filter(Boolean).length !== 1) {
    throw new InvalidOptionError('give exactly one of port, server and noServer');
  }
  const nodeHeartbeatMs = options.nodeHeartbeatMs ?? 5000;
  const resolved: ResolvedOptions<Identity> = {
    ...options,
    nodeId: options.nodeId ?? newId(),
    topicPrefix: options.topicPrefix ?? 'wscale:',
    maxPayload: options.maxPayload ?? 1024 * 1024,
    maxBufferedBytes: options.maxBufferedBytes ?? 4 * 1024 * 1024,
    slowConsumer: options.slowConsumer ?? 'close',
    heartbeatIntervalMs: options.heartbeatIntervalMs ?? 30_000,
    nodeHeartbeatMs,
    nodeTimeoutMs: options.nodeTimeoutMs ?? nodeHeartbeatMs * 3,
    requestTimeoutMs: options.requestTimeoutMs ?? 5000,
    closeTimeoutMs: options.closeTimeoutMs ?? 5000,
  };
  for (const key of [
    'maxPayload',
    'maxBufferedBytes',
    'nodeHeartbeatMs',
    'nodeTimeoutMs',
    'requestTimeoutMs',
    'closeTimeoutMs',
  ] as const) {
    if (!(resolved[key] > 0)) throw new InvalidOptionError(`${key} must be > 0`);
  }
  if (!(resolved.heartbeatIntervalMs >= 0)) {
    throw new InvalidOptionError('heartbeatIntervalMs must be >= 0');
  }
  if (!['close', 'drop'].includes(resolved.slowConsumer)) {
    throw new InvalidOptionError("slowConsumer must be 'close' or 'drop'");
  }
  return resolved;
}
