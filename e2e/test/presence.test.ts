import { WscaleClient } from '@wscale/client';
import { delay, until } from '@wscale/core/testing';
import { afterEach, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { Balancer } from './helpers/balancer.js';
import { describeOnEachBroker } from './helpers/brokers.js';
import { NodeProcess } from './helpers/nodes.js';

/**
 * Presence across node processes behind a round-robin balancer: nine users, one connection each,
 * every one of them watching the room's presence. One node is killed, drained or frozen; what every
 * user's view and every node's `presence` events say afterwards is checked.
 */

const SECRET = 'e2e-secret-of-enough-length';
const ROOM = 'feed';
const USERS = 9;
const GRACE_MS = 2000;
/** The fixture's heartbeat is 500 ms: a silent node is gone after 3 × 500 ms. */
const NODE_TIMEOUT_MS = 1500;
/** When the cluster must have settled after a node is lost: timeout plus grace, and a margin. */
const SETTLE_MS = NODE_TIMEOUT_MS + GRACE_MS + 2500;

interface User {
  name: string;
  client: WscaleClient;
  /** What its presence view reported: "join user" / "leave user". */
  told: string[];
  firstNode: string;
}

interface Scene {
  nodes: NodeProcess[];
  balancer: Balancer;
  /** The balancer's port. */
  port: number;
  users: User[];
}

async function startScene(env: Record<string, string>, prefix: string): Promise<Scene> {
  const nodes = await NodeProcess.startThree(prefix, {
    ...env,
    SESSION_SECRET: SECRET,
    ROOM,
    PRESENCE_GRACE_MS: String(GRACE_MS),
  });
  const balancer = new Balancer(nodes.map((node) => node.port));
  const port = await balancer.listen();
  // Every node knows the others before anyone joins (node discovery is a broker round trip).
  await delay(1000);
  const users: User[] = [];
  for (let i = 0; i < USERS; i++) {
    const name = `u${i}`;
    const client = new WscaleClient(`ws://127.0.0.1:${port}/?user=${name}`, {
      WebSocket: WebSocket as never,
      backoffBaseMs: 50,
      backoffCapMs: 300,
      restartJitterMs: 50,
      network: false,
    });
    await until(() => client.rooms.includes(ROOM), 10_000, `${name} in the room`);
    users.push({ name, client, told: [], firstNode: client.node! });
  }
  for (const user of users) {
    const view = await user.client.presence(ROOM);
    await until(() => view.count === USERS, 10_000, `${user.name} to see everyone`);
    view.on('join', (member) => user.told.push(`join ${member.user}`));
    view.on('leave', (member) => user.told.push(`leave ${member.user}`));
  }
  await allList(nodes, names(users));
  for (const node of nodes) node.presenceEvents.length = 0;
  return { nodes, balancer, port, users };
}

function names(users: User[]): string[] {
  return users.map((user) => user.name).sort();
}

/** Waits until every node lists exactly `expected`, with no node missing. */
async function allList(nodes: NodeProcess[], expected: string[], timeoutMs = 10_000) {
  let last: unknown;
  await until(
    async () => {
      const lists = await Promise.all(nodes.map((node) => node.presence(ROOM)));
      last = lists;
      return lists.every(
        (list) => list.missing.length === 0 && list.users.join() === expected.join(),
      );
    },
    timeoutMs,
    `every node to list ${expected.join(',')}`,
  ).catch((error) => {
    throw new Error(`${(error as Error).message}; last answers: ${JSON.stringify(last)}`);
  });
}

async function endScene(scene: Scene | undefined) {
  if (scene === undefined) return;
  await Promise.all(scene.users.map((user) => user.client.close()));
  await scene.balancer.close();
  await Promise.all(scene.nodes.map((node) => node.stop()));
}

function scenarios(env: () => Record<string, string>, prefix: string) {
  let scene: Scene | undefined;
  afterEach(async () => {
    await endScene(scene);
    scene = undefined;
  });

  it('SIGKILL: members that resume elsewhere make no event, the others leave once, seen by everyone', async () => {
    scene = await startScene(env(), prefix);
    const { nodes, balancer, users } = scene;
    const victim = nodes[1]!;
    const onVictim = users.filter((user) => user.firstNode === victim.id);
    expect(onVictim.length).toBe(USERS / 3);
    // Some come back (on another node), the others are closed while their node is dead.
    const gone = onVictim.slice(0, 1);
    const back = onVictim.slice(1);
    balancer.backends = [nodes[0]!.port, nodes[2]!.port];
    await victim.kill();
    await Promise.all(gone.map((user) => user.client.close()));
    await until(
      () => back.every((user) => user.client.state === 'open' && user.client.node !== victim.id),
      10_000,
      'the others to resume elsewhere',
    );
    const remaining = users.filter((user) => !gone.includes(user));
    await delay(SETTLE_MS);
    const leaves = gone.map((user) => `leave ${user.name}`);
    for (const user of remaining) expect(user.told, user.name).toEqual(leaves);
    for (const node of [nodes[0]!, nodes[2]!]) expect(node.presenceEvents).toEqual(leaves);
    await allList([nodes[0]!, nodes[2]!], names(remaining));
  }, 90_000);

  it('drain: no presence event at all, everyone listed throughout', async () => {
    scene = await startScene(env(), prefix);
    const { nodes, balancer, users } = scene;
    const victim = nodes[1]!;
    balancer.backends = [nodes[0]!.port, nodes[2]!.port];
    await victim.drain();
    await until(
      () => users.every((user) => user.client.state === 'open' && user.client.node !== victim.id),
      10_000,
      'everyone on the other nodes',
    );
    await delay(SETTLE_MS);
    for (const user of users) expect(user.told, user.name).toEqual([]);
    for (const node of [nodes[0]!, nodes[2]!]) expect(node.presenceEvents).toEqual([]);
    await allList([nodes[0]!, nodes[2]!], names(users));
  }, 90_000);

  it('a node cut off (frozen) past the timeout and grace converges with the others when it comes back', async () => {
    scene = await startScene(env(), prefix);
    const { nodes, users } = scene;
    const victim = nodes[1]!;
    const onVictim = users.filter((user) => user.firstNode === victim.id).map((u) => u.name);
    victim.freeze();
    // The others see it gone and, after the grace, its members leave (they are unreachable).
    const others = [nodes[0]!, nodes[2]!];
    await until(
      async () => {
        const lists = await Promise.all(others.map((node) => node.presence(ROOM)));
        return lists.every((list) => list.users.length === USERS - onVictim.length);
      },
      SETTLE_MS + 5000,
      "the frozen node's members to leave the others' lists",
    );
    victim.thaw();
    // Back: it hears the others again and they hear it; every node lists everyone once more.
    await allList(nodes, names(users), NODE_TIMEOUT_MS + GRACE_MS + 10_000);
    for (const node of [nodes[0]!, nodes[2]!]) {
      expect(node.presenceEvents.sort()).toEqual(
        [
          ...onVictim.map((name) => `join ${name}`),
          ...onVictim.map((name) => `leave ${name}`),
        ].sort(),
      );
    }
  }, 90_000);
}

describeOnEachBroker('presence across node processes', (broker) => {
  scenarios(broker.env, broker.name);
  if (broker.name !== 'redis') return;

  let scene: Scene | undefined;
  afterEach(async () => {
    await endScene(scene);
    scene = undefined;
  });

  it('a node whose Redis subscription is cut again and again while users come and go converges', async () => {
    scene = await startScene(broker.env(), 'redis-cut');
    const redis = broker.redis()!;
    const { nodes, users } = scene;
    const victim = nodes[1]!;
    // Kill the victim's subscriber connection every 50 ms for 2 s: what is published while it
    // reconnects never reaches it, yet it stays alive to the others (it still publishes).
    let cuts = 0;
    const cutting = (async () => {
      const end = Date.now() + 2000;
      while (Date.now() < end) {
        const list = await redis.cli('CLIENT', 'LIST', 'TYPE', 'pubsub');
        for (const line of list.split('\n')) {
          const id = /\bid=(\d+)/.exec(line)?.[1];
          if (id !== undefined && line.includes(` name=${victim.id} `)) {
            await redis.cli('CLIENT', 'KILL', 'ID', id);
            cuts++;
          }
        }
        await delay(50);
      }
    })();
    const gone = users.slice(0, 3);
    await Promise.all(gone.map((user) => user.client.close()));
    const comers: WscaleClient[] = [];
    for (let i = 0; i < 4; i++) {
      const client = new WscaleClient(`ws://127.0.0.1:${scene.port}/?user=new${i}`, {
        WebSocket: WebSocket as never,
        network: false,
      });
      comers.push(client);
      await until(() => client.rooms.includes(ROOM), 10_000, `new${i} in the room`);
      await delay(200);
    }
    await cutting;
    expect(cuts).toBeGreaterThan(5);
    try {
      const expected = [...users.slice(3).map((user) => user.name), 'new0', 'new1', 'new2', 'new3'];
      await allList(nodes, expected.sort(), NODE_TIMEOUT_MS + GRACE_MS + 10_000);
    } finally {
      await Promise.all(comers.map((client) => client.close()));
    }
  }, 90_000);
});
