// The cost of publishing from a process that holds no sockets: the same room broadcasts sent, on
// a real redis-server of its own, by a `Publisher` and by a wscale node with no local members (what
// a worker would otherwise run), rounds interleaved in one run. Reports the publishing process's
// CPU per publish and what one publish puts on the broker.
//
//   node dist/tools/publisher-cost.js [--smoke] [--messages N] [--rounds R]
import { parseArgs } from 'node:util';
import { Publisher, ScaledWebSocketServer } from '@wscale/core';
import { RedisBroker } from '@wscale/redis';
import { Processes } from '../harness/processes.js';
import { startRedis } from '../harness/services.js';

const { values } = parseArgs({
  options: {
    smoke: { type: 'boolean', default: false },
    messages: { type: 'string' },
    rounds: { type: 'string' },
  },
});
const MESSAGES = Number(values.messages ?? (values.smoke ? 500 : 20_000));
const ROUNDS = Number(values.rounds ?? (values.smoke ? 1 : 3));
const PAYLOAD = JSON.stringify({ type: 'chat', room: 'lobby', text: 'hello, how is everyone?' });

type Sender = 'publisher' | 'node';

async function measure(sender: Sender, url: string): Promise<{ micros: number; bytes: number }> {
  const broker = new RedisBroker({ redis: url });
  let bytes = 0;
  const counting = new Proxy(broker, {
    get: (target, key) => {
      const value = Reflect.get(target, key, target);
      if (key !== 'publish') return typeof value === 'function' ? value.bind(target) : value;
      return (topic: string, payload: Uint8Array) => {
        bytes += payload.length;
        return target.publish(topic, payload);
      };
    },
  });
  const node =
    sender === 'node'
      ? new ScaledWebSocketServer({ noServer: true, broker: counting, nodeHeartbeatMs: 60_000 })
      : undefined;
  await node?.ready();
  const publisher = new Publisher({ broker: counting });
  const send = (text: string) =>
    node === undefined ? publisher.to('lobby').send(text) : node.to('lobby').send(text);
  for (let i = 0; i < 200; i++) await send(PAYLOAD); // warm-up
  bytes = 0;
  const start = process.cpuUsage();
  for (let i = 0; i < MESSAGES; i++) await send(PAYLOAD);
  const used = process.cpuUsage(start);
  await node?.close();
  await broker.close();
  return { micros: (used.user + used.system) / MESSAGES, bytes: bytes / MESSAGES };
}

const processes = new Processes(false);
const redis = await startRedis(processes);
const results: Record<Sender, Array<{ micros: number; bytes: number }>> = {
  publisher: [],
  node: [],
};
try {
  for (let round = 0; round < ROUNDS; round++) {
    const order: Sender[] = round % 2 === 0 ? ['publisher', 'node'] : ['node', 'publisher'];
    for (const sender of order) results[sender].push(await measure(sender, redis.url));
  }
} finally {
  await processes.stopAll();
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
console.log(`| sender | CPU µs / publish | bytes on the broker / publish |`);
console.log(`| --- | ---: | ---: |`);
for (const sender of ['publisher', 'node'] as const) {
  const mine = results[sender];
  console.log(
    `| ${sender === 'node' ? 'a wscale node (no members)' : 'Publisher'} | ${median(mine.map((r) => r.micros)).toFixed(1)} | ${median(mine.map((r) => r.bytes)).toFixed(0)} |`,
  );
}
