import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WscaleClient } from '@wscale/client';
import { until } from '@wscale/core/testing';
import { expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { Balancer } from './helpers/balancer.js';
import { describeOnEachBroker } from './helpers/brokers.js';
import { NodeProcess } from './helpers/nodes.js';

/**
 * What clients send is not lost when nodes die: clients behind a round-robin balancer send
 * numbered messages at a steady rate while one node is SIGKILLed and another drained. The
 * application, on whichever node, hears every number of every client; a number heard twice is
 * marked `redelivered` the second time, with the same id.
 */

const COUNT = 150;
const INTERVAL_MS = 10;
const CLIENTS = 6;
const SECRET = 'e2e-secret-of-enough-length';

interface Heard {
  node: string;
  text: string;
  id: string;
  redelivered: boolean;
}

async function runScenario(env: Record<string, string>, prefix: string): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'wscale-upstream-'));
  const log = join(dir, 'messages.jsonl');
  const nodes = await NodeProcess.startThree(prefix, {
    ...env,
    SESSION_SECRET: SECRET,
    MESSAGES_LOG: log,
  });
  const balancer = new Balancer(nodes.map((node) => node.port));
  const port = await balancer.listen();
  const clients: WscaleClient[] = [];
  try {
    for (let i = 0; i < CLIENTS; i++) {
      clients.push(
        new WscaleClient(`ws://127.0.0.1:${port}/`, {
          WebSocket: WebSocket as never,
          backoffBaseMs: 50,
          backoffCapMs: 500,
          restartJitterMs: 50,
          sendQueueSize: COUNT,
          network: false,
        }),
      );
    }
    await until(() => clients.every((c) => c.state === 'open'), 10_000, 'every client open');
    expect(new Set(clients.map((c) => c.node)).size).toBe(3);

    const acked: Promise<void>[] = [];
    const sending = (async () => {
      for (let n = 1; n <= COUNT; n++) {
        clients.forEach((client, c) => {
          acked.push(client.send(JSON.stringify({ c, n })));
        });
        await new Promise((resolve) => setTimeout(resolve, INTERVAL_MS));
      }
    })();
    const sentSoFar = () => acked.length / CLIENTS;
    await until(() => sentSoFar() >= COUNT / 3, 20_000, 'a third sent');
    balancer.backends = [nodes[0]!.port, nodes[2]!.port];
    await nodes[1]!.kill();
    await until(() => sentSoFar() >= (2 * COUNT) / 3, 20_000, 'two thirds sent');
    balancer.backends = [nodes[0]!.port];
    await nodes[2]!.drain();
    await sending;
    await Promise.all(acked);

    const heard = readFileSync(log, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line) as Heard);
    const everyNumber = Array.from({ length: COUNT }, (_, i) => i + 1);
    for (let c = 0; c < CLIENTS; c++) {
      const mine = heard.filter((h) => JSON.parse(h.text).c === c);
      const numbers = mine.map((h) => JSON.parse(h.text).n as number);
      expect([...new Set(numbers)].sort((x, y) => x - y)).toEqual(everyNumber);
      // A number heard again is marked, and carries the id it had the first time.
      const first = new Map<number, Heard>();
      for (const h of mine) {
        const n = JSON.parse(h.text).n as number;
        const earlier = first.get(n);
        if (earlier === undefined) {
          first.set(n, h);
          continue;
        }
        expect(h.redelivered).toBe(true);
        expect(h.id).toBe(earlier.id);
        // Only the node that died can have handed a message on without recording it: the
        // drained one recorded everything, so nothing it had comes twice.
        expect(earlier.node).toBe(nodes[1]!.id);
      }
    }
  } finally {
    await Promise.all(clients.map((client) => client.close()));
    await balancer.close();
    await Promise.all(nodes.map((node) => node.stop()));
    rmSync(dir, { recursive: true, force: true });
  }
}

describeOnEachBroker('upstream delivery across node processes', (broker) => {
  it('a killed and a drained node lose nothing clients sent', async () => {
    await runScenario(broker.env(), `${broker.name}-up`);
  }, 90_000);
});
