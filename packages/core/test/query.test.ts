import { InvalidOptionError, MemoryBroker, ScaledWebSocketServer } from '@wscale/core';
import { until } from '@wscale/core/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { TestCluster } from './helpers/nodes.js';

const cluster = new TestCluster();
afterEach(() => cluster.closeAll());

/** A node's broker link that can be cut, as when a node hangs or its network fails. */
class CuttableBroker extends MemoryBroker {
  cut = false;

  protected override deliver(topic: string, payload: Uint8Array): void {
    if (!this.cut) super.deliver(topic, payload);
  }
}

describe('cross-node queries', () => {
  it('collects rooms and clients from every node', async () => {
    const [a, b, c] = await cluster.start(3);
    const clients = [
      await cluster.connect(a!),
      await cluster.connect(b!),
      await cluster.connect(c!),
    ];
    await a!.client(clients[0]!.id).join('one');
    await a!.client(clients[1]!.id).join('two');
    await a!.client(clients[2]!.id).join('two');
    await until(async () => (await a!.fetchRooms()).rooms.length === 2, 3000, 'remote joins');

    expect(await a!.fetchRooms()).toEqual({ rooms: ['one', 'two'], missing: [] });
    const { clients: inTwo, missing } = await c!.fetchClients('two');
    expect(missing).toEqual([]);
    expect(inTwo.map((info) => [info.id, info.nodeId]).sort()).toEqual(
      [
        [clients[1]!.id, 'node-2'],
        [clients[2]!.id, 'node-3'],
      ].sort(),
    );
    expect((await b!.fetchClients()).clients).toHaveLength(3);
  });

  it('returns the answers it has and names the node that did not answer', async () => {
    let frozen: CuttableBroker | undefined;
    await cluster.start(2);
    const [hung] = await cluster.start(1, {
      brokerFor: (bus) => {
        frozen = new CuttableBroker({ bus });
        return frozen;
      },
    });
    const [a, b] = cluster.servers;
    await a!.client((await cluster.connect(a!)).id).join('alpha');
    await b!.client((await cluster.connect(b!)).id).join('beta');
    await hung!.client((await cluster.connect(hung!)).id).join('gamma');
    frozen!.cut = true;

    const started = Date.now();
    const answer = await a!.fetchRooms({ timeoutMs: 300 });
    expect(Date.now() - started).toBeLessThan(2000);
    expect(answer).toEqual({ rooms: ['alpha', 'beta'], missing: [hung!.nodeId] });
  });

  it('forgets a node that left, and notices one that stopped beating', async () => {
    let frozen: CuttableBroker | undefined;
    const [a] = await cluster.start(1, { nodeHeartbeatMs: 50 });
    const [leaving] = await cluster.start(1, { nodeHeartbeatMs: 50 });
    const [silent] = await cluster.start(1, {
      nodeHeartbeatMs: 50,
      brokerFor: (bus) => {
        frozen = new CuttableBroker({ bus });
        return frozen;
      },
    });
    const down: string[] = [];
    a!.on('nodeDown', (nodeId) => down.push(nodeId));
    await leaving!.close();
    await until(() => down.includes(leaving!.nodeId), 1000, 'goodbye');
    frozen!.cut = true;
    frozen!.publish = async () => undefined;
    await until(() => down.includes(silent!.nodeId), 2000, 'heartbeat timeout');
    expect(a!.nodes).toEqual([]);
  });

  it('names a node declared gone while the question waited among the missing', async () => {
    let frozen: CuttableBroker | undefined;
    const [a] = await cluster.start(1, { nodeHeartbeatMs: 50 });
    const [hung] = await cluster.start(1, {
      nodeHeartbeatMs: 50,
      brokerFor: (bus) => {
        frozen = new CuttableBroker({ bus });
        return frozen;
      },
    });
    await hung!.client((await cluster.connect(hung!)).id).join('gamma');
    await until(() => a!.nodes.includes(hung!.nodeId), 1000, 'the nodes meeting');
    const down = new Promise((resolve) => a!.once('nodeDown', resolve));
    frozen!.cut = true;
    frozen!.publish = async () => undefined;
    // Asked while alive; declared gone (150 ms of silence) long before the query's timeout.
    const answer = await a!.fetchRooms({ timeoutMs: 5000 });
    expect(await down).toBe(hung!.nodeId);
    expect(answer).toEqual({ rooms: [], missing: [hung!.nodeId] });
    expect(a!.stats.queries).toMatchObject({ asked: 1, partial: 1 });
  });

  it('lists no other node once closed', async () => {
    const [a, b] = await cluster.start(2);
    await until(() => a!.nodes.includes(b!.nodeId), 1000, 'the nodes meeting');
    await a!.close();
    expect(a!.nodes).toEqual([]);
    expect((await a!.health()).nodes).toEqual([]);
  });

  it("gathers every node's stats, counts its own deliveries, and names a silent node", async () => {
    let frozen: CuttableBroker | undefined;
    const [a, b] = await cluster.start(2);
    const [hung] = await cluster.start(1, {
      brokerFor: (bus) => {
        frozen = new CuttableBroker({ bus });
        return frozen;
      },
    });
    const [onA, onB] = [await cluster.connect(a!), await cluster.connect(b!)];
    await a!.client(onA.id).join('room');
    await a!.client(onB.id).join('room');
    await a!.to('room').send('hello');
    await Promise.all([onA.waitFor(1), onB.waitFor(1)]);
    frozen!.cut = true;

    const { nodes, missing } = await a!.fetchStats({ timeoutMs: 300 });
    expect(missing).toEqual([hung!.nodeId]);
    expect(nodes.map((node) => node.nodeId)).toEqual([a!.nodeId, b!.nodeId]);
    for (const node of nodes) {
      expect(node.broker).toBe('ready');
      expect(node.stats).toMatchObject({ connections: 1, rooms: 1, subscriptions: 1 });
      // Each node counts what it wrote to its own clients: one member each.
      expect(node.stats.messagesOut.broadcast).toBe(1);
    }
    expect(a!.stats.queries).toMatchObject({ asked: 1, partial: 1 });
  });
});

describe('node ids', () => {
  it('reports, on both nodes, a node id that two nodes of one cluster use', async () => {
    const [first] = await cluster.start(1, { nodeHeartbeatMs: 100 });
    const errors: unknown[] = [];
    first!.on('error', (error) => errors.push(error));
    const twin = new ScaledWebSocketServer({
      noServer: true,
      nodeId: first!.nodeId,
      broker: new MemoryBroker({ bus: cluster.bus }),
      nodeHeartbeatMs: 100,
    });
    const twinErrors: unknown[] = [];
    twin.on('error', (error) => twinErrors.push(error));
    try {
      await twin.ready();
      await until(() => errors.length > 0 && twinErrors.length > 0, 3000, 'both to report it');
      for (const error of [...errors, ...twinErrors]) {
        expect(error).toBeInstanceOf(InvalidOptionError);
        expect((error as Error).message).toContain(`"${first!.nodeId}"`);
      }
      // Reported once each, however many beats follow.
      await new Promise((resolve) => setTimeout(resolve, 500));
      expect([errors.length, twinErrors.length]).toEqual([1, 1]);
    } finally {
      await twin.close();
    }
  });

  it('reports nothing for a node alone, nor for nodes of different ids', async () => {
    const nodes = await cluster.start(3, { nodeHeartbeatMs: 50 });
    const errors: unknown[] = [];
    for (const node of nodes) node.on('error', (error) => errors.push(error));
    await new Promise((resolve) => setTimeout(resolve, 500)); // some ten beats each
    expect(errors).toEqual([]);
  });
});
