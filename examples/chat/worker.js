// One node of the chat demo: a wscale server on the port the workers share.

import cluster from 'node:cluster';
import { readFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import { createRequire } from 'node:module';
import {
  ClusterBroker,
  ClusterHistory,
  ClusterStateStore,
  ScaledWebSocketServer,
} from '@wscale/core';
import { clusterView } from '@wscale/prometheus/cluster-view';

const require = createRequire(import.meta.url);
const page = await readFile(new URL('./public/index.html', import.meta.url));
const clientBundle = await readFile(
  require.resolve('@wscale/client').replace(/index\.cjs$/, 'index.js'),
);
const nodeId = `node-${cluster.worker?.id ?? process.pid}`;
const ROOM = 'chat:lobby';

/** The name the page chose (`/ws?name=…`). A demo: a real application authenticates its users. */
function nameOf(request) {
  const name = new URL(request.url ?? '/', 'http://x').searchParams.get('name') ?? '';
  return name.trim().slice(0, 24) || 'guest';
}

async function backends() {
  if (process.env.REDIS_URL) {
    const { RedisBroker, RedisHistory, RedisStateStore } = await import('@wscale/redis');
    const redis = process.env.REDIS_URL;
    return {
      broker: new RedisBroker({ redis }),
      stateStore: new RedisStateStore({ redis, ttlMs: 120_000 }),
      history: new RedisHistory({ redis, maxEntries: 500 }),
    };
  }
  if (process.env.NATS_URL) {
    const { NatsBroker, NatsHistory, NatsKvStateStore } = await import('@wscale/nats');
    const servers = process.env.NATS_URL;
    return {
      broker: new NatsBroker({ servers }),
      stateStore: new NatsKvStateStore({ servers, ttlMs: 120_000 }),
      history: new NatsHistory({ servers, maxEntries: 500 }),
    };
  }
  return {
    broker: new ClusterBroker(),
    stateStore: new ClusterStateStore({ ttlMs: 120_000 }),
    history: new ClusterHistory({ maxEntries: 500 }),
  };
}

/** @type {ReturnType<typeof clusterView>} */
let clusterPage;
const http = createServer((request, response) => {
  const path = new URL(request.url ?? '/', 'http://x').pathname;
  if (path === '/cluster' || path.startsWith('/cluster/')) {
    // Demo only: a real application mounts the cluster view behind its own authentication.
    clusterPage(request, response);
  } else if (path === '/' || path === '/index.html') {
    response.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(page);
  } else if (path === '/client.js') {
    response.writeHead(200, { 'content-type': 'text/javascript' }).end(clientBundle);
  } else {
    response.writeHead(404).end('not found');
  }
});

const { broker, stateStore, history } = await backends();
const wss = new ScaledWebSocketServer({
  server: http,
  path: '/ws',
  nodeId,
  broker,
  stateStore,
  sessionSecret: process.env.SESSION_SECRET,
  history: [{ rooms: 'chat:*', store: history }],
  // A user is who the page says it is; two tabs of one name are one member of the room.
  authenticate: (request) => ({ id: nameOf(request) }),
  presence: [{ rooms: 'chat:*', info: (client) => ({ name: client.identity.id }) }],
  // A page whose node died may need a few attempts to get through: it stays online meanwhile.
  presenceGraceMs: 10_000,
  nodeHeartbeatMs: 1000,
  onRequest: (_client, data) => {
    if (data === 'whoami') return nodeId;
    if (data === 'kill') {
      // Demo only: this node dies on the spot (no drain), as a crash would.
      setTimeout(() => process.kill(process.pid, 'SIGKILL'), 50);
      return `${nodeId} is going down`;
    }
    return undefined;
  },
});
wss.on('error', (error) => console.error(`[${nodeId}]`, error.message));
clusterPage = clusterView(wss, { refreshMs: 1000, timeoutMs: 1000 });
// Every client comes in here, new or resumed (a resumed one is back in its rooms already; one
// whose session the store could not read gets its rooms back once the store answers).
wss.on('connection', (client) => {
  if (!client.resumed && !client.sessionUnavailable) void client.join(ROOM);
  // `id` names what the client sent: a message a killed node had already broadcast may come again
  // (marked `redelivered`, same id) after the client resumes here, and the page shows an id once.
  client.on('message', (text, _binary, { id }) => {
    if (typeof text !== 'string' || text.length === 0 || text.length > 2000) return;
    void wss.to(ROOM).send(JSON.stringify({ id, from: client.identity.id, node: nodeId, text }));
  });
});

await wss.ready();
http.listen(Number(process.env.PORT ?? 3000));

process.once('SIGTERM', async () => {
  await wss.close();
  await Promise.allSettled([broker.close(), stateStore.close(), history.close()]);
  http.close();
  process.exit(0);
});
