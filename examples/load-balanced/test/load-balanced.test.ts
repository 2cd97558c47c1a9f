import { spawnSync } from 'node:child_process';
import { type ClientCloseInfo, createClient, type WelcomeInfo } from '@wscale/client';
import { until } from '@wscale/core/testing';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import * as haproxy from '../../haproxy/src/balancer.js';
import * as nginx from '../../nginx/src/balancer.js';
import { startStack } from '../src/stack.js';

const ROOM = 'chat:lobby';

/** The same scenario runs behind each example's load balancer: [example, title, balancer]. */
const balancers = [
  ['haproxy', 'HAProxy', haproxy],
  ['nginx', 'nginx', nginx],
] as const;

/** The binaries each balancer's scenario needs but cannot run. */
const missingFor = new Map(
  balancers.map(([, , balancer]) => [
    balancer,
    [balancer.binary, 'redis-server'].filter(
      (binary) => spawnSync(binary, ['-v'], { stdio: 'ignore' }).status !== 0,
    ),
  ]),
);
const missing = [...new Set([...missingFor.values()].flat())];
if (missing.length > 0 && process.env.WSCALE_REQUIRE_SERVICES === '1') {
  throw new Error(`WSCALE_REQUIRE_SERVICES=1 but ${missing.join(', ')} cannot be run`);
}

/**
 * A `@wscale/client` connected through the load balancer, recording what it is told. Its URL
 * waits on `gate`, so a test can hold its reconnection until something happened meanwhile.
 */
class Probe {
  readonly client;
  readonly welcomes: WelcomeInfo[] = [];
  readonly closes: ClientCloseInfo[] = [];
  /** Texts of the chat messages of ROOM, in the order they arrived. */
  readonly texts: string[] = [];
  gate: Promise<void> = Promise.resolve();

  constructor(url: string) {
    this.client = createClient(
      async () => {
        await this.gate;
        return url;
      },
      { WebSocket, backoffBaseMs: 50, backoffCapMs: 500 },
    );
    this.client.on('welcome', (info) => this.welcomes.push(info));
    this.client.on('close', (info) => this.closes.push(info));
    this.client.on('message', (data, { room }) => {
      if (room === ROOM) this.texts.push((JSON.parse(String(data)) as { text: string }).text);
    });
  }

  get node(): string {
    return this.welcomes.at(-1)?.node ?? '';
  }

  /** Resolves once this text arrived in ROOM. */
  heard(text: string): Promise<void> {
    return until(() => this.texts.includes(text), 10_000, `"${text}" on ${this.node}`);
  }
}

describe.each(balancers)('examples/%s', (_example, title, balancer) => {
  describe.skipIf(missingFor.get(balancer)!.length > 0)(`${title} in front of three nodes`, () => {
    // Each test starts its own stack and clients: none depends on what an earlier one left.
    let stack: Awaited<ReturnType<typeof startStack>> | undefined;
    const logs: string[] = [];
    const probes: Probe[] = [];

    beforeEach(async () => {
      logs.length = 0;
      stack = await startStack({ balancer, log: (line) => logs.push(line) });
    });

    afterEach(async ({ task }) => {
      // What every process printed, to see why a scenario failed.
      if (task.result?.state === 'fail') console.error(logs.join('\n'));
      for (const probe of probes.splice(0)) probe.client.close();
      await stack?.stop();
      stack = undefined;
    });

    /** Connects six clients one at a time, each to the node holding the fewest. */
    async function connectProbes(): Promise<Probe[]> {
      for (let i = 0; i < 6; i++) {
        const probe = new Probe(stack!.wsUrl);
        probes.push(probe);
        await until(() => probe.client.position(ROOM) !== undefined, 10_000, 'joined');
      }
      return probes;
    }

    it('spreads connections over every node, and a broadcast from one reaches all', async () => {
      await connectProbes();
      expect(new Set(probes.map((probe) => probe.node))).toEqual(
        new Set(['node-1', 'node-2', 'node-3']),
      );

      probes[0]!.client.send('hello everyone');
      await Promise.all(probes.map((probe) => probe.heard('hello everyone')));
    }, 40_000);

    it('the clients of a killed node resume on the others through it and miss nothing', async () => {
      await connectProbes();
      const publisher = probes[0]!;
      const victim = stack!.nodes.find((node) => node.id !== publisher.node)!;
      const orphans = probes.filter((probe) => probe.node === victim.id);
      const survivors = probes.filter((probe) => probe.node !== victim.id);
      expect(orphans.length).toBeGreaterThan(0);
      let release = () => {};
      const gate = new Promise<void>((resolve) => {
        release = resolve;
      });
      for (const orphan of orphans) orphan.gate = gate; // they come back when the test says so

      await victim.kill(); // SIGKILL: no drain, no close frames
      await until(() => orphans.every((orphan) => orphan.closes.length > 0), 10_000, 'the drop');
      for (const orphan of orphans) expect(orphan.closes[0]!.code).toBe(1006);

      // Sent while the orphans are away; then they may come back through the load balancer, which
      // may still try the dead node first (HAProxy lists it for a moment, nginx until it refuses)
      // and then tries another.
      publisher.client.send('while they were away');
      await Promise.all(survivors.map((probe) => probe.heard('while they were away')));
      release();

      await until(() => orphans.every((orphan) => orphan.welcomes.length === 2), 15_000, 'resume');
      for (const orphan of orphans) {
        const [first, again] = orphan.welcomes;
        expect(again!.node).not.toBe(victim.id);
        expect(again).toMatchObject({
          resumed: true,
          clientId: first!.clientId,
          rooms: { [ROOM]: { recovered: true } },
        });
      }
      await Promise.all(orphans.map((orphan) => orphan.heard('while they were away')));

      publisher.client.send('after the crash');
      await Promise.all(probes.map((probe) => probe.heard('after the crash')));
      for (const orphan of orphans) {
        expect(orphan.texts).toEqual(['while they were away', 'after the crash']);
      }
    }, 40_000);
  });
});
