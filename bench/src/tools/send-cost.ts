// What a direct message costs the node that sends it, in one process, without the two-node
// harness's load generator: a wscale node sends `wss.client(id).send()` to a raw client held by
// a second node (a child process), on a redis-server of its own, one message per event-loop turn,
// each awaited. Beside it, the same bytes through a `RedisBroker` alone (wscale's adapter, no
// node) and through a hand-written ioredis `publish` to a channel the child subscribes. Reports
// the sending process's CPU per message, rounds interleaved, medians: the quickest A/B for the
// sending node's path (see "Direct messages" in bench/ANALYSIS.md).
//
//   node dist/tools/send-cost.js [--smoke] [--messages N] [--rounds R]
import { type ChildProcess, fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { ScaledWebSocketServer } from '@wscale/core';
import { RedisBroker } from '@wscale/redis';
import { Redis } from 'ioredis';
import WebSocket from 'ws';
import { Processes } from '../harness/processes.js';
import { startRedis } from '../harness/services.js';
import { median } from '../report/aggregate.js';
import { within } from '../servers/config.js';

const { values } = parseArgs({
  options: {
    smoke: { type: 'boolean', default: false },
    messages: { type: 'string' },
    rounds: { type: 'string' },
    holder: { type: 'string' },
  },
});
/** Bound on waiting for the holder, ms. */
const WAIT_MS = 10_000;
/** The channel the hand-written publish goes to; the holder subscribes it. */
const CHANNEL = 'bench:send-cost';

if (values.holder !== undefined) await holder(values.holder);
else await main();

/** The child: a node holding one raw client, and a plain subscriber of {@link CHANNEL}. */
async function holder(url: string): Promise<void> {
  const node = new ScaledWebSocketServer({
    port: 0,
    host: '127.0.0.1',
    nodeId: 'holder',
    broker: new RedisBroker({ redis: url }),
  });
  node.on('error', (error) => console.error('[holder]', error));
  await node.ready();
  node.on('connection', (client) => process.send!(client.id));
  const client = new WebSocket(`ws://127.0.0.1:${node.address()!.port}/`);
  client.on('message', () => undefined);
  const subscriber = new Redis(url);
  subscriber.on('messageBuffer', () => undefined);
  await subscriber.subscribe(CHANNEL);
  process.on('disconnect', () => process.exit(0));
}

async function main(): Promise<void> {
  const MESSAGES = Number(values.messages ?? (values.smoke ? 300 : 5000));
  const ROUNDS = Number(values.rounds ?? (values.smoke ? 1 : 7));
  const processes = new Processes(false);
  let child: ChildProcess | undefined;
  try {
    const { url } = await startRedis(processes);
    const nodeBroker = new RedisBroker({ redis: url });
    const node = new ScaledWebSocketServer({
      noServer: true,
      nodeId: 'sender',
      broker: nodeBroker,
      maxOpsPerSecond: Number.POSITIVE_INFINITY,
    });
    node.on('error', (error) => console.error('[sender]', error));
    await node.ready();
    const holderUp = new Promise((resolve) => node.once('nodeUp', resolve));
    child = fork(fileURLToPath(import.meta.url), ['--holder', url]);
    const target = await within(
      new Promise<string>((resolve) => child!.once('message', (id) => resolve(String(id)))),
      'the holder and its client',
      WAIT_MS,
    );
    await within(holderUp, 'the holder to be up', WAIT_MS);
    const broker = new RedisBroker({ redis: url });
    const redis = new Redis(url);
    const text = `D${target}|${'x'.repeat(40)}`;
    const bytes = Buffer.from(text);
    const senders = {
      'wscale: client(id).send()': () => node.client(target).send(text),
      'wscale: RedisBroker.publish() alone': () => broker.publish('send-cost', bytes),
      'hand-written: ioredis publish': () => redis.publish(CHANNEL, bytes),
    };
    type Sender = keyof typeof senders;
    const names = Object.keys(senders) as Sender[];

    /** CPU µs of this process per message, each awaited, one per event-loop turn. */
    const measure = async (sender: Sender): Promise<number> => {
      const send = senders[sender];
      const start = process.cpuUsage();
      for (let i = 0; i < MESSAGES; i++) {
        await send();
        await new Promise((resolve) => setImmediate(resolve));
      }
      const used = process.cpuUsage(start);
      return (used.user + used.system) / MESSAGES;
    };

    for (const name of names) await measure(name); // warm-up
    const costs = new Map<Sender, number[]>(names.map((name) => [name, []]));
    for (let round = 0; round < ROUNDS; round++) {
      const order = round % 2 === 0 ? names : [...names].reverse();
      for (const name of order) costs.get(name)!.push(await measure(name));
    }
    const base = costs.get('hand-written: ioredis publish')!;
    console.log(
      `${MESSAGES} messages a round, ${ROUNDS} rounds interleaved (after one unmeasured)`,
    );
    console.log('| sender | CPU µs / message | × hand-written (median of round ratios) |');
    console.log('| --- | ---: | ---: |');
    for (const name of names) {
      const mine = costs.get(name)!;
      const ratio = median(mine.map((cost, round) => cost / base[round]!));
      console.log(`| ${name} | ${median(mine).toFixed(2)} | ${ratio.toFixed(2)} |`);
    }
    redis.disconnect();
    await broker.close();
    await node.close();
    await nodeBroker.close();
  } finally {
    child?.kill();
    await processes.stopAll();
  }
}
