import {
  type History,
  type HistoryPosition,
  MemoryBroker,
  MemoryHistory,
  Publisher,
} from '@wscale/core';
import { delay, until } from '@wscale/core/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { TestCluster } from './helpers/nodes.js';

/** A history whose appends take `ms`, as a store across a network does. */
class SlowHistory extends MemoryHistory {
  constructor(readonly ms: number) {
    super();
  }

  override async append(room: string, payload: Uint8Array): Promise<HistoryPosition> {
    await new Promise((resolve) => setTimeout(resolve, this.ms));
    return super.append(room, payload);
  }
}

const cluster = new TestCluster();
afterEach(() => cluster.closeAll());

const COUNT = 10;
const numbers = Array.from({ length: COUNT }, (_, i) => String(i + 1));

/** Two nodes whose clients join the history room `feed`, each node's broker kept; a client on the second. */
async function setUp(history: History) {
  const brokers: MemoryBroker[] = [];
  const nodes = await cluster.start(2, {
    history: [{ rooms: 'feed', store: history }],
    brokerFor: (bus) => {
      const broker = new MemoryBroker({ bus });
      brokers.push(broker);
      return broker;
    },
  });
  for (const node of nodes) node.on('connection', (client) => void client.join('feed'));
  const listener = await cluster.connect(nodes[1]!);
  await until(() => [...nodes[1]!.clients.values()][0]?.inRoom('feed') === true, 2000, 'joined');
  return { nodes, brokers, texts: () => listener.messages.map((m) => String(m.data)) };
}

describe('closing with sends still on their way', () => {
  it("a node's close waits for the sends it started: its broker can be closed after it", async () => {
    const { nodes, brokers, texts } = await setUp(new SlowHistory(20));
    // What a handler or ticker started just before the deploy took the node out, unawaited.
    for (const text of numbers) void nodes[0]!.to('feed').send(text);
    await nodes[0]!.close();
    await brokers[0]!.close();
    await until(() => texts().length === COUNT, 2000, 'every message');
    expect(texts()).toEqual(numbers);
    expect(nodes[0]!.stats.failedSends).toBe(0);
  });

  it("a node's close waits for what its handlers still do, and their sends go out", async () => {
    const { nodes, texts } = await setUp(new MemoryHistory());
    let release!: () => void;
    const slow = new Promise<void>((resolve) => {
      release = resolve;
    });
    let started = 0;
    nodes[0]!.on('connection', (client) => {
      client.on('message', async (text) => {
        started++;
        await slow; // a database write taking its time
        await nodes[0]!.to('feed').send(`saved ${text}`);
      });
    });
    const writer = await cluster.connect(nodes[0]!);
    for (const text of numbers) writer.ws.send(text);
    await until(() => started === COUNT, 2000, 'every handler under way');
    const closing = nodes[0]!.close();
    release();
    await closing;
    await until(() => texts().length === COUNT, 2000, 'every message');
    expect(texts().sort()).toEqual(numbers.map((text) => `saved ${text}`).sort());
    expect(nodes[0]!.stats.failedSends).toBe(0);
  });

  it("a node's close waits no longer than closeTimeoutMs for a handler that never settles", async () => {
    const [node] = await cluster.start(1, { closeTimeoutMs: 200 });
    node!.on('connection', (client) => {
      client.on('message', () => new Promise(() => undefined));
    });
    const writer = await cluster.connect(node!);
    writer.ws.send('hangs');
    await until(() => node!.stats.messagesIn === 1, 2000, 'the message');
    const started = performance.now();
    await node!.close();
    expect(performance.now() - started).toBeLessThan(2000);
  });

  it("a Publisher's close waits for the sends it started: its broker can be closed after it", async () => {
    const history = new SlowHistory(20);
    const { texts } = await setUp(history);
    const broker = new MemoryBroker({ bus: cluster.bus });
    const publisher = new Publisher({ broker, history: [{ rooms: 'feed', store: history }] });
    // A job's last sends, then its way out.
    for (const text of numbers) void publisher.to('feed').send(text);
    await publisher.close();
    await broker.close();
    await until(() => texts().length === COUNT, 2000, 'every message');
    expect(texts()).toEqual(numbers);
    expect(publisher.failedSends).toBe(0);
  });

  it("a node's close waits for no broker that is down: its goodbyes to the other nodes are not waited for", async () => {
    const [node] = await cluster.start(1, { closeTimeoutMs: 1000, presence: [{ rooms: 'room' }] });
    await cluster.connect(node!);
    cluster.bus.disconnect();
    try {
      await until(() => node!.brokerStatus !== 'ready', 2000, 'the node to see its broker down');
      const started = performance.now();
      const closed = node!.close().then(() => performance.now() - started);
      // Its goodbyes to the other nodes wait for no broker that is down, nor for its return.
      expect(await Promise.race([closed, delay(3000).then(() => 'still closing')])).toBeLessThan(
        1000,
      );
    } finally {
      cluster.bus.reconnect();
    }
  });

  it("a Publisher's close waits no longer than closeTimeoutMs for a broker that is down", async () => {
    const broker = new MemoryBroker({ bus: cluster.bus });
    const publisher = new Publisher({ broker, closeTimeoutMs: 200 });
    cluster.bus.disconnect();
    try {
      const queued = publisher.to('feed').send('waits in the queue');
      const started = performance.now();
      await publisher.close();
      expect(performance.now() - started).toBeLessThan(2000);
      await broker.close();
      await expect(queued).rejects.toMatchObject({ code: 'BROKER_CLOSED' });
      expect(publisher.failedSends).toBe(1);
    } finally {
      cluster.bus.reconnect();
    }
  });
});
