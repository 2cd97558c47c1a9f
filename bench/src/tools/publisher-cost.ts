// The cost of publishing from a process that holds no sockets: the same room broadcasts sent, on
// a real redis-server of its own, by a `Publisher`, by a wscale node with no local members (what
// a worker would otherwise run), by a `Publisher` to a room that keeps history (each message
// appended to a `RedisHistory` first, as a node does) and by a hand-written ioredis `publish` of
// the same JSON (with and without ioredis's `enableAutoPipelining`), rounds interleaved in one
// run. Each sends its messages twice: awaiting each publish, then in bursts (`--burst` publishes
// sent together, then awaited: a worker notifying many rooms, a loop of sends). Reports the
// publishing process's CPU per publish and what one publish puts on the broker.
//
//   node dist/tools/publisher-cost.js [--smoke] [--messages N] [--rounds R] [--burst B]
import { parseArgs } from 'node:util';
import { Publisher, ScaledWebSocketServer } from '@wscale/core';
import { RedisBroker, RedisHistory } from '@wscale/redis';
import { Redis } from 'ioredis';
import { Processes } from '../harness/processes.js';
import { startRedis } from '../harness/services.js';
import { median } from '../report/aggregate.js';

const { values } = parseArgs({
  options: {
    smoke: { type: 'boolean', default: false },
    messages: { type: 'string' },
    rounds: { type: 'string' },
    burst: { type: 'string', default: '100' },
  },
});
const MESSAGES = Number(values.messages ?? (values.smoke ? 500 : 20_000));
const ROUNDS = Number(values.rounds ?? (values.smoke ? 1 : 3));
const BURST = Number(values.burst);
const PAYLOAD = JSON.stringify({ type: 'chat', room: 'lobby', text: 'hello, how is everyone?' });

const SENDERS = ['publisher', 'publisher-history', 'node', 'ioredis', 'ioredis-pipelined'] as const;
type Sender = (typeof SENDERS)[number];
const LABELS: Record<Sender, string> = {
  publisher: 'Publisher',
  'publisher-history': 'Publisher, room with history',
  node: 'a wscale node (no members)',
  ioredis: 'hand-written: ioredis `publish`',
  'ioredis-pipelined': 'hand-written, `enableAutoPipelining`',
};

interface Cost {
  /** CPU µs per publish, each awaited. */
  awaited: number;
  /** CPU µs per publish, `BURST` at a time. */
  burst: number;
  /** Bytes on the broker per publish. */
  bytes: number;
}

/** How a sender publishes one message, and what it published in bytes so far. */
interface Sending {
  send(text: string): Promise<unknown>;
  bytes(): number;
  close(): Promise<void>;
}

async function open(sender: Sender, url: string): Promise<Sending> {
  if (sender === 'ioredis' || sender === 'ioredis-pipelined') {
    const redis = new Redis(url, { enableAutoPipelining: sender === 'ioredis-pipelined' });
    let bytes = 0;
    return {
      send: (text) => {
        bytes += Buffer.byteLength(text);
        return redis.publish('room:lobby', text);
      },
      bytes: () => bytes,
      close: async () => void (await redis.quit()),
    };
  }
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
  const history =
    sender === 'publisher-history' ? new RedisHistory({ redis: url, maxEntries: 1000 }) : undefined;
  const publisher = new Publisher({
    broker: counting,
    ...(history === undefined ? {} : { history: [{ rooms: 'lobby', store: history }] }),
  });
  return {
    send: (text) =>
      node === undefined ? publisher.to('lobby').send(text) : node.to('lobby').send(text),
    bytes: () => bytes,
    close: async () => {
      await node?.close();
      await broker.close();
      await history?.close();
    },
  };
}

/** CPU µs per message of sending `MESSAGES` messages, `together` at a time. */
async function cpuPerMessage(sending: Sending, together: number): Promise<number> {
  const start = process.cpuUsage();
  for (let sent = 0; sent < MESSAGES; sent += together) {
    const burst: Promise<unknown>[] = [];
    for (let i = 0; i < together; i++) burst.push(sending.send(PAYLOAD));
    await Promise.all(burst);
  }
  const used = process.cpuUsage(start);
  return (used.user + used.system) / MESSAGES;
}

async function measure(sender: Sender, url: string): Promise<Cost> {
  const sending = await open(sender, url);
  for (let i = 0; i < 200; i++) await sending.send(PAYLOAD); // warm-up
  const before = sending.bytes();
  const awaited = await cpuPerMessage(sending, 1);
  const bytes = (sending.bytes() - before) / MESSAGES;
  const burst = await cpuPerMessage(sending, BURST);
  await sending.close();
  return { awaited, burst, bytes };
}

const processes = new Processes(false);
const redis = await startRedis(processes);
const results = Object.fromEntries(SENDERS.map((sender) => [sender, [] as Cost[]])) as Record<
  Sender,
  Cost[]
>;
try {
  for (let round = 0; round < ROUNDS; round++) {
    const order = round % 2 === 0 ? SENDERS : [...SENDERS].reverse();
    for (const sender of order) results[sender].push(await measure(sender, redis.url));
  }
} finally {
  await processes.stopAll();
}
const of = (sender: Sender, key: keyof Cost) => median(results[sender].map((cost) => cost[key]));
console.log(
  `| sender | CPU µs / publish, each awaited | CPU µs / publish, ${BURST} at a time | × hand-written, at a time | bytes on the broker / publish |`,
);
console.log(`| --- | ---: | ---: | ---: | ---: |`);
for (const sender of SENDERS) {
  const burst = of(sender, 'burst');
  console.log(
    `| ${LABELS[sender]} | ${of(sender, 'awaited').toFixed(1)} | ${burst.toFixed(1)} | ${(burst / of('ioredis', 'burst')).toFixed(2)} | ${of(sender, 'bytes').toFixed(0)} |`,
  );
}
