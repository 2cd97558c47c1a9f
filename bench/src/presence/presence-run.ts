// The cost of presence as a room grows: two nodes on one memory bus, a presence room filled with S
// members (real WebSocket clients, half on each node), then one more user joins and leaves it K
// times (server-side join/leave: no connection set-up in the measure). Per join + leave: the
// presence messages published, their bytes, and the CPU of the process (both nodes), side by side
// for each S; then the cost of `presenceStats` and of one `presence()` page. The point is the ratio
// between sizes: a join or leave must not cost more in a bigger room.
//
//   node dist/presence/presence-run.js [--smoke] [--sizes 10,500,2000] [--cycles K] [--out FILE]
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { parseArgs } from 'node:util';
import { type Client, MemoryBroker, MemoryBus, ScaledWebSocketServer } from '@wscale/core';
import { WebSocket } from 'ws';
import { within } from '../servers/config.js';

const { values } = parseArgs({
  options: {
    smoke: { type: 'boolean', default: false },
    sizes: { type: 'string' },
    cycles: { type: 'string' },
    out: { type: 'string' },
  },
});
const smoke = values.smoke === true;
const SIZES = (values.sizes ?? (smoke ? '10,100' : '10,500,2000')).split(',').map(Number);
const CYCLES = Number(values.cycles ?? (smoke ? 50 : 500));
const ROOM = 'room';
const WAIT_MS = 60_000;

/** A memory broker that counts what is published on the presence topics. */
class CountingBroker extends MemoryBroker {
  deltas = 0;
  bytes = 0;
  override publish(topic: string, payload: Uint8Array): Promise<void> {
    if (topic.includes('presence') && payload.includes(0x64 /* d */)) {
      const message = JSON.parse(Buffer.from(payload).toString('utf8')) as { k: string };
      if (message.k === 'd') {
        this.deltas++;
        this.bytes += payload.byteLength;
      }
    }
    return super.publish(topic, payload);
  }
}

interface Row {
  size: number;
  publishesPerChange: number;
  bytesPerPublish: number;
  cpuMicrosPerJoinLeave: number;
  statsNanos: number;
  pageMicros: number;
}

async function measure(size: number): Promise<Row> {
  const bus = new MemoryBus();
  const brokers = [new CountingBroker({ bus }), new CountingBroker({ bus })];
  const nodes = brokers.map(
    (broker, i) =>
      new ScaledWebSocketServer<{ id: string }>({
        port: 0,
        host: '127.0.0.1',
        nodeId: `n${i}`,
        broker,
        heartbeatIntervalMs: 0,
        authenticate: (request) => ({
          id: new URL(request.url ?? '/', 'http://x').searchParams.get('user') ?? '?',
        }),
        presence: [{ rooms: ROOM }],
      }),
  );
  const held = new Map<string, Client<{ id: string }>>();
  for (const node of nodes) {
    node.on('connection', (client, request) => {
      held.set(client.identity.id, client);
      if (request.url?.includes('join')) void client.join(ROOM);
    });
  }
  await Promise.all(nodes.map((node) => node.ready()));
  const sockets: WebSocket[] = [];
  const open = (node: ScaledWebSocketServer<{ id: string }>, path: string) =>
    new Promise<void>((resolve, reject) => {
      const ws = new WebSocket(`ws://127.0.0.1:${node.address()!.port}/${path}`);
      ws.once('open', () => resolve());
      ws.once('error', reject);
      sockets.push(ws);
    });
  try {
    for (let i = 0; i < size; i++) await open(nodes[i % 2]!, `?user=u${i}&join`);
    await open(nodes[0]!, '?user=churner');
    const [first, second] = nodes as [
      ScaledWebSocketServer<{ id: string }>,
      ScaledWebSocketServer<{ id: string }>,
    ];
    const settled = () =>
      nodes.every((node) => node.presenceStats(ROOM).users === size) && held.has('churner');
    const deadline = Date.now() + WAIT_MS;
    while (!settled()) {
      if (Date.now() > deadline) throw new Error(`the room of ${size} did not fill`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const churner = held.get('churner')!;
    // The other node hearing the change is the end of one join (or leave).
    const heard = (type: 'join' | 'leave') =>
      new Promise<void>((resolve) => {
        const listener = (_room: string, change: { type: string }) => {
          if (change.type !== type) return;
          second.off('presence', listener);
          resolve();
        };
        second.on('presence', listener);
      });
    const cycle = async () => {
      const joined = heard('join');
      await churner.join(ROOM);
      await within(joined, 'a join', WAIT_MS);
      const left = heard('leave');
      await churner.leave(ROOM);
      await within(left, 'a leave', WAIT_MS);
    };
    for (let n = 0; n < CYCLES / 5; n++) await cycle(); // warm up: JIT, maps at their size
    const before = brokers.map((broker) => ({ deltas: broker.deltas, bytes: broker.bytes }));
    const cpu = process.cpuUsage();
    for (let n = 0; n < CYCLES; n++) await cycle();
    const used = process.cpuUsage(cpu);
    const deltas = brokers.reduce((sum, broker, i) => sum + broker.deltas - before[i]!.deltas, 0);
    const bytes = brokers.reduce((sum, broker, i) => sum + broker.bytes - before[i]!.bytes, 0);

    const statsRuns = 100_000;
    for (let n = 0; n < statsRuns; n++) first.presenceStats(ROOM);
    let start = process.hrtime.bigint();
    for (let n = 0; n < statsRuns; n++) first.presenceStats(ROOM);
    const statsNanos = Number(process.hrtime.bigint() - start) / statsRuns;
    const pageRuns = 50;
    start = process.hrtime.bigint();
    for (let n = 0; n < pageRuns; n++) await first.presence(ROOM, { limit: 1000 });
    const pageMicros = Number(process.hrtime.bigint() - start) / pageRuns / 1000;
    return {
      size,
      publishesPerChange: deltas / (CYCLES * 2),
      bytesPerPublish: bytes / Math.max(1, deltas),
      cpuMicrosPerJoinLeave: (used.user + used.system) / CYCLES,
      statsNanos,
      pageMicros,
    };
  } finally {
    for (const ws of sockets) ws.terminate();
    await Promise.all(nodes.map((node) => node.close()));
  }
}

const rows: Row[] = [];
for (const size of SIZES) rows.push(await measure(size));
const base = rows[0]!;
const table = [
  '| members | publishes per join or leave | bytes per publish | CPU per join + leave (both nodes) | vs smallest | `presenceStats` | `presence()` page (≤ 1000) |',
  '| ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
  ...rows.map(
    (row) =>
      `| ${row.size} | ${row.publishesPerChange.toFixed(2)} | ${row.bytesPerPublish.toFixed(0)} | ${row.cpuMicrosPerJoinLeave.toFixed(0)} µs | ${(row.cpuMicrosPerJoinLeave / base.cpuMicrosPerJoinLeave).toFixed(2)}× | ${row.statsNanos.toFixed(0)} ns | ${row.pageMicros.toFixed(0)} µs |`,
  ),
].join('\n');
const report = `# Presence: cost against room size

Two nodes in one process on a memory bus; a presence room of N members (real WebSocket clients,
half on each node); one more user joins and leaves ${CYCLES} times (server-side \`join\`/\`leave\`,
each waited for until the other node reports it). Produced by \`pnpm --filter @wscale/bench presence\`
on ${new Date().toISOString().slice(0, 10)}.

${table}

A join or a leave is one publish of about a hundred bytes whatever the room's size; its CPU stays
flat. \`presenceStats\` reads two counters. A \`presence()\` page sorts the room's users (it grows
with N log N) and lists at most 1000.
`;
if (values.out !== undefined) {
  mkdirSync(dirname(values.out), { recursive: true });
  writeFileSync(values.out, report);
}
console.log(table);
