import { MemoryStateStore } from '@wscale/core';
import { delay, until } from '@wscale/core/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { LaggyBroker } from './helpers/laggy-broker.js';
import { TestCluster } from './helpers/nodes.js';
import { V1Peer } from './helpers/v1-client.js';

const cluster = new TestCluster();
const stores: MemoryStateStore[] = [];
afterEach(async () => {
  await cluster.closeAll();
  for (const store of stores.splice(0)) await store.close();
});

async function startNodes(count: number, latency: (topic: string) => number = () => 0, ackMs = 0) {
  const brokers: LaggyBroker[] = [];
  const stateStore = new MemoryStateStore({ ttlMs: 60_000 });
  stores.push(stateStore);
  const nodes = await cluster.start(count, {
    stateStore,
    sessionSecret: 'a-test-secret-of-enough-bytes',
    brokerFor: (bus) => {
      const broker = new LaggyBroker(bus, latency, ackMs);
      brokers.push(broker);
      return broker;
    },
  });
  return { nodes, brokers };
}

describe('direct messages go to the node that holds the client', () => {
  it('reaches a raw client through its node alone', async () => {
    const { nodes, brokers } = await startNodes(4);
    const target = await cluster.connect(nodes[2]!);
    for (let i = 0; i < 20; i++) await nodes[0]!.client(target.id).send(`m${i}`);
    await target.waitFor(20);
    expect(target.texts).toEqual(Array.from({ length: 20 }, (_, i) => `m${i}`));
    expect(brokers.map((broker) => broker.directs)).toEqual([0, 0, 20, 0]);
  });

  it('learns where a wscale.v1 session is from its first message', async () => {
    const { nodes, brokers } = await startNodes(4);
    const { peer, welcome } = await V1Peer.connect(nodes[1]!);
    await nodes[3]!.client(welcome.client).send('m0');
    await until(() => peer.all('msg').length === 1, 3000, 'the first message');
    await delay(20);
    for (let i = 1; i < 20; i++) await nodes[3]!.client(welcome.client).send(`m${i}`);
    await until(() => peer.all('msg').length === 20, 3000, '20 messages');
    expect(peer.texts()).toEqual(Array.from({ length: 20 }, (_, i) => `m${i}`));
    // The first went to every node, with a question; the holder answered, the rest went to it.
    expect(brokers.map((broker) => broker.directs)).toEqual([1, 20, 1, 1]);
  });

  it('still reaches a raw client whose id names no live node', async () => {
    const { nodes } = await startNodes(2);
    const target = await cluster.connect(nodes[1]!);
    const other = await cluster.connect(nodes[1]!);
    await nodes[0]!.client(`unknown-node.${target.id}`).send('nobody');
    await nodes[0]!.client(target.id).send('somebody');
    await target.waitFor(1);
    await delay(50);
    expect(target.texts).toEqual(['somebody']);
    expect(other.messages).toHaveLength(0);
  });

  // Frames on a node's own topic are slower than those to every node, or faster: either way a
  // takeover races with the messages in flight.
  // A slow acknowledgement lets messages reach the new node before it has registered the session.
  const latencies: Array<[string, (topic: string) => number, number]> = [
    ['node topics slower', (topic) => (topic.includes(':node:') ? 4 : 1), 0],
    ['node topics faster', (topic) => (topic.includes(':node:') ? 1 : 4), 0],
    ['acknowledged late', () => 1, 15],
  ];
  for (const [name, latency, ackMs] of latencies) {
    for (const [from, to] of [
      [0, 1],
      [0, 2],
    ] as const) {
      it(`delivers every message once while the session moves to ${to === 2 ? 'the sending' : 'another'} node (${name})`, async () => {
        const { nodes } = await startNodes(3, latency, ackMs);
        const sender = nodes[2]!;
        const first = await V1Peer.connect(nodes[from]!);
        const id = first.welcome.client;
        const total = 150;
        let second: V1Peer | undefined;
        let taking: Promise<unknown> = Promise.resolve();
        for (let i = 1; i <= total; i++) {
          await sender.client(id).send(String(i));
          if (i === 50) {
            // The session is taken over, while messages keep coming and the old connection still
            // reads: nothing sent may be lost, and nothing may reach both connections.
            taking = V1Peer.connect(nodes[to]!, { session: first.welcome.session }).then(
              ({ peer }) => {
                second = peer;
              },
            );
          }
          await delay(i % 5 === 0 ? 1 : 0);
        }
        await taking;
        const received = () => [...first.peer.texts(), ...(second?.texts() ?? [])].map(Number);
        await until(() => received().length >= total, 5000, `${total} messages`);
        await delay(100);
        expect(received().sort((x, y) => x - y)).toEqual(
          Array.from({ length: total }, (_, i) => i + 1),
        );
        expect(second!.texts().length).toBeGreaterThan(0);
        expect(second!.received[0]!.message.t).toBe('welcome');
      });
    }
  }

  it('passes on what came for a session whose resume here went away, once another node takes it', async () => {
    const store = new MemoryStateStore({ ttlMs: 60_000 });
    stores.push(store);
    const [a, b, c] = await cluster.start(3, {
      stateStore: slowly(store),
      sessionSecret: 'a-test-secret-of-enough-bytes',
    });
    const first = await V1Peer.connect(a!);
    const id = first.welcome.client;
    // A resume on b while the connection on a still holds the session: b takes it over...
    const lost = new V1Peer(b!);
    await lost.opened;
    lost.send({ t: 'hello', session: first.welcome.session });
    await first.peer.closed;
    // ...and the resuming connection goes away before its welcome (a flaky link).
    lost.ws.terminate();
    const third = await V1Peer.connect(c!, { session: first.welcome.session });
    expect(third.welcome.resumed).toBe(true);
    expect(lost.all('welcome')).toEqual([]);

    await b!.client(id).send('from b');
    await a!.client(id).send('from a');
    await until(() => third.peer.texts().length === 2, 2000, 'both messages');
    expect(third.peer.texts().sort()).toEqual(['from a', 'from b']);
  });

  it('refuses, not drops, an operation past the 1024 kept for a session being taken over', async () => {
    const store = new MemoryStateStore({ ttlMs: 60_000 });
    stores.push(store);
    const [a, b] = await cluster.start(2, {
      stateStore: slowly(store),
      sessionSecret: 'a-test-secret-of-enough-bytes',
    });
    const first = await V1Peer.connect(a!);
    const id = first.welcome.client;
    const moving = V1Peer.connect(b!, { session: first.welcome.session });
    await first.peer.closed; // b has taken the session over; its welcome is a store round away
    const sends = Array.from({ length: 1030 }, (_, i) => b!.client(id).send(String(i)));
    const outcomes = await Promise.allSettled(sends);
    const refused = outcomes.flatMap((outcome) =>
      outcome.status === 'rejected' ? [(outcome.reason as { code?: string }).code] : [],
    );
    expect(refused).toEqual(Array(6).fill('LIMIT_EXCEEDED'));
    const { peer } = await moving;
    await until(() => peer.texts().length === 1024, 3000, 'the kept operations');
    expect(peer.texts()).toEqual(Array.from({ length: 1024 }, (_, i) => String(i)));
  });

  it('applies a leave, a join and a send that come while the session moves after its rooms are back', async () => {
    const store = new MemoryStateStore({ ttlMs: 60_000 });
    stores.push(store);
    const [n0, n1, n2] = await cluster.start(3, {
      stateStore: slowly(store),
      sessionSecret: 'a-test-secret-of-enough-bytes',
      authorizeJoin: () => true,
    });
    const first = await V1Peer.connect(n1!);
    const id = first.welcome.client;
    first.peer.send({ t: 'join', id: 1, r: 'r' });
    await first.peer.next('ack');
    await n0!.client(id).send('before'); // n0 learns where the session is
    await until(() => first.peer.texts().includes('before'), 2000, 'the first message');

    const moving = V1Peer.connect(n2!, { session: first.welcome.session });
    await first.peer.closed; // n2 has taken the session over; its welcome is a store round away
    await n0!.client(id).leave('r');
    await n0!.client(id).join('r2');
    await n0!.client(id).send('during');
    const { peer, welcome } = await moving;
    expect(Object.keys(welcome.rooms)).toEqual(['r']);
    await until(() => peer.texts().includes('during'), 2000, 'the message sent meanwhile');
    await until(() => peer.all('joined').length === 1, 2000, 'the join');
    expect(peer.all('left').map((left) => left.r)).toEqual(['r']);
    expect(peer.all('joined').map((joined) => joined.r)).toEqual(['r2']);
    expect([...n2!.clients.get(id)!.rooms]).toEqual(['r2']);
  });
});

/**
 * A store that answers in 100 ms, as one across a network under load: a resume spends that long
 * between taking a session over and welcoming its connection.
 */
function slowly(store: MemoryStateStore): MemoryStateStore {
  return new Proxy(store, {
    get: (target, key) => {
      const value = Reflect.get(target, key, target);
      if (typeof value !== 'function' || key === 'close') return value;
      return async (...args: unknown[]) => {
        await delay(100);
        return value.apply(target, args);
      };
    },
  });
}
