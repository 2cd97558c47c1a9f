// Each node's CPU per direct message, wscale against the hand-written `ws` + Redis server: two node
// processes on a redis-server of its own, a client on node 0 sending direct messages at a fixed
// rate to a client on node 1, rounds interleaved. It shows which node carries a gap (the sending
// one publishes, the receiving one writes to the socket), which the fan-out scenario's whole-cluster
// figure cannot. Built at the root of dist/ (it starts the harness's node processes next to it):
//
//   node dist/direct-cost.js [--smoke] [--messages N] [--rate R] [--rounds K] [--warm-up W]
//                            [--clients C] [--a-a] [--instructions]
//
// With --clients C the receiving node holds C clients and the messages go to each in turn, as in
// the scenario "direct messages as nodes are added" (500 a node there): what a message costs when
// the client it is for was not the last one written to.
//
// With --a-a the hand-written server is measured against itself, in the same interleaving: how far
// apart two measures of one server land on this machine, the resolution of the ratio above.
//
// With --instructions the nodes run under Valgrind's callgrind and each node's instructions per
// message are counted instead of its CPU time (see harness/callgrind.ts): the code's work, which
// a busy machine does not move. Under Valgrind a node runs some 50 times slower, so the rate
// defaults to 100 a second there.
//
// The first W messages of a round (500) are not measured. V8 is still optimizing the path then, and
// a few thousand more (past the first node heartbeat, 5 s) reach the steady state.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { until } from '@wscale/core/testing';
import WebSocket from 'ws';
import { InstructionCounter } from '../harness/callgrind.js';
import { IMPLEMENTATIONS } from '../harness/implementations.js';
import { startNodes } from '../harness/nodes.js';
import { Processes } from '../harness/processes.js';
import { startRedis } from '../harness/services.js';
import { median } from '../report/aggregate.js';
import { atRate } from '../servers/config.js';
import { payload } from '../wire.js';

const { values } = parseArgs({
  options: {
    smoke: { type: 'boolean', default: false },
    messages: { type: 'string' },
    rate: { type: 'string' },
    rounds: { type: 'string' },
    'warm-up': { type: 'string' },
    'a-a': { type: 'boolean', default: false },
    instructions: { type: 'boolean', default: false },
    clients: { type: 'string' },
  },
});
const SMOKE = values.smoke;
/** Where callgrind writes its counts, with --instructions; kept, for callgrind-summary. */
const CALLGRIND_DIR = values.instructions
  ? mkdtempSync(join(tmpdir(), 'wscale-callgrind-'))
  : undefined;
const COUNTER = CALLGRIND_DIR === undefined ? undefined : new InstructionCounter(CALLGRIND_DIR);
const MESSAGES = Number(values.messages ?? (SMOKE ? 200 : 5000));
const RATE = Number(values.rate ?? (COUNTER === undefined ? 1000 : 100));
const ROUNDS = Number(values.rounds ?? (SMOKE ? 1 : 6));
const WARM_UP = Number(values['warm-up'] ?? (SMOKE ? 300 : 500));
const CLIENTS = Number(values.clients ?? 1);
const SIZE = 64;
/** The two servers compared (ids of the harness's implementations), and their names in the table. */
const [IMPLS, LABELS] = values['a-a']
  ? [
      ['ws-redis', 'ws-redis'],
      ['hand-written', 'hand-written again'],
    ]
  : [
      ['ws-redis', 'wscale-redis'],
      ['hand-written', 'wscale'],
    ];
/** Bound for a round's messages to arrive after the last is sent, ms. */
const DRAIN_MS = COUNTER === undefined ? 30_000 : 120_000;

/** A client of a node, with the id the node's hello gave it and a count of what it received. */
async function connect(url: string): Promise<{ ws: WebSocket; id: string; received(): number }> {
  const ws = new WebSocket(url, { perMessageDeflate: false });
  let received = 0;
  const id = await new Promise<string>((resolve, reject) => {
    ws.once('error', reject);
    ws.once('message', (data) => {
      const hello = String(data);
      resolve(hello.slice(1, hello.indexOf('|')));
      ws.on('message', () => received++);
    });
  });
  return { ws, id, received: () => received };
}

/** Sends `count` direct messages at {@link RATE} per second to each target in turn. */
function send(ws: WebSocket, targets: string[], first: number, count: number): Promise<void> {
  return atRate(count, RATE, (i) => {
    const n = first + i;
    ws.send(payload('D', n, SIZE, `${targets[n % targets.length]}|`));
  });
}

/** {@link CLIENTS} clients of the receiving node, connected 50 at a time. */
async function receivers(url: string): Promise<Awaited<ReturnType<typeof connect>>[]> {
  const all = [];
  for (let i = 0; i < CLIENTS; i += 50) {
    all.push(
      ...(await Promise.all(Array.from({ length: Math.min(50, CLIENTS - i) }, () => connect(url)))),
    );
  }
  return all;
}

/**
 * One round of one implementation: each node's CPU µs per message, sending node first, then each
 * node's user CPU alone; with --instructions, each node's instructions per message.
 */
async function round(impl: string, processes: Processes, redisUrl: string): Promise<number[]> {
  const implementation = IMPLEMENTATIONS.find((each) => each.id === impl)!;
  const group = await startNodes(processes, {
    implementation,
    nodes: 2,
    redisUrl,
    // Under callgrind, the nodes write which JIT code is which function (callgrind-summary reads it).
    execArgv: COUNTER === undefined ? [] : ['--perf-basic-prof-only-functions'],
    // Node starts in a few seconds under Valgrind, importing a server's modules in a minute.
    timeoutMs: COUNTER === undefined ? 20_000 : 180_000,
    ...(COUNTER === undefined ? {} : { launcher: COUNTER.launcher }),
  });
  try {
    const sender = await connect(group.urls[0]!);
    const clients = await receivers(group.urls[1]!);
    const targets = clients.map((client) => client.id);
    const received = () => clients.reduce((sum, client) => sum + client.received(), 0);
    await send(sender.ws, targets, 0, WARM_UP);
    await until(() => received() >= WARM_UP, DRAIN_MS, 'the warm-up messages');
    const measured = async () => {
      await send(sender.ws, targets, WARM_UP, MESSAGES);
      await until(() => received() >= WARM_UP + MESSAGES, DRAIN_MS, 'the messages');
      sender.ws.terminate();
      for (const client of clients) client.ws.terminate();
    };
    if (COUNTER !== undefined) {
      await COUNTER.start(group.pids);
      await measured();
      const counts = await COUNTER.stop(group.pids);
      dumps.push(
        `${impl}: ${counts.map((_, i) => `node ${i} ${COUNTER.dumpOf(group.pids[i]!)}`).join(', ')}`,
      );
      return counts.map((count) => count / MESSAGES);
    }
    const before = await group.sample();
    await measured();
    const after = await group.sample();
    const per = (key: 'cpuMicros' | 'userMicros') =>
      after.map((sample, i) => (sample[key] - before[i]![key]) / MESSAGES);
    return [...per('cpuMicros'), ...per('userMicros')];
  } finally {
    await group.stop();
  }
}

const processes = new Processes(false);
const redis = await startRedis(processes);
/** With --instructions, which dump is whose, in the order measured. */
const dumps: string[] = [];
/** Per slot of IMPLS, per round, each node's figures per message (see {@link round}). */
const results: number[][][] = IMPLS.map(() => []);
try {
  for (let r = 0; r < ROUNDS; r++) {
    const order = r % 2 === 0 ? [0, 1] : [1, 0];
    for (const slot of order) results[slot]!.push(await round(IMPLS[slot]!, processes, redis.url));
  }
} finally {
  await processes.stopAll();
}

const [base, other] = results;
const ROWS =
  COUNTER === undefined
    ? ['sending (0)', 'receiving (1)', 'sending (0), user time', 'receiving (1), user time']
    : ['sending (0)', 'receiving (1)'];
const UNIT = COUNTER === undefined ? 'µs' : 'instructions';
console.log(
  `${MESSAGES} direct messages per round at ${RATE}/s after ${WARM_UP} to ${CLIENTS} client(s) in turn, ${ROUNDS} rounds interleaved`,
);
console.log(
  `| node | ${LABELS[0]} ${UNIT} / message | ${LABELS[1]} ${UNIT} / message | ${LABELS[1]} × (median of round ratios) | round ratios |`,
);
console.log('| --- | ---: | ---: | ---: | --- |');
for (const [node, name] of ROWS.entries()) {
  const ratios = other!.map((w, r) => w[node]! / base![r]![node]!);
  console.log(
    `| ${name} | ${median(base!.map((b) => b[node]!)).toFixed(1)} | ${median(other!.map((w) => w[node]!)).toFixed(1)} | ${median(ratios).toFixed(2)} | ${ratios.map((ratio) => ratio.toFixed(2)).join(' ')} |`,
  );
}
if (CALLGRIND_DIR !== undefined) {
  // A round in which V8 had not (yet, or again) optimized part of a path only adds instructions:
  // the fewest of a server's rounds is its path optimized throughout, the figure to compare.
  console.log(
    `\n| node | ${LABELS[0]}, each round | ${LABELS[1]}, each round | ${LABELS[1]} × (fewest of each) |`,
  );
  console.log('| --- | --- | --- | ---: |');
  for (const [node, name] of ROWS.entries()) {
    const [ours, theirs] = [base!, other!].map((rounds) => rounds.map((each) => each[node]!));
    console.log(
      `| ${name} | ${ours!.map((n) => n.toFixed(0)).join(' ')} | ${theirs!.map((n) => n.toFixed(0)).join(' ')} | ${(Math.min(...theirs!) / Math.min(...ours!)).toFixed(2)} |`,
    );
  }
  console.log(`\ncallgrind's counts, in ${CALLGRIND_DIR}:\n${dumps.join('\n')}`);
  console.log(
    `by function, per message: node dist/tools/callgrind-summary.js --per ${MESSAGES} ` +
      '[--base <dump>] <dump>',
  );
}
