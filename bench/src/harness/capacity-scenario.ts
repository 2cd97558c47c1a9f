import type { Peer } from '../ipc.js';
import type { CapacityCollectResult, CapacityConnectResult } from '../load/capacity.js';
import { type Percentiles, percentiles } from '../load/percentiles.js';
import type { Implementation } from './implementations.js';
import { openFilesLimit } from './machine.js';
import { startNodes } from './nodes.js';
import { brokerCpu, flushRedis, type RunContext, startLoad } from './scenarios.js';

/** Descriptors a process keeps for itself besides its sockets (IPC, broker connections, files). */
const SPARE_DESCRIPTORS = 200;
/** Connections a load-generator process opens at once. */
const CONCURRENCY = 100;
/** Bound for one connection, ms. */
const CONNECT_TIMEOUT_MS = 15_000;
/**
 * Bound for a node's sample after garbage collection: with 20 000 sockets, on a machine busy
 * with the load generators, three full collections took over 10 s.
 */
const SETTLE_TIMEOUT_MS = 60_000;

/** Why the ramp stopped. */
export type CapacityStop = 'ceiling' | 'failures' | 'time';

/** The broadcast to every held client: what arrived, and when its copies did. */
export interface CapacityFanout {
  messages: number;
  expected: number;
  delivered: number;
  lost: number;
  duplicated: number;
  /** Per message, from its send to its first / last copy at any client, ms. */
  firstCopyMs: Percentiles;
  lastCopyMs: Percentiles;
  /** CPU time of each node, and of the broker, from the first send to the last copy, µs. */
  nodeCpuMicros: number[];
  brokerCpuMicros: number | null;
}

/** One ramp: `nodes` node processes, clients opened step by step until a bound. */
export interface CapacityRound {
  round: number;
  nodes: number;
  /** Load-generator processes holding the clients. */
  loads: number;
  /** The ceiling of this run: the asked-for total, lowered to what the open-files limit allows. */
  ceiling: number;
  /** The open-files limit each process ran with (undefined: unlimited or unknown). */
  openFiles?: number;
  /** Clients held at the end, in all and per node. */
  held: number;
  perNode: number[];
  /** Connections that failed (the step that saw them was the last). */
  failed: number;
  firstError?: string;
  stop: CapacityStop;
  /** From the first connection to the last step's end, ms. */
  connectMs: number;
  /** Clients held and ms since the ramp started, after each step (how the rate changes). */
  steps?: Array<{ held: number; ms: number }>;
  /** Each node's RSS and JS heap after garbage collection, before and after the clients. */
  rssBefore: number[];
  rssAfter: number[];
  heapBefore: number[];
  heapAfter: number[];
  /** The broadcast to all of them (implementations that broadcast across nodes). */
  fanout?: CapacityFanout;
}

/**
 * Most connections across nodes: `capacityNodes` node processes on one broker; several
 * load-generator processes (each within its open-files limit) open plain `ws` clients round-robin
 * over the nodes, `capacityStep` per step, until `capacityMax` are held (lowered to what each
 * node's open-files limit allows), a connection fails, or `capacitySeconds` pass. Then each
 * node's memory per connection, and `capacityMessages` broadcasts from a publisher on node 0 to
 * every held client.
 */
export async function runCapacity(
  context: RunContext,
  implementation: Implementation,
  round: number,
  broadcast: boolean,
): Promise<CapacityRound> {
  const { sizes, log } = context;
  const nodes = sizes.capacityNodes ?? 3;
  const limit = openFilesLimit();
  const perProcess =
    limit === undefined ? Number.POSITIVE_INFINITY : Math.max(1, limit - SPARE_DESCRIPTORS);
  // One process more per node would only fail at accept: stop below what a node can hold.
  const ceiling = Math.min(sizes.capacityMax ?? 60_000, nodes * perProcess);
  const perLoad = Math.min(perProcess, sizes.capacityPerLoad ?? 15_000);
  const loadCount = Math.ceil(ceiling / perLoad);
  await flushRedis(context);
  const group = await startNodes(context.processes, {
    // The bare `ws` baseline runs as many independent processes, to compare per-node memory.
    implementation: { ...implementation, singleNode: false },
    nodes,
    ...(context.redis === undefined ? {} : { redisUrl: context.redis.url }),
    ...(context.nats === undefined ? {} : { natsUrl: context.nats.url }),
    execArgv: ['--expose-gc'],
    timeoutMs: 20_000,
  });
  const loads = Array.from({ length: loadCount }, () => startLoad(context));
  try {
    const publisher = loads[0]!.peer;
    if (broadcast) {
      // Before the ramp, so that a node at its limit still has room for it.
      await publisher.request(
        'capacityPublish',
        { url: group.urls[0], count: 0, rate: 1, size: sizes.size, timeoutMs: 10_000 },
        15_000,
      );
    }
    const before = await group.sample('settle', undefined, SETTLE_TIMEOUT_MS);
    const ramp = await rampUp(context, group.urls, loads, ceiling, perLoad);
    await new Promise((resolve) => setTimeout(resolve, sizes.capacityIdleMs ?? 0));
    const after = await group.sample('settle', undefined, SETTLE_TIMEOUT_MS);
    log(
      `  held ${ramp.held} over ${nodes} nodes and ${loadCount} load processes (${ramp.stop}` +
        `${ramp.firstError === undefined ? '' : `: ${ramp.firstError}`}), ` +
        `${Math.round((ramp.held / ramp.ms) * 1000)} connections/s`,
    );
    const fanout = broadcast
      ? await broadcastToAll(context, implementation, group, loads)
      : undefined;
    return {
      round,
      nodes,
      loads: loadCount,
      ceiling,
      ...(limit === undefined ? {} : { openFiles: limit }),
      held: ramp.held,
      perNode: ramp.perNode,
      failed: ramp.failed,
      ...(ramp.firstError === undefined ? {} : { firstError: ramp.firstError }),
      stop: ramp.stop,
      connectMs: ramp.ms,
      steps: ramp.steps,
      rssBefore: before.map((sample) => sample.rss),
      rssAfter: after.map((sample) => sample.rss),
      heapBefore: before.map((sample) => sample.heapUsed),
      heapAfter: after.map((sample) => sample.heapUsed),
      ...(fanout === undefined ? {} : { fanout }),
    };
  } finally {
    await Promise.all(
      loads.map(async (load) => {
        await load.peer.request('close', undefined, 20_000).catch(() => undefined);
        await load.stop();
      }),
    );
    await group.stop();
  }
}

/** Opens clients step by step over the load processes until a bound; never throws for a failure. */
async function rampUp(
  context: RunContext,
  urls: string[],
  loads: { peer: Peer }[],
  ceiling: number,
  perLoad: number,
) {
  const { sizes } = context;
  const step = sizes.capacityStep ?? 1000;
  const deadline = performance.now() + (sizes.capacitySeconds ?? 300) * 1000;
  const heldBy = loads.map(() => 0);
  const perNodeBy = loads.map(() => urls.map(() => 0));
  let attempted = 0;
  let failed = 0;
  let firstError: string | undefined;
  let stop: CapacityStop = 'ceiling';
  const steps: Array<{ held: number; ms: number }> = [];
  const started = performance.now();
  while (attempted < ceiling) {
    if (performance.now() > deadline) {
      stop = 'time';
      break;
    }
    // This step's connections, shared between the load processes that have room left.
    let left = Math.min(step, ceiling - attempted);
    const shares: { load: number; from: number; count: number }[] = [];
    const open = loads.map((_, load) => load).filter((load) => heldBy[load]! < perLoad);
    for (const [i, load] of open.entries()) {
      const count = Math.min(Math.ceil(left / (open.length - i)), perLoad - heldBy[load]!);
      if (count <= 0) continue;
      shares.push({ load, from: attempted, count });
      attempted += count;
      left -= count;
    }
    if (shares.length === 0) break;
    const results = await Promise.all(
      shares.map(({ load, from, count }) =>
        loads[load]!.peer.request<CapacityConnectResult>(
          'capacityConnect',
          { urls, from, count, concurrency: CONCURRENCY, timeoutMs: CONNECT_TIMEOUT_MS },
          CONNECT_TIMEOUT_MS * Math.ceil(count / CONCURRENCY) + 10_000,
        ),
      ),
    );
    for (const [i, result] of results.entries()) {
      const load = shares[i]!.load;
      heldBy[load] = heldBy[load]! + result.connected;
      perNodeBy[load] = result.perNode;
      failed += result.failed;
      firstError ??= result.error;
    }
    const heldNow = heldBy.reduce((sum, count) => sum + count, 0);
    steps.push({ held: heldNow, ms: Math.round(performance.now() - started) });
    if (failed > 0) {
      stop = 'failures';
      break;
    }
  }
  const ms = performance.now() - started;
  const perNode = urls.map((_, node) => perNodeBy.reduce((sum, counts) => sum + counts[node]!, 0));
  const held = heldBy.reduce((sum, count) => sum + count, 0);
  return {
    held,
    perNode,
    failed,
    stop,
    ms,
    steps,
    ...(firstError === undefined ? {} : { firstError }),
  };
}

/** Broadcasts from the publisher on node 0 to every held client, merging what each process saw. */
async function broadcastToAll(
  context: RunContext,
  implementation: Implementation,
  group: Awaited<ReturnType<typeof startNodes>>,
  loads: { peer: Peer }[],
): Promise<CapacityFanout> {
  const { sizes } = context;
  const messages = sizes.capacityMessages ?? 5;
  const rate = sizes.capacityRate ?? 1;
  await Promise.all(loads.map((load) => load.peer.request('capacityArm', messages)));
  const [nodesBefore, brokerBefore] = await Promise.all([
    group.sample(),
    brokerCpu(context, implementation, group),
  ]);
  const sendMs = (messages / rate) * 1000;
  const sentAt = await loads[0]!.peer.request<number[]>(
    'capacityPublish',
    { url: group.urls[0], count: messages, rate, size: sizes.size, timeoutMs: 10_000 },
    sendMs + 15_000,
  );
  const seen = await Promise.all(
    loads.map((load) =>
      load.peer.request<CapacityCollectResult>(
        'capacityCollect',
        { quietMs: sizes.quietMs, timeoutMs: sizes.drainMs },
        sizes.drainMs + 10_000,
      ),
    ),
  );
  const [nodesAfter, brokerAfter] = await Promise.all([
    group.sample(),
    brokerCpu(context, implementation, group),
  ]);
  const first = new Float64Array(messages);
  const last = new Float64Array(messages);
  let count = 0;
  for (let seq = 0; seq < messages; seq++) {
    const firsts = seen.map((part) => part.firstAt[seq]!).filter((at) => at > 0);
    if (firsts.length === 0) continue;
    first[count] = Math.min(...firsts) - sentAt[seq]!;
    last[count] = Math.max(...seen.map((part) => part.lastAt[seq]!)) - sentAt[seq]!;
    count++;
  }
  const expected = seen.reduce((sum, part) => sum + part.expected, 0);
  const delivered = seen.reduce((sum, part) => sum + part.delivered, 0);
  const result: CapacityFanout = {
    messages,
    expected,
    delivered,
    lost: expected - delivered,
    duplicated: seen.reduce((sum, part) => sum + part.duplicated, 0),
    firstCopyMs: percentiles(first, count),
    lastCopyMs: percentiles(last, count),
    nodeCpuMicros: nodesAfter.map((sample, i) => sample.cpuMicros - nodesBefore[i]!.cpuMicros),
    brokerCpuMicros:
      brokerBefore === null || brokerAfter === null ? null : brokerAfter - brokerBefore,
  };
  const cpu = result.nodeCpuMicros.reduce((sum, micros) => sum + micros, 0);
  context.log(
    `  broadcast: ${delivered}/${expected} delivered, dup ${result.duplicated}; last copy p50 ` +
      `${result.lastCopyMs.p50.toFixed(0)} ms, ${(cpu / Math.max(1, delivered)).toFixed(2)} µs CPU/delivery`,
  );
  return result;
}
