import {
  BrokerUnavailableError,
  MemoryBroker,
  MemoryBus,
  MemoryHistory,
  MemoryStateStore,
  Publisher,
  type ScaledWebSocketServer,
} from '@wscale/core';
import { inboxOf } from '@wscale/core/protocol';
import { until } from '@wscale/core/testing';
import { settle } from '@wscale/test-support';
import { afterEach, describe, expect, it } from 'vitest';
import { TestCluster } from './helpers/nodes.js';
import { watchUnawaited } from './helpers/unawaited.js';
import { V1Peer } from './helpers/v1-client.js';

const cluster = new TestCluster();
afterEach(() => cluster.closeAll());

const history = () => new MemoryHistory({ maxEntries: 100 });

/** Two nodes with a history room `feed`, sessions and kept direct messages; and a publisher. */
async function setUp() {
  const feed = history();
  const direct = history();
  const nodes = await cluster.start(2, {
    stateStore: new MemoryStateStore({ ttlMs: 30_000 }),
    sessionSecret: 'a-test-secret-of-enough-bytes',
    history: [{ rooms: 'feed', store: feed }],
    directHistory: direct,
  });
  for (const node of nodes) node.on('connection', (client) => void client.join('feed'));
  const publisher = new Publisher({
    broker: new MemoryBroker({ bus: cluster.bus }),
    history: [{ rooms: 'feed', store: feed }],
    directHistory: direct,
  });
  return { nodes: nodes as [ScaledWebSocketServer, ScaledWebSocketServer], publisher };
}

/** A logger that keeps the warnings it is given. */
function warnings() {
  const warned: Array<{ message: string; fields: object }> = [];
  const ignore = () => undefined;
  const logger = {
    debug: ignore,
    info: ignore,
    error: ignore,
    warn: (fields: object, message: string) => void warned.push({ message, fields }),
  };
  return { warned, logger };
}

describe('Publisher', () => {
  it('broadcasts to members on every node once, numbered in the room’s history, and is no node', async () => {
    const { nodes, publisher } = await setUp();
    const heardUp: string[] = [];
    for (const node of nodes) node.on('nodeUp', (id) => heardUp.push(id));
    const peers = [await V1Peer.connect(nodes[0]), await V1Peer.connect(nodes[1])];
    for (const { peer } of peers) await peer.next('joined');
    await nodes[0].to('feed').send('from node-1');
    await publisher.to('feed').send('from the publisher');
    await nodes[1].to('feed').send('from node-2');
    for (const { peer } of peers) {
      await settle(() => peer.texts('feed').length >= 3, 2000, 'three messages');
      expect(peer.texts('feed')).toEqual(['from node-1', 'from the publisher', 'from node-2']);
      expect(peer.all('msg').map((m) => m.o)).toEqual([1, 2, 3]);
    }
    expect(heardUp).toEqual([]);
    expect(nodes[0].nodes).toEqual(['node-2']);
  });

  it('sends to one client, joins, leaves and closes it, on whatever node holds it', async () => {
    const { nodes, publisher } = await setUp();
    const raw = await cluster.connect(nodes[1]);
    await publisher.client(raw.id).send('just for you');
    await raw.waitFor(1);
    expect(raw.texts).toEqual(['just for you']);
    await publisher.client(raw.id).join('news');
    await until(() => nodes[1].clients.get(raw.id)?.inRoom('news') === true, 2000, 'the join');
    await publisher.client(raw.id).leave('news');
    await until(() => nodes[1].clients.get(raw.id)?.inRoom('news') === false, 2000, 'the leave');
    await publisher.client(raw.id).close(4000, 'bye');
    expect(await raw.closed).toEqual({ code: 4000, reason: 'bye' });
    // What it sent to every node did not make it one of them.
    expect(nodes.map((node) => node.nodes)).toEqual([['node-2'], ['node-1']]);
  });

  it('keeps direct messages for a session that is away: they come with its resume', async () => {
    const { nodes, publisher } = await setUp();
    const first = await V1Peer.connect(nodes[0]);
    const inbox = inboxOf(first.welcome.client);
    first.peer.ws.terminate();
    await until(() => nodes[0].clients.size === 0, 2000, 'the drop');
    await publisher.client(first.welcome.client).send('while you were away');
    const second = await V1Peer.connect(nodes[1], {
      session: first.welcome.session,
      rooms: { [inbox]: { o: 0, e: first.welcome.rooms[inbox]!.e! } },
    });
    expect(second.welcome.rooms[inbox]).toMatchObject({ recovered: true, o: 1 });
    await until(() => second.peer.texts(inbox).length === 1, 2000, 'the replay');
    expect(second.peer.texts(inbox)).toEqual(['while you were away']);
  });

  it('skips the clients named in except on every node, and sends once to a member of several plain rooms', async () => {
    const { nodes, publisher } = await setUp();
    const onFirst = await cluster.connect(nodes[0]);
    const skipped = await cluster.connect(nodes[1]);
    const both = await cluster.connect(nodes[1]);
    for (const client of [onFirst, skipped, both]) await publisher.client(client.id).join('x');
    await publisher.client(both.id).join('y');
    await until(async () => (await nodes[0].fetchClients('x')).clients.length === 3, 3000, 'joins');
    await publisher.to('x', 'y').except(skipped.id).send('once');
    // The marker goes the same way, after: whoever got it got everything before it.
    await publisher.to('x', 'y').send('marker');
    for (const client of [onFirst, skipped, both]) await client.waitFor(client === skipped ? 1 : 2);
    expect(onFirst.texts).toEqual(['once', 'marker']);
    expect(both.texts).toEqual(['once', 'marker']);
    expect(skipped.texts).toEqual(['marker']);
  });

  it('without the history of a room that keeps it, reaches its members live, and the nodes warn once', async () => {
    const { warned, logger } = warnings();
    const [node] = await cluster.start(1, {
      history: [{ rooms: 'feed', store: history() }],
      logger,
    });
    const { peer, welcome } = await V1Peer.connect(node!);
    await node!.clients.get(welcome.client)!.join('feed');
    const publisher = new Publisher({ broker: new MemoryBroker({ bus: cluster.bus }) });
    await publisher.to('feed').send('one');
    await publisher.to('feed').send('two');
    await until(() => peer.texts('feed').length === 2, 2000, 'both, live');
    const about = warned.filter(({ message }) => message.includes('keeps history'));
    expect(about).toHaveLength(1);
    expect(about[0]!.fields).toMatchObject({ room: 'feed' });
  });

  it('without the directHistory the nodes keep, reaches a connected client live, and the nodes warn once', async () => {
    const { warned, logger } = warnings();
    const nodes = await cluster.start(2, {
      stateStore: new MemoryStateStore({ ttlMs: 30_000 }),
      sessionSecret: 'a-test-secret-of-enough-bytes',
      directHistory: history(),
      logger,
    });
    const { peer, welcome } = await V1Peer.connect(nodes[0]!);
    const raw = await cluster.connect(nodes[1]!);
    const publisher = new Publisher({ broker: new MemoryBroker({ bus: cluster.bus }) });
    await publisher.client(raw.id).send('to a raw client: nothing to keep');
    await publisher.client(welcome.client).send('volatile', { volatile: true });
    await raw.waitFor(1);
    await until(() => peer.texts().includes('volatile'), 2000, 'the volatile one');
    const about = () => warned.filter(({ message }) => message.includes('directHistory'));
    expect(about()).toEqual([]);
    await publisher.client(welcome.client).send('one');
    await publisher.client(welcome.client).send('two');
    await until(() => peer.texts().includes('two'), 2000, 'both, live');
    expect(peer.texts()).toEqual(['volatile', 'one', 'two']);
    // Every node heard them (the publisher does not know the holder): each says so once.
    await until(() => about().length === 2, 2000, 'a warning on each node');
    await publisher.client(welcome.client).send('three');
    await until(() => peer.texts().includes('three'), 2000, 'the third');
    expect(about()).toHaveLength(2);
    for (const { fields } of about()) {
      expect(fields).toMatchObject({ sender: publisher.id, client: welcome.client });
    }
  });

  it('a join of a room with history that resolved has the client in it for the next broadcast, from a publisher or another node', async () => {
    const news = history();
    const stateStore = new MemoryStateStore({ ttlMs: 30_000 });
    const rooms = [{ rooms: 'news*', store: news }];
    const [a, b] = await cluster.start(2, {
      stateStore,
      sessionSecret: 'a-test-secret-of-enough-bytes',
      history: rooms,
    });
    const publisher = new Publisher({
      broker: new MemoryBroker({ bus: cluster.bus }),
      history: rooms,
      stateStore,
    });
    const { peer, welcome } = await V1Peer.connect(b!);
    const expected: string[] = [];
    for (let round = 0; round < 10; round++) {
      // "Add them to the room, then tell the room": the client is held by node b.
      await publisher.client(welcome.client).join(`news-${round}`);
      await publisher.to(`news-${round}`).send(`from the publisher ${round}`);
      await a!.client(welcome.client).join(`news-a-${round}`);
      await a!.to(`news-a-${round}`).send(`from node a ${round}`);
      expected.push(`from the publisher ${round}`, `from node a ${round}`);
    }
    const texts = () => peer.all('msg').map((message) => message.d);
    await settle(() => texts().length >= expected.length, 3000, 'every message');
    expect(texts().sort()).toEqual(expected.sort());
    // Each told `joined` at where the join was made, then the message after it.
    const joinedAt = new Map(peer.all('joined').map((joined) => [joined.r, joined.o]));
    for (const message of peer.all('msg')) expect(message.o).toBe(joinedAt.get(message.r!)! + 1);
    await publisher.close();
  });

  it('refuses to send once closed', async () => {
    const { publisher } = await setUp();
    await publisher.close();
    await expect(publisher.to('feed').send('late')).rejects.toMatchObject({
      code: 'SERVER_CLOSED',
    });
  });

  it('ends no process when a send nobody awaits fails: counted, logged, and still rejecting for who awaits', async () => {
    const { unhandled, warned, logger, stop } = watchUnawaited();
    const bus = new MemoryBus();
    const broker = new MemoryBroker({ bus, maxQueuedPublishes: 1 });
    const publisher = new Publisher({ broker, logger });
    try {
      bus.disconnect();
      // What an HTTP handler of another service does while the broker is away, as statements:
      // the first waits in the broker's queue, the rest find it full.
      void publisher.to('feed').send('queued');
      void publisher.broadcast('full');
      publisher.client('someone').send('full');
      void publisher.client('someone').join('feed');
      await expect(publisher.to('feed').send('awaited')).rejects.toBeInstanceOf(
        BrokerUnavailableError,
      );
      await until(() => publisher.failedSends === 4, 2000, 'the failures counted');
      await new Promise((resolve) => setImmediate(resolve));
      expect(unhandled).toEqual([]);
      // Logged a line a second at most: an outage fails every send.
      expect(warned).toEqual(['BROKER_UNAVAILABLE']);
    } finally {
      stop();
      await broker.close();
    }
  });
});
