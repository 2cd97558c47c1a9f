import { type WelcomeInfo, WscaleClient } from '@wscale/client';
import {
  MemoryBroker,
  MemoryBus,
  MemoryHistory,
  MemoryStateStore,
  ScaledWebSocketServer,
} from '@wscale/core';
import { until } from '@wscale/core/testing';
import { settle, WireTap } from '@wscale/test-support';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { Balancer } from './helpers/balancer.js';
import { describeOnEachBroker } from './helpers/brokers.js';
import { NodeProcess } from './helpers/nodes.js';

/**
 * The seed's promise, end to end: clients behind a round-robin balancer, three nodes, a numbered
 * stream in a history room; one node dies (or drains) in the middle. Every client must end with
 * every number exactly once and in order — on the wire, not only in what the client hands the
 * application (it drops offsets it has seen) — and the clients of the lost node must have resumed
 * with `recovered: true`.
 */

const COUNT = 150;
const INTERVAL_MS = 10;
const CLIENTS = 6;
const SECRET = 'e2e-secret-of-enough-length';

/** One scenario cluster: three nodes behind a balancer, however they are run. */
interface Cluster {
  ports: number[];
  publish(fromNode: number): Promise<void>;
  kill(node: number): Promise<void>;
  drain(node: number): Promise<void>;
  /** Joins a client to a room from a node (`wss.client(id).join(room)`). */
  join(fromNode: number, id: string, room: string): Promise<void>;
  close(): Promise<void>;
}

interface Watched {
  client: WscaleClient;
  /** What the client's sockets received, before the client deduplicated anything. */
  tap: WireTap;
  numbers: number[];
  welcomes: WelcomeInfo[];
}

async function runScenario(cluster: Cluster, lose: (node: number) => Promise<void>) {
  const balancer = new Balancer(cluster.ports);
  const port = await balancer.listen();
  const watched: Watched[] = [];
  try {
    for (let i = 0; i < CLIENTS; i++) {
      const tap = new WireTap();
      const client = new WscaleClient(`ws://127.0.0.1:${port}/`, {
        WebSocket: tap.WebSocket,
        backoffBaseMs: 50,
        backoffCapMs: 500,
        restartJitterMs: 50,
        network: false,
      });
      const entry: Watched = { client, tap, numbers: [], welcomes: [] };
      client.on('welcome', (info) => entry.welcomes.push(info));
      client.on('message', (data, meta) => {
        if (meta.room === 'feed') entry.numbers.push(Number(data));
      });
      watched.push(entry);
    }
    await until(() => watched.every((w) => w.welcomes.length === 1), 10_000, 'every welcome');
    const nodesUsed = new Set(watched.map((w) => w.welcomes[0]!.node));
    expect(nodesUsed.size).toBe(3);
    // Every client is in the room before the stream starts.
    await until(() => watched.every((w) => w.client.rooms.includes('feed')), 5000, 'joins');

    const victim = 1;
    const victimId = watched.find((w) => w.welcomes[0]!.node.endsWith(`-${victim}`))!.welcomes[0]!
      .node;
    const published = cluster.publish(0);
    await until(() => watched.every((w) => w.numbers.length >= COUNT / 3), 20_000, 'a third');
    balancer.backends = cluster.ports.filter((_, i) => i !== victim);
    await lose(victim);
    await published;
    await settle(() => watched.every((w) => w.numbers.length >= COUNT), 30_000, 'every number');

    const expected = Array.from({ length: COUNT }, (_, i) => i + 1);
    for (const w of watched) {
      // On the wire: each number in one frame, in order, under consecutive offsets (the room's log
      // may have begun before this test).
      const frames = w.tap.messages('feed');
      expect(frames.map((frame) => Number(frame.d))).toEqual(expected);
      const first = frames[0]!.o!;
      expect(frames.map((frame) => frame.o)).toEqual(expected.map((n) => first + n - 1));
      expect(w.numbers).toEqual(expected);
    }
    const moved = watched.filter((w) => w.welcomes[0]!.node === victimId);
    expect(moved.length).toBeGreaterThan(0);
    for (const w of moved) {
      const resumed = w.welcomes.at(-1)!;
      expect(resumed.resumed).toBe(true);
      expect(resumed.node).not.toBe(victimId);
      expect(resumed.rooms.feed?.recovered).toBe(true);
    }
  } finally {
    await Promise.all(watched.map((w) => w.client.close()));
    await balancer.close();
  }
}

/** Three nodes in this process on one memory bus; a "kill" drops every connection at once. */
async function memoryCluster(): Promise<Cluster> {
  const bus = new MemoryBus();
  const stateStore = new MemoryStateStore();
  const history = new MemoryHistory({ maxEntries: 10_000 });
  const nodes = [0, 1, 2].map(
    (i) =>
      new ScaledWebSocketServer({
        port: 0,
        host: '127.0.0.1',
        nodeId: `mem-${i}`,
        broker: new MemoryBroker({ bus }),
        stateStore,
        sessionSecret: SECRET,
        history: [{ rooms: 'feed', store: history }],
      }),
  );
  for (const node of nodes) node.on('connection', (client) => void client.join('feed'));
  await Promise.all(nodes.map((node) => node.ready()));
  return {
    ports: nodes.map((node) => node.address()!.port),
    publish: async (from) => {
      for (let n = 1; n <= COUNT; n++) {
        await nodes[from]!.to('feed').send(String(n));
        await new Promise((resolve) => setTimeout(resolve, INTERVAL_MS));
      }
    },
    kill: async (i) => {
      for (const client of nodes[i]!.clients.values()) client.terminate();
    },
    drain: (i) => nodes[i]!.close(),
    join: (from, id, room) => nodes[from]!.client(id).join(room),
    close: async () => {
      await Promise.all(nodes.map((node) => node.close()));
      await Promise.all([stateStore.close(), history.close()]);
    },
  };
}

/** Three node processes on a broker service. */
async function processCluster(env: Record<string, string>, prefix: string): Promise<Cluster> {
  const nodes = await NodeProcess.startThree(prefix, { ...env, SESSION_SECRET: SECRET });
  return {
    ports: nodes.map((node) => node.port),
    publish: (from) => nodes[from]!.publish(COUNT, INTERVAL_MS),
    kill: (i) => nodes[i]!.kill(),
    drain: (i) => nodes[i]!.drain(),
    join: (from, id, room) => nodes[from]!.join(id, room),
    close: async () => {
      await Promise.all(nodes.map((node) => node.stop()));
    },
  };
}

/**
 * A session outlives the process that held it: data and rooms set through the application, then
 * the node is SIGKILLed (no close, no drain, no save on the way out), and a room joined by the
 * server while the client is away; one resume on another node brings back exactly what was set.
 */
async function runSessionScenario(cluster: Cluster) {
  const balancer = new Balancer([cluster.ports[0]!]);
  const port = await balancer.listen();
  const welcomes: WelcomeInfo[] = [];
  const client = new WscaleClient(`ws://127.0.0.1:${port}/`, {
    WebSocket,
    backoffBaseMs: 50,
    backoffCapMs: 500,
    network: false,
  });
  client.on('welcome', (info) => welcomes.push(info));
  try {
    await until(() => welcomes.length === 1, 10_000, 'the welcome');
    const data = { name: 'ada', score: 42, tags: ['x', 'y'] };
    expect(await client.request(`remember:${JSON.stringify(data)}`)).toBe('ok');
    const joined: string[] = [];
    client.on('joined', ({ room }) => joined.push(room));
    await cluster.kill(0);
    // While the client cannot come back (its balancer knows only the dead node), the server
    // changes its rooms from another node, which may not know the killed node is dead yet.
    await cluster.join(2, welcomes[0]!.clientId, 'late');
    balancer.backends = [cluster.ports[1]!];
    await until(() => welcomes.length === 2, 15_000, 'the resume');
    expect(welcomes[1]).toMatchObject({ resumed: true, clientId: welcomes[0]!.clientId });
    expect(welcomes[1]!.node).not.toBe(welcomes[0]!.node);
    const session = JSON.parse(String(await client.request('session')));
    expect(session).toEqual({ data, rooms: ['feed', 'late', 'notes'] });
    expect(joined).toEqual(['late']);
    expect(welcomes).toHaveLength(2);
  } finally {
    await client.close();
    await balancer.close();
  }
}

function scenarios(make: () => Promise<Cluster>, options: { processes: boolean }) {
  let cluster: Cluster | undefined;
  afterEach(async () => {
    await cluster?.close();
    cluster = undefined;
  });
  it('a killed node loses nothing', async () => {
    cluster = await make();
    await runScenario(cluster, (node) => cluster!.kill(node));
  }, 90_000);
  it('a drained node loses nothing', async () => {
    cluster = await make();
    await runScenario(cluster, (node) => cluster!.drain(node));
  }, 90_000);
  if (options.processes) {
    it('a SIGKILLed node loses no session: data and rooms come back in one resume', async () => {
      cluster = await make();
      await runSessionScenario(cluster);
    }, 60_000);
  }
}

describe('resume across nodes, on memory', () => {
  scenarios(memoryCluster, { processes: false });
});

describeOnEachBroker('resume across node processes', (broker) => {
  scenarios(() => processCluster(broker.env(), broker.name), { processes: true });
});
