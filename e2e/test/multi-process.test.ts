import { type Broker, Publisher } from '@wscale/core';
import { until } from '@wscale/core/testing';
import { NatsBroker } from '@wscale/nats';
import { RedisBroker } from '@wscale/redis';
import { expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { describeOnEachBroker } from './helpers/brokers.js';
import { NodeProcess } from './helpers/nodes.js';

/** A raw `ws` client of one node: learns its id, then records what it receives. */
class RawClient {
  readonly ws: WebSocket;
  readonly received: string[] = [];
  id = '';
  node = '';

  constructor(port: number, rooms: string[]) {
    this.ws = new WebSocket(`ws://127.0.0.1:${port}/?rooms=${rooms.join(',')}`);
    this.ws.on('message', (data) => {
      const text = String(data);
      if (this.id === '') {
        ({ id: this.id, node: this.node } = JSON.parse(text) as { id: string; node: string });
      } else {
        this.received.push(text);
      }
    });
  }
}

/** A `wscale.v1` connection written from the spec: says hello, keeps its direct messages. */
class V1Socket {
  readonly ws: WebSocket;
  readonly texts: string[] = [];
  readonly welcome: Promise<{ session: string; client: string }>;

  constructor(port: number, session?: string) {
    this.ws = new WebSocket(`ws://127.0.0.1:${port}/`, ['wscale.v1']);
    this.ws.on('open', () => this.ws.send(JSON.stringify({ t: 'hello', session })));
    this.welcome = new Promise((resolve) => {
      this.ws.on('message', (data) => {
        const message = JSON.parse(String(data)) as { t: string; r?: string; d?: string };
        if (message.t === 'welcome') resolve(message as never);
        // A direct message names no room.
        if (message.t === 'msg' && message.r === undefined) this.texts.push(message.d ?? '');
      });
    });
  }
}

/**
 * Three node processes on one broker service, real clients spread across them: a room broadcast
 * and a direct send reach exactly the right clients, once.
 */
function multiProcess(env: () => Record<string, string>, prefix: string) {
  it('delivers room broadcasts and direct sends to exactly the right clients, once', async () => {
    const nodes = await NodeProcess.startThree(prefix, {
      ...env(),
      SESSION_SECRET: 'x'.repeat(32),
    });
    const clients: RawClient[] = [];
    try {
      // Per node: one client in "red", one in "blue", one in both, one in none.
      for (const node of nodes) {
        for (const rooms of [['red'], ['blue'], ['red', 'blue'], []]) {
          clients.push(new RawClient(node.port, rooms));
        }
      }
      await until(() => clients.every((c) => c.id !== ''), 10_000, 'every client to learn its id');
      const inRoom = (room: string) =>
        clients.filter((_, i) => [['red'], ['blue'], ['red', 'blue'], []][i % 4]!.includes(room));

      await nodes[0]!.broadcast('red', 'red alert');
      await nodes[2]!.broadcast('blue', 'blue moon');
      const target = clients.find((c) => c.node === nodes[1]!.id)!;
      await nodes[0]!.direct(target.id, 'just for you');

      const expected = new Map<RawClient, string[]>(clients.map((c) => [c, []]));
      for (const c of inRoom('red')) expected.get(c)!.push('red alert');
      for (const c of inRoom('blue')) expected.get(c)!.push('blue moon');
      expected.get(target)!.push('just for you');
      const total = [...expected.values()].reduce((sum, texts) => sum + texts.length, 0);
      await until(
        () => clients.reduce((sum, c) => sum + c.received.length, 0) >= total,
        10_000,
        `${total} deliveries`,
      );
      // A settle window for anything that should not arrive, then the exact picture.
      await new Promise((resolve) => setTimeout(resolve, 200));
      for (const client of clients) {
        expect(client.received.sort()).toEqual(expected.get(client)!.sort());
      }
    } finally {
      for (const client of clients) client.ws.terminate();
      await Promise.all(nodes.map((node) => node.stop()));
    }
  }, 60_000);

  it('delivers every direct message once while its session moves to another node', async () => {
    const nodes = await NodeProcess.startThree(`${prefix}-move`, {
      ...env(),
      SESSION_SECRET: 'x'.repeat(32),
    });
    const sockets: V1Socket[] = [];
    try {
      const first = new V1Socket(nodes[0]!.port);
      sockets.push(first);
      const { session, client } = await first.welcome;
      const total = 300;
      const sending = nodes[2]!.directs([client], total, 2);
      await until(() => first.texts.length >= 60, 10_000, 'the first messages');
      // Taken over while messages keep coming and the old connection still reads.
      const second = new V1Socket(nodes[1]!.port, session);
      sockets.push(second);
      await second.welcome;
      await sending;
      const all = () => [...first.texts, ...second.texts].map(Number);
      await until(() => all().length >= total, 10_000, `${total} messages`);
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect(all().sort((a, b) => a - b)).toEqual(Array.from({ length: total }, (_, i) => i + 1));
      expect(second.texts.length).toBeGreaterThan(0);
    } finally {
      for (const socket of sockets) socket.ws.terminate();
      await Promise.all(nodes.map((node) => node.stop()));
    }
  }, 60_000);
}

/** A broker of the test process on the nodes' broker service. */
function brokerOf(env: Record<string, string>): Broker {
  return env.BROKER === 'redis'
    ? new RedisBroker({ redis: env.REDIS_URL! })
    : new NatsBroker({ servers: env.NATS_URL! });
}

/**
 * A process that holds no sockets publishes through the nodes' broker: its broadcasts and direct
 * messages reach the right clients on every node, once.
 */
function publishing(env: () => Record<string, string>, prefix: string) {
  it('a Publisher in another process reaches room members and one client on every node', async () => {
    const nodes = await Promise.all(
      [0, 1].map((i) =>
        NodeProcess.start(`${prefix}-pub-${i}`, { ...env(), SESSION_SECRET: 'x'.repeat(32) }),
      ),
    );
    const broker = brokerOf(env());
    const publisher = new Publisher({ broker });
    const clients = nodes.flatMap((node) => [
      new RawClient(node.port, ['red']),
      new RawClient(node.port, []),
    ]);
    try {
      await until(() => clients.every((c) => c.id !== ''), 10_000, 'every client to learn its id');
      await publisher.to('red').send('from a worker');
      const target = clients[3]!;
      await publisher.client(target.id).send('for you, from a worker');
      await until(
        () => clients.reduce((sum, c) => sum + c.received.length, 0) >= 3,
        10_000,
        'three deliveries',
      );
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect(clients.map((c) => c.received)).toEqual([
        ['from a worker'],
        [],
        ['from a worker'],
        ['for you, from a worker'],
      ]);
    } finally {
      for (const client of clients) client.ws.terminate();
      await broker.close();
      await Promise.all(nodes.map((node) => node.stop()));
    }
  }, 60_000);
}

/**
 * A node that hangs (SIGSTOP) does not make a cross-node query fail or wait forever: the others
 * answer in time and the hung one is named in `missing`; once it runs again (SIGCONT) it answers.
 */
function partialAnswers(env: () => Record<string, string>, prefix: string) {
  it('fetchClients answers partially and names a stopped node in missing', async () => {
    const nodes = await Promise.all(
      [0, 1, 2].map((i) =>
        NodeProcess.start(`${prefix}-q${i}`, {
          ...env(),
          SESSION_SECRET: 'x'.repeat(32),
          // Long enough that the hung node is still a member when it is asked.
          NODE_TIMEOUT_MS: '60000',
        }),
      ),
    );
    const clients = nodes.map((node) => new RawClient(node.port, ['quiz']));
    try {
      await until(() => clients.every((c) => c.id !== ''), 10_000, 'every client to learn its id');
      const everyone = clients.map((c) => [c.id, c.node]).sort();
      const ids = (answer: { clients: Array<{ id: string; nodeId: string }> }) =>
        answer.clients.map((c) => [c.id, c.nodeId]).sort();
      // Nodes learn of each other by heartbeat: ask until all three answer.
      await until(
        async () => (await nodes[0]!.fetchClients('quiz', 1000)).missing.length === 0,
        10_000,
        'a full answer',
      );
      expect(ids(await nodes[0]!.fetchClients('quiz', 1000))).toEqual(everyone);

      nodes[2]!.freeze();
      const partial = await nodes[0]!.fetchClients('quiz', 500);
      expect(partial.missing).toEqual([nodes[2]!.id]);
      expect(ids(partial)).toEqual(everyone.filter(([, node]) => node !== nodes[2]!.id));

      nodes[2]!.thaw();
      const whole = await nodes[0]!.fetchClients('quiz', 3000);
      expect(whole.missing).toEqual([]);
      expect(ids(whole)).toEqual(everyone);
    } finally {
      nodes[2]!.thaw();
      for (const client of clients) client.ws.terminate();
      await Promise.all(nodes.map((node) => node.stop()));
    }
  }, 60_000);
}

describeOnEachBroker('three node processes', (broker) => {
  multiProcess(broker.env, broker.name);
  publishing(broker.env, broker.name);
  partialAnswers(broker.env, broker.name);
});
