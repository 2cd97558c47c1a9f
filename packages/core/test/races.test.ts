import {
  CloseCode,
  MemoryBroker,
  type MemoryBrokerOptions,
  MemoryHistory,
  MemoryStateStore,
  type ScaledWebSocketServer,
  type StateStore,
  StateStoreError,
  type Version,
} from '@wscale/core';
import { delay, until } from '@wscale/core/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { TestCluster } from './helpers/nodes.js';
import { json, RawSocket } from './helpers/raw-socket.js';
import { recordedClose, V1Peer } from './helpers/v1-client.js';

const cluster = new TestCluster();
const closers: Array<() => Promise<void>> = [];
afterEach(async () => {
  RawSocket.destroyAll();
  await cluster.closeAll();
  for (const close of closers.splice(0)) await close();
});

const secret = 'a-test-secret-of-enough-bytes';

/** A memory broker whose next subscribe of a topic can be made to fail. */
class FlakyBroker extends MemoryBroker {
  readonly failNext = new Set<string>();

  constructor(options: MemoryBrokerOptions) {
    super(options);
  }

  protected override async subscribeTopic(topic: string): Promise<void> {
    if (this.failNext.delete(topic)) throw new Error(`subscribe to ${topic} refused`);
    await super.subscribeTopic(topic);
  }
}

/** A memory state store that can be made to fail every call (a store that is down), or be slow. */
class SwitchableStore implements StateStore {
  failing = false;
  delayMs = 0;
  /** Calls never answer, as a store behind a network that drops everything. */
  hanging = false;
  readonly #inner = new MemoryStateStore({ ttlMs: 60_000 });

  get ttlMs(): number {
    return this.#inner.ttlMs;
  }

  get(key: string) {
    return this.#check().then(() => this.#inner.get(key));
  }

  set(key: string, value: string, options?: { ifVersion?: Version | null }) {
    return this.#check().then(() => this.#inner.set(key, value, options));
  }

  delete(key: string) {
    return this.#check().then(() => this.#inner.delete(key));
  }

  close() {
    return this.#inner.close();
  }

  async #check(): Promise<void> {
    if (this.hanging) await new Promise(() => undefined);
    if (this.delayMs > 0) await delay(this.delayMs);
    if (this.failing) throw new StateStoreError('the store is down');
  }
}

async function node(
  options: Parameters<TestCluster['start']>[1] = {},
): Promise<ScaledWebSocketServer> {
  const [server] = await cluster.start(1, options);
  return server!;
}

/** Waits until the stored session of `id` mentions every one of `words`. */
function saved(store: StateStore, id: string, ...words: string[]): Promise<void> {
  return until(
    async () => {
      const record = (await store.get(`wscale:session:${id}`))?.value ?? '';
      return words.every((word) => record.includes(word));
    },
    2000,
    `the session to be saved with ${words.join(', ')}`,
  );
}

/** A broker that shows the topics it listens to. */
class WatchedBroker extends MemoryBroker {
  get topics(): string[] {
    return this.subscribedTopics;
  }
}

describe('membership after the client is gone', () => {
  it('undoes a join whose authorizeJoin finishes after the connection reset', async () => {
    let asked = 0;
    let allow!: (allowed: boolean) => void;
    const decision = new Promise<boolean>((resolve) => {
      allow = resolve;
    });
    let broker!: WatchedBroker;
    const server = await node({
      brokerFor: (bus) => {
        broker = new WatchedBroker({ bus });
        return broker;
      },
      authorizeJoin: async () => {
        asked++;
        return decision;
      },
    });
    const { peer, welcome } = await V1Peer.connect(server);
    peer.send({ t: 'join', id: 1, r: 'late' });
    await until(() => asked === 1, 2000, 'authorizeJoin to be asked');
    peer.ws.terminate();
    await until(() => !server.clients.has(welcome.client), 2000, 'the client to be gone');
    allow(true);
    // Nothing to wait for when it works: give a wrong join time to land.
    await delay(100);
    expect((await server.fetchRooms()).rooms).toEqual([]);
    expect(broker.topics).not.toContain('wscale:room:late');
  });

  it('answers a leave sent while its join waits for authorizeJoin after that join: the client ends outside', async () => {
    let asked = 0;
    let allow!: (allowed: boolean) => void;
    const decision = new Promise<boolean>((resolve) => {
      allow = resolve;
    });
    const server = await node({
      authorizeJoin: async () => {
        asked++;
        return decision;
      },
    });
    const { peer, welcome } = await V1Peer.connect(server);
    // A room toggled in a user interface: a join, and its leave before the join was answered.
    peer.send({ t: 'join', id: 1, r: 'toggled' });
    peer.send({ t: 'leave', id: 2, r: 'toggled' });
    await until(() => asked === 1, 2000, 'authorizeJoin to be asked');
    allow(true);
    await until(() => peer.all('ack').length === 2, 2000, 'both answers');
    expect(peer.all('ack').map((ack) => ack.id)).toEqual([1, 2]);
    expect(peer.all('left').map((left) => left.r)).toEqual(['toggled']);
    expect(server.clients.get(welcome.client)!.inRoom('toggled')).toBe(false);
    expect((await server.fetchRooms()).rooms).toEqual([]);
  });
  it("keeps an application's join and leave of a room in the order called: the client ends where the last one puts it", async () => {
    // A subscribe that takes a while (a broker across a network): the leave comes meanwhile.
    let slow = true;
    const server = await node({
      brokerFor: (bus) =>
        new (class extends MemoryBroker {
          protected override async subscribeTopic(topic: string): Promise<void> {
            if (slow) await delay(50);
            await super.subscribeTopic(topic);
          }
        })({ bus }),
      authorizeJoin: () => true,
    });
    const { peer, welcome } = await V1Peer.connect(server);
    const client = server.clients.get(welcome.client)!;
    const calls = [client.join('toggled'), client.leave('toggled')];
    await Promise.all(calls);
    expect(client.inRoom('toggled')).toBe(false);
    expect((await server.fetchRooms()).rooms).toEqual([]);
    // The client's own join and the application's leave of one room are one order too.
    peer.send({ t: 'join', id: 1, r: 'shared' });
    await until(
      () => client.inRoom('shared') || peer.all('ack').length > 0,
      2000,
      'the join to start',
    );
    await client.leave('shared');
    await peer.next('ack');
    slow = false;
    expect(client.inRoom('shared')).toBe(false);
    expect((await server.fetchRooms()).rooms).toEqual([]);
    // What the client was told, in order, ends where the server has it: outside both rooms.
    const told = peer.received.filter(
      ({ message }) => message.t === 'joined' || message.t === 'left',
    );
    expect(told.map(({ message }) => `${message.t} ${'r' in message ? message.r : ''}`)).toEqual([
      'joined toggled',
      'left toggled',
      'joined shared',
      'left shared',
    ]);
  });
});

describe('resume', () => {
  it('asks authorizeJoin again for rooms the client joined, and keeps rooms the server joined', async () => {
    const stateStore = new MemoryStateStore({ ttlMs: 60_000 });
    closers.push(() => stateStore.close());
    const allowed = new Set(['mine']);
    const server = await node({
      stateStore,
      sessionSecret: secret,
      authorizeJoin: (_client, room) => allowed.has(room),
    });
    server.on('connection', (client) => void client.join('given'));
    const { peer, welcome } = await V1Peer.connect(server);
    peer.send({ t: 'join', id: 1, r: 'mine' });
    expect(await peer.next('ack')).not.toHaveProperty('error');
    await saved(stateStore, welcome.client, 'mine', 'given');
    peer.ws.terminate();
    await until(() => !server.clients.has(welcome.client), 2000, 'the client to be gone');

    allowed.delete('mine');
    const back = await V1Peer.connect(server, { session: welcome.session });
    expect(back.welcome.resumed).toBe(true);
    expect(Object.keys(back.welcome.rooms)).toEqual(['given']);
    expect(await back.peer.next('left')).toMatchObject({ r: 'mine' });
    const resumed = server.clients.get(welcome.client)!;
    expect([...resumed.rooms]).toEqual(['given']);
    // The application is told too, as the `connection` handler of the resume sees it.
    expect(resumed.recovery?.refused).toEqual(['mine']);
  });

  it('keeps a session resumable when the state store fails during its hello', async () => {
    const store = new SwitchableStore();
    closers.push(() => store.close());
    const server = await node({ stateStore: store, sessionSecret: secret });
    server.on('connection', (client) => void client.join('kept'));
    const first = await V1Peer.connect(server);
    await saved(store, first.welcome.client, 'kept');
    first.peer.ws.terminate();
    await until(() => server.clients.size === 0, 2000, 'the client to be gone');

    store.failing = true;
    const during = await V1Peer.connect(server, { session: first.welcome.session });
    expect(during.welcome).toMatchObject({ resumed: false, reason: 'unavailable' });
    during.peer.ws.terminate();
    await until(() => server.clients.size === 0, 2000, 'the client to be gone');

    store.failing = false;
    // As @wscale/client does: present the token of the latest welcome.
    const after = await V1Peer.connect(server, { session: during.welcome.session });
    expect(after.welcome.resumed).toBe(true);
    expect(Object.keys(after.welcome.rooms)).toEqual(['kept']);
  });

  it('refuses another user’s token while the state store is down: its holder keeps the session and its messages', async () => {
    const store = new SwitchableStore();
    closers.push(() => store.close());
    const server = await node({
      stateStore: store,
      sessionSecret: secret,
      authenticate: (request) => ({ id: request.headers['x-user'] }),
    });
    const alice = await V1Peer.connect(server, {}, { 'x-user': 'alice' });
    let aliceClosed = false;
    void alice.peer.closed.then(() => {
      aliceClosed = true;
    });
    store.failing = true;
    const stolen = { session: alice.welcome.session };
    const mallory = await V1Peer.connect(server, stolen, { 'x-user': 'mallory' });
    expect(mallory.welcome).toMatchObject({ resumed: false, reason: 'forbidden' });
    expect(mallory.welcome.client).not.toBe(alice.welcome.client);
    expect(mallory.welcome.session).not.toBe(alice.welcome.session);
    // Alice is not closed, and what is sent to her reaches her, not the one with her token.
    await server.client(alice.welcome.client).send('for alice only');
    expect(await alice.peer.next('msg')).toMatchObject({ d: 'for alice only' });
    await server.client(mallory.welcome.client).send('for mallory');
    expect(await mallory.peer.next('msg')).toMatchObject({ d: 'for mallory' });
    expect(mallory.peer.all('msg')).toHaveLength(1);
    expect(aliceClosed).toBe(false);
  });

  it('acknowledges a join only once the session holds the room', async () => {
    const store = new SwitchableStore();
    closers.push(() => store.close());
    const server = await node({
      stateStore: store,
      sessionSecret: secret,
      authorizeJoin: () => true,
    });
    const { peer, welcome } = await V1Peer.connect(server);
    store.delayMs = 100;
    peer.send({ t: 'join', id: 1, r: 'durable' });
    expect(await peer.next('ack')).not.toHaveProperty('error');
    store.delayMs = 0;
    const record = await store.get(`wscale:session:${welcome.client}`);
    expect(JSON.parse(record!.value).rooms).toEqual(['durable']);
  });

  it('closes a hello with 1013 when its session cannot be opened within helloTimeoutMs', async () => {
    const store = new SwitchableStore();
    closers.push(() => store.close());
    const server = await node({ stateStore: store, sessionSecret: secret, helloTimeoutMs: 300 });
    const first = await V1Peer.connect(server);
    first.peer.ws.terminate();
    await until(() => server.clients.size === 0, 2000, 'the client to be gone');
    store.hanging = true;
    const peer = new V1Peer(server);
    await peer.opened;
    peer.send({ t: 'hello', session: first.welcome.session });
    const { code } = await peer.closed;
    expect(code).toBe(CloseCode.TryAgainLater);
    expect(server.clients.size).toBe(0);
  });

  it('welcomes a hello that came in time though the node was too busy to read it in time', async () => {
    const server = await node({ helloTimeoutMs: 100 });
    const peer = new V1Peer(server);
    await peer.opened;
    peer.send({ t: 'hello' });
    // The node's event loop is held past helloTimeoutMs (a storm of resumes, a long GC) while
    // the hello waits in its socket: its timer fires in the same turn as the hello is readable.
    const until = performance.now() + 300;
    while (performance.now() < until) {
      // busy
    }
    const welcome = await Promise.race([
      peer.next('welcome'),
      peer.closed.then(({ code, reason }) => `closed ${code} ${reason}`),
    ]);
    expect(welcome).toMatchObject({ t: 'welcome', resumed: false });
  });

  it('resumes a hello read late, and hands on the frame pipelined behind it once', async () => {
    const stateStore = new MemoryStateStore();
    closers.push(() => stateStore.close());
    const server = await node({
      helloTimeoutMs: 100,
      stateStore,
      sessionSecret: 'a-test-secret-of-enough-bytes',
    });
    const heard: string[] = [];
    server.on('connection', (client) => client.on('message', (text) => heard.push(String(text))));
    const first = await V1Peer.connect(server);
    first.peer.ws.close();
    await recordedClose(stateStore, first.welcome.client);

    const peer = new V1Peer(server);
    await peer.opened;
    // The resuming hello and a numbered message behind it, written together.
    peer.send({ t: 'hello', session: first.welcome.session });
    peer.send({ t: 'msg', d: 'behind the hello', s: 1 });
    const until = performance.now() + 300;
    while (performance.now() < until) {
      // busy: the node reads both only after its hello bound passed
    }
    const welcome = await Promise.race([
      peer.next('welcome'),
      peer.closed.then(({ code, reason }) => `closed ${code} ${reason}`),
    ]);
    expect(welcome).toMatchObject({ t: 'welcome', resumed: true, client: first.welcome.client });
    expect(await peer.next('rcv')).toMatchObject({ s: 1 });
    expect(heard).toEqual(['behind the hello']);
  });

  it('closes a connection that says no hello within helloTimeoutMs with 1013 (a client retries)', async () => {
    const server = await node({ helloTimeoutMs: 100 });
    const peer = new V1Peer(server);
    await peer.opened;
    const { code, reason } = await peer.closed;
    // Not 1008, after which a client gives up for good: the node cannot tell a silent client from
    // a hello it has not read yet.
    expect({ code, reason }).toEqual({ code: CloseCode.TryAgainLater, reason: 'hello expected' });
  });

  it('welcomes a resume while the broker is down', async () => {
    const server = await node();
    const { peer, welcome } = await V1Peer.connect(server);
    peer.ws.terminate();
    await until(() => server.clients.size === 0, 2000, 'the client to be gone');
    cluster.bus.disconnect();
    try {
      const back = await V1Peer.connect(server, { session: welcome.session });
      expect(back.welcome.resumed).toBe(true);
    } finally {
      cluster.bus.reconnect();
    }
  });
});

describe('broker subscriptions', () => {
  it('subscribes a history room again after its first subscribe failed: it never goes deaf', async () => {
    const history = new MemoryHistory();
    closers.push(() => history.close());
    const brokers: FlakyBroker[] = [];
    const [a, b] = await cluster.start(2, {
      brokerFor: (bus) => {
        const broker = new FlakyBroker({ bus });
        brokers.push(broker);
        return broker;
      },
      history: [{ rooms: '*', store: history }],
      authorizeJoin: () => true,
    });
    brokers[1]!.failNext.add('wscale:room:h');
    const { peer } = await V1Peer.connect(b!);
    let id = 0;
    do {
      peer.send({ t: 'join', id: ++id, r: 'h' });
    } while ((await peer.next('ack')).error !== undefined && id < 3);
    await a!.to('h').send('from a');
    await until(() => peer.texts('h').includes('from a'), 2000, 'the message from node a');
  });

  it('tells a client nothing but the refusal of a join whose subscription failed', async () => {
    const brokers: FlakyBroker[] = [];
    const [server] = await cluster.start(1, {
      brokerFor: (bus) => {
        const broker = new FlakyBroker({ bus });
        brokers.push(broker);
        return broker;
      },
      authorizeJoin: () => true,
    });
    brokers[0]!.failNext.add('wscale:room:plain');
    const { peer, welcome } = await V1Peer.connect(server!);
    peer.send({ t: 'join', id: 1, r: 'plain' });
    expect((await peer.next('ack')).error).toMatchObject({ code: 'UNAVAILABLE' });
    // The refusal is the answer: no `joined` before it that the client would keep the room by.
    expect(peer.all('joined')).toEqual([]);
    expect(server!.clients.get(welcome.client)!.inRoom('plain')).toBe(false);
    // Asked again, it subscribes and is told.
    peer.send({ t: 'join', id: 2, r: 'plain' });
    expect((await peer.next('ack')).error).toBeUndefined();
    expect(peer.all('joined').map((joined) => joined.r)).toEqual(['plain']);
  });
});

describe('gaps a client is told about', () => {
  for (const [name, options, volatile] of [
    ["slowConsumer: 'drop'", { slowConsumer: 'drop' }, false],
    ['a volatile message', {}, true],
  ] as const) {
    it(`sends resync before the next message of a history room after dropping ${name}`, async () => {
      const history = new MemoryHistory({ maxEntries: 5000 });
      closers.push(() => history.close());
      const server = await node({
        ...options,
        maxBufferedBytes: 64 * 1024,
        history: [{ rooms: '*', store: history }],
        authorizeJoin: () => true,
      });
      const port = (server.address() as { port: number }).port;
      const raw = await RawSocket.open(port);
      raw.write(Buffer.concat([json({ t: 'hello' }), json({ t: 'join', id: 1, r: 'h' })]));
      await raw.next('ack', 1);
      const client = [...server.clients.values()][0]!;
      raw.socket.pause();
      const big = 'x'.repeat(16 * 1024);
      for (let i = 0; i < 4000 && client.dropped === 0; i++) {
        await server.to('h').send(big, { volatile });
      }
      expect(client.dropped).toBeGreaterThan(0);
      raw.socket.resume();
      await until(() => client.bufferedAmount === 0, 5000, 'the client to read everything');
      await server.to('h').send('after');
      await until(() => raw.messages().some((m) => m.d === 'after'), 5000, 'the message after');
      const messages = raw.messages();
      const index = messages.findIndex((m) => m.d === 'after');
      expect(messages[index - 1]).toEqual({
        t: 'resync',
        r: 'h',
        o: (messages[index]!.o as number) - 1,
        e: messages[index]!.e,
      });
      expect(client.open).toBe(true);
    });
  }
});
