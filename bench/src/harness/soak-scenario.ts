import { Redis } from 'ioredis';
import type { SoakArgs, SoakResult } from '../load/soak.js';
import type { ServerCounts } from '../servers/config.js';
import type { Implementation } from './implementations.js';
import type { NodeGroup } from './nodes.js';
import { type RunContext, withNodes } from './scenarios.js';

/** What a node holds at one moment of the soak. */
export interface SoakState extends ServerCounts {
  /** JS heap after collecting garbage, bytes. */
  heapUsed: number;
  rss: number;
  /** Broker subscriptions (Redis channels with a subscriber), every node's together. */
  subscriptions: number;
}

export interface SoakRound {
  round: number;
  /** When the round started (ISO 8601): a soak may be run, and merged into a report, alone. */
  startedAt: string;
  result: SoakResult;
  /** After a warm-up, before the soak; and once the soak's clients are gone. */
  baseline: SoakState;
  after: SoakState;
}

/** How long the node may take to let go of the soak's last clients and rooms. */
const SETTLE_MS = 15_000;

/**
 * Churn soak (wscale on Redis): thousands of client lives against one node — `wscale.v1` clients
 * that join, leave, drop and resume, raw clients, and bad ones (malformed frames, clients that never
 * read, clients that vanish mid-hello) — then checks that the node's heap, clients, rooms and
 * broker subscriptions are back to where they were before.
 */
export async function runSoak(
  context: RunContext,
  implementation: Implementation,
  round: number,
): Promise<SoakRound> {
  const { sizes } = context;
  const startedAt = new Date().toISOString();
  return withNodes(context, implementation, 1, true, async (group, load) => {
    const args: SoakArgs = {
      url: group.urls[0]!,
      cycles: sizes.soakCycles,
      concurrency: Math.min(50, sizes.soakCycles),
      rooms: 20,
      // Wide: the smoke run shares its machine with the rest of the suite.
      stepMs: 10_000,
      timeoutMs: 300_000,
    };
    // Warm-up: code paths compiled, pools and caches filled, before the baseline is taken.
    const warmup = Math.min(1000, Math.ceil(args.cycles / 5));
    await load.request('soak', { ...args, cycles: warmup }, 120_000);
    const baseline = await state(context, group, undefined);
    const result = await load.request<SoakResult>('soak', args, args.timeoutMs + 10_000);
    context.log(
      `  soak: ${args.cycles} cycles in ${(result.ms / 1000).toFixed(1)} s, ${result.failures} failed` +
        (result.failureSamples.length > 0 ? ` (${result.failureSamples.join('; ')})` : ''),
    );
    const after = await state(context, group, baseline);
    context.log(
      `  heap ${mib(baseline.heapUsed)} → ${mib(after.heapUsed)} MiB, clients ${baseline.clients} → ${after.clients}, ` +
        `rooms ${baseline.rooms} → ${after.rooms}, subscriptions ${baseline.subscriptions} → ${after.subscriptions}`,
    );
    return { round, startedAt, result, baseline, after };
  });
}

/**
 * The node's state once it has let go of what the clients left (bounded): no client and no room,
 * and, after the soak, no more broker subscriptions than at the baseline. Sampled after GC.
 */
async function state(
  context: RunContext,
  group: NodeGroup,
  baseline: SoakState | undefined,
): Promise<SoakState> {
  const deadline = Date.now() + SETTLE_MS;
  const read = async () => ({
    ...(await group.counts())[0]!,
    subscriptions: await redisSubscriptions(context),
  });
  let now = await read();
  const settled = () =>
    now.clients === 0 &&
    now.rooms === 0 &&
    (baseline === undefined || now.subscriptions <= baseline.subscriptions);
  while (!settled() && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 200));
    now = await read();
  }
  const [sample] = await group.sample('settle');
  return { ...now, heapUsed: sample!.heapUsed, rss: sample!.rss };
}

async function redisSubscriptions(context: RunContext): Promise<number> {
  if (context.redis === undefined) return 0;
  const redis = new Redis(context.redis.url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await redis.connect();
    return ((await redis.pubsub('CHANNELS', '*')) as string[]).length;
  } finally {
    redis.disconnect();
  }
}

const mib = (bytes: number) => (bytes / 2 ** 20).toFixed(1);
