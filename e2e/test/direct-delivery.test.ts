import { WscaleClient } from '@wscale/client';
import { inboxOf } from '@wscale/core/protocol';
import { until } from '@wscale/core/testing';
import { settle, WireTap } from '@wscale/test-support';
import { expect, it } from 'vitest';
import { Balancer } from './helpers/balancer.js';
import { describeOnEachBroker } from './helpers/brokers.js';
import { NodeProcess } from './helpers/nodes.js';

/**
 * Direct messages survive a reconnect (`directHistory`): a node sends numbered direct messages to
 * every client behind a round-robin balancer while another node, holding some of them, is
 * SIGKILLed. Every client gets every number once and in order — on the wire, not only in what the
 * client hands the application — after resuming on another node.
 */

const COUNT = 100;
const INTERVAL_MS = 10;
const CLIENTS = 6;

async function runScenario(env: Record<string, string>, prefix: string): Promise<void> {
  const nodes = await NodeProcess.startThree(prefix, {
    ...env,
    SESSION_SECRET: 'e2e-secret-of-enough-length',
    DIRECT_HISTORY: '1',
  });
  const balancer = new Balancer(nodes.map((node) => node.port));
  const port = await balancer.listen();
  const watched: Array<{ client: WscaleClient; tap: WireTap; numbers: number[] }> = [];
  try {
    for (let i = 0; i < CLIENTS; i++) {
      const tap = new WireTap();
      const client = new WscaleClient(`ws://127.0.0.1:${port}/`, {
        WebSocket: tap.WebSocket as never,
        backoffBaseMs: 50,
        backoffCapMs: 500,
        network: false,
      });
      const entry = { client, tap, numbers: [] as number[] };
      client.on('message', (data, meta) => {
        if (meta.room === undefined) entry.numbers.push(Number(data));
      });
      watched.push(entry);
    }
    await until(() => watched.every((w) => w.client.state === 'open'), 10_000, 'every client');
    const victim = nodes[1]!;
    const onVictim = watched.filter((w) => w.client.node === victim.id);
    expect(onVictim.length).toBeGreaterThan(0);

    const ids = watched.map((w) => w.client.clientId!);
    const sending = nodes[0]!.directs(ids, COUNT, INTERVAL_MS);
    await until(() => watched.every((w) => w.numbers.length >= COUNT / 3), 20_000, 'a third');
    balancer.backends = [nodes[0]!.port, nodes[2]!.port];
    await victim.kill();
    await sending;

    const every = Array.from({ length: COUNT }, (_, i) => i + 1);
    await settle(() => watched.every((w) => w.numbers.length >= COUNT), 30_000, 'every number');
    for (const w of watched) {
      expect(w.numbers).toEqual(every);
      // On the wire: each offset of the client's direct stream arrived once, in order.
      expect(w.tap.offsets(inboxOf(w.client.clientId!))).toEqual(every);
    }
    for (const w of onVictim) expect(w.client.node).not.toBe(victim.id);
  } finally {
    await Promise.all(watched.map((w) => w.client.close()));
    await balancer.close();
    await Promise.all(nodes.map((node) => node.stop()));
  }
}

describeOnEachBroker('kept direct messages across node processes', (broker) => {
  it('direct messages to the clients of a killed node arrive after the resume, once, in order', async () => {
    await runScenario(broker.env(), `${broker.name}-direct`);
  }, 90_000);
});
