// @ts-check
// One wscale node: an HTTP server (the page, /health) with a ScaledWebSocketServer on /ws, on Redis.
// src/stack.js starts three of these behind the load balancer. Environment:
//   NODE_ID, PORT, HOST (default 127.0.0.1), REDIS_URL, SESSION_SECRET (the same on every node),
//   DRAIN_DELAY_MS (default 3000: how long /health answers 503 before the drain on SIGTERM).
import { readFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import { fileURLToPath } from 'node:url';
import { ScaledWebSocketServer } from '@wscale/core';
import { RedisBroker, RedisHistory, RedisStateStore } from '@wscale/redis';

const nodeId = process.env.NODE_ID ?? `node-${process.pid}`;
const redis = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const sessionSecret = process.env.SESSION_SECRET;
// Longer than the load balancer takes to see a failing health check (HAProxy: inter 1s fall 2).
const drainDelayMs = Number(process.env.DRAIN_DELAY_MS ?? 3000);
if (!sessionSecret) throw new Error('SESSION_SECRET must be set, to the same value on every node');

const broker = new RedisBroker({ redis });
const stateStore = new RedisStateStore({ redis, ttlMs: 2 * 60_000 }); // a session waits 2 min
const history = new RedisHistory({ redis, maxEntries: 500, maxAgeMs: 10 * 60_000 });
const page = await readFile(new URL('../public/index.html', import.meta.url));
// The page's client library: @wscale/client's ESM build is one file with no dependencies.
const clientLibrary = await readFile(fileURLToPath(import.meta.resolve('@wscale/client')));
let draining = false;

const http = createServer((request, response) => {
  if (request.url === '/health') {
    // The load balancer's health check: 503 while draining, so no new client is sent here.
    response.writeHead(draining ? 503 : 200, { 'content-type': 'application/json' });
    response.end(JSON.stringify({ node: nodeId, draining, connections: wss.stats.connections }));
  } else if (request.url === '/' || request.url === '/index.html') {
    response.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(page);
  } else if (request.url === '/client.js') {
    response.writeHead(200, { 'content-type': 'text/javascript' }).end(clientLibrary);
  } else {
    response.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
  }
});

const wss = new ScaledWebSocketServer({
  server: http,
  path: '/ws',
  nodeId,
  broker,
  stateStore,
  sessionSecret,
  // chat:* rooms keep their last messages, so a wscale.v1 client that comes back on another node
  // is given exactly what it missed.
  history: [{ rooms: 'chat:*', store: history }],
});

/** @param {import('@wscale/core').Client} client */
function serve(client) {
  // `id` names what the client sent: one a killed node had broadcast already may come again here
  // (marked `redelivered`, same id) after the client resumes, and the page shows an id once.
  client.on('message', (text, isBinary, { id }) => {
    if (isBinary || typeof text !== 'string' || text.length > 2000) return;
    const message = { type: 'chat', id, from: client.id, node: nodeId, text };
    void wss.to('chat:lobby').send(JSON.stringify(message));
  });
}

// Every client comes in here, new or resumed; a resumed one is already back in its rooms (one
// whose session the store could not read gets them back once the store answers).
wss.on('connection', async (client) => {
  serve(client);
  if (!client.resumed && !client.sessionUnavailable) await client.join('chat:lobby');
  const { id, resumed } = client;
  client.send(JSON.stringify({ type: 'welcome', id, node: nodeId, resumed }));
});
wss.on('error', (error) => console.error(`[${nodeId}]`, error.message));
wss.on('brokerStatus', (status) => console.log(`[${nodeId}] broker ${status}`));

await wss.ready();
// The event reports changes only: the broker may have been ready before the listener was attached.
console.log(`[${nodeId}] broker ${wss.brokerStatus}`);
http.listen(Number(process.env.PORT ?? 3000), process.env.HOST ?? '127.0.0.1', () => {
  const { port } = /** @type {import('node:net').AddressInfo} */ (http.address());
  console.log(`ready ${nodeId} ${port}`); // src/stack.js waits for this line
});

/**
 * Fails the health check, waits `delayMs` for the load balancer to notice and send new clients
 * elsewhere, then drains: stops accepting, saves sessions, closes clients with 1012.
 * @param {number} delayMs
 */
async function drain(delayMs) {
  draining = true;
  await new Promise((resolve) => setTimeout(resolve, delayMs));
  await wss.close();
  await Promise.all([broker.close(), stateStore.close(), history.close()]);
  http.close();
  http.closeAllConnections();
}

// SIGTERM is a rolling deploy: the other nodes take this one's clients once the load balancer has
// taken it out. SIGINT (Ctrl-C, or src/stack.js stopping everything) has nowhere to send them: at once.
for (const [signal, delayMs] of /** @type {const} */ ([
  ['SIGTERM', drainDelayMs],
  ['SIGINT', 0],
])) {
  process.once(signal, () => {
    console.log(`[${nodeId}] ${signal}: draining${delayMs > 0 ? ` in ${delayMs} ms` : ''}`);
    if (!draining) void drain(delayMs);
  });
}
