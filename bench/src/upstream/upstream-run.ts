// The cost of upstream delivery: the same clients send the same messages to a wscale node, once
// numbered (acknowledged with `rcv`, kept by the node's session) and once not (at most once, as a
// client that does not number its frames gets). Same run, fresh node per measurement, rounds
// interleaved; reports the node's CPU per client message and the bytes on the wire per message.
//
//   node dist/upstream/upstream-run.js [--smoke] [--clients N] [--messages M] [--rounds R] [--out FILE]
import { type ChildProcess, fork } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { PROTOCOL } from '@wscale/core/protocol';
import { until } from '@wscale/core/testing';
import { WebSocket } from 'ws';
import { median } from '../report/aggregate.js';

type Mode = 'at-most-once' | 'acknowledged';

interface Measurement {
  mode: Mode;
  messages: number;
  heard: number;
  cpuMicrosPerMessage: number;
  upBytesPerMessage: number;
  downBytesPerMessage: number;
}

const { values } = parseArgs({
  options: {
    smoke: { type: 'boolean', default: false },
    clients: { type: 'string' },
    messages: { type: 'string' },
    rounds: { type: 'string' },
    out: { type: 'string' },
  },
});
const smoke = values.smoke === true;
const CLIENTS = Number(values.clients ?? (smoke ? 10 : 100));
const MESSAGES = Number(values.messages ?? (smoke ? 50 : 500));
const ROUNDS = Number(values.rounds ?? (smoke ? 1 : 3));
const TICK_MS = 10; // each client sends one message per tick: CLIENTS × 100 messages/s
const WAIT_MS = 60_000;
const PAYLOAD = JSON.stringify({ type: 'chat', room: 'lobby', text: 'hello, how is everyone?' });
const node = fileURLToPath(new URL('./upstream-node.js', import.meta.url));

function startNode(): Promise<{ child: ChildProcess; port: number }> {
  const child = fork(node, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the node did not start')), 15_000);
    child.once('message', (message: { port: number }) => {
      clearTimeout(timer);
      resolve({ child, port: message.port });
    });
    child.once('exit', (code) => reject(new Error(`the node exited with ${code}`)));
  });
}

function sample(child: ChildProcess): Promise<{ count: number; cpuMicros: number }> {
  return new Promise((resolve) => {
    child.once('message', (message: { sample: { count: number; cpuMicros: number } }) =>
      resolve(message.sample),
    );
    child.send({ sample: true });
  });
}

/** A bare `wscale.v1` peer: says hello, then sends what it is told; counts bytes both ways. */
async function connect(port: number): Promise<WebSocket> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/`, [PROTOCOL]);
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  const welcome = new Promise<void>((resolve) => ws.once('message', () => resolve()));
  ws.send(JSON.stringify({ t: 'hello' }));
  await welcome;
  return ws;
}

const socketOf = (ws: WebSocket) =>
  (ws as unknown as { _socket: import('node:net').Socket })._socket;

async function measure(mode: Mode): Promise<Measurement> {
  const { child, port } = await startNode();
  try {
    const peers = await Promise.all(Array.from({ length: CLIENTS }, () => connect(port)));
    const up0 = peers.reduce((sum, ws) => sum + socketOf(ws).bytesWritten, 0);
    const down0 = peers.reduce((sum, ws) => sum + socketOf(ws).bytesRead, 0);
    const before = await sample(child);
    for (let n = 1; n <= MESSAGES; n++) {
      for (const ws of peers) {
        ws.send(
          JSON.stringify(
            mode === 'acknowledged' ? { t: 'msg', s: n, d: PAYLOAD } : { t: 'msg', d: PAYLOAD },
          ),
        );
      }
      await new Promise((resolve) => setTimeout(resolve, TICK_MS));
    }
    const total = CLIENTS * MESSAGES;
    let heard = 0;
    await until(
      async () => {
        heard = (await sample(child)).count - before.count;
        return heard >= total;
      },
      WAIT_MS,
      'every message',
      20,
    );
    // Let the last receipts go out before the node's CPU is read.
    await new Promise((resolve) => setTimeout(resolve, 200));
    const after = await sample(child);
    const up = peers.reduce((sum, ws) => sum + socketOf(ws).bytesWritten, 0) - up0;
    const down = peers.reduce((sum, ws) => sum + socketOf(ws).bytesRead, 0) - down0;
    for (const ws of peers) ws.terminate();
    return {
      mode,
      messages: total,
      heard,
      cpuMicrosPerMessage: (after.cpuMicros - before.cpuMicros) / total,
      upBytesPerMessage: up / total,
      downBytesPerMessage: down / total,
    };
  } finally {
    child.send({ stop: true });
    await new Promise((resolve) => child.once('exit', resolve));
  }
}

const results: Measurement[] = [];
for (let round = 0; round < ROUNDS; round++) {
  const order: Mode[] =
    round % 2 === 0 ? ['at-most-once', 'acknowledged'] : ['acknowledged', 'at-most-once'];
  for (const mode of order) results.push(await measure(mode));
}

const rows = (['at-most-once', 'acknowledged'] as const).map((mode) => {
  const mine = results.filter((r) => r.mode === mode);
  return {
    mode,
    cpu: median(mine.map((r) => r.cpuMicrosPerMessage)),
    cpuRange: [
      Math.min(...mine.map((r) => r.cpuMicrosPerMessage)),
      Math.max(...mine.map((r) => r.cpuMicrosPerMessage)),
    ],
    up: median(mine.map((r) => r.upBytesPerMessage)),
    down: median(mine.map((r) => r.downBytesPerMessage)),
    lost: mine.reduce((sum, r) => sum + (r.messages - r.heard), 0),
  };
});
const [base, acked] = rows as [(typeof rows)[0], (typeof rows)[0]];
const lines = [
  '## Upstream delivery: what acknowledging client messages costs',
  '',
  `${CLIENTS} \`wscale.v1\` clients each send ${MESSAGES} chat-sized messages (${PAYLOAD.length} bytes of JSON) to one node at ${CLIENTS * (1000 / TICK_MS)} messages/s; ` +
    `numbered (\`s\`, acknowledged with batched \`rcv\`, recorded in the session every \`upstreamSaveMs\`) against not numbered (at most once). ` +
    `${ROUNDS} interleaved round(s), fresh node each time, medians (range). Run: \`pnpm --filter @wscale/bench upstream\`.`,
  '',
  '| client messages | node CPU µs / message | bytes up / message | bytes down / message | lost |',
  '| --- | ---: | ---: | ---: | ---: |',
  ...rows.map(
    (row) =>
      `| ${row.mode} | ${row.cpu.toFixed(2)} (${row.cpuRange[0]!.toFixed(2)}–${row.cpuRange[1]!.toFixed(2)}) | ${row.up.toFixed(1)} | ${row.down.toFixed(2)} | ${row.lost} |`,
  ),
  '',
  `Acknowledged / at most once: CPU ${(acked.cpu / base.cpu).toFixed(2)}×, ` +
    `+${(acked.up - base.up).toFixed(1)} bytes up and +${(acked.down - base.down).toFixed(2)} bytes down per message.`,
  '',
];
const report = lines.join('\n');
console.log(report);
if (values.out !== undefined) {
  mkdirSync(dirname(values.out), { recursive: true });
  writeFileSync(values.out, report);
}
if (rows.some((row) => row.lost > 0)) process.exit(1);
