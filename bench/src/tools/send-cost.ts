// What a direct message costs the node that sends it, in one process, without the two-node
// harness's load generator: a wscale node sends `wss.client(id).send()` to a raw client held by
// a second node (a child process), on a redis-server of its own, one message per event-loop turn,
// each awaited. Beside it, the same bytes through a `RedisBroker` alone (wscale's adapter, no
// node) and through a hand-written ioredis `publish` to a channel the child subscribes.
//
// Then the whole of the sending node's path, from the frame a client sends: a raw client in the
// child sends direct messages at --rate a second to the wscale node, whose `message` handler
// sends each with `client(id).send()` (the bench's route), and to a hand-written `ws` server in
// this same process, whose handler publishes each with ioredis (the bench's hand-written server).
// Both servers run in one process, so what differs between them is their code, not the process.
//
// Reports the sending process's CPU per message, rounds interleaved, medians of the round ratios:
// the quickest A/B for the sending node's path (see "Direct messages" in bench/ANALYSIS.md).
//
//   node dist/tools/send-cost.js [--smoke] [--messages N] [--rounds R] [--rate R]
import { type ChildProcess, fork } from 'node:child_process';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { ScaledWebSocketServer } from '@wscale/core';
import { until } from '@wscale/core/testing';
import { RedisBroker } from '@wscale/redis';
import { Redis } from 'ioredis';
import WebSocket, { WebSocketServer } from 'ws';
import { Processes } from '../harness/processes.js';
import { startRedis } from '../harness/services.js';
import { median } from '../report/aggregate.js';
import { atRate, within } from '../servers/config.js';
import { directTarget } from '../wire.js';

const { values } = parseArgs({
  options: {
    smoke: { type: 'boolean', default: false },
    messages: { type: 'string' },
    rounds: { type: 'string' },
    rate: { type: 'string', default: '1000' },
    holder: { type: 'string' },
  },
});
/** Bound on waiting for the holder, and for a round's frames to be handled, ms. */
const WAIT_MS = 10_000;
/** The channel the hand-written publish goes to; the holder subscribes it. */
const CHANNEL = 'bench:send-cost';

/** What the parent asks of the child: clients of its two servers, then frames through one. */
type Ask = { connect: Record<string, string> } | { send: string; count: number; text: string };

if (values.holder !== undefined) await holder(values.holder);
else await main();

/**
 * The child: a node holding one raw client, a plain subscriber of {@link CHANNEL}, and the
 * clients that send frames to the parent's servers when asked.
 */
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
  const senders = new Map<string, WebSocket>();
  process.on('message', async (ask: Ask) => {
    if ('connect' in ask) {
      for (const [name, to] of Object.entries(ask.connect)) {
        const ws = new WebSocket(to, { perMessageDeflate: false });
        await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
        senders.set(name, ws);
      }
    } else {
      const ws = senders.get(ask.send)!;
      await atRate(ask.count, Number(values.rate), () => ws.send(ask.text));
    }
    process.send!('done');
  });
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
      port: 0,
      host: '127.0.0.1',
      nodeId: 'sender',
      broker: nodeBroker,
      maxOpsPerSecond: Number.POSITIVE_INFINITY,
    });
    node.on('error', (error) => console.error('[sender]', error));
    await node.ready();
    const holderUp = new Promise((resolve) => node.once('nodeUp', resolve));
    child = fork(fileURLToPath(import.meta.url), ['--holder', url, '--rate', values.rate]);
    const fromChild = () =>
      within(
        new Promise<string>((resolve) => child!.once('message', (said) => resolve(String(said)))),
        'the holder',
        WAIT_MS,
      );
    const target = await fromChild();
    await within(holderUp, 'the holder to be up', WAIT_MS);
    const broker = new RedisBroker({ redis: url });
    const redis = new Redis(url);
    const text = `D${target}|${'x'.repeat(40)}`;
    const bytes = Buffer.from(text);

    // The two servers a client's frames go to, each counting the frames it handled. wscale's
    // handler is the bench's route; the hand-written one is the bench's hand-written server's.
    let handled = 0;
    const report = (error: unknown) => console.error('[sender]', error);
    node.on('connection', (client) => {
      client.on('message', (data) => {
        const message = String(data);
        node.client(directTarget(message)).send(message).catch(report);
        handled++;
      });
    });
    const plain = new WebSocketServer({ port: 0, host: '127.0.0.1', perMessageDeflate: false });
    await new Promise((resolve) => plain.once('listening', resolve));
    plain.on('connection', (ws) => {
      ws.on('message', (data: Buffer) => {
        // The target read as the bench's hand-written server reads it (it is on another node).
        data.toString('latin1', 1, data.indexOf(124));
        void redis.publish(CHANNEL, data);
        handled++;
      });
    });
    const FRAME_WSCALE = 'wscale: a client frame, then client(id).send()';
    const FRAME_PLAIN = 'hand-written: a ws frame, then ioredis publish';
    child.send({
      connect: {
        [FRAME_WSCALE]: `ws://127.0.0.1:${node.address()!.port}/`,
        [FRAME_PLAIN]: `ws://127.0.0.1:${(plain.address() as AddressInfo).port}/`,
      },
    } satisfies Ask);
    await fromChild();

    /** CPU µs of this process per message, each awaited, one per event-loop turn. */
    const awaited = (send: () => Promise<unknown>) => async (): Promise<number> => {
      const start = process.cpuUsage();
      for (let i = 0; i < MESSAGES; i++) {
        await send();
        await new Promise((resolve) => setImmediate(resolve));
      }
      const used = process.cpuUsage(start);
      return (used.user + used.system) / MESSAGES;
    };
    /** CPU µs of this process per message, for frames the child sends to `name` at the rate. */
    const framed = (name: string) => async (): Promise<number> => {
      handled = 0;
      const start = process.cpuUsage();
      child!.send({ send: name, count: MESSAGES, text } satisfies Ask);
      await fromChild();
      await until(() => handled >= MESSAGES, WAIT_MS, `${name}: the frames handled`, 1);
      const used = process.cpuUsage(start);
      return (used.user + used.system) / MESSAGES;
    };
    const HAND_PUBLISH = 'hand-written: ioredis publish';
    /** Each way of sending, with the hand-written one it is compared with. */
    const ways: Record<string, { measure: () => Promise<number>; base: string }> = {
      'wscale: client(id).send()': {
        measure: awaited(() => node.client(target).send(text)),
        base: HAND_PUBLISH,
      },
      'wscale: RedisBroker.publish() alone': {
        measure: awaited(() => broker.publish('send-cost', bytes)),
        base: HAND_PUBLISH,
      },
      [HAND_PUBLISH]: { measure: awaited(() => redis.publish(CHANNEL, bytes)), base: HAND_PUBLISH },
      [FRAME_WSCALE]: { measure: framed(FRAME_WSCALE), base: FRAME_PLAIN },
      [FRAME_PLAIN]: { measure: framed(FRAME_PLAIN), base: FRAME_PLAIN },
    };
    const names = Object.keys(ways);

    for (const name of names) await ways[name]!.measure(); // warm-up
    const costs = new Map<string, number[]>(names.map((name) => [name, []]));
    for (let round = 0; round < ROUNDS; round++) {
      const order = round % 2 === 0 ? names : [...names].reverse();
      for (const name of order) costs.get(name)!.push(await ways[name]!.measure());
    }
    console.log(
      `${MESSAGES} messages a round, ${ROUNDS} rounds interleaved (after one unmeasured); ` +
        `frames at ${values.rate}/s`,
    );
    console.log('| sender | CPU µs / message | × its hand-written (median of round ratios) |');
    console.log('| --- | ---: | ---: |');
    for (const name of names) {
      const mine = costs.get(name)!;
      const base = costs.get(ways[name]!.base)!;
      const ratio = median(mine.map((cost, round) => cost / base[round]!));
      console.log(`| ${name} | ${median(mine).toFixed(2)} | ${ratio.toFixed(2)} |`);
    }
    redis.disconnect();
    await broker.close();
    await node.close();
    await nodeBroker.close();
    // `ws` leaves the connections open, and its HTTP server waits for them.
    for (const ws of plain.clients) ws.terminate();
    await new Promise((resolve) => plain.close(resolve));
  } finally {
    child?.kill();
    await processes.stopAll();
  }
}
