/**
 * The compression scenario: chat-like JSON (200 to 2000 bytes) broadcast to C clients over two
 * nodes on Redis, by wscale with permessage-deflate (compressed once per node), wscale without it,
 * and Socket.IO with its `perMessageDeflate` on (compressed per socket) and off. Measures the bytes
 * that reach the clients' sockets, the nodes' CPU per delivery, and their memory per connection. Contenders run in an order that rotates each round, fresh processes each time.
 */
import type { Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { constants, deflateRawSync } from 'node:zlib';
import { io as connectSocketIo, type Socket as SioSocket } from 'socket.io-client';
import { WebSocket } from 'ws';
import { awaitReady } from '../harness/nodes.js';
import type { Processes, Started } from '../harness/processes.js';
import { Peer } from '../ipc.js';
import type { ProcessSample } from '../servers/process-stats.js';
import { chatMessage, seqOf } from './chat-payload.js';
import { COMPRESSION_ENV, type CompressionNodeConfig } from './node-config.js';

const NODE = fileURLToPath(new URL('./compression/compression-node.js', import.meta.url));

export interface CompressionSizes {
  rounds: number;
  nodes: number;
  clients: number;
  messages: number;
  /** Broadcasts per second. */
  rate: number;
  /** Payloads shorter than this are not compressed (the same for every contender). */
  threshold: number;
}

export const COMPRESSION_SIZES: CompressionSizes = {
  rounds: 3,
  nodes: 2,
  clients: 1000,
  messages: 100,
  rate: 3,
  threshold: 256,
};

export const COMPRESSION_SMOKE: CompressionSizes = {
  rounds: 1,
  nodes: 2,
  clients: 20,
  messages: 20,
  rate: 50,
  threshold: 256,
};

interface Contender {
  id: string;
  label: string;
  server: CompressionNodeConfig['server'];
  deflate: boolean;
}

export const CONTENDERS: readonly Contender[] = [
  { id: 'wscale-deflate', label: 'wscale, permessage-deflate', server: 'wscale', deflate: true },
  { id: 'wscale', label: 'wscale, no compression', server: 'wscale', deflate: false },
  {
    id: 'socketio-deflate',
    label: 'Socket.IO 4, perMessageDeflate',
    server: 'socketio',
    deflate: true,
  },
  { id: 'socketio', label: 'Socket.IO 4, no compression', server: 'socketio', deflate: false },
];

/** One contender's burst in one round. */
export interface CompressionRound {
  contender: string;
  round: number;
  /** Deliveries expected (clients × messages) and made. */
  expected: number;
  delivered: number;
  lost: number;
  reordered: number;
  /** Bytes the clients' sockets read during the burst, per delivery. */
  wireBytes: number;
  /** The JSON itself, per delivery (the same for every contender). */
  payloadBytes: number;
  /** CPU time of every node, per delivery, µs. */
  cpuMicros: number;
  /** The nodes' RSS after the burst (after GC) above their RSS without clients, per client. */
  rssPerConnection: number;
  /** wscale: messages each node compressed, per message sent (1 when compressed once per node). */
  compressedPerMessage?: number[];
  /** Clients that negotiated permessage-deflate. */
  negotiated: number;
  /** Clients closed by their server during the burst. */
  closed: number;
}

export interface CompressionResults {
  sizes: CompressionSizes;
  rounds: CompressionRound[];
  /** Deflate alone on the scenario's payloads, without context takeover, by payload size. */
  ratios: Array<{ bytes: number; ratio: number }>;
}

export interface CompressionContext {
  processes: Processes;
  redisUrl: string;
  sizes: CompressionSizes;
  log: (line: string) => void;
  /** Whether the run should stop (interrupted or over budget). */
  stopped: () => boolean;
}

const WAIT_MS = 60_000;

export async function runCompression(context: CompressionContext): Promise<CompressionResults> {
  const rounds: CompressionRound[] = [];
  for (let round = 1; round <= context.sizes.rounds && !context.stopped(); round++) {
    const shift = (round - 1) % CONTENDERS.length;
    const order = [...CONTENDERS.slice(shift), ...CONTENDERS.slice(0, shift)];
    for (const contender of order) {
      if (context.stopped()) break;
      context.log(`round ${round} compression: ${contender.id}`);
      const measured = await measure(context, contender, round);
      rounds.push(measured);
      context.log(
        `  ${measured.wireBytes.toFixed(0)} B/delivery, ${measured.cpuMicros.toFixed(2)} µs CPU/delivery, lost ${measured.lost}, clients closed ${measured.closed}`,
      );
    }
  }
  return { sizes: context.sizes, rounds, ratios: deflateRatios() };
}

/** What deflate alone makes of the payloads, by size: where a threshold pays. */
function deflateRatios(): Array<{ bytes: number; ratio: number }> {
  return [64, 128, 256, 512, 1024, 2048].map((bytes) => {
    let raw = 0;
    let deflated = 0;
    for (let seq = 0; seq < 50; seq++) {
      const payload = Buffer.from(chatMessage(seq, bytes, bytes + 1));
      raw += payload.length;
      deflated += deflateRawSync(payload, { finishFlush: constants.Z_SYNC_FLUSH }).length - 4;
    }
    return { bytes, ratio: deflated / raw };
  });
}

interface Receiver {
  /** The warm-up message (seq 0) arrived: the client is in the room. */
  warm: boolean;
  /** Messages of the burst (seq from 1). */
  received: number;
  last: number;
  reordered: number;
  /** Its TCP socket, kept once open (its counts stay readable after it closed). */
  tcp: Socket | undefined;
  negotiated: boolean;
  /** It closed before the end (Socket.IO closes a client whose pong is late). */
  closed: boolean;
  close(): void;
}

async function measure(
  context: CompressionContext,
  contender: Contender,
  round: number,
): Promise<CompressionRound> {
  const { sizes } = context;
  const nodes = await startNodes(context, contender);
  const clients: Receiver[] = [];
  try {
    const empty = await nodes.sample('settle');
    const connect = contender.server === 'wscale' ? connectWs : connectSio;
    for (let i = 0; i < sizes.clients; i++) {
      clients.push(await connect(nodes.urls[i % nodes.urls.length]!));
    }
    await warmUp(nodes, clients);
    const first = 1;
    await nodes.peers[0]!.request('prepare', { first, count: sizes.messages });
    const before = await nodes.sample('settle');
    const bytesBefore = clients.map((client) => client.tcp?.bytesRead ?? 0);
    await nodes.peers[0]!.request(
      'burst',
      { count: sizes.messages, rate: sizes.rate },
      WAIT_MS + (sizes.messages / sizes.rate) * 1000,
    );
    const expected = sizes.clients * sizes.messages;
    const deadline = Date.now() + WAIT_MS;
    while (delivered(clients) < expected && Date.now() < deadline) await sleep(50);
    await sleep(200);
    const after = await nodes.sample('sample');
    const settled = await nodes.sample('settle');
    const made = delivered(clients);
    const wire = clients.reduce(
      (sum, client, i) => sum + (client.tcp?.bytesRead ?? 0) - bytesBefore[i]!,
      0,
    );
    let payload = 0;
    for (let seq = first; seq < first + sizes.messages; seq++) {
      payload += Buffer.byteLength(chatMessage(seq)) * sizes.clients;
    }
    const cpu = after.reduce((sum, sample, i) => sum + sample.cpuMicros - before[i]!.cpuMicros, 0);
    const rss = settled.reduce((sum, sample, i) => sum + sample.rss - empty[i]!.rss, 0);
    const measured: CompressionRound = {
      contender: contender.id,
      round,
      expected,
      delivered: made,
      lost: expected - made,
      reordered: clients.reduce((sum, client) => sum + client.reordered, 0),
      wireBytes: wire / Math.max(1, made),
      payloadBytes: payload / expected,
      cpuMicros: cpu / Math.max(1, made),
      rssPerConnection: rss / sizes.clients,
      negotiated: clients.filter((client) => client.negotiated).length,
      closed: clients.filter((client) => client.closed).length,
    };
    if (contender.server === 'wscale') {
      measured.compressedPerMessage = after.map(
        (sample, i) => ((sample.compressed ?? 0) - (before[i]!.compressed ?? 0)) / sizes.messages,
      );
    }
    return measured;
  } finally {
    for (const client of clients) client.close();
    await nodes.stop();
  }
}

const delivered = (clients: Receiver[]) =>
  clients.reduce((sum, client) => sum + client.received, 0);

/** Sends one message (seq 0) until every client got one: every client is in the room. */
async function warmUp(nodes: Nodes, clients: Receiver[]): Promise<void> {
  await nodes.peers[0]!.request('prepare', { first: 0, count: 1 });
  const deadline = Date.now() + WAIT_MS;
  while (clients.some((client) => !client.warm)) {
    if (Date.now() > deadline) throw new Error('clients did not all join the room');
    await nodes.peers[0]!.request('burst', { count: 1, rate: 1 });
    await sleep(200);
  }
}

function track(receiver: Receiver, seq: number): void {
  if (seq === 0) {
    receiver.warm = true;
    return;
  }
  receiver.received++;
  if (seq !== receiver.last + 1) receiver.reordered++;
  receiver.last = seq;
}

function newReceiver(close: () => void): Receiver {
  const receiver = { warm: false, received: 0, last: 0, reordered: 0, tcp: undefined };
  return { ...receiver, negotiated: false, closed: false, close };
}

/** Notes what an open client negotiated, and keeps its TCP socket (a private member of `ws`). */
function opened(receiver: Receiver, ws: WebSocket): Receiver {
  receiver.negotiated = ws.extensions.includes('permessage-deflate');
  receiver.tcp = (ws as unknown as { _socket: Socket })._socket;
  return receiver;
}

function connectWs(url: string): Promise<Receiver> {
  // `ws` offers permessage-deflate by default, as browsers do.
  const ws = new WebSocket(url);
  const receiver = newReceiver(() => ws.terminate());
  ws.on('message', (data: Buffer) => track(receiver, seqOf(data.toString())));
  ws.once('close', () => {
    receiver.closed = true;
  });
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve(opened(receiver, ws))).once('error', reject);
  });
}

function connectSio(url: string): Promise<Receiver> {
  // socket.io-client runs `ws` on Node, which offers permessage-deflate by default.
  const socket: SioSocket = connectSocketIo(url.replace('ws://', 'http://'), {
    transports: ['websocket'],
    reconnection: false,
    forceNew: true,
  });
  const receiver = newReceiver(() => void socket.disconnect());
  socket.on('m', (message: { seq: number }) => track(receiver, message.seq));
  socket.once('disconnect', () => {
    receiver.closed = true;
  });
  return new Promise((resolve, reject) => {
    socket
      .once('connect', () => {
        const engine = socket.io.engine as unknown as { transport: { ws: WebSocket } };
        resolve(opened(receiver, engine.transport.ws));
      })
      .once('connect_error', reject);
  });
}

interface Nodes {
  urls: string[];
  peers: Peer[];
  sample(op: 'sample' | 'settle'): Promise<Array<ProcessSample & { compressed?: number }>>;
  stop(): Promise<void>;
}

async function startNodes(context: CompressionContext, contender: Contender): Promise<Nodes> {
  const started: Started[] = [];
  const peers: Peer[] = [];
  const urls: string[] = [];
  const stop = async () => {
    await Promise.all(
      started.map(async (child, i) => {
        await peers[i]!.request('stop', undefined, 10_000).catch(() => undefined);
        await context.processes.reap(child, 3000);
      }),
    );
  };
  try {
    for (let node = 0; node < context.sizes.nodes; node++) {
      const config: CompressionNodeConfig = {
        server: contender.server,
        deflate: contender.deflate,
        threshold: context.sizes.threshold,
        node,
        redisUrl: context.redisUrl,
      };
      const child = context.processes.fork(
        `${contender.id} node ${node}`,
        NODE,
        { [COMPRESSION_ENV]: JSON.stringify(config) },
        ['--expose-gc'],
      );
      started.push(child);
      peers.push(new Peer(child.child));
      urls.push(`ws://127.0.0.1:${await readyPort(child, node)}`);
    }
  } catch (error) {
    await stop();
    throw error;
  }
  return {
    urls,
    peers,
    sample: (op) =>
      Promise.all(
        peers.map((peer) =>
          peer.request<ProcessSample & { compressed?: number }>(op, undefined, 10_000),
        ),
      ),
    stop,
  };
}

/** The port of a compression node (numbered `node`) once it is ready. */
async function readyPort(started: Started, node: number): Promise<number> {
  let port = 0;
  await awaitReady(started, [node], 15_000, (message) => {
    port = message.port;
  });
  return port;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
