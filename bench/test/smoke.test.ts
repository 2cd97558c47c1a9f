/**
 * Runs the benchmark harness in smoke mode (tiny sizes) for every implementation available here,
 * and checks that it produced complete results with nothing lost, duplicated or reordered, and
 * that every dropped `wscale.v1` client resumed and recovered what it missed (also when their node
 * was killed), at every node count of the scaling scenario too (direct messages and broadcasts),
 * that the churn soak left no client, room or broker subscription behind, and that the ramp over
 * several nodes and load processes held every client and delivered the broadcast to all. No
 * timing is asserted: speed is for the full run to report, not for a test to judge.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import type { Results } from '../src/harness/results.js';

const bench = fileURLToPath(new URL('..', import.meta.url));
const require = createRequire(join(bench, 'package.json'));
const redisAvailable = spawnSync('redis-server', ['--version'], { stdio: 'ignore' }).status === 0;
if (!redisAvailable && process.env.WSCALE_REQUIRE_SERVICES === '1') {
  throw new Error('redis-server not found, and WSCALE_REQUIRE_SERVICES=1');
}
/** `direct-cost --instructions` runs the nodes under Valgrind (Debian: `apt-get install valgrind`). */
const valgrindAvailable = spawnSync('valgrind', ['--version'], { stdio: 'ignore' }).status === 0;
if (!valgrindAvailable && process.env.WSCALE_REQUIRE_SERVICES === '1') {
  throw new Error('valgrind not found, and WSCALE_REQUIRE_SERVICES=1');
}

/** Builds what the harness runs: the workspace packages it uses (if not built yet) and itself. */
function build(): void {
  const workspace = readdirSync(join(bench, 'node_modules', '@wscale'));
  const unbuilt = workspace.filter(
    (name) => !existsSync(join(bench, 'node_modules', '@wscale', name, 'dist', 'index.js')),
  );
  const run = (command: string, args: string[]) => {
    const result = spawnSync(command, args, { cwd: bench, stdio: 'pipe', timeout: 120_000 });
    if (result.status !== 0) {
      throw new Error(`${command} ${args.join(' ')} failed: ${result.stderr?.toString()}`);
    }
  };
  if (unbuilt.length > 0) run('pnpm', ['--filter', '@wscale/bench^...', 'run', 'build']);
  const tsup = join(dirname(require.resolve('tsup/package.json')), 'dist', 'cli-default.js');
  run(process.execPath, [tsup, '--silent']);
}

/** Builds, then runs one of the bench's scripts in `dist/` with `--smoke` and `args`: its output. */
function smokeOf(path: string[], args: string[] = []): string {
  return smokeTool(path, ['--smoke', ...args]);
}

/** Builds, then runs one of the bench's scripts in `dist/` with `args`: its output. */
function smokeTool(path: string[], args: string[]): string {
  build();
  const run = spawnSync(process.execPath, [join(bench, 'dist', ...path), ...args], {
    cwd: bench,
    encoding: 'utf8',
    timeout: 120_000,
  });
  const output = `${run.stdout}${run.stderr}`;
  expect(run.status, output).toBe(0);
  return output;
}

function runSmoke(out: string): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      [join(bench, 'dist', 'run.js'), '--smoke', '--out', out, '--budget-minutes', '4'],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    // A bound for a machine busy with other test files; the harness stops everything it started
    // on SIGTERM. Alone, the smoke run takes well under a minute.
    const timer = setTimeout(() => child.kill('SIGTERM'), 280_000);
    child.once('error', reject);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });
}

describe.skipIf(!redisAvailable)('bench --smoke', () => {
  const out = mkdtempSync(join(tmpdir(), 'wscale-bench-smoke-'));
  afterAll(() => rmSync(out, { recursive: true, force: true }));

  it('measures every available implementation and loses, duplicates or reorders nothing', async () => {
    build();
    const { code, output } = await runSmoke(out);
    expect(code, output).toBe(0);
    const results = JSON.parse(
      readFileSync(join(out, 'benchmarks', 'results.json'), 'utf8'),
    ) as Results;
    expect(results.errors).toEqual([]);

    // Every implementation that is not an experiment runs. Only a broker binary that is not
    // installed excuses one, and not even that when CI requires the services.
    const excused = (reason = '') =>
      process.env.WSCALE_REQUIRE_SERVICES !== '1' && / is not installed$/.test(reason);
    const missing = results.implementations
      .filter((item) => !item.available && !item.experimental && !excused(item.reason))
      .map((item) => `${item.id}: ${item.reason}`);
    expect(missing).toEqual([]);
    const available = results.implementations.filter((item) => item.available);
    expect(available.map((item) => item.id)).toEqual(
      expect.arrayContaining(['ws-redis', 'wscale-redis', 'wscale-memory', 'wscale-cluster']),
    );
    for (const implementation of available.filter((item) => item.fanout)) {
      const rounds = results.fanout[implementation.id];
      expect(rounds, implementation.id).toHaveLength(results.meta.sizes.rounds);
      for (const round of rounds!) {
        expect(round.perNode.reduce((sum, count) => sum + count, 0)).toBe(
          results.meta.sizes.clients,
        );
        for (const phase of [round.fixed, round.max, round.direct]) {
          const { delivery } = phase;
          const label = `${implementation.id} round ${round.round}`;
          expect(delivery.expected, label).toBeGreaterThan(0);
          expect(delivery.delivered, label).toBe(delivery.expected);
          expect(
            [delivery.lost, delivery.duplicated, delivery.reordered, delivery.misrouted],
            label,
          ).toEqual([0, 0, 0, 0]);
          expect(phase.nodeCpuMicros).toHaveLength(round.nodes);
          expect(
            phase.nodeCpuMicros.every((micros) => micros > 0),
            label,
          ).toBe(true);
          expect(delivery.latencyAll.count, label).toBe(delivery.expected);
        }
      }
    }
    for (const implementation of available.filter((item) => item.churn)) {
      const rounds = results.churn?.[implementation.id];
      expect(rounds, implementation.id).toHaveLength(results.meta.sizes.rounds);
      for (const round of rounds!) {
        for (const cycle of round.cycles) {
          const label = `${implementation.id} churn, ${cycle.messages} messages`;
          expect(cycle.result.dropped, label).toBeGreaterThan(0);
          expect(cycle.result.resumed, label).toBe(cycle.result.dropped);
          expect(cycle.result.recovered, label).toBe(cycle.result.dropped);
          // On the wire, not only in what the client hands the application: no offset twice.
          expect(cycle.result.wireRepeats, label).toBe(0);
          if (cycle.messages === 0) continue;
          const delivery = cycle.result.delivery!;
          expect(delivery.delivered, label).toBe(delivery.expected);
          expect([delivery.lost, delivery.duplicated, delivery.reordered], label).toEqual([
            0, 0, 0,
          ]);
        }
      }
    }
    for (const implementation of available.filter((item) => item.soak)) {
      const rounds = results.soak?.[implementation.id];
      expect(rounds, implementation.id).toHaveLength(results.meta.sizes.rounds);
      for (const { result, baseline, after } of rounds!) {
        const label = `${implementation.id} soak`;
        const lives = Object.values(result.cycles).reduce((sum, count) => sum + count, 0);
        expect(lives, label).toBe(results.meta.sizes.soakCycles);
        expect(result.failures, `${label}: ${result.failureSamples.join('; ')}`).toBe(0);
        // Nothing the soak's clients did, well-behaved or not, is left behind on the node.
        expect(after.clients, label).toBe(0);
        expect(after.rooms, label).toBe(0);
        expect(after.subscriptions, label).toBe(baseline.subscriptions);
      }
    }
    const scaleNodes = results.meta.sizes.scaleNodes ?? [];
    expect(scaleNodes.length).toBeGreaterThan(1);
    for (const implementation of available.filter((item) => item.scale)) {
      const rounds = results.scale?.[implementation.id] ?? [];
      expect(rounds.map((round) => round.nodes).sort(), implementation.id).toEqual(
        Array.from({ length: results.meta.sizes.rounds }, () => scaleNodes)
          .flat()
          .sort(),
      );
      for (const { nodes, direct, fanout } of rounds) {
        for (const [what, phase] of [
          ['direct', direct],
          ['broadcast', fanout],
        ] as const) {
          const label = `${implementation.id} ${what} on ${nodes} nodes`;
          expect(phase, label).toBeDefined();
          expect(phase!.delivery.delivered, label).toBe(phase!.delivery.expected);
          expect(
            [
              phase!.delivery.lost,
              phase!.delivery.duplicated,
              phase!.delivery.reordered,
              phase!.delivery.misrouted,
            ],
            label,
          ).toEqual([0, 0, 0, 0]);
          expect(phase!.nodeCpuMicros, label).toHaveLength(nodes);
        }
      }
    }
    for (const implementation of available.filter((item) => item.idle)) {
      const rounds = results.idle[implementation.id];
      expect(rounds, implementation.id).toHaveLength(results.meta.sizes.rounds);
      for (const round of rounds!) {
        const label = `${implementation.id} one node`;
        expect(round.rssAfter, label).toBeGreaterThan(0);
        expect(round.connectMs, label).toBeGreaterThan(0);
        const delivery = round.fanout?.delivery;
        expect(delivery?.delivered, label).toBe(
          round.connections * results.meta.sizes.bigRoomMessages!,
        );
        expect([delivery?.lost, delivery?.duplicated, delivery?.reordered], label).toEqual([
          0, 0, 0,
        ]);
      }
    }
    for (const implementation of available.filter((item) => item.storm)) {
      const rounds = results.storm?.[implementation.id];
      expect(rounds, implementation.id).toHaveLength(results.meta.sizes.rounds);
      for (const { killedClients, cycle } of rounds!) {
        const label = `${implementation.id} resume storm`;
        const { result } = cycle;
        expect(killedClients, label).toBeGreaterThan(0);
        expect(result.dropped, label).toBe(killedClients);
        expect([result.resumed, result.recovered], label).toEqual([killedClients, killedClients]);
        expect(result.wireRepeats, label).toBe(0);
        // Every client of the killed node came back with every message published meanwhile.
        expect(result.backAndRecovered?.count, label).toBe(killedClients);
        const delivery = result.delivery!;
        expect(delivery.delivered, label).toBe(delivery.expected);
        expect([delivery.lost, delivery.duplicated, delivery.reordered], label).toEqual([0, 0, 0]);
        // The two nodes that survived.
        expect(cycle.nodeCpuMicros, label).toHaveLength(2);
      }
    }
    for (const implementation of available.filter((item) => item.capacity)) {
      const rounds = results.capacity?.[implementation.id];
      expect(rounds, implementation.id).toHaveLength(results.meta.sizes.rounds);
      for (const round of rounds!) {
        const label = `${implementation.id} most connections across nodes`;
        // The smoke size is far below any limit: every client is held, spread over the nodes and
        // over several load processes.
        expect([round.held, round.failed, round.stop], label).toEqual([
          results.meta.sizes.capacityMax,
          0,
          'ceiling',
        ]);
        expect(
          round.perNode.reduce((sum, count) => sum + count, 0),
          label,
        ).toBe(round.held);
        expect(round.perNode, label).toHaveLength(results.meta.sizes.capacityNodes!);
        expect(round.loads, label).toBeGreaterThan(1);
        expect(
          round.heapAfter.every((heap) => heap > 0),
          label,
        ).toBe(true);
        if (!implementation.fanout) continue;
        const fanout = round.fanout!;
        expect(fanout.expected, label).toBe(round.held * results.meta.sizes.capacityMessages!);
        expect([fanout.delivered, fanout.lost, fanout.duplicated], label).toEqual([
          fanout.expected,
          0,
          0,
        ]);
        expect(fanout.lastCopyMs.count, label).toBe(fanout.messages);
      }
    }
    // Compression: every contender delivers everything; wscale compresses a message once per node.
    const compression = results.compression?.rounds ?? [];
    expect(compression.map((round) => round.contender).sort()).toEqual([
      'socketio',
      'socketio-deflate',
      'wscale',
      'wscale-deflate',
    ]);
    for (const round of compression) {
      expect([round.lost, round.reordered, round.closed], round.contender).toEqual([0, 0, 0]);
      const deflate = round.contender.endsWith('-deflate');
      const clients = results.compression!.sizes.clients;
      expect(round.negotiated, round.contender).toBe(deflate ? clients : 0);
      if (round.contender === 'wscale-deflate') {
        for (const perNode of round.compressedPerMessage!) {
          expect(perNode).toBeGreaterThan(0.5);
          expect(perNode).toBeLessThanOrEqual(1);
        }
        expect(round.wireBytes).toBeLessThan(round.payloadBytes);
      }
    }
    const report = readFileSync(join(out, 'benchmarks.md'), 'utf8');
    expect(report).toContain('## Compression (permessage-deflate)');
    for (const item of available) expect(report).toContain(item.label);
    for (const section of [
      '## Direct messages as nodes are added',
      '## Broadcasts as nodes are added',
      `## One room of ${results.meta.sizes.idleClients} clients on one node`,
      ...(available.some((item) => item.storm) ? ['## Resume storm: a node killed'] : []),
      '## Most connections across nodes',
    ]) {
      expect(report).toContain(section);
    }
    for (const chart of ['cpu-per-delivery.svg', 'latency-p99.svg', 'idle-memory.svg']) {
      expect(readFileSync(join(out, 'benchmarks', chart), 'utf8')).toMatch(/^<svg /);
    }
  }, 300_000);
});

describe('bench upstream --smoke', () => {
  it('measures acknowledged and at-most-once client messages in one run and loses none', () => {
    const output = smokeOf(['upstream', 'upstream-run.js']);
    for (const mode of ['at-most-once', 'acknowledged']) {
      // The last column is what was lost: nothing, in either mode.
      expect(output, mode).toMatch(new RegExp(`^\\| ${mode} \\|.*\\| 0 \\|$`, 'm'));
    }
    expect(output).toMatch(/Acknowledged \/ at most once: CPU \d+\.\d+×/);
  }, 150_000);
});

describe.skipIf(!redisAvailable)('bench publisher-cost --smoke', () => {
  it('measures every sender, awaited and in bursts, and what each puts on the broker', () => {
    const output = smokeOf(['tools', 'publisher-cost.js']);
    const rows = new Map(
      [...output.matchAll(/^\| ([^|]+?) \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \| (\d+) \|$/gm)].map(
        (row) => [row[1]!, row.slice(2).map(Number)],
      ),
    );
    expect([...rows.keys()]).toEqual([
      'Publisher',
      'Publisher, room with history',
      'a wscale node (no members)',
      'hand-written: ioredis `publish`',
      'hand-written, `enableAutoPipelining`',
    ]);
    const plain = rows.get('hand-written: ioredis `publish`')![3]!;
    for (const [sender, [awaited, burst, , bytes]] of rows) {
      expect(awaited, sender).toBeGreaterThan(0);
      expect(burst, sender).toBeGreaterThan(0);
      // The same JSON for everyone; wscale adds its bus frame around it.
      if (sender.startsWith('hand-written')) expect(bytes, sender).toBe(plain);
      else expect(bytes, sender).toBeGreaterThan(plain);
    }
  }, 150_000);
});

describe('bench write-cost --smoke', () => {
  it('measures each way of gathering writes, and of writing past the stream, for each burst size', () => {
    const output = smokeOf(['tools', 'write-cost.js']);
    const rows = [...output.matchAll(/^\| (\d+)((?: \| [\d.]+){6}) \|$/gm)];
    expect(rows.map((row) => Number(row[1]))).toEqual([1, 2, 4, 16]);
    for (const row of rows) {
      const costs = row[2]!.split(' | ').slice(1).map(Number);
      // Four ways, then two ratios.
      expect(costs, row[0]).toHaveLength(6);
      for (const cost of costs) expect(cost, row[0]).toBeGreaterThan(0);
    }
  }, 150_000);
});

describe.skipIf(!redisAvailable)('bench send-cost --smoke', () => {
  it('measures the sending path, from a send and from a client frame, against the hand-written one', () => {
    const output = smokeOf(['tools', 'send-cost.js']);
    const rows = [...output.matchAll(/^\| ([^|]+?) \| ([\d.]+) \| ([\d.]+) \|$/gm)];
    expect(rows.map((row) => row[1])).toEqual([
      'wscale: client(id).send()',
      'wscale: RedisBroker.publish() alone',
      'hand-written: ioredis publish',
      'wscale: a client frame, then client(id).send()',
      'hand-written: a ws frame, then ioredis publish',
    ]);
    for (const row of rows) expect(Number(row[2]), row[1]).toBeGreaterThan(0);
    // Each hand-written way is the one its wscale rows are compared with.
    expect(Number(rows[2]![3])).toBe(1);
    expect(Number(rows[4]![3])).toBe(1);
  }, 150_000);
});

/** The rows of direct-cost's table: node, the two figures, the ratio. */
function directRows(output: string): [string, number, number, number][] {
  return [
    ...output.matchAll(/^\| ([^|]+?) \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \| [\d. ]+\|$/gm),
  ].map((row) => [row[1]!, Number(row[2]), Number(row[3]), Number(row[4])]);
}

describe.skipIf(!redisAvailable)('bench direct-cost --smoke', () => {
  it("measures each node's CPU per direct message, wscale against the hand-written server", () => {
    const output = smokeOf(['direct-cost.js']);
    expect(output).toContain('| node | hand-written µs / message | wscale µs / message |');
    const rows = directRows(output);
    expect(rows.map((row) => row[0])).toEqual([
      'sending (0)',
      'receiving (1)',
      'sending (0), user time',
      'receiving (1), user time',
    ]);
    for (const [name, base, wscale, ratio] of rows) {
      expect(base, name).toBeGreaterThan(0);
      expect(wscale, name).toBeGreaterThan(0);
      expect(ratio, name).toBeCloseTo(wscale / base, 1);
    }
  }, 150_000);
});

describe.skipIf(!redisAvailable || !valgrindAvailable)(
  'bench direct-cost --smoke --instructions',
  () => {
    it("counts each node's instructions per direct message under callgrind", () => {
      const output = smokeOf(['direct-cost.js'], ['--instructions']);
      expect(output).toContain(
        '| node | hand-written instructions / message | wscale instructions / message |',
      );
      const rows = directRows(output);
      expect(rows.map((row) => row[0])).toEqual(['sending (0)', 'receiving (1)']);
      // A message is thousands of instructions on either node (a count of 0 is a window missed).
      for (const [name, base, wscale] of rows) {
        expect(base, name).toBeGreaterThan(1000);
        expect(wscale, name).toBeGreaterThan(1000);
      }
      // Each round's count, and the ratio of each server's fewest.
      const counts = (cell: string) => cell.split(' ').map(Number);
      const fewest = [
        ...output.matchAll(/^\| ([^|]+?) \| ([\d ]+) \| ([\d ]+) \| ([\d.]+) \|$/gm),
      ].map((row) => [row[1]!, counts(row[2]!), counts(row[3]!), Number(row[4])] as const);
      expect(fewest.map((row) => row[0])).toEqual(['sending (0)', 'receiving (1)']);
      for (const [name, hand, ours, ratio] of fewest) {
        expect(ratio, name).toBeCloseTo(Math.min(...ours) / Math.min(...hand), 2);
      }
      // callgrind-summary names what the sending node ran, JIT code included, and diffs two nodes.
      const dump = (impl: string) => new RegExp(`^${impl}: node 0 (\\S+),`, 'm').exec(output)?.[1];
      const [hand, wscale] = [dump('ws-redis'), dump('wscale-redis')];
      expect(hand && wscale, output).toBeTruthy();
      const summary = smokeTool(
        ['tools', 'callgrind-summary.js'],
        ['--per', '200', '--top', '1000', wscale!],
      );
      expect(summary).toMatch(/^ +\d+ {2}in all$/m);
      expect(summary).toMatch(/^ +\d+ {2}JS JS:\S+ .*packages\/(core|redis)\/dist\/index\.js/m);
      const diff = smokeTool(['tools', 'callgrind-summary.js'], ['--base', hand!, wscale!]);
      expect(diff).toMatch(/^ +-?\d+ {2}in all \( +\d+ -> +\d+\)$/m);
      // What the run left: the counts, and each node's map of its JIT code.
      rmSync(dirname(wscale!), { recursive: true, force: true });
      for (const [, pid] of output.matchAll(/callgrind\.(\d+)\.out/g)) {
        rmSync(`/tmp/perf-${pid}.map`, { force: true });
      }
    }, 150_000);
  },
);
