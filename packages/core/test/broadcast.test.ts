import {
  type Broker,
  MemoryBroker,
  type MemoryBus,
  Publisher,
  type TopicListener,
  type Unsubscribe,
} from '@wscale/core';
import { delay, until } from '@wscale/core/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { TestCluster } from './helpers/nodes.js';

const cluster = new TestCluster();
afterEach(() => cluster.closeAll());

/** A broker that counts what a node asks of it. */
class CountingBroker extends MemoryBroker {
  readonly subscribes = new Map<string, number>();
  readonly publishes = new Map<string, number>();
  active = new Map<string, number>();

  constructor(bus: MemoryBus) {
    super({ bus });
  }

  override async subscribe(topic: string, listener: TopicListener): Promise<Unsubscribe> {
    this.subscribes.set(topic, (this.subscribes.get(topic) ?? 0) + 1);
    this.active.set(topic, (this.active.get(topic) ?? 0) + 1);
    const unsubscribe = await super.subscribe(topic, listener);
    return async () => {
      this.active.set(topic, (this.active.get(topic) ?? 0) - 1);
      await unsubscribe();
    };
  }

  override publish(topic: string, payload: Uint8Array): Promise<void> {
    this.publishes.set(topic, (this.publishes.get(topic) ?? 0) + 1);
    return super.publish(topic, payload);
  }
}

/** A broker whose publishes fail, once told to: by rejecting, or by throwing at the call. */
class FailingBroker extends MemoryBroker {
  failing: 'reject' | 'throw' | undefined;

  override publish(topic: string, payload: Uint8Array): Promise<void> {
    if (this.failing === 'throw') throw new Error('publish thrown');
    if (this.failing === 'reject') return Promise.reject(new Error('publish rejected'));
    return super.publish(topic, payload);
  }
}

describe('broadcast across nodes', () => {
  it('reaches every member of a room on every node exactly once, and nobody else', async () => {
    const [a, b, c] = await cluster.start(3);
    const members = [];
    for (const server of [a!, b!, c!]) {
      for (let i = 0; i < 2; i++) members.push(await cluster.connect(server));
    }
    const outsiders = [await cluster.connect(a!), await cluster.connect(c!)];
    for (const member of members) await a!.client(member.id).join('news');
    await until(
      async () => (await a!.fetchClients('news')).clients.length === members.length,
      3000,
      'joins',
    );

    await b!.to('news').send('hello');
    await a!.to('news').send(Buffer.from([1, 2, 3]));

    for (const member of members) await member.waitFor(2);
    await delay(100);
    for (const member of members) {
      expect(member.messages).toHaveLength(2);
      expect(member.texts).toContain('hello');
      const binary = member.messages.find((m) => m.binary)!;
      expect([...(binary.data as Buffer)]).toEqual([1, 2, 3]);
    }
    for (const outsider of outsiders) expect(outsider.messages).toHaveLength(0);
  });

  it('skips the clients named in except, wherever they are', async () => {
    const [a, b] = await cluster.start(2);
    const onA = await cluster.connect(a!);
    const onB = await cluster.connect(b!);
    const other = await cluster.connect(b!);
    for (const client of [onA, onB, other]) await a!.client(client.id).join('room');
    await until(async () => (await a!.fetchClients('room')).clients.length === 3, 3000, 'joins');

    await a!.to('room').except(onA.id, onB.id).send('not for you');
    await other.waitFor(1);
    await delay(100);
    expect(other.texts).toEqual(['not for you']);
    expect(onA.messages).toHaveLength(0);
    expect(onB.messages).toHaveLength(0);
  });

  it('sends to nobody when to() is given no room (an empty list spread into it), from a node and a Publisher', async () => {
    const [a, b] = await cluster.start(2);
    const clients = [await cluster.connect(a!), await cluster.connect(b!)];
    const publisher = new Publisher({ broker: new MemoryBroker({ bus: cluster.bus }) });
    try {
      const rooms: string[] = []; // a user's rooms, and the user is in none
      await a!.to(...rooms).send('secret for the members of no room');
      await publisher
        .to(...rooms)
        .except(clients[0]!.id)
        .send('nor this');
      // Each sender's broadcasts arrive in order: what came before these came first.
      await a!.except(clients[0]!.id).send('everyone but the first');
      await publisher.except().send('everyone');
      await clients[0]!.waitFor(1);
      await clients[1]!.waitFor(2);
      expect(clients[0]!.texts).toEqual(['everyone']);
      expect(clients[1]!.texts.sort()).toEqual(['everyone', 'everyone but the first']);
    } finally {
      await publisher.close();
    }
  });

  it('sends once to a client in several of the rooms named', async () => {
    const [a, b] = await cluster.start(2);
    const both = await cluster.connect(b!);
    await b!.clients.get(both.id)!.join('x');
    await b!.clients.get(both.id)!.join('y');
    await a!.to('x', 'y').send('once');
    await both.waitFor(1);
    await delay(100);
    expect(both.texts).toEqual(['once']);
  });

  for (const failing of ['reject', 'throw'] as const) {
    it(`reaches the node's own members when the broker's publish fails (${failing}s), and says so`, async () => {
      let broker: FailingBroker | undefined;
      const [a] = await cluster.start(1, {
        brokerFor: (bus) => {
          broker = new FailingBroker({ bus });
          return broker;
        },
      });
      const member = await cluster.connect(a!);
      await a!.clients.get(member.id)!.join('x');
      broker!.failing = failing;
      await expect(a!.to('x').send('local anyway')).rejects.toThrow(`publish ${failing}`);
      await expect(a!.broadcast('everyone anyway')).rejects.toThrow(`publish ${failing}`);
      await member.waitFor(2);
      expect(member.texts).toEqual(['local anyway', 'everyone anyway']);
    });
  }

  it('broadcasts to everyone on every node', async () => {
    const [a, b] = await cluster.start(2);
    const clients = [await cluster.connect(a!), await cluster.connect(b!)];
    await b!.broadcast('all hands');
    for (const client of clients) await client.waitFor(1);
    await delay(100); // a copy that comes late is a duplicate too
    expect(clients.map((client) => client.texts)).toEqual([['all hands'], ['all hands']]);
  });

  it('sends directly to a client on another node', async () => {
    const [a, b] = await cluster.start(2);
    const target = await cluster.connect(b!);
    const bystander = await cluster.connect(b!);
    await a!.client(target.id).send('psst');
    await target.waitFor(1);
    await delay(100);
    expect(target.texts).toEqual(['psst']);
    expect(bystander.messages).toHaveLength(0);
  });

  it('stops delivering after leave and after the client closed', async () => {
    const [a, b] = await cluster.start(2);
    const leaver = await cluster.connect(b!);
    const stayer = await cluster.connect(b!);
    const server = b!;
    await server.clients.get(leaver.id)!.join('room');
    await server.clients.get(stayer.id)!.join('room');
    await server.clients.get(leaver.id)!.leave('room');
    await a!.to('room').send('one');
    await stayer.waitFor(1);

    stayer.ws.close();
    await stayer.closed;
    await until(() => server.clients.size === 1, 2000, 'server to drop the closed client');
    expect((await a!.fetchClients('room')).clients).toEqual([]);
    await a!.to('room').send('two');
    await delay(100);
    expect(leaver.messages).toHaveLength(0);
    expect(stayer.texts).toEqual(['one']);
  });

  it('frames every payload size right, text and binary (1-, 2- and 8-byte lengths)', async () => {
    const [a, b] = await cluster.start(2);
    const local = await cluster.connect(a!);
    const remote = await cluster.connect(b!);
    const sizes = [0, 1, 125, 126, 127, 65_535, 65_536, 70_000];
    const sent: Array<string | Buffer> = [];
    for (const size of sizes) {
      sent.push('é'.repeat(Math.floor(size / 2)) + 'x'.repeat(size % 2));
      sent.push(Buffer.alloc(size, size % 251));
    }
    for (const payload of sent) await a!.broadcast(payload);
    for (const client of [local, remote]) await client.waitFor(sent.length, 5000);
    await delay(100);
    for (const client of [local, remote]) {
      expect(client.messages.map((m) => m.data)).toEqual(sent);
      expect(client.messages.map((m) => m.binary)).toEqual(sent.map((p) => typeof p !== 'string'));
    }
  });

  it('holds one broker subscription per room per node and publishes once per broadcast', async () => {
    let broker: CountingBroker | undefined;
    const [a] = await cluster.start(1, {
      brokerFor: (bus) => {
        broker = new CountingBroker(bus);
        return broker as Broker;
      },
    });
    const [b] = await cluster.start(1);
    const clients = await Promise.all(Array.from({ length: 20 }, () => cluster.connect(a!)));
    await Promise.all(clients.map((client) => a!.clients.get(client.id)!.join('busy')));
    expect(broker!.subscribes.get('wscale:room:busy')).toBe(1);

    await b!.to('busy').send('fan-out');
    await a!.to('busy').send('local');
    for (const client of clients) await client.waitFor(2);
    expect(broker!.publishes.get('wscale:room:busy')).toBe(1);

    await Promise.all(clients.map((client) => a!.clients.get(client.id)!.leave('busy')));
    expect(broker!.active.get('wscale:room:busy')).toBe(0);
  });
});
