/**
 * The load generator: a process of its own that holds every client, publishes, and measures what
 * arrives. Driven by the orchestrator over IPC; each operation is bounded in count and time.
 */
import { performance } from 'node:perf_hooks';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import { serveRequests } from '../ipc.js';
import { ProcessStats } from '../servers/process-stats.js';
import { directSeqStart, Kind, kindOf, payload, readSeq } from '../wire.js';
import {
  type CapacityCollectArgs,
  type CapacityConnectArgs,
  capacityArm,
  capacityClose,
  capacityCollect,
  capacityConnect,
  capacityPublish,
} from './capacity.js';
import { type BenchClient, type ClientKind, connectClient } from './clients.js';
import { type Percentiles, percentiles } from './percentiles.js';
import { type SoakArgs, soak } from './soak.js';
import { type DeliveryResult, DeliveryTracker } from './tracker.js';
import { connectV1, type V1Client } from './v1-clients.js';

export interface ConnectArgs {
  kind: ClientKind;
  /** One URL per node. */
  urls: string[];
  clients: number;
  /** The node the publisher connects to; -1 for no publisher. */
  publisherNode: number;
  /** How many connections are opened at once. */
  concurrency: number;
  timeoutMs: number;
}

export interface ConnectResult {
  /** Clients per node, as their hellos say. */
  perNode: number[];
  ms: number;
}

export interface SendArgs {
  messages: number;
  /** Messages per second; 0 sends as fast as the publisher can. */
  rate: number;
  /** Payload size in bytes. */
  size: number;
  /** After the last send, stop waiting once nothing arrived for this long. */
  quietMs: number;
  /** After the last send, stop waiting after this long in any case. */
  drainMs: number;
}

/** Direct messages: from the publisher's node to clients on other nodes, or on one of them. */
export interface DirectArgs extends SendArgs {
  publisherNode: number;
  /** Only clients of this node receive (default: every node but the publisher's). */
  targetNode?: number;
}

export interface ChurnArgs {
  /** Clients expected to drop (those of the node the orchestrator drops). */
  drops: number;
  /** Messages published while they are away (0: measure resuming alone). */
  messages: number;
  size: number;
  timeoutMs: number;
}

/** What one churn cycle measured. */
export interface ChurnResult {
  dropped: number;
  /** Clients that came back with their session resumed, and with the room recovered. */
  resumed: number;
  recovered: number;
  /** From starting to resume (after the backoff) to `welcome`, ms. */
  resumeLatency: Percentiles;
  /** From the first drop to the last client back, ms (includes the reconnect backoff). */
  allBackMs: number;
  /**
   * For each dropped client, from the first drop until it was back and had every message
   * published while it was away, ms (only when messages were published).
   */
  backAndRecovered?: Percentiles;
  /** The messages published while they were away, as every client (dropped or not) got them. */
  delivery: DeliveryResult | undefined;
  /** Room messages that arrived twice on the wire during the cycle (the client dropped them). */
  wireRepeats: number;
  /**
   * Dropped clients not back with a `welcome` by the bound, and a few of them described (state,
   * closes since the drop, the last close), to tell a slow node from a stuck resume.
   */
  notBack?: number;
  notBackSamples?: string[];
}

export interface WarmupArgs {
  messages: number;
  timeoutMs: number;
}

const stats = new ProcessStats();
let clients: Array<BenchClient | V1Client> = [];
let v1Clients: V1Client[] = [];
let publisher: BenchClient | undefined;
let tracker: DeliveryTracker | undefined;
let warmupSeen = new Int32Array(0);

function onData(index: number, data: Buffer | string): void {
  const kind = kindOf(data);
  if (kind === Kind.Broadcast) {
    tracker?.received(index, readSeq(data, 1), performance.now());
  } else if (kind === Kind.Direct) {
    tracker?.received(index, readSeq(data, directSeqStart(data)), performance.now());
  } else if (kind === Kind.Warmup) {
    const seq = readSeq(data, 1);
    if (seq > warmupSeen[index]!) warmupSeen[index] = seq;
  }
}

async function connect(args: ConnectArgs): Promise<ConnectResult> {
  const started = performance.now();
  const deadline = started + args.timeoutMs;
  clients = new Array(args.clients);
  warmupSeen = new Int32Array(args.clients).fill(-1);
  for (let from = 0; from < args.clients; from += args.concurrency) {
    const left = deadline - performance.now();
    if (left <= 0)
      throw new Error(`connecting ${args.clients} clients took over ${args.timeoutMs} ms`);
    const batch: Promise<BenchClient>[] = [];
    for (let i = from; i < Math.min(args.clients, from + args.concurrency); i++) {
      const url = args.urls[i % args.urls.length]!;
      batch.push(connectClient(args.kind, url, i, false, onData, left));
    }
    for (const client of await Promise.all(batch)) clients[client.index] = client;
  }
  if (args.publisherNode >= 0) {
    await connectPublisher({ ...args, url: args.urls[args.publisherNode]! });
  }
  const perNode = args.urls.map(() => 0);
  for (const client of clients as BenchClient[])
    perNode[client.node] = (perNode[client.node] ?? 0) + 1;
  return { perNode, ms: performance.now() - started };
}

export interface PublisherArgs {
  kind: ClientKind;
  url: string;
  timeoutMs: number;
}

/** Connects the publisher (after the clients: the one-node scenario measures memory before it). */
async function connectPublisher(args: PublisherArgs): Promise<boolean> {
  publisher = await connectClient(args.kind, args.url, -1, true, onData, args.timeoutMs);
  return true;
}

/** Connects `wscale.v1` clients (each joins the room), then a raw publisher. */
async function connectSessions(args: ConnectArgs): Promise<ConnectResult> {
  const started = performance.now();
  const deadline = started + args.timeoutMs;
  v1Clients = new Array(args.clients);
  warmupSeen = new Int32Array(args.clients).fill(-1);
  for (let from = 0; from < args.clients; from += args.concurrency) {
    const left = deadline - performance.now();
    if (left <= 0)
      throw new Error(`connecting ${args.clients} clients took over ${args.timeoutMs} ms`);
    const batch: Promise<V1Client>[] = [];
    for (let i = from; i < Math.min(args.clients, from + args.concurrency); i++) {
      batch.push(connectV1(args.urls, i, onData, left));
    }
    for (const client of await Promise.all(batch)) v1Clients[client.index] = client;
  }
  clients = v1Clients;
  const url = args.urls[args.publisherNode]!;
  publisher = await connectClient('ws', url, -1, true, onData, args.timeoutMs);
  const perNode = args.urls.map(
    (_, node) => v1Clients.filter((client) => client.index % args.urls.length === node).length,
  );
  return { perNode, ms: performance.now() - started };
}

/** Forgets the last drop and resume of every client, before the orchestrator drops some. */
function churnArm(): boolean {
  for (const client of v1Clients) {
    client.downAt = 0;
    client.resumingAt = 0;
    client.welcomedAt = 0;
    client.resumed = false;
    client.recovered = false;
    client.wireRepeats = 0;
    client.closes = 0;
    client.lastClose = '';
  }
  return true;
}

/**
 * Waits for the dropped clients to notice, publishes while they are away, and waits until each is
 * back and every client got every message (bounded).
 */
async function churnRun(args: ChurnArgs): Promise<ChurnResult> {
  const deadline = performance.now() + args.timeoutMs;
  const down = () => v1Clients.filter((client) => client.downAt > 0);
  while (down().length < args.drops && performance.now() < deadline) await sleep(5);
  const dropped = down();
  const track =
    args.messages > 0 ? new DeliveryTracker(v1Clients.length, args.messages) : undefined;
  tracker = track;
  const started = performance.now();
  for (let seq = 0; seq < args.messages; seq++) {
    const text = payload('B', seq, args.size);
    track!.sent(seq, performance.now());
    publisher!.send(text);
  }
  const sendEnded = performance.now();
  const back = () => dropped.every((client) => client.welcomedAt > client.downAt);
  while ((!back() || (track !== undefined && !track.complete)) && performance.now() < deadline) {
    await sleep(10);
  }
  tracker = undefined;
  const latencies = new Float64Array(dropped.length);
  let count = 0;
  let lastBack = 0;
  for (const client of dropped) {
    if (client.welcomedAt > client.downAt && client.resumingAt > 0) {
      latencies[count++] = client.welcomedAt - client.resumingAt;
      lastBack = Math.max(lastBack, client.welcomedAt);
    }
  }
  const resumeLatency = percentiles(latencies, count);
  const firstDown = dropped.reduce((first, client) => Math.min(first, client.downAt), Infinity);
  let recoveredCount = 0;
  for (const client of track === undefined ? [] : dropped) {
    const completeAt = track!.completeAt(client.index);
    if (client.welcomedAt > client.downAt && completeAt > 0) {
      latencies[recoveredCount++] = Math.max(client.welcomedAt, completeAt) - firstDown;
    }
  }
  const backAndRecovered = track === undefined ? undefined : percentiles(latencies, recoveredCount);
  const missing = dropped.filter((client) => !(client.welcomedAt > client.downAt));
  const notBackSamples = missing
    .slice(0, 5)
    .map(
      (client) =>
        `client ${client.index}: ${client.client.state}, ${client.closes} closes, last "${client.lastClose}"` +
        (client.resumingAt > client.downAt
          ? `, resuming since ${((performance.now() - client.resumingAt) / 1000).toFixed(1)} s`
          : ''),
    );
  return {
    ...(missing.length === 0 ? {} : { notBack: missing.length, notBackSamples }),
    ...(backAndRecovered === undefined ? {} : { backAndRecovered }),
    dropped: dropped.length,
    resumed: dropped.filter((client) => client.resumed).length,
    recovered: dropped.filter((client) => client.recovered).length,
    resumeLatency,
    allBackMs: lastBack > 0 ? lastBack - firstDown : 0,
    delivery: track?.result(started, sendEnded, track.complete ? track.lastAt : performance.now()),
    wireRepeats: v1Clients.reduce((sum, client) => sum + client.wireRepeats, 0),
  };
}

/**
 * Warms up (JIT, connections) and proves every client is reachable: publishes `messages` warm-up
 * broadcasts, then one probe a second until every client got one of the probes (a client that
 * joined late may miss the first; a probe may take more than a second to reach thousands).
 */
async function warmup(args: WarmupArgs): Promise<{ ms: number; rounds: number }> {
  const started = performance.now();
  const pub = publisher!;
  let seq = 0;
  for (; seq < args.messages; seq++) {
    pub.send(payload('W', seq, 32));
    await sleep(5);
  }
  const firstProbe = seq;
  for (let round = 0; performance.now() - started < args.timeoutMs; round++, seq++) {
    pub.send(payload('W', seq, 32));
    const until = performance.now() + 1000;
    while (performance.now() < until) {
      if (warmupSeen.every((seen) => seen >= firstProbe))
        return { ms: performance.now() - started, rounds: round };
      await sleep(10);
    }
  }
  const missing = warmupSeen.filter((seen) => seen < firstProbe).length;
  throw new Error(
    `warm-up: ${missing} of ${clients.length} clients unreachable after ${args.timeoutMs} ms`,
  );
}

async function publish(
  args: SendArgs,
  make: (seq: number) => string,
  track: DeliveryTracker,
): Promise<DeliveryResult> {
  tracker = track;
  const pub = publisher!;
  const period = args.rate > 0 ? 1000 / args.rate : 0;
  const started = performance.now();
  for (let seq = 0; seq < args.messages; seq++) {
    if (period > 0) {
      const wait = started + seq * period - performance.now();
      if (wait > 1) await sleep(wait);
    } else if (seq % 8 === 0) {
      await yieldToLoop();
    }
    const text = make(seq);
    track.sent(seq, performance.now());
    pub.send(text);
  }
  const sendEnded = performance.now();
  const drainEnd = sendEnded + args.drainMs;
  while (!track.complete && performance.now() < drainEnd) {
    const quietFor = performance.now() - Math.max(track.lastAt, sendEnded);
    if (quietFor > args.quietMs) break;
    await Promise.race([track.whenComplete(), sleep(50)]);
  }
  const ended = track.complete ? track.lastAt : performance.now();
  tracker = undefined;
  return track.result(started, sendEnded, ended);
}

function fanout(args: SendArgs): Promise<DeliveryResult> {
  return publish(
    args,
    (seq) => payload('B', seq, args.size),
    new DeliveryTracker(clients.length, args.messages),
  );
}

/** Direct messages from the publisher to clients on other nodes than its own (round robin). */
function direct(args: DirectArgs): Promise<DeliveryResult> {
  const raw = clients as BenchClient[];
  const remote = raw.filter((client) =>
    args.targetNode === undefined
      ? client.node !== args.publisherNode
      : client.node === args.targetNode,
  );
  const recipients = remote.length > 0 ? remote : raw;
  const targets = new Int32Array(args.messages);
  for (let seq = 0; seq < args.messages; seq++) {
    targets[seq] = recipients[seq % recipients.length]!.index;
  }
  return publish(
    args,
    (seq) => payload('D', seq, args.size, `${raw[targets[seq]!]!.id}|`),
    new DeliveryTracker(clients.length, args.messages, targets),
  );
}

async function close(): Promise<boolean> {
  for (const client of clients) {
    if (client === undefined) continue;
    if ('close' in client) client.close();
    else client.client.close();
  }
  v1Clients = [];
  publisher?.close();
  clients = [];
  publisher = undefined;
  capacityClose();
  await sleep(50);
  return true;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

serveRequests({
  connect: (args) => connect(args as ConnectArgs),
  connectPublisher: (args) => connectPublisher(args as PublisherArgs),
  connectSessions: (args) => connectSessions(args as ConnectArgs),
  churnArm: () => churnArm(),
  churnRun: (args) => churnRun(args as ChurnArgs),
  soak: (args) => soak(args as SoakArgs),
  warmup: (args) => warmup(args as WarmupArgs),
  fanout: (args) => fanout(args as SendArgs),
  direct: (args) => direct(args as DirectArgs),
  capacityConnect: (args) => capacityConnect(args as CapacityConnectArgs),
  capacityArm: (count) => capacityArm(Number(count)),
  capacityPublish: (args) => capacityPublish(args as Parameters<typeof capacityPublish>[0]),
  capacityCollect: (args) => capacityCollect(args as CapacityCollectArgs),
  close: () => close(),
  sample: () => stats.sample(),
  exit: () => {
    setTimeout(() => process.exit(0), 10);
    return true;
  },
});
