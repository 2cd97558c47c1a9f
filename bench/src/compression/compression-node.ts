/**
 * A node process of the compression scenario: wscale (Redis broker) or Socket.IO (redis-adapter),
 * with permessage-deflate on or off. Every connection joins one room; node 0 broadcasts chat
 * messages to it when told. Answers samples of its own CPU time and memory.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { send, serveRequests } from '../ipc.js';
import { atRate } from '../servers/config.js';
import { ProcessStats } from '../servers/process-stats.js';
import { chatMessage } from './chat-payload.js';
import { COMPRESSION_ENV, type CompressionNodeConfig } from './node-config.js';

const ROOM = 'chat';
const EVENT = 'm';

interface Running {
  port: number;
  /** Keeps the messages of the next burst, in the form the server sends them. */
  prepare(texts: string[]): void;
  /** Broadcasts one prepared message to the room. */
  broadcast(index: number): void;
  /** Messages this node compressed (wscale's `stats.compressed`; Socket.IO does not say). */
  compressed(): number | undefined;
  close(): Promise<void>;
}

async function startWscale(config: CompressionNodeConfig): Promise<Running> {
  const [{ ScaledWebSocketServer }, { RedisBroker }] = await Promise.all([
    import('@wscale/core'),
    import('@wscale/redis'),
  ]);
  const http = createServer();
  const wss = new ScaledWebSocketServer({
    server: http,
    nodeId: `node-${config.node}`,
    broker: new RedisBroker({ redis: config.redisUrl }),
    perMessageDeflate: config.deflate && { threshold: config.threshold },
  });
  wss.on('error', (error) => console.error(`[node ${config.node}]`, error));
  wss.on('connection', (client) => void client.join(ROOM));
  await wss.ready();
  await listen(http);
  let prepared: string[] = [];
  return {
    port: (http.address() as AddressInfo).port,
    prepare: (texts) => {
      prepared = texts;
    },
    broadcast: (index) => void wss.to(ROOM).send(prepared[index]!),
    compressed: () => wss.stats.compressed,
    close: () => wss.close(),
  };
}

async function startSocketIo(config: CompressionNodeConfig): Promise<Running> {
  const [{ Server }, { createAdapter }, { Redis }] = await Promise.all([
    import('socket.io'),
    import('@socket.io/redis-adapter'),
    import('ioredis'),
  ]);
  const redis = [new Redis(config.redisUrl), new Redis(config.redisUrl)];
  const http = createServer();
  const io = new Server(http, {
    transports: ['websocket'],
    serveClient: false,
    adapter: createAdapter(redis[0], redis[1]),
    // Socket.IO's own option, handed to `ws`: compressed per socket, with context takeover.
    perMessageDeflate: config.deflate && { threshold: config.threshold },
  });
  io.on('connection', (socket) => void socket.join(ROOM));
  await listen(http);
  let objects: unknown[] = [];
  return {
    port: (http.address() as AddressInfo).port,
    // Socket.IO sends objects (it encodes a broadcast once): parsed here, before it is measured.
    prepare: (texts) => {
      objects = texts.map((text) => JSON.parse(text));
    },
    broadcast: (index) => void io.to(ROOM).emit(EVENT, objects[index]),
    compressed: () => undefined,
    close: async () => {
      io.disconnectSockets(true);
      await new Promise((resolve) => io.close(resolve));
      for (const client of redis) client.disconnect();
    },
  };
}

function listen(http: ReturnType<typeof createServer>): Promise<void> {
  return new Promise((resolve, reject) => {
    http.once('error', reject);
    http.listen({ port: 0, host: '127.0.0.1', exclusive: true }, () => resolve());
  });
}

const raw = process.env[COMPRESSION_ENV];
if (raw === undefined) throw new Error(`${COMPRESSION_ENV} is not set`);
const config = JSON.parse(raw) as CompressionNodeConfig;
const stats = new ProcessStats();
let running: Running | undefined;

serveRequests({
  sample: () => ({ ...stats.sample(), compressed: running?.compressed() }),
  settle: async () => ({ ...(await stats.settle()), compressed: running?.compressed() }),
  /** Builds the messages of a burst (and for Socket.IO, their objects) before it is measured. */
  prepare: (args) => {
    const { first, count } = args as { first: number; count: number };
    running?.prepare(Array.from({ length: count }, (_, i) => chatMessage(first + i)));
    return true;
  },
  burst: (args) => {
    const { count, rate } = args as { count: number; rate: number };
    return atRate(count, rate, (i) => running!.broadcast(i)).then(() => true);
  },
  stop: async () => {
    await running?.close();
    setTimeout(() => process.exit(0), 10).unref();
    return true;
  },
});

(config.server === 'wscale' ? startWscale(config) : startSocketIo(config)).then(
  (started) => {
    running = started;
    send({ bench: 1, ready: true, node: config.node, port: started.port, pid: process.pid });
  },
  (error: unknown) => {
    console.error(`[node ${config.node}] failed to start:`, error);
    process.exit(1);
  },
);
