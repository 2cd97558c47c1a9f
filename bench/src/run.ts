/**
 * The benchmark: `pnpm bench` (or `pnpm --filter @wscale/bench bench`). Starts its own
 * redis-server / nats-server, the node processes of each implementation and a load-generator
 * process, runs every scenario for every implementation in interleaved rounds, stops everything
 * it started, and writes `docs/benchmarks.md`, `docs/benchmarks/results.json` and charts.
 */
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  COMPRESSION_SIZES,
  COMPRESSION_SMOKE,
  runCompression,
} from './compression/compression-scenario.js';
import { runCapacity } from './harness/capacity-scenario.js';
import { parseOptions } from './harness/config.js';
import {
  IMPLEMENTATIONS,
  type Implementation,
  type Needs,
  unavailableReason,
} from './harness/implementations.js';
import {
  cpuTimes,
  describeMachine,
  loadAverage,
  openFilesLimit,
  packageVersions,
} from './harness/machine.js';
import { Processes } from './harness/processes.js';
import type { Results } from './harness/results.js';
import { type RunContext, runChurn, runFanout, runIdle, runScale } from './harness/scenarios.js';
import { hasBinary, type Service, startNats, startRedis } from './harness/services.js';
import { runSoak } from './harness/soak-scenario.js';
import { runStorm } from './harness/storm-scenario.js';
import { writeReport } from './report/write-report.js';

const DOCS = fileURLToPath(new URL('../../docs', import.meta.url));
const ANALYSIS = fileURLToPath(new URL('../ANALYSIS.md', import.meta.url));

async function main(): Promise<number> {
  const options = parseOptions(process.argv.slice(2), DOCS);
  if (options.reportFrom !== undefined) {
    const results = JSON.parse(readFileSync(options.reportFrom, 'utf8')) as Results;
    for (const file of writeReport(results, options.out, ANALYSIS)) console.log(`wrote ${file}`);
    return 0;
  }
  if (options.perf.length > 0 && !hasBinary('perf')) {
    throw new Error('--perf needs Linux perf on the PATH (Debian: apt-get install linux-perf)');
  }
  // The load generator holds every client of a scenario, and one node all of the one-node
  // scenario's: each needs a file descriptor per connection, and a few more of its own.
  const { sizes } = options;
  const descriptors =
    Math.max(
      options.skipIdle ? 0 : sizes.idleClients,
      options.skipStorm ? 0 : (sizes.stormClients ?? 0),
      sizes.clients,
    ) + 200;
  const limit = openFilesLimit();
  if (limit !== undefined && limit < descriptors) {
    throw new Error(
      `the open files limit is ${limit}, and this run needs about ${descriptors}: raise it with \`ulimit -n ${descriptors}\` (the bench script tries 65536) or run smaller sizes`,
    );
  }
  const started = Date.now();
  const loadavgStart = loadAverage();
  const timesStart = cpuTimes();
  const log = (line: string) =>
    console.log(`[bench ${((Date.now() - started) / 1000).toFixed(1)}s] ${line}`);
  const processes = new Processes(options.verbose);
  let redis: Service | undefined;
  let nats: Service | undefined;
  let interrupted = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (interrupted) return;
    interrupted = true;
    log(`${signal}: stopping everything this run started`);
    void Promise.all([redis?.stop(), nats?.stop(), processes.stopAll()]).finally(() =>
      process.exit(130),
    );
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  // However a step hangs, the run ends: a little after its budget, everything is stopped.
  const watchdog = setTimeout(() => {
    log(`over budget (${options.budgetMs / 60_000} min): stopping`);
    void processes.stopAll().finally(() => process.exit(2));
  }, options.budgetMs + 120_000);
  watchdog.unref();

  const binaries: Record<Needs, boolean> = {
    redis: hasBinary('redis-server'),
    nats: hasBinary('nats-server'),
  };
  const implementations: Results['implementations'] = [];
  const runnable: Implementation[] = [];
  for (const implementation of IMPLEMENTATIONS) {
    if (options.only !== undefined && !options.only.includes(implementation.id)) continue;
    const reason = await unavailableReason(implementation, binaries);
    implementations.push({
      id: implementation.id,
      label: implementation.label,
      available: reason === undefined,
      ...(reason === undefined ? {} : { reason }),
      fanout: implementation.fanout,
      idle: implementation.idle,
      ...(implementation.experimental ? { experimental: true } : {}),
      ...(implementation.churn ? { churn: true } : {}),
      ...(implementation.soak ? { soak: true } : {}),
      ...(implementation.scale ? { scale: true } : {}),
      ...(implementation.storm ? { storm: true } : {}),
      ...(implementation.capacity ? { capacity: true } : {}),
    });
    if (reason === undefined) runnable.push(implementation);
    else log(`${implementation.id}: ${reason}`);
  }

  const results: Results = {
    version: 1,
    meta: {
      startedAt: new Date(started).toISOString(),
      durationMs: 0,
      smoke: options.smoke,
      sizes: options.sizes,
      machine: describeMachine(),
      brokers: {},
      packages: packageVersions([
        'ws',
        'ioredis',
        'socket.io',
        'socket.io-client',
        '@socket.io/redis-adapter',
        '@socket.io/redis-streams-adapter',
        '@wscale/core',
        '@wscale/redis',
        '@wscale/nats',
      ]),
      command: `pnpm bench ${process.argv.slice(2).join(' ')}`.trim(),
    },
    implementations,
    fanout: {},
    idle: {},
    churn: {},
    soak: {},
    scale: {},
    storm: {},
    capacity: {},
    errors: [],
  };

  try {
    if (runnable.some((implementation) => implementation.needs.includes('redis'))) {
      redis = await startRedis(processes);
      results.meta.brokers.redis = redis.version;
      log(`redis-server on ${redis.url} (pid ${redis.pid})`);
    }
    if (runnable.some((implementation) => implementation.needs.includes('nats'))) {
      nats = await startNats(processes);
      results.meta.brokers.nats = nats.version;
      log(`nats-server on ${nats.url} (pid ${nats.pid})`);
    }
    const profileDir = join(options.out, 'benchmarks', 'profiles');
    const context: RunContext = {
      processes,
      sizes: options.sizes,
      ...(redis === undefined ? {} : { redis }),
      ...(nats === undefined ? {} : { nats }),
      profiling: (implementation) => {
        const dir = join(profileDir, implementation.id);
        if (options.perf.includes(implementation.id)) return { dir, profiler: 'perf' };
        if (options.profile.includes(implementation.id)) return { dir, profiler: 'v8' };
        return undefined;
      },
      log,
    };
    const overBudget = () => Date.now() - started > options.budgetMs;

    /** Runs one scenario for each implementation taking part, recording failures and skips. */
    const each = async (
      scenario: string,
      round: number,
      implementations: Implementation[],
      run: (implementation: Implementation) => Promise<void>,
    ) => {
      for (const implementation of implementations) {
        if (interrupted) break;
        if (overBudget()) {
          results.errors.push({
            implementation: implementation.id,
            scenario,
            round,
            message: 'skipped: the run is over its time budget',
          });
          continue;
        }
        try {
          await run(implementation);
        } catch (error) {
          recordError(results, implementation.id, scenario, round, error, log);
        }
      }
    };

    for (let round = 1; round <= options.sizes.rounds && !interrupted; round++) {
      const order = rotate(runnable, round - 1);
      if (!options.skipFanout) {
        await each(
          'fanout',
          round,
          order.filter((item) => item.fanout),
          async (implementation) => {
            log(`round ${round} fan-out: ${implementation.id}`);
            const measured = await runFanout(context, implementation, round);
            append(results.fanout, implementation.id, measured);
            log(`  ${summary(measured.fixed)} | max ${summary(measured.max)}`);
          },
        );
      }
      if (!options.skipIdle) {
        await each(
          'idle',
          round,
          order.filter((item) => item.idle),
          async (implementation) => {
            log(`round ${round} idle memory: ${implementation.id}`);
            const measured = await runIdle(context, implementation, round, !options.skipBigRoom);
            append(results.idle, implementation.id, measured);
            const perConnection = (measured.rssAfter - measured.rssBefore) / measured.connections;
            const perSecond = (measured.connections / (measured.connectMs ?? 1)) * 1000;
            log(
              `  ${(perConnection / 1024).toFixed(1)} KiB RSS per connection, ${Math.round(perSecond)} connections/s` +
                (measured.fanout === undefined ? '' : `; ${summary(measured.fanout)}`),
            );
          },
        );
      }
      if (!options.skipChurn) {
        await each(
          'churn',
          round,
          order.filter((item) => item.churn),
          async (implementation) => {
            log(`round ${round} connect + resume churn: ${implementation.id}`);
            const measured = await runChurn(context, implementation, round);
            append(results.churn!, implementation.id, measured);
          },
        );
      }
      if (!options.skipSoak) {
        await each(
          'soak',
          round,
          order.filter((item) => item.soak),
          async (implementation) => {
            log(`round ${round} churn soak: ${implementation.id}`);
            const measured = await runSoak(context, implementation, round);
            append(results.soak!, implementation.id, measured);
          },
        );
      }
      if (!options.skipScale) {
        // Node counts and implementations both rotate, so neither always runs first.
        for (const nodes of rotate(options.sizes.scaleNodes ?? [], round - 1)) {
          await each(
            `scale ${nodes} nodes`,
            round,
            order.filter((item) => item.scale),
            async (implementation) => {
              log(`round ${round} direct on ${nodes} nodes: ${implementation.id}`);
              const measured = await runScale(
                context,
                implementation,
                nodes,
                round,
                !options.skipScaleFanout,
              );
              append(results.scale!, implementation.id, measured);
              log(`  direct: ${summary(measured.direct)}`);
              if (measured.fanout !== undefined) log(`  broadcast: ${summary(measured.fanout)}`);
            },
          );
        }
      }
      if (!options.skipStorm) {
        await each(
          'storm',
          round,
          order.filter((item) => item.storm),
          async (implementation) => {
            log(`round ${round} resume storm: ${implementation.id}`);
            const measured = await runStorm(context, implementation, round);
            append(results.storm!, implementation.id, measured);
          },
        );
      }
      if (!options.skipCapacity) {
        await each(
          'capacity',
          round,
          order.filter((item) => item.capacity),
          async (implementation) => {
            log(`round ${round} most connections across nodes: ${implementation.id}`);
            const broadcast = implementation.fanout && !options.skipCapacityFanout;
            const measured = await runCapacity(context, implementation, round, broadcast);
            append(results.capacity!, implementation.id, measured);
          },
        );
      }
    }
    // Its own contenders (wscale and Socket.IO, compression on and off) and rounds, on Redis.
    if (!options.skipCompression && redis !== undefined && !interrupted && !overBudget()) {
      try {
        results.compression = await runCompression({
          processes,
          redisUrl: redis.url,
          sizes: options.smoke ? COMPRESSION_SMOKE : COMPRESSION_SIZES,
          log,
          stopped: () => interrupted || overBudget(),
        });
      } catch (error) {
        recordError(results, 'compression', 'compression', 0, error, log);
      }
    }
  } finally {
    await nats?.stop();
    await redis?.stop();
    await processes.stopAll();
  }

  results.meta.durationMs = Date.now() - started;
  const timesEnd = cpuTimes();
  if (timesStart !== undefined && timesEnd !== undefined) {
    results.meta.load = {
      loadavgStart,
      loadavgEnd: loadAverage(),
      busyPercent:
        (100 * (timesEnd.busy - timesStart.busy)) / Math.max(1, timesEnd.total - timesStart.total),
    };
  }
  mkdirSync(join(options.out, 'benchmarks'), { recursive: true });
  const files = writeReport(results, options.out, ANALYSIS);
  for (const file of files) log(`wrote ${file}`);
  clearTimeout(watchdog);
  return results.errors.some((error) => !error.message.startsWith('skipped')) ? 1 : 0;
}

/** Adds one round of an implementation to a scenario's results. */
function append<T>(rounds: Record<string, T[]>, id: string, round: T): void {
  rounds[id] = [...(rounds[id] ?? []), round];
}

function rotate<T>(items: readonly T[], by: number): T[] {
  if (items.length === 0) return [];
  const shift = by % items.length;
  return [...items.slice(shift), ...items.slice(0, shift)];
}

function summary(phase: import('./harness/scenarios.js').PhaseResult): string {
  const { delivery } = phase;
  const cpu = phase.nodeCpuMicros.reduce((sum, value) => sum + value, 0);
  const perSecond = delivery.delivered / (delivery.durationMs / 1000);
  return [
    `${Math.round(perSecond)} deliveries/s`,
    `${(cpu / Math.max(1, delivery.delivered)).toFixed(2)} µs CPU/delivery`,
    `p99 ${delivery.latencyAll.p99.toFixed(1)} ms`,
    `lost ${delivery.lost} dup ${delivery.duplicated} reordered ${delivery.reordered}`,
  ].join(', ');
}

function recordError(
  results: Results,
  implementation: string,
  scenario: string,
  round: number,
  error: unknown,
  log: (line: string) => void,
): void {
  const message = error instanceof Error ? error.message : String(error);
  results.errors.push({ implementation, scenario, round, message });
  log(`  FAILED: ${message}`);
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
