import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WscaleClient } from '@wscale/client';
import { type Broker, type History, Publisher } from '@wscale/core';
import { inboxOf } from '@wscale/core/protocol';
import { until } from '@wscale/core/testing';
import { NatsBroker, NatsHistory } from '@wscale/nats';
import { RedisBroker, RedisHistory } from '@wscale/redis';
import { settle, WireTap } from '@wscale/test-support';
import { expect, it } from 'vitest';
import { Balancer } from './helpers/balancer.js';
import { type BrokerUnderTest, describeOnEachBroker } from './helpers/brokers.js';
import { NodeProcess } from './helpers/nodes.js';

/**
 * A rolling deploy, as teams run one: three node processes behind a round-robin balancer are
 * replaced one by one (a new process started, the old one taken out of the balancer and drained)
 * while traffic flows every way at once: a worker's `Publisher` streams numbers to a history room
 * and to every client directly (kept per session), and every client sends numbers up. Each client
 * moves once or more. Every client must get every number of both streams once and in order on the
 * wire, and the application must hear every number each client sent once, in order: a drain
 * records everything, so nothing comes twice.
 */

const COUNT = 160;
const INTERVAL_MS = 10;
const CLIENTS = 6;
const SECRET = 'e2e-secret-of-enough-length';

interface Watched {
  client: WscaleClient;
  tap: WireTap;
  feed: number[];
  direct: number[];
}

/** The Publisher's broker and history: the same services and names as the nodes'. */
function publisherBackends(broker: BrokerUnderTest): { broker: Broker; history: History } {
  const env = broker.env();
  if (broker.name === 'redis') {
    return {
      broker: new RedisBroker({ redis: env.REDIS_URL! }),
      history: new RedisHistory({ redis: env.REDIS_URL!, maxEntries: 10_000 }),
    };
  }
  return {
    broker: new NatsBroker({ servers: env.NATS_URL! }),
    history: new NatsHistory({ servers: env.NATS_URL!, maxEntries: 10_000 }),
  };
}

async function runScenario(under: BrokerUnderTest, prefix: string): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'wscale-rolling-'));
  const log = join(dir, 'messages.jsonl');
  const env = { ...under.env(), SESSION_SECRET: SECRET, DIRECT_HISTORY: '1', MESSAGES_LOG: log };
  const nodes = await NodeProcess.startThree(prefix, env);
  const started = [...nodes];
  const balancer = new Balancer(nodes.map((node) => node.port));
  const port = await balancer.listen();
  const backends = publisherBackends(under);
  const publisher = new Publisher({
    broker: backends.broker,
    history: [{ rooms: 'feed', store: backends.history }],
    directHistory: backends.history,
  });
  const watched: Watched[] = [];
  try {
    for (let i = 0; i < CLIENTS; i++) {
      const tap = new WireTap();
      const client = new WscaleClient(`ws://127.0.0.1:${port}/`, {
        WebSocket: tap.WebSocket as never,
        backoffBaseMs: 50,
        backoffCapMs: 500,
        restartJitterMs: 50,
        sendQueueSize: COUNT,
        network: false,
      });
      const entry: Watched = { client, tap, feed: [], direct: [] };
      client.on('message', (data, meta) => {
        (meta.room === 'feed' ? entry.feed : entry.direct).push(Number(data));
      });
      watched.push(entry);
    }
    await until(() => watched.every((w) => w.client.rooms.includes('feed')), 10_000, 'joins');
    expect(new Set(watched.map((w) => w.client.node)).size).toBe(3);
    const ids = watched.map((w) => w.client.clientId!);

    let sent = 0;
    const acked: Promise<void>[] = [];
    const drainedAt: number[] = [];
    const traffic = (async () => {
      for (let n = 1; n <= COUNT; n++) {
        // Halfway through each quarter after the first, the node replaced at its start is
        // draining, however long its successor took to start on a loaded machine.
        const step = [0, 1, 2].find((i) => n === ((i + 1) * COUNT) / 4 + COUNT / 8);
        if (step !== undefined) {
          await until(() => drainedAt.length > step, 30_000, `the drain of step ${step + 1}`);
        }
        await publisher.to('feed').send(String(n));
        await Promise.all(ids.map((id) => publisher.client(id).send(String(n))));
        watched.forEach((w, c) => {
          acked.push(w.client.send(JSON.stringify({ c, n })));
        });
        sent = n;
        await new Promise((resolve) => setTimeout(resolve, INTERVAL_MS));
      }
    })();

    // Each node in turn: its successor starts and takes its place in the balancer, then it drains.
    const running = [...nodes];
    const drains: Promise<void>[] = [];
    for (let i = 0; i < 3; i++) {
      await until(() => sent >= ((i + 1) * COUNT) / 4, 30_000, `step ${i + 1} of the traffic`);
      const next = await NodeProcess.start(`${prefix}-${i}-next`, env);
      started.push(next);
      running[i] = next;
      balancer.backends = running.map((node) => node.port);
      drainedAt.push(sent);
      // Not awaited: the next step goes on while this node drains, as a deploy's do.
      drains.push(nodes[i]!.drain());
    }
    await Promise.all(drains);
    await traffic;
    await Promise.all(acked);
    // Every drain began while the traffic flowed.
    expect(drainedAt.every((at) => at < COUNT)).toBe(true);

    const every = Array.from({ length: COUNT }, (_, i) => i + 1);
    await settle(
      () => watched.every((w) => w.feed.length >= COUNT && w.direct.length >= COUNT),
      30_000,
      'every number of both streams',
    );
    for (const w of watched) {
      // Every client moved at least once: no old node is left.
      expect(nodes.map((node) => node.id)).not.toContain(w.client.node);
      expect(w.feed).toEqual(every);
      expect(w.direct).toEqual(every);
      // On the wire: each offset of the room and of the client's direct stream came once, in order.
      const feed = w.tap.messages('feed');
      expect(feed.map((frame) => Number(frame.d))).toEqual(every);
      const first = feed[0]!.o!;
      expect(feed.map((frame) => frame.o)).toEqual(every.map((n) => first + n - 1));
      expect(w.tap.offsets(inboxOf(w.client.clientId!))).toEqual(every);
    }
    const heard = readFileSync(log, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line) as { text: string; redelivered: boolean });
    for (let c = 0; c < CLIENTS; c++) {
      const mine = heard.filter((h) => JSON.parse(h.text).c === c);
      expect(mine.map((h) => JSON.parse(h.text).n)).toEqual(every);
      expect(mine.filter((h) => h.redelivered)).toEqual([]);
    }
  } finally {
    await Promise.all(watched.map((w) => w.client.close()));
    await balancer.close();
    await publisher.close();
    await Promise.all([backends.broker.close(), backends.history.close()]);
    await Promise.all(started.map((node) => node.stop()));
    rmSync(dir, { recursive: true, force: true });
  }
}

describeOnEachBroker('a rolling deploy across node processes', (broker) => {
  it('replaces every node while traffic flows every way: nothing lost, repeated or reordered', async () => {
    await runScenario(broker, `${broker.name}-rolling`);
  }, 120_000);
});
