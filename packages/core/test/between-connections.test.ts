/**
 * `wss.client(id).join()` / `leave()` / `close()` for a `wscale.v1` client between two
 * connections (its connection dropped, it has not resumed yet): the change goes into the
 * session's record, and the resume that brings the client back, on any node, gives it the rooms
 * as they were changed, or is closed as the client would have been.
 */
import {
  type Client,
  MemoryBroker,
  MemoryHistory,
  MemoryStateStore,
  Publisher,
  type ScaledWebSocketServer,
  StateStoreError,
} from '@wscale/core';
import { delay, until } from '@wscale/core/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { FreezableBroker } from './helpers/freezable-broker.js';
import { TestCluster } from './helpers/nodes.js';
import { V1Peer } from './helpers/v1-client.js';

const cluster = new TestCluster();
const stores: Array<{ close(): Promise<void> }> = [];
afterEach(async () => {
  await cluster.closeAll();
  for (const store of stores.splice(0)) await store.close();
});

/** Nodes sharing a session store (answering in `storeMs`), and a history for rooms `chat*`. */
async function startNodes(count: number, storeMs = 0) {
  const memory = new MemoryStateStore({ ttlMs: 60_000 });
  const store = storeMs === 0 ? memory : slowly(memory, storeMs);
  const history = new MemoryHistory({ maxEntries: 100 });
  stores.push(memory, history);
  // A publisher in another process, as an HTTP handler or a worker has it.
  const publisher = new Publisher({
    broker: new MemoryBroker({ bus: cluster.bus }),
    history: [{ rooms: 'chat*', store: history }],
    stateStore: store,
  });
  stores.push(publisher);
  const nodes = await cluster.start(count, {
    stateStore: store,
    sessionSecret: 'a-test-secret-of-enough-bytes',
    history: [{ rooms: 'chat*', store: history }],
  });
  for (const node of nodes) {
    node.on('connection', (client) => {
      if (!client.resumed) void client.join('lobby');
    });
  }
  return { nodes, store, publisher, history };
}

/** Nodes a and b of {@link startNodes}, and a node c whose broker can be frozen (c as if killed). */
async function withFreezable() {
  const {
    nodes: [a, b],
    store,
  } = await startNodes(2);
  let broker: FreezableBroker | undefined;
  const [c] = await cluster.start(1, {
    stateStore: store,
    sessionSecret: 'a-test-secret-of-enough-bytes',
    brokerFor: (bus) => (broker = new FreezableBroker({ bus })),
  });
  return { a: a!, b: b!, c: c!, store, broker: broker! };
}

/** A memory store that answers every call after `ms`, as one across a network under load. */
function slowly(store: MemoryStateStore, ms: number): MemoryStateStore {
  return new Proxy(store, {
    get: (target, key) => {
      const value = Reflect.get(target, key, target);
      if (typeof value !== 'function' || key === 'close') return value;
      return async (...args: unknown[]) => {
        await delay(ms);
        return value.apply(target, args);
      };
    },
  });
}

/** Connects a session to `node`, then drops its connection: the node records the close. */
async function dropped(node: ScaledWebSocketServer, session?: string) {
  const { peer, welcome } = await V1Peer.connect(node, session === undefined ? {} : { session });
  if (session === undefined) await peer.next('joined');
  peer.ws.terminate();
  await until(() => !node.clients.has(welcome.client), 2000, 'the node to see the drop');
  return welcome;
}

/**
 * Makes the session's record say a live connection on `node` holds it, as a node that was killed
 * leaves it.
 */
async function heldBy(store: MemoryStateStore, id: string, node: string): Promise<void> {
  const key = `wscale:session:${id}`;
  const record = JSON.parse((await store.get(key))!.value);
  await store.set(key, JSON.stringify({ ...record, live: true, node }));
}

/** The rooms a resume on `node` gives back, as the welcome and the server's client say them. */
async function resumedRooms(node: ScaledWebSocketServer, session: string, id: string) {
  const { peer, welcome } = await V1Peer.connect(node, { session });
  expect(welcome).toMatchObject({ resumed: true, client: id });
  const client = node.clients.get(id)!;
  return { welcome: Object.keys(welcome.rooms).sort(), server: [...client.rooms].sort(), peer };
}

/** Resumes the session on `node`: it must be welcomed, then closed with `code` at once. */
async function closedOnResume(node: ScaledWebSocketServer, session: string, code: number) {
  const next = await V1Peer.connect(node, { session });
  expect(next.welcome.resumed).toBe(true);
  expect(await closeOf(next.peer)).toMatchObject({ code });
}

/** How a connection closed, within two seconds. */
async function closeOf(peer: V1Peer): Promise<{ code: number; reason: string }> {
  let close: { code: number; reason: string } | undefined;
  void peer.closed.then((closed) => {
    close = closed;
  });
  await until(() => close !== undefined, 2000, 'the close');
  return close!;
}

describe('joins, leaves and closes for a session between connections', () => {
  it('are in its rooms when it resumes on another node, sent from a node it never was on', async () => {
    const {
      nodes: [a, b, c],
    } = await startNodes(3);
    const welcome = await dropped(a!);
    await c!.client(welcome.client).join('news');
    await c!.client(welcome.client).leave('lobby');
    const rooms = await resumedRooms(b!, welcome.session, welcome.client);
    expect(rooms.welcome).toEqual(['news']);
    expect(rooms.server).toEqual(['news']);
    await c!.to('news').send('to news');
    await until(() => rooms.peer.texts('news').length === 1, 2000, 'a message to the room');
  });

  it('replay what a room with history got after the join, and nothing from before it', async () => {
    const {
      nodes: [a, b, c],
    } = await startNodes(3);
    const welcome = await dropped(a!);
    await c!.to('chat').send('before the join');
    await c!.client(welcome.client).join('chat');
    await c!.to('chat').send('after the join 1');
    await c!.to('chat').send('after the join 2');
    const rooms = await resumedRooms(b!, welcome.session, welcome.client);
    expect(rooms.server).toEqual(['chat', 'lobby']);
    // Its replay starts where the room was at the join: after the message before it.
    const chat = rooms.peer.received[0]!.message;
    expect(chat).toMatchObject({ t: 'welcome', rooms: { chat: { recovered: true, o: 1 } } });
    await until(() => rooms.peer.texts('chat').length >= 2, 2000, 'the replay');
    expect(rooms.peer.texts('chat')).toEqual(['after the join 1', 'after the join 2']);
    expect(b!.clients.get(welcome.client)!.recovery?.rooms.chat).toMatchObject({
      recovered: true,
    });
  });

  it('replay nothing twice when the client got past the join on a connection that could not record it', async () => {
    const {
      nodes: [a, b],
      store,
    } = await startNodes(2);
    const welcome = await dropped(a!);
    await b!.client(welcome.client).join('chat');
    const key = `wscale:session:${welcome.client}`;
    const { at } = JSON.parse((await store.get(key))!.value);
    await b!.to('chat').send('m1');
    const first = await V1Peer.connect(b!, { session: welcome.session });
    await b!.to('chat').send('m2');
    await until(() => first.peer.texts('chat').length === 2, 2000, 'm1 and m2');
    const last = first.peer.all('msg').at(-1)!;
    first.peer.ws.terminate();
    await until(() => !b!.clients.has(welcome.client), 2000, 'the drop');
    // As if that connection's node had died before it recorded anything: the record keeps `at`.
    const record = JSON.parse((await store.get(key))!.value);
    await store.set(key, JSON.stringify({ ...record, at, live: true, node: 'node-killed' }));
    await b!.to('chat').send('m3');
    const second = await V1Peer.connect(a!, {
      session: welcome.session,
      rooms: { chat: { o: last.o!, e: last.e! } },
    });
    await until(() => second.peer.texts('chat').length >= 1, 2000, 'the replay');
    await b!.to('chat').send('m4');
    await until(() => second.peer.texts('chat').length >= 2, 2000, 'a live message');
    expect(second.peer.texts('chat')).toEqual(['m3', 'm4']);
  });

  it('replay only what a room got after the last join, when it left and joined again while away', async () => {
    const {
      nodes: [a, b],
    } = await startNodes(2);
    const { peer, welcome } = await V1Peer.connect(a!);
    await a!.client(welcome.client).join('chat');
    await a!.to('chat').send('while in');
    await until(() => peer.texts('chat').length === 1, 2000, 'the first message');
    const seen = peer.all('msg').at(-1)!;
    peer.ws.terminate();
    await until(() => !a!.clients.has(welcome.client), 2000, 'the drop');
    await b!.client(welcome.client).leave('chat');
    await b!.to('chat').send('while out');
    await b!.client(welcome.client).join('chat');
    await b!.to('chat').send('back in');
    const resumed = await V1Peer.connect(b!, {
      session: welcome.session,
      rooms: { chat: { o: seen.o!, e: seen.e! } },
    });
    expect(resumed.welcome.rooms.chat).toMatchObject({ recovered: true });
    await until(() => resumed.peer.texts('chat').length >= 1, 2000, 'the replay');
    await b!.to('chat').send('live');
    await until(() => resumed.peer.texts('chat').length >= 2, 2000, 'a live message');
    expect(resumed.peer.texts('chat')).toEqual(['back in', 'live']);
  });

  // The leaves come from the `connection` handler of the resume, as `wss.client(id)` calls or the
  // connection's own: either way after the joins the node made before, still waiting for the store.
  for (const [by, leave] of [
    [
      'wss.client(id)',
      (node: ScaledWebSocketServer, client: Client, room: string) =>
        node.client(client.id).leave(room),
    ],
    [
      'the connection itself',
      (_node: ScaledWebSocketServer, client: Client, room: string) => client.leave(room),
    ],
  ] as const) {
    it(`apply one node's calls in order when the session resumes on that node while they wait for the store (leaves by ${by})`, async () => {
      const {
        nodes: [a, b],
      } = await startNodes(2, 20);
      const welcome = await dropped(a!);
      const rooms = Array.from({ length: 10 }, (_, i) => `q${i}`);
      const calls: Promise<void>[] = [];
      b!.on('connection', (client) => {
        if (client.id !== welcome.client) return;
        for (const room of rooms) calls.push(leave(b!, client, room));
      });
      for (const room of rooms) calls.push(b!.client(welcome.client).join(room));
      const resumed = await V1Peer.connect(b!, { session: welcome.session });
      await until(() => calls.length === 20, 5000, 'the leaves');
      await Promise.all(calls);
      expect(resumed.welcome.resumed).toBe(true);
      expect([...b!.clients.get(welcome.client)!.rooms].sort()).toEqual(['lobby']);
    });
  }

  /**
   * A session dropped from node a and closed by node b while away (the store answers in
   * `storeMs`), and a resume on b that has just said its hello.
   */
  async function closedWhileAway(storeMs: number) {
    const {
      nodes: [a, b],
      store,
    } = await startNodes(2, storeMs);
    const welcome = await dropped(a!);
    await b!.client(welcome.client).close(4000, 'bye');
    const resuming = new V1Peer(b!);
    await resuming.opened;
    resuming.send({ t: 'hello', session: welcome.session });
    return { a: a!, b: b!, store, welcome, resuming };
  }

  /** Whether the session's record is closed and has the close made while away, to make again. */
  async function closeKept(store: MemoryStateStore, id: string): Promise<boolean> {
    const record = JSON.parse((await store.get(`wscale:session:${id}`))!.value);
    return record.live === false && record.close?.[0] === 4000;
  }

  /** A session in `count` history rooms, dropped, whose resumes on `node` rejoin them slowly. */
  async function slowResume(count: number) {
    const started = await startNodes(2);
    const [a] = started.nodes;
    const { peer, welcome } = await V1Peer.connect(a!);
    await peer.next('joined');
    const rooms = Array.from({ length: count }, (_, i) => `chat-${i}`);
    for (const room of rooms) await a!.client(welcome.client).join(room);
    peer.ws.terminate();
    await until(() => !a!.clients.has(welcome.client), 2000, 'the drop');
    const { history } = started;
    const [read, position] = [history.read.bind(history), history.position.bind(history)];
    history.read = async (...args) => {
      await delay(10);
      return read(...args);
    };
    history.position = async (...args) => {
      await delay(10);
      return position(...args);
    };
    /** A resume on `node` that is still rejoining its rooms (registered, not yet welcomed). */
    const rejoining = async (node: ScaledWebSocketServer) => {
      const resuming = new V1Peer(node);
      await resuming.opened;
      resuming.send({ t: 'hello', session: welcome.session });
      await until(() => node.clients.has(welcome.client), 2000, 'a resume to start');
      return resuming;
    };
    return { ...started, welcome, rooms: ['lobby', ...rooms], rejoining };
  }

  it('are all kept when a resume closes, or is taken over, before it rejoined them all', async () => {
    const {
      nodes: [a, b],
      store,
      welcome,
      rooms,
      rejoining,
    } = await slowResume(12);
    const all = [...rooms].sort();
    const dropped = await rejoining(b!);
    dropped.ws.terminate();
    await until(() => !b!.clients.has(welcome.client), 2000, 'the resume to end');
    // And one taken over by another resume while it rejoins.
    const first = await rejoining(b!);
    const second = await V1Peer.connect(a!, { session: welcome.session });
    expect((await closeOf(first)).code).toBe(4409);
    expect(Object.keys(second.welcome.rooms).sort()).toEqual(all);
    second.peer.ws.terminate();
    await until(() => !a!.clients.has(welcome.client), 2000, 'the drop');
    const record = JSON.parse((await store.get(`wscale:session:${welcome.client}`))!.value);
    expect([...record.rooms].sort()).toEqual(all);
  });

  it("made on the node taking the session over, before the resume's welcome, are kept when that resume ends before it", async () => {
    const {
      nodes: [a, b],
      welcome,
      rooms,
      rejoining,
    } = await slowResume(12);
    const resuming = await rejoining(b!);
    await b!.client(welcome.client).join('news');
    await b!.client(welcome.client).leave('chat-3');
    // Its connection ends (as the node sees it) before the welcome.
    b!.clients.get(welcome.client)!.terminate();
    await resuming.closed;
    await until(() => !b!.clients.has(welcome.client), 2000, 'the resume to end');
    const back = await resumedRooms(a!, welcome.session, welcome.client);
    const expected = [...rooms.filter((room) => room !== 'chat-3'), 'news'].sort();
    expect(back.welcome).toEqual(expected);
    expect(back.server).toEqual(expected);
  });

  it("a close made on the node taking the session over, before the resume's welcome, closes it right after the welcome, or the next one if it ended before", async () => {
    const {
      nodes: [a, b],
      welcome,
      rejoining,
    } = await slowResume(12);
    // The resume goes on: welcomed, then closed.
    const going = await rejoining(b!);
    await b!.client(welcome.client).close(4000, 'bye');
    expect(await closeOf(going)).toMatchObject({ code: 4000 });
    expect(going.all('welcome')).toHaveLength(1);
    // The resume ends before its welcome: the next one is closed.
    const again = await V1Peer.connect(a!, { session: welcome.session });
    again.peer.ws.terminate();
    await until(() => !a!.clients.has(welcome.client), 2000, 'the drop');
    const ending = await rejoining(b!);
    await b!.client(welcome.client).close(4001, 'bye again');
    b!.clients.get(welcome.client)!.terminate();
    await ending.closed;
    await until(() => !b!.clients.has(welcome.client), 2000, 'the resume to end');
    await closedOnResume(a!, welcome.session, 4001);
  });

  it('a close made on the node taking the session over is kept when that node drains before the welcome', async () => {
    const {
      nodes: [a, b],
      welcome,
      rejoining,
    } = await slowResume(12);
    await rejoining(b!);
    await b!.client(welcome.client).close(4000, 'bye');
    await b!.close();
    await closedOnResume(a!, welcome.session, 4000);
  });

  it('a close made while away is made again when the resume it closed did not answer it (gone untold)', async () => {
    const { a, b, store, welcome, resuming: gone } = await closedWhileAway(30);
    // Gone right after its hello, as its node cannot tell: it reads nothing more, and never
    // answers the close (the node ends it after closeTimeoutMs).
    (gone.ws as unknown as { _socket: { pause(): void } })._socket.pause();
    await until(() => b!.clients.has(welcome.client), 3000, 'the resume');
    await until(() => !b!.clients.has(welcome.client), 8000, 'its end, unanswered');
    await until(() => closeKept(store, welcome.client), 3000, 'the close back in the record');
    await closedOnResume(a!, welcome.session, 4000);
    gone.ws.terminate();
  }, 15_000);

  it('a close made while away is back in the record when a drain closed the resume before its claim came back', async () => {
    const { a, b, store, welcome } = await closedWhileAway(50);
    // Drained while the claim is written (the store answers in 50 ms).
    await delay(60);
    await b!.close();
    // A drained node has recorded all it had to: the close is there for the next resume.
    const record = JSON.parse((await store.get(`wscale:session:${welcome.client}`))!.value);
    expect(record).toMatchObject({ live: false, close: [4000, 'bye'] });
    await closedOnResume(a!, welcome.session, 4000);
  });

  it('a close made while away waits for the next resume when the one that claimed the session ended before it was welcomed', async () => {
    const { a, store, welcome, resuming: gone } = await closedWhileAway(30);
    // Gone while its claim is written (the store answers in 30 ms).
    await delay(40);
    gone.ws.terminate();
    await gone.closed;
    await until(() => closeKept(store, welcome.client), 3000, 'the close back in the record');
    await closedOnResume(a!, welcome.session, 4000);
  });

  it('refuse a room name longer than the protocol carries, connected or away, from a node or a publisher', async () => {
    const {
      nodes: [a, b],
      publisher,
    } = await startNodes(2);
    const long = 'x'.repeat(257);
    const { peer, welcome } = await V1Peer.connect(a!);
    await peer.next('joined');
    const connected = a!.clients.get(welcome.client)!;
    await expect(connected.join(long)).rejects.toMatchObject({ code: 'LIMIT_EXCEEDED' });
    await expect(b!.client(welcome.client).join(long)).rejects.toMatchObject({
      code: 'LIMIT_EXCEEDED',
    });
    peer.ws.terminate();
    await until(() => !a!.clients.has(welcome.client), 2000, 'the drop');
    await expect(b!.client(welcome.client).join(long)).rejects.toMatchObject({
      code: 'LIMIT_EXCEEDED',
    });
    await expect(publisher.client(welcome.client).join(long)).rejects.toMatchObject({
      code: 'LIMIT_EXCEEDED',
    });
    // A name of 256 characters is taken, and its resume after that works.
    await b!.client(welcome.client).join('x'.repeat(256));
    const rooms = await resumedRooms(b!, welcome.session, welcome.client);
    expect(rooms.server).toEqual(['lobby', 'x'.repeat(256)]);
  });

  it('are in its rooms when sent from the node its connection was on', async () => {
    const {
      nodes: [a, b],
    } = await startNodes(2);
    const welcome = await dropped(a!);
    await a!.client(welcome.client).join('news');
    const rooms = await resumedRooms(b!, welcome.session, welcome.client);
    expect(rooms.server).toEqual(['lobby', 'news']);
  });

  it('are in its rooms when routed to the node it was last on (that node places them)', async () => {
    const {
      nodes: [a, b, c],
    } = await startNodes(3);
    // Resumed on b, the session is announced to every node: c knows b holds it.
    const first = await dropped(a!);
    const welcome = await dropped(b!, first.session);
    await c!.client(welcome.client).join('news');
    await c!.client(welcome.client).leave('lobby');
    const rooms = await resumedRooms(a!, welcome.session, welcome.client);
    expect(rooms.server).toEqual(['news']);
  });

  it('are in its rooms when the node that held it died without recording the close', async () => {
    const {
      nodes: [a, b],
      store,
    } = await startNodes(2);
    const welcome = await dropped(a!);
    // What a killed node leaves: the record still says a live connection on it holds the session.
    await heldBy(store, welcome.client, 'node-killed');
    await b!.client(welcome.client).join('news');
    const rooms = await resumedRooms(a!, welcome.session, welcome.client);
    expect(rooms.server).toEqual(['lobby', 'news']);
  });

  it('are in its rooms when the record names the sending node, which holds no connection of it', async () => {
    const {
      nodes: [a, b],
      store,
    } = await startNodes(2);
    const welcome = await dropped(a!);
    // A node killed and started again with the same id: its old record says it holds the session.
    await heldBy(store, welcome.client, b!.nodeId);
    await b!.client(welcome.client).join('news');
    const rooms = await resumedRooms(a!, welcome.session, welcome.client);
    expect(rooms.server).toEqual(['lobby', 'news']);
  });

  it('are in its rooms when its node stopped (killed, not yet known dead) while the change went to it', async () => {
    const { a, b, c, broker } = await withFreezable();
    const { welcome } = await V1Peer.connect(c);
    await b.client(welcome.client).send('where are you'); // b learns c holds it
    broker.frozen = true;
    expect(b.nodes).toContain(c.nodeId);
    await b.client(welcome.client).join('news');
    const rooms = await resumedRooms(a, welcome.session, welcome.client);
    expect(rooms.server).toEqual(['news']);
  });

  it('keep their order when not awaited', async () => {
    const {
      nodes: [a, b],
    } = await startNodes(2);
    const welcome = await dropped(a!);
    const client = b!.client(welcome.client);
    const changes = [
      client.join('x'),
      client.leave('x'),
      client.join('y'),
      client.leave('lobby'),
      client.join('lobby'),
      client.leave('y'),
      client.join('z'),
    ];
    await Promise.all(changes);
    const rooms = await resumedRooms(a!, welcome.session, welcome.client);
    expect(rooms.server).toEqual(['lobby', 'z']);
  });

  it('reach the session whether they come before, during or after its resume', async () => {
    const {
      nodes: [a, b, c],
    } = await startNodes(3);
    const welcome = await dropped(a!);
    const nodes = [a!, b!];
    for (let round = 0; round < 12; round++) {
      const to = nodes[round % 2]!;
      // The join starts at once, a store round or two ahead of the resume's claim, or behind it.
      const resuming = V1Peer.connect(to, { session: welcome.session });
      // From a node the session is not on, and from the one it is coming to.
      const joining = c!.client(welcome.client).join(`room-${round}`);
      const here = to.client(welcome.client).join(`here-${round}`);
      const [{ peer }] = await Promise.all([resuming, joining, here]);
      for (const room of [`room-${round}`, `here-${round}`]) {
        await until(
          () => to.clients.get(welcome.client)?.rooms.has(room) === true,
          2000,
          `${room} on the resumed connection`,
        );
      }
      peer.ws.terminate();
      await until(() => !to.clients.has(welcome.client), 2000, 'the drop');
    }
    const rooms = await resumedRooms(b!, welcome.session, welcome.client);
    const joined = Array.from({ length: 12 }, (_, i) => [`room-${i}`, `here-${i}`]).flat();
    expect(rooms.server).toEqual(['lobby', ...joined].sort());
  });

  it("are in its rooms when a publisher's, with history replayed from the join", async () => {
    const {
      nodes: [a, b],
      publisher,
    } = await startNodes(2);
    const welcome = await dropped(a!);
    await publisher.to('chat').send('before the join');
    await publisher.client(welcome.client).join('chat');
    await publisher.client(welcome.client).leave('lobby');
    await publisher.to('chat').send('after the join');
    const rooms = await resumedRooms(b!, welcome.session, welcome.client);
    expect(rooms.server).toEqual(['chat']);
    await until(() => rooms.peer.texts('chat').length >= 1, 2000, 'the replay');
    expect(rooms.peer.texts('chat')).toEqual(['after the join']);
  });

  it("are applied at once by the node that holds the session, when a publisher's", async () => {
    const {
      nodes: [a],
      publisher,
    } = await startNodes(2);
    const { peer, welcome } = await V1Peer.connect(a!);
    await peer.next('joined');
    await publisher.client(welcome.client).join('news');
    await until(() => peer.all('joined').length === 2, 2000, 'the join');
    expect(peer.all('joined').map((joined) => joined.r)).toEqual(['lobby', 'news']);
  });

  it("are in its rooms when a publisher's for a session whose node died holding it", async () => {
    const {
      nodes: [a, b],
      store,
      publisher,
    } = await startNodes(3);
    const welcome = await dropped(a!);
    await heldBy(store, welcome.client, 'node-killed');
    await publisher.client(welcome.client).join('news');
    const rooms = await resumedRooms(b!, welcome.session, welcome.client);
    expect(rooms.server).toEqual(['lobby', 'news']);
  });

  it('a close closes its resume right after the welcome, with its code, once', async () => {
    const {
      nodes: [a, b, c],
    } = await startNodes(3);
    const connections: string[] = [];
    b!.on('connection', (client) => connections.push(client.id));
    const welcome = await dropped(a!);
    await c!.client(welcome.client).join('chat');
    await c!.to('chat').send('while away');
    await c!.client(welcome.client).close(4001, 'kicked while away');
    const closed = await V1Peer.connect(b!, { session: welcome.session });
    expect(closed.welcome).toMatchObject({ resumed: true, client: welcome.client });
    expect(await closeOf(closed.peer)).toEqual({ code: 4001, reason: 'kicked while away' });
    expect(connections).toEqual([]);
    // Closed at once, it was sent nothing of its rooms: the client keeps where it was.
    expect(closed.peer.all('msg')).toEqual([]);
    const chat = closed.welcome.rooms.chat!;
    // A client whose close code says "come back" does: the close was made, the session goes on,
    // and what its rooms got meanwhile comes now.
    const again = await V1Peer.connect(b!, {
      session: welcome.session,
      rooms: { chat: { o: chat.o!, e: chat.e! } },
    });
    expect(again.welcome).toMatchObject({ resumed: true, client: welcome.client });
    expect(connections).toEqual([welcome.client]);
    await until(() => again.peer.texts('chat').length === 1, 2000, 'the replay');
    expect(again.peer.texts('chat')).toEqual(['while away']);
    await b!.client(welcome.client).send('still here');
    await until(() => again.peer.texts().includes('still here'), 2000, 'a message');
  });

  it('a close sends the closed connection nothing, reads no history and moves no position: the next resume replays it all', async () => {
    const store = new MemoryStateStore({ ttlMs: 60_000 });
    const history = new MemoryHistory({ maxEntries: 100 });
    stores.push(store, history);
    const [a, b] = await cluster.start(2, {
      stateStore: store,
      sessionSecret: 'a-test-secret-of-enough-bytes',
      history: [{ rooms: 'chat*', store: history }],
    });
    const { peer, welcome } = await V1Peer.connect(a!);
    for (const room of ['chat-a', 'chat-b']) await a!.client(welcome.client).join(room);
    await a!.to('chat-a').send('a1');
    await a!.to('chat-b').send('b1');
    await until(() => peer.all('msg').length === 2, 2000, 'the first messages');
    const rooms: Record<string, { o: number; e: string }> = {};
    for (const m of peer.all('msg')) rooms[m.r!] = { o: m.o!, e: m.e! };
    peer.ws.terminate();
    await until(() => !a!.clients.has(welcome.client), 2000, 'the drop');
    await b!.client(welcome.client).close(4000, 'come back');
    await a!.to('chat-b').send('b2');
    let reads = 0;
    const read = history.read.bind(history);
    history.read = (...args) => {
      reads++;
      return read(...args);
    };
    const closed = await V1Peer.connect(b!, { session: welcome.session, rooms });
    expect(await closeOf(closed.peer)).toMatchObject({ code: 4000 });
    // Each room told where the client is (which it keeps); nothing sent, nothing read.
    expect(closed.welcome.rooms).toEqual({
      'chat-a': { recovered: true, ...rooms['chat-a'] },
      'chat-b': { recovered: true, ...rooms['chat-b'] },
    });
    expect(closed.peer.all('msg')).toEqual([]);
    expect(reads).toBe(0);
    await a!.to('chat-a').send('a2');
    const again = await V1Peer.connect(b!, { session: welcome.session, rooms });
    await until(() => again.peer.all('msg').length === 2, 2000, 'the replay');
    expect(again.peer.texts('chat-a')).toEqual(['a2']);
    expect(again.peer.texts('chat-b')).toEqual(['b2']);
  });

  it("a publisher's close closes its resume the same way", async () => {
    const {
      nodes: [a, b],
      publisher,
    } = await startNodes(2);
    const welcome = await dropped(a!);
    await publisher.client(welcome.client).close(1000, 'done');
    const closed = await V1Peer.connect(b!, { session: welcome.session });
    expect(await closeOf(closed.peer)).toEqual({ code: 1000, reason: 'done' });
  });

  it('a close for a connected session closes it once: its next resume is not closed again', async () => {
    const {
      nodes: [a, b],
    } = await startNodes(2);
    const { peer, welcome } = await V1Peer.connect(a!);
    await b!.client(welcome.client).close(4002, 'come back');
    expect(await closeOf(peer)).toEqual({ code: 4002, reason: 'come back' });
    await until(() => !a!.clients.has(welcome.client), 2000, 'the close recorded');
    const again = await V1Peer.connect(b!, { session: welcome.session });
    expect(again.welcome.resumed).toBe(true);
    await b!.client(welcome.client).send('open');
    await until(() => again.peer.texts().includes('open'), 2000, 'a message');
  });

  /** A connected session whose client is gone without its node knowing: it reads nothing more. */
  async function goneUnseen(node: ScaledWebSocketServer) {
    const { peer, welcome } = await V1Peer.connect(node);
    await peer.next('joined');
    (peer.ws as unknown as { _socket: { pause(): void } })._socket.pause();
    return { peer, welcome };
  }

  it("the application's close of a connected client that never answers it closes its resume on another node", async () => {
    const {
      nodes: [a, b],
      store,
    } = await startNodes(2);
    const { peer, welcome } = await goneUnseen(a!);
    a!.clients.get(welcome.client)!.close(1008, 'banned');
    await until(() => !a!.clients.has(welcome.client), 8000, 'its end, unanswered');
    const record = JSON.parse((await store.get(`wscale:session:${welcome.client}`))!.value);
    expect(record).toMatchObject({ live: false, close: [1008, 'banned'] });
    await closedOnResume(b!, welcome.session, 1008);
    peer.ws.terminate();
  }, 15_000);

  it('a close of a connected client that never answers it closes its resume that takes the session over at once', async () => {
    const {
      nodes: [a, b],
    } = await startNodes(2);
    const { peer, welcome } = await goneUnseen(a!);
    await b!.client(welcome.client).close(4000, 'bye');
    // Back on another node before its first node ended the socket.
    expect(a!.clients.has(welcome.client)).toBe(true);
    await closedOnResume(b!, welcome.session, 4000);
    peer.ws.terminate();
  });

  it("the application's close of a client that never answers it is in the record at once: its node killed, the resume is closed", async () => {
    const { a, c, store, broker } = await withFreezable();
    const { peer, welcome } = await V1Peer.connect(c);
    (peer.ws as unknown as { _socket: { pause(): void } })._socket.pause();
    c.clients.get(welcome.client)!.close(4001, 'bye');
    await until(
      async () => {
        const record = JSON.parse((await store.get(`wscale:session:${welcome.client}`))!.value);
        return record.close?.[0] === 4001;
      },
      2000,
      'the close in the record',
    );
    // Node c dies before the client's socket ends there (closeTimeoutMs): it answers nothing.
    broker.frozen = true;
    await closedOnResume(a, welcome.session, 4001);
    peer.ws.terminate();
  });

  it('a close the client answered is not made again when it comes back before its socket ended, on the closing node or another', async () => {
    const {
      nodes: [a, b],
    } = await startNodes(2);
    for (const [held, back] of [
      [a!, b!],
      [b!, b!],
    ] as const) {
      const { peer, welcome } = await V1Peer.connect(held);
      // It answers the close, and its socket's end is slow to come (the node sees it open).
      const socket = (peer.ws as unknown as { _socket: { end(): void } })._socket;
      socket.end = () => undefined;
      await b!.client(welcome.client).close(4002, 'come back');
      await until(() => peer.ws.readyState === peer.ws.CLOSING, 2000, 'the close answered');
      const again = await V1Peer.connect(back, { session: welcome.session });
      expect(again.welcome.resumed).toBe(true);
      await delay(200); // a close made again would have come by now
      expect(again.peer.ws.readyState).toBe(again.peer.ws.OPEN);
      peer.ws.terminate();
    }
  });

  it('a join passed on by the node the record named keeps where it was made: the next broadcast reaches the client', async () => {
    const memory = new MemoryStateStore({ ttlMs: 60_000 });
    const history = new MemoryHistory({ maxEntries: 100 });
    stores.push(memory, history);
    const options = { sessionSecret: 'a-test-secret-of-enough-bytes' };
    // Node a reads the room's position late, and writes records late.
    const late = new Proxy(history, {
      get: (target, key) => {
        const value = Reflect.get(target, key, target);
        if (key !== 'position') return typeof value === 'function' ? value.bind(target) : value;
        return async (room: string) => {
          await delay(150);
          return target.position(room);
        };
      },
    });
    const [a] = await cluster.start(1, {
      ...options,
      stateStore: slowly(memory, 100),
      history: [{ rooms: 'chat*', store: late }],
    });
    const [b] = await cluster.start(1, {
      ...options,
      stateStore: memory,
      history: [{ rooms: 'chat*', store: history }],
    });
    // The node the application calls on.
    const [c] = await cluster.start(1, {
      ...options,
      stateStore: memory,
      history: [{ rooms: 'chat*', store: history }],
    });
    const { peer, welcome } = await V1Peer.connect(b!);
    // The record names node a (a moment ago it held the client): the join goes there first.
    await heldBy(memory, welcome.client, a!.nodeId);
    await c!.client(welcome.client).join('chat-news');
    await b!.clients.get(welcome.client)!.saveData();
    await c!.to('chat-news').send('right after the join');
    await until(() => peer.texts('chat-news').length === 1, 3000, 'the message');
    expect(peer.all('joined').find((joined) => joined.r === 'chat-news')?.o).toBe(0);
  });

  it('reject with StateStoreError while the store is down, in order, and the next ones go through', async () => {
    const {
      nodes: [a, b],
      store,
    } = await startNodes(2);
    const welcome = await dropped(a!);
    const client = b!.client(welcome.client);
    const down = Object.assign(store, {
      get: () => Promise.reject(new StateStoreError('the store is down')),
    });
    const refused = await Promise.allSettled([client.join('x'), client.leave('lobby')]);
    expect(refused.map((outcome) => outcome.status)).toEqual(['rejected', 'rejected']);
    for (const outcome of refused) {
      expect((outcome as PromiseRejectedResult).reason).toBeInstanceOf(StateStoreError);
    }
    delete (down as { get?: unknown }).get; // the store answers again
    await client.join('news');
    const rooms = await resumedRooms(a!, welcome.session, welcome.client);
    expect(rooms.server).toEqual(['lobby', 'news']);
  });

  it('goes to every node for a raw client, as before', async () => {
    const {
      nodes: [a, b],
    } = await startNodes(2);
    const raw = await cluster.connect(a!);
    await b!.client(raw.id).join('news');
    await until(() => a!.clients.get(raw.id)?.rooms.has('news') === true, 2000, 'the join');
  });
});
