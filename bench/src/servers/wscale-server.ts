import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type Broker, ScaledWebSocketServer } from '@wscale/core';
import { directTarget, hello, isPublisher, Kind, ROOM } from '../wire.js';
import { bounded, type NodeConfig, optionalImport, type RunningServer } from './config.js';

interface RedisModule {
  RedisBroker: new (options: { redis: string }) => Broker;
}
interface NatsModule {
  NatsBroker: new (options: { servers: string }) => Broker;
}
interface ClusterModule {
  ClusterBroker?: new () => Broker;
}

async function brokerFor(config: NodeConfig): Promise<Broker | undefined> {
  switch (config.impl) {
    case 'wscale-memory':
      return undefined;
    case 'wscale-redis': {
      const redis = await optionalImport<RedisModule>('@wscale/redis');
      if (redis === undefined) throw new Error('@wscale/redis is not available');
      return new redis.RedisBroker({ redis: config.redisUrl! });
    }
    case 'wscale-nats': {
      const nats = await optionalImport<NatsModule>('@wscale/nats');
      if (nats === undefined) throw new Error('@wscale/nats is not available');
      return new nats.NatsBroker({ servers: config.natsUrl! });
    }
    case 'wscale-cluster': {
      const core = (await import('@wscale/core')) as ClusterModule;
      if (core.ClusterBroker === undefined) throw new Error('ClusterBroker is not available');
      return new core.ClusterBroker();
    }
    default:
      throw new Error(`not a wscale implementation: ${config.impl}`);
  }
}

/** wscale: a `ScaledWebSocketServer` (raw clients) on the broker the implementation names. */
export async function startWscale(config: NodeConfig): Promise<RunningServer> {
  const broker = await brokerFor(config);
  // An HTTP server of our own, so a node:cluster worker can listen on a port of its own.
  const http = createServer();
  const wss = new ScaledWebSocketServer({ server: http, nodeId: `node-${config.node}`, broker });
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
    if (isPublisher(request.url)) return;
    client.join(ROOM).then(() => client.send(hello(client.id, config.node)), report);
  });
  await wss.ready();
  await new Promise<void>((resolve, reject) => {
    http.once('error', reject);
    http.listen({ port: 0, host: config.host, exclusive: true }, resolve);
  });
  return {
    port: (http.address() as AddressInfo).port,
    async close() {
      await bounded(wss.close(), 5000);
      await bounded(broker?.close() ?? Promise.resolve(), 3000);
      http.closeAllConnections();
      await bounded(new Promise((resolve) => http.close(resolve)), 2000);
    },
  };
}
