import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  type Broker,
  ClusterBroker,
  ClusterHistory,
  ClusterStateStore,
  type History,
  MemoryHistory,
  MemoryStateStore,
  ScaledWebSocketServer,
  type ServerOptions,
  type StateStore,
} from '@wscale/core';
import { directTarget, hello, isPublisher, Kind, ROOM } from '../wire.js';
import { bounded, type NodeConfig, type RunningServer } from './config.js';

// Each broker's package is loaded only by the implementation that uses it.
async function brokerFor(config: NodeConfig): Promise<Broker | undefined> {
  switch (base(config.impl)) {
    case 'wscale-memory':
      return undefined;
    case 'wscale-redis': {
      const { RedisBroker } = await import('@wscale/redis');
      return new RedisBroker({ redis: config.redisUrl! });
    }
    case 'wscale-nats': {
      const { NatsBroker } = await import('@wscale/nats');
      return new NatsBroker({ servers: config.natsUrl! });
    }
    case 'wscale-cluster':
      return new ClusterBroker();
    default:
      throw new Error(`not a wscale implementation: ${config.impl}`);
  }
}

const HISTORY_ENTRIES = 10_000;

/** The implementation a variant runs on (`wscale-redis-metrics` is `wscale-redis` plus metrics). */
function base(impl: string): string {
  return impl === 'wscale-redis-metrics' ? 'wscale-redis' : impl;
}

/** Collects Prometheus metrics of the node and scrapes them every second; returns the stop. */
async function scrapeEverySecond(wss: ScaledWebSocketServer): Promise<() => void> {
  const [{ collectMetrics }, { Registry }] = await Promise.all([
    import('@wscale/prometheus'),
    import('prom-client'),
  ]);
  const registry = collectMetrics(wss, { registry: new Registry() });
  const timer = setInterval(() => void registry.metrics(), 1000);
  return () => clearInterval(timer);
}

/** The state store and history of the churn scenario, on the implementation's broker. */
async function storesFor(config: NodeConfig): Promise<{ state: StateStore; history: History }> {
  switch (base(config.impl)) {
    case 'wscale-memory':
      return {
        state: new MemoryStateStore(),
        history: new MemoryHistory({ maxEntries: HISTORY_ENTRIES }),
      };
    case 'wscale-redis': {
      const { RedisHistory, RedisStateStore } = await import('@wscale/redis');
      return {
        state: new RedisStateStore({ redis: config.redisUrl! }),
        history: new RedisHistory({ redis: config.redisUrl!, maxEntries: HISTORY_ENTRIES }),
      };
    }
    case 'wscale-nats': {
      const { NatsHistory, NatsKvStateStore } = await import('@wscale/nats');
      return {
        state: new NatsKvStateStore({ servers: config.natsUrl! }),
        history: new NatsHistory({ servers: config.natsUrl!, maxEntries: HISTORY_ENTRIES }),
      };
    }
    case 'wscale-cluster':
      return {
        state: new ClusterStateStore(),
        history: new ClusterHistory({ maxEntries: HISTORY_ENTRIES }),
      };
    default:
      throw new Error(`not a wscale implementation: ${config.impl}`);
  }
}

/** wscale: a `ScaledWebSocketServer` (raw clients) on the broker the implementation names. */
export async function startWscale(config: NodeConfig): Promise<RunningServer> {
  const broker = await brokerFor(config);
  const stores = config.resumable ? await storesFor(config) : undefined;
  // An HTTP server of our own, so a node:cluster worker can listen on a port of its own.
  const http = createServer();
  const options: ServerOptions = {
    server: http,
    nodeId: `node-${config.node}`,
    broker,
    // The publisher sends as fast as it can on purpose: the peers it is compared with limit nothing.
    maxOpsPerSecond: Number.POSITIVE_INFINITY,
  };
  if (stores !== undefined) {
    options.stateStore = stores.state;
    options.sessionSecret = 'wscale-bench-session-secret';
    options.history = [{ rooms: ROOM, store: stores.history }];
    options.authorizeJoin = () => true;
  }
  const wss = new ScaledWebSocketServer(options);
  const stopMetrics =
    config.impl === 'wscale-redis-metrics' ? await scrapeEverySecond(wss) : () => undefined;
  wss.on('error', (error) => console.error(`[wscale node ${config.node}]`, error));
  const report = (error: unknown) => console.error(`[wscale node ${config.node}]`, error);

  const route = (text: string | Buffer) => {
    const message = String(text);
    if (message.charCodeAt(0) === Kind.Direct) {
      wss.client(directTarget(message)).send(message).catch(report);
    } else {
      wss.to(ROOM).send(message).catch(report);
    }
  };
  wss.on('connection', (client, request) => {
    client.on('message', route);
    // wscale.v1 clients join by themselves.
    if (client.v1 || isPublisher(request.url)) return;
    client.join(ROOM).then(() => client.send(hello(client.id, config.node)), report);
  });
  await wss.ready();
  await new Promise<void>((resolve, reject) => {
    http.once('error', reject);
    http.listen({ port: 0, host: config.host, exclusive: true }, resolve);
  });
  return {
    port: (http.address() as AddressInfo).port,
    dropClients(limit) {
      let dropped = 0;
      for (const client of [...wss.clients.values()]) {
        if (dropped >= limit) break;
        if (!client.v1) continue;
        client.terminate();
        dropped++;
      }
      return dropped;
    },
    async counts() {
      const { rooms } = await wss.fetchRooms({ timeoutMs: 2000 });
      return { clients: wss.clients.size, rooms: rooms.length };
    },
    async close() {
      stopMetrics();
      await bounded(wss.close(), 5000);
      await bounded(broker?.close() ?? Promise.resolve(), 3000);
      await bounded(stores?.state.close() ?? Promise.resolve(), 3000);
      await bounded(stores?.history.close() ?? Promise.resolve(), 3000);
      http.closeAllConnections();
      await bounded(new Promise((resolve) => http.close(resolve)), 2000);
    },
  };
}
