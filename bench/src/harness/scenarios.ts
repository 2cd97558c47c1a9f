import { mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { Peer } from '../ipc.js';
import type {
  ChurnArgs,
  ChurnResult,
  ConnectArgs,
  ConnectResult,
  DirectArgs,
  PublisherArgs,
  SendArgs,
  WarmupArgs,
} from '../load/load-main.js';
import type { DeliveryResult } from '../load/tracker.js';
import type { ProcessSample } from '../servers/process-stats.js';
import type { Sizes } from './config.js';
import type { Implementation } from './implementations.js';
import { type NodeGroup, type Profiler, startNodes } from './nodes.js';
import { PeakRss } from './peak-rss.js';
import type { Processes } from './processes.js';
import { cpuMicrosOf, natsMessagesIn, type Service } from './services.js';

const LOAD_MAIN = fileURLToPath(new URL('./load/load-main.js', import.meta.url));

/** What one scenario measured: the load generator's counts and each process's own CPU time. */
export interface PhaseResult {
  delivery: DeliveryResult;
  /** CPU time each node process used during the scenario, µs. */
  nodeCpuMicros: number[];
  /** The broker process's (redis-server, nats-server or the node:cluster primary), µs. */
  brokerCpuMicros: number | null;
  /** The load generator's (clients and publisher), µs. */
  loadCpuMicros: number;
  /** Highest RSS of each node during the scenario. */
  peakRss: number[];
}

export interface FanoutRound {
  round: number;
  nodes: number;
  /** Clients per node, as the servers said. */
  perNode: number[];
  connectMs: number;
  warmupMs: number;
  /** RSS of each node once it listens, and once every client is connected and warmed up. */
  rssStarted: number[];
  rssConnected: number[];
  fixed: PhaseResult;
  max: PhaseResult;
  direct: PhaseResult;
}

/** One drop of a node's `wscale.v1` clients, and their coming back. */
export interface ChurnCycle {
  /** Messages published while the dropped clients were away. */
  messages: number;
  result: ChurnResult;
  /**
   * CPU time of each node (each surviving node, when one was killed), and of the broker process,
   * from the drop until all were back, µs.
   */
  nodeCpuMicros: number[];
  brokerCpuMicros: number | null;
  /** Wall time of that window, ms (absent in results written before the resume storm). */
  ms?: number;
  /** Commands redis-server processed in that window (Redis only; absent before they were counted). */
  redisCommands?: number;
  /** Messages nats-server received in that window (NATS only; absent before they were counted). */
  natsMessages?: number;
}

export interface ChurnRound {
  round: number;
  nodes: number;
  clients: number;
  /** Connecting every `wscale.v1` client and joining the room (acknowledged), ms. */
  connectMs: number;
  cycles: ChurnCycle[];
}

/** Direct messages with the clients spread over one of the scenario's node counts. */
export interface ScaleRound {
  round: number;
  nodes: number;
  /** CPU time of each node over an idle window just before the phase, and its length. */
  idleCpuMicros: number[];
  idleMs: number;
  direct: PhaseResult;
  /** Broadcasts to every client at the same node count (absent with `--no-scale-fanout`). */
  fanout?: PhaseResult;
}

export interface IdleRound {
  round: number;
  connections: number;
  rssBefore: number;
  rssAfter: number;
  heapBefore: number;
  heapAfter: number;
  /** Connecting them (100 at a time), ms (absent in results written before it was kept). */
  connectMs?: number;
  /** Broadcasts to all of them in one room (absent with `--no-big-room`). */
  fanout?: PhaseResult;
}

/** Where an implementation's profiles go, and which profiler writes them. */
export interface Profiling {
  dir: string;
  /**
   * `v8`: the V8 CPU profiler in each node process (and a heap snapshot in the idle scenario);
   * `perf`: Linux `perf record` of the node processes, kernel and native code included.
   */
  profiler: Profiler;
}

/** What the scenarios need from the run. */
export interface RunContext {
  processes: Processes;
  sizes: Sizes;
  redis?: Service;
  nats?: Service;
  /** How an implementation's nodes are profiled per scenario, if they are. */
  profiling: (implementation: Implementation) => Profiling | undefined;
  log: (line: string) => void;
}

/** Runs `use` with a connection of its own to the run's redis-server. */
async function withRedis<T>(context: RunContext, use: (redis: Redis) => Promise<T>): Promise<T> {
  const redis = new Redis(context.redis!.url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await redis.connect();
    return await use(redis);
  } finally {
    redis.disconnect();
  }
}

export async function flushRedis(context: RunContext): Promise<void> {
  if (context.redis !== undefined) await withRedis(context, (redis) => redis.flushall());
}

/** Messages nats-server received so far (requests and publishes), if it is in use. */
async function natsMessages(
  context: RunContext,
  implementation: Implementation,
): Promise<number | null> {
  if (context.nats === undefined || !implementation.needs.includes('nats')) return null;
  return (await natsMessagesIn(context.nats)) ?? null;
}

/** Commands redis-server processed so far (its `total_commands_processed`), if it is in use. */
async function redisCommands(
  context: RunContext,
  implementation: Implementation,
): Promise<number | null> {
  if (context.redis === undefined || !implementation.needs.includes('redis')) return null;
  const info = await withRedis(context, (redis) => redis.info('stats'));
  const count = /^total_commands_processed:(\d+)/m.exec(info)?.[1];
  return count === undefined ? null : Number(count);
}

/** Forks a load-generator process. */
export function startLoad(context: RunContext) {
  const started = context.processes.fork('load', LOAD_MAIN, {}, ['--max-old-space-size=4096']);
  const peer = new Peer(started.child);
  return {
    peer,
    async stop() {
      await peer.request('exit', undefined, 5000).catch(() => undefined);
      await context.processes.reap(started, 3000);
    },
  };
}

/**
 * Runs `use` with fresh nodes of `implementation` and a fresh load generator, and stops them all
 * afterwards, also when it fails.
 */
export async function withNodes<T>(
  context: RunContext,
  implementation: Implementation,
  nodes: number,
  resumable: boolean,
  use: (group: NodeGroup, load: Peer) => Promise<T>,
): Promise<T> {
  const group = await startGroup(context, implementation, nodes, resumable);
  const load = startLoad(context);
  try {
    return await use(group, load.peer);
  } finally {
    await load.peer.request('close', undefined, 10_000).catch(() => undefined);
    await load.stop();
    await group.stop();
  }
}

async function startGroup(
  context: RunContext,
  implementation: Implementation,
  nodes: number,
  resumable: boolean,
): Promise<NodeGroup> {
  await flushRedis(context);
  return startNodes(context.processes, {
    implementation,
    nodes,
    ...(context.redis === undefined ? {} : { redisUrl: context.redis.url }),
    ...(context.nats === undefined ? {} : { natsUrl: context.nats.url }),
    execArgv: ['--expose-gc'],
    timeoutMs: 20_000,
    resumable,
    profiler: context.profiling(implementation)?.profiler,
  });
}

/** CPU time of the implementation's broker process so far (null without one), µs. */
export function brokerCpu(
  context: RunContext,
  implementation: Implementation,
  group: NodeGroup,
): Promise<number | null> {
  if (group.primary !== undefined) return group.primary().then((sample) => sample.cpuMicros);
  const service = implementation.needs.includes('nats')
    ? context.nats
    : implementation.needs.includes('redis')
      ? context.redis
      : undefined;
  return Promise.resolve(service === undefined ? null : (cpuMicrosOf(service.pid) ?? null));
}

async function measure(
  context: RunContext,
  implementation: Implementation,
  group: NodeGroup,
  load: Peer,
  op: 'fanout' | 'direct',
  args: SendArgs & { publisherNode?: number },
  name: string,
  round: number,
): Promise<PhaseResult> {
  const peaks = new PeakRss(group.pids);
  try {
    const profiling = context.profiling(implementation);
    if (profiling !== undefined) await group.profileStart(`${profiling.dir}/round${round}-${name}`);
    const [before, brokerBefore, loadBefore] = await Promise.all([
      group.sample(),
      brokerCpu(context, implementation, group),
      load.request<ProcessSample>('sample'),
    ]);
    const delivery = await load.request<DeliveryResult>(op, args, sendBoundMs(args));
    const [after, brokerAfter, loadAfter] = await Promise.all([
      group.sample(),
      brokerCpu(context, implementation, group),
      load.request<ProcessSample>('sample'),
    ]);
    const peakRss = peaks.peaks().map((peak, i) => Math.max(peak, after[i]!.rss));
    if (profiling !== undefined) {
      const files = await group.profileStop();
      context.log(`  profiles: ${files.join(', ')}`);
    }
    return {
      delivery,
      nodeCpuMicros: after.map((sample, i) => sample.cpuMicros - before[i]!.cpuMicros),
      brokerCpuMicros:
        brokerBefore === null || brokerAfter === null ? null : brokerAfter - brokerBefore,
      loadCpuMicros: loadAfter.cpuMicros - loadBefore.cpuMicros,
      peakRss,
    };
  } finally {
    peaks.stop();
  }
}

/** How long the load generator may take to send `args`' messages and see them arrive. */
function sendBoundMs(args: SendArgs): number {
  const sendMs = args.rate > 0 ? (args.messages / args.rate) * 1000 : args.messages * 5;
  return sendMs + args.drainMs + 60_000;
}

/**
 * Fan-out and direct messages for one implementation: fresh nodes and a fresh load generator,
 * clients spread round-robin over the nodes, a warm-up that proves every client is reachable,
 * then direct messages to clients on other nodes, a fixed-rate broadcast, and a broadcast at the
 * publisher's top speed.
 */
export async function runFanout(
  context: RunContext,
  implementation: Implementation,
  round: number,
): Promise<FanoutRound> {
  const { sizes } = context;
  return withNodes(context, implementation, sizes.nodes, false, async (group, load) => {
    const rssStarted = (await group.sample('settle')).map((sample) => sample.rss);
    const { connected, warm } = await connectAll(context, implementation, group, load);
    const rssConnected = (await group.sample('settle')).map((sample) => sample.rss);
    // Top speed last: an overload leaves state behind (grown heaps, buffers) that would weigh on
    // whatever a phase after it measured.
    context.log(`  direct: ${sizes.directMessages} messages at ${sizes.directRate}/s`);
    const direct = await measureDirect(context, implementation, group, load, 'direct', round);
    context.log(`  fixed rate: ${sizes.messages} messages at ${sizes.rate}/s`);
    const fixed = await measureFanout(
      context,
      implementation,
      group,
      load,
      { messages: sizes.messages, rate: sizes.rate },
      'fixed',
      round,
    );
    context.log(`  max rate: ${sizes.maxMessages} messages`);
    const max = await measureFanout(
      context,
      implementation,
      group,
      load,
      { messages: sizes.maxMessages, rate: 0 },
      'max',
      round,
    );
    return {
      round,
      nodes: group.urls.length,
      perNode: connected.perNode,
      connectMs: connected.ms,
      warmupMs: warm.ms,
      rssStarted,
      rssConnected,
      fixed,
      max,
      direct,
    };
  });
}

/** Broadcasts from the publisher on node 0 to the room, `messages` at `rate` (0: top speed). */
function measureFanout(
  context: RunContext,
  implementation: Implementation,
  group: NodeGroup,
  load: Peer,
  send: { messages: number; rate: number },
  name: string,
  round: number,
): Promise<PhaseResult> {
  const { sizes } = context;
  const args: SendArgs = {
    size: sizes.size,
    quietMs: sizes.quietMs,
    drainMs: sizes.drainMs,
    ...send,
  };
  return measure(context, implementation, group, load, 'fanout', args, name, round);
}

/** Connects the fan-out scenario's clients round-robin over the nodes, and warms them up. */
async function connectAll(
  context: RunContext,
  implementation: Implementation,
  group: NodeGroup,
  load: Peer,
) {
  const { sizes } = context;
  const connectArgs: ConnectArgs = {
    kind: implementation.client,
    urls: group.urls,
    clients: sizes.clients,
    publisherNode: 0,
    concurrency: 50,
    timeoutMs: 120_000,
  };
  const connected = await load.request<ConnectResult>('connect', connectArgs, 130_000);
  const warmupArgs: WarmupArgs = {
    messages: sizes.fanoutWarmup ?? sizes.warmup,
    timeoutMs: 30_000,
  };
  const warm = await load.request<{ ms: number }>('warmup', warmupArgs, 45_000);
  return { connected, warm };
}

/**
 * Direct messages from the publisher on node 0 to clients on the other nodes, round robin, or on
 * `targetNode` alone; the same messages are sent unmeasured first (`directWarmup` of them).
 */
async function measureDirect(
  context: RunContext,
  implementation: Implementation,
  group: NodeGroup,
  load: Peer,
  name: string,
  round: number,
  targetNode?: number,
): Promise<PhaseResult> {
  const { sizes } = context;
  const args: DirectArgs = {
    size: sizes.size,
    quietMs: sizes.quietMs,
    drainMs: sizes.drainMs,
    messages: sizes.directMessages,
    rate: sizes.directRate,
    publisherNode: 0,
    ...(targetNode === undefined ? {} : { targetNode }),
  };
  const warmup = sizes.directWarmup ?? 0;
  if (warmup > 0) {
    const warm = { ...args, messages: warmup };
    const delivered = await load.request<DeliveryResult>('direct', warm, sendBoundMs(warm));
    if (delivered.lost > 0) context.log(`  direct warm-up: ${delivered.lost} of ${warmup} lost`);
  }
  return measure(context, implementation, group, load, 'direct', args, name, round);
}

/**
 * Direct messages as nodes are added: the fan-out scenario's clients spread over `nodes` node
 * processes, then the direct phase alone, every message for a client of node 1. What a message
 * needs (node 0 takes it, node 1 writes it) is then the same at every node count, so the whole
 * cluster's CPU per message grows only with what the other nodes spend on it, which should be
 * nothing.
 */
export async function runScale(
  context: RunContext,
  implementation: Implementation,
  nodes: number,
  round: number,
  broadcast: boolean,
): Promise<ScaleRound> {
  return withNodes(context, implementation, nodes, false, async (group, load) => {
    await connectAll(context, implementation, group, load);
    // What the nodes cost doing nothing (timers, the broker connection), as long as the phase
    // sends: the more nodes, the more of it, whatever the messages cost.
    await group.sample('settle');
    const idleMs = (context.sizes.directMessages / context.sizes.directRate) * 1000;
    const before = await group.sample();
    const idleStart = performance.now();
    await new Promise((resolve) => setTimeout(resolve, idleMs));
    const after = await group.sample();
    const idleCpuMicros = after.map((sample, i) => sample.cpuMicros - before[i]!.cpuMicros);
    const direct = await measureDirect(
      context,
      implementation,
      group,
      load,
      `scale${nodes}`,
      round,
      1,
    );
    // Broadcasts: every node delivers to its share of the clients, so the deliveries are the same
    // at every node count and what grows is what each node spends per message on top of them.
    const fanout = broadcast
      ? await measureFanout(
          context,
          implementation,
          group,
          load,
          { messages: context.sizes.scaleMessages ?? 100, rate: context.sizes.rate },
          `scale${nodes}-fanout`,
          round,
        )
      : undefined;
    return {
      round,
      nodes: group.urls.length,
      idleCpuMicros,
      idleMs: performance.now() - idleStart,
      direct,
      ...(fanout === undefined ? {} : { fanout }),
    };
  });
}

/**
 * One node and `idleClients` connections: RSS after collecting garbage, before and after they
 * connect, and how fast they connect; then, with `bigRoom`, a publisher broadcasts to all of them
 * in one room.
 */
export async function runIdle(
  context: RunContext,
  implementation: Implementation,
  round: number,
  bigRoom: boolean,
): Promise<IdleRound> {
  const { sizes } = context;
  return withNodes(context, implementation, 1, false, async (group, load) => {
    const [before] = await group.sample('settle');
    const connectArgs: ConnectArgs = {
      kind: implementation.client,
      urls: [group.urls[0]!],
      clients: sizes.idleClients,
      publisherNode: -1,
      concurrency: 100,
      timeoutMs: 120_000,
    };
    const connected = await load.request<ConnectResult>('connect', connectArgs, 130_000);
    await new Promise((resolve) => setTimeout(resolve, 500));
    const [after] = await group.sample('settle');
    const profiling = context.profiling(implementation);
    if (profiling?.profiler === 'v8') {
      mkdirSync(profiling.dir, { recursive: true });
      const files = await group.heapSnapshot(`${profiling.dir}/round${round}-idle`);
      context.log(`  heap snapshot: ${files.join(', ')}`);
    }
    let fanout: PhaseResult | undefined;
    if (bigRoom) {
      const publisher: PublisherArgs = {
        kind: implementation.client,
        url: group.urls[0]!,
        timeoutMs: 10_000,
      };
      await load.request('connectPublisher', publisher, 15_000);
      const warmupArgs: WarmupArgs = { messages: sizes.warmup, timeoutMs: 30_000 };
      await load.request('warmup', warmupArgs, 45_000);
      const messages = sizes.bigRoomMessages ?? 20;
      const rate = sizes.bigRoomRate ?? 2;
      context.log(`  big room: ${messages} messages at ${rate}/s to ${sizes.idleClients} clients`);
      fanout = await measureFanout(
        context,
        implementation,
        group,
        load,
        { messages, rate },
        'bigroom',
        round,
      );
    }
    return {
      round,
      connections: sizes.idleClients,
      rssBefore: before!.rss,
      rssAfter: after!.rss,
      heapBefore: before!.heapUsed,
      heapAfter: after!.heapUsed,
      connectMs: connected.ms,
      ...(fanout === undefined ? {} : { fanout }),
    };
  });
}

/**
 * Connects `clients` `wscale.v1` clients over the group's nodes (each joins the room, which keeps
 * history), with a raw publisher on the last node, and warms them up.
 */
export async function connectSessions(
  context: RunContext,
  group: NodeGroup,
  load: Peer,
  clients: number,
): Promise<ConnectResult> {
  const connectArgs: ConnectArgs = {
    kind: 'ws',
    urls: group.urls,
    clients,
    publisherNode: group.urls.length - 1,
    concurrency: 50,
    timeoutMs: 120_000,
  };
  const connected = await load.request<ConnectResult>('connectSessions', connectArgs, 130_000);
  const warmupArgs: WarmupArgs = { messages: context.sizes.warmup, timeoutMs: 30_000 };
  const warm = await load.request<{ ms: number }>('warmup', warmupArgs, 45_000);
  context.log(
    `  ${clients} clients connected in ${(connected.ms / 1000).toFixed(1)} s, warm in ${(warm.ms / 1000).toFixed(1)} s`,
  );
  return connected;
}

/**
 * One drop of `wscale.v1` clients and their coming back: `drop` takes them away (and says how
 * many), `messages` are published while they are away. The CPU of the nodes listed in `sampled`
 * (default all) and of the broker is measured from just before the drop until all are back.
 */
export async function churnCycle(
  context: RunContext,
  implementation: Implementation,
  group: NodeGroup,
  load: Peer,
  cycle: {
    messages: number;
    drop: () => Promise<number>;
    sampled?: number[];
    timeoutMs: number;
    name: string;
    round: number;
  },
): Promise<ChurnCycle> {
  const { messages, sampled } = cycle;
  await load.request('churnArm');
  const profiling = context.profiling(implementation);
  if (profiling !== undefined) {
    await group.profileStart(`${profiling.dir}/round${cycle.round}-${cycle.name}`);
  }
  const started = performance.now();
  const [before, brokerBefore, commandsBefore, messagesBefore] = await Promise.all([
    group.sample('sample', sampled),
    brokerCpu(context, implementation, group),
    redisCommands(context, implementation),
    natsMessages(context, implementation),
  ]);
  const drops = await cycle.drop();
  const args: ChurnArgs = { drops, messages, size: context.sizes.size, timeoutMs: cycle.timeoutMs };
  const result = await load.request<ChurnResult>('churnRun', args, cycle.timeoutMs + 10_000);
  const [after, brokerAfter, commandsAfter, messagesAfter] = await Promise.all([
    group.sample('sample', sampled),
    brokerCpu(context, implementation, group),
    redisCommands(context, implementation),
    natsMessages(context, implementation),
  ]);
  const ms = performance.now() - started;
  if (profiling !== undefined) {
    const files = await group.profileStop();
    context.log(`  profiles: ${files.join(', ')}`);
  }
  context.log(
    `  ${result.resumed}/${result.dropped} resumed, p99 ${result.resumeLatency.p99.toFixed(1)} ms` +
      (result.delivery === undefined
        ? ''
        : `, ${messages} missed messages: lost ${result.delivery.lost} dup ${result.delivery.duplicated} reordered ${result.delivery.reordered}`) +
      (result.backAndRecovered === undefined
        ? ''
        : `; back with all of them: p50 ${result.backAndRecovered.p50.toFixed(0)} ms, last ${result.backAndRecovered.max.toFixed(0)} ms`),
  );
  if (result.notBack !== undefined) {
    context.log(`  ${result.notBack} not back: ${result.notBackSamples?.join('; ')}`);
  }
  return {
    messages,
    result,
    nodeCpuMicros: after.map((sample, i) => sample.cpuMicros - before[i]!.cpuMicros),
    brokerCpuMicros:
      brokerBefore === null || brokerAfter === null ? null : brokerAfter - brokerBefore,
    ms,
    ...(commandsBefore === null || commandsAfter === null
      ? {}
      : { redisCommands: commandsAfter - commandsBefore }),
    ...(messagesBefore === null || messagesAfter === null
      ? {}
      : { natsMessages: messagesAfter - messagesBefore }),
  };
}

/**
 * Connect + resume churn (wscale only: it needs session resume). `wscale.v1` clients join the room
 * (with history, on a shared state store); then 1/K of them, all on one node, are dropped at once
 * and each comes back on another node and resumes. Twice: first with nothing published
 * meanwhile (the cost of resuming), then with messages published while they are away (each must
 * be recovered exactly once, in order).
 */
export async function runChurn(
  context: RunContext,
  implementation: Implementation,
  round: number,
): Promise<ChurnRound> {
  const { sizes } = context;
  return withNodes(context, implementation, sizes.nodes, true, async (group, load) => {
    const nodes = group.urls.length;
    const connected = await connectSessions(context, group, load, sizes.churnClients);
    const cycles: ChurnCycle[] = [];
    for (const [cycle, messages] of [0, sizes.churnMessages].entries()) {
      const node = cycle % nodes;
      cycles.push(
        await churnCycle(context, implementation, group, load, {
          messages,
          // The same number each time (clients move to the next node when they come back).
          drop: () => group.dropClients(node, Math.ceil(sizes.churnClients / nodes)),
          timeoutMs: 60_000,
          name: `churn${cycle}`,
          round,
        }),
      );
    }
    return {
      round,
      nodes,
      clients: sizes.churnClients,
      connectMs: connected.ms,
      cycles,
    };
  });
}
