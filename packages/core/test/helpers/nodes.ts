import type { AddressInfo } from 'node:net';
import {
  type Broker,
  MemoryBroker,
  MemoryBus,
  ScaledWebSocketServer,
  type ServerOptions,
} from '@wscale/core';
import { until } from '@wscale/core/testing';
import { WebSocket } from 'ws';

/** Servers and clients opened by a test, closed by `closeAll()` after it. */
export class TestCluster {
  readonly bus = new MemoryBus();
  readonly servers: ScaledWebSocketServer[] = [];
  readonly clients: TestClient[] = [];
  /** Client ids by the `tag` query parameter each test client connects with. */
  readonly #ids = new Map<string, string>();
  #tags = 0;

  /** Starts `count` nodes on this cluster's bus, listening on free loopback ports. */
  async start(
    count: number,
    options: Partial<ServerOptions> & { brokerFor?: (bus: MemoryBus) => Broker } = {},
  ): Promise<ScaledWebSocketServer[]> {
    const { brokerFor, ...rest } = options;
    const started = Array.from({ length: count }, (_, i) => {
      const server = new ScaledWebSocketServer({
        port: 0,
        host: '127.0.0.1',
        nodeId: `node-${this.servers.length + i + 1}`,
        broker: brokerFor?.(this.bus) ?? new MemoryBroker({ bus: this.bus }),
        ...rest,
      });
      server.on('error', () => undefined);
      server.on('connection', (client, request) => {
        const tag = new URL(request.url ?? '/', 'http://x').searchParams.get('tag');
        if (tag !== null) this.#ids.set(tag, client.id);
      });
      return server;
    });
    this.servers.push(...started);
    await Promise.all(started.map((server) => server.ready()));
    const total = this.servers.length;
    await until(
      () => this.servers.every((server) => server.nodes.length === total - 1),
      5000,
      'nodes to see each other',
    );
    return started;
  }

  /** Connects a `ws` client to a node and collects what it receives. */
  async connect(server: ScaledWebSocketServer, options: ConnectOptions = {}): Promise<TestClient> {
    const tag = String(++this.#tags);
    const client = new TestClient(`${urlOf(server, options.path)}?tag=${tag}`, options);
    this.clients.push(client);
    await client.opened;
    await until(() => this.#ids.has(tag), 2000, 'server to register the client');
    client.id = this.#ids.get(tag)!;
    return client;
  }

  async closeAll(): Promise<void> {
    for (const client of this.clients.splice(0)) client.ws.terminate();
    await Promise.all(this.servers.splice(0).map((server) => server.close()));
  }
}

export interface ConnectOptions {
  path?: string;
  headers?: Record<string, string>;
  /** Answer pings (a live peer). @default true */
  autoPong?: boolean;
}

/** A real `ws` client that records messages and how it closed. */
export class TestClient {
  readonly ws: WebSocket;
  readonly messages: Array<{ data: string | Buffer; binary: boolean }> = [];
  readonly opened: Promise<void>;
  readonly closed: Promise<{ code: number; reason: string }>;
  id = '';

  constructor(url: string, options: ConnectOptions = {}) {
    this.ws = new WebSocket(url, { headers: options.headers, autoPong: options.autoPong ?? true });
    this.ws.on('message', (data: Buffer, binary) => {
      this.messages.push({ data: binary ? data : data.toString('utf8'), binary });
    });
    this.opened = new Promise((resolve, reject) => {
      this.ws.once('open', () => resolve());
      this.ws.once('error', reject);
    });
    this.closed = new Promise((resolve) => {
      this.ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() }));
    });
    this.ws.on('error', () => undefined);
  }

  get texts(): string[] {
    return this.messages.map((message) => String(message.data));
  }

  /** Waits until at least `count` messages arrived. */
  waitFor(count: number, timeoutMs = 3000): Promise<void> {
    return until(() => this.messages.length >= count, timeoutMs, `${count} messages`);
  }
}

export function urlOf(server: ScaledWebSocketServer, path = '/'): string {
  const { port } = server.address() as AddressInfo;
  return `ws://127.0.0.1:${port}${path}`;
}
