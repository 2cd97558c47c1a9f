import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { MemoryBroker, MemoryBus } from '../src/adapters/memory/memory-broker.js';
import { MemoryStateStore } from '../src/adapters/memory/memory-state-store.js';
import { InvalidOptionError } from '../src/errors.js';
import type { PresenceChange } from '../src/presence/presence-types.js';
import { ScaledWebSocketServer } from '../src/server/scaled-server.js';
import { delay, until } from '../src/testing/runner.js';

/**
 * Presence of raw WebSocket clients on real nodes, and what a node does when its broker loses
 * presence messages without the node being declared gone.
 */

/** A memory broker whose subscriptions can lose what arrives, as a dropped subscriber connection does. */
class LossyBroker extends MemoryBroker {
  losing = false;
  protected override deliver(topic: string, payload: Uint8Array): void {
    if (this.losing && topic.includes('presence')) return;
    super.deliver(topic, payload);
  }
}

/** A memory broker that holds what its node sends and receives while `paused`, as a stopped process does. */
class PausableBroker extends MemoryBroker {
  #held: Array<() => void> | undefined;

  pause(): void {
    this.#held = [];
  }

  resume(): void {
    const held = this.#held ?? [];
    this.#held = undefined;
    for (const go of held) go();
  }

  override publish(topic: string, payload: Uint8Array): Promise<void> {
    const held = this.#held;
    if (held === undefined) return super.publish(topic, payload);
    return new Promise((resolve, reject) => {
      held.push(() => super.publish(topic, payload).then(resolve, reject));
    });
  }

  protected override deliver(topic: string, payload: Uint8Array): void {
    if (this.#held === undefined) super.deliver(topic, payload);
    else this.#held.push(() => super.deliver(topic, payload));
  }
}

const nodes: ScaledWebSocketServer[] = [];
const sockets: WebSocket[] = [];
afterEach(async () => {
  for (const ws of sockets.splice(0)) ws.terminate();
  await Promise.all(nodes.splice(0).map((node) => node.close()));
});

function start<Broker extends MemoryBroker = LossyBroker>(
  bus: MemoryBus,
  id: string,
  broker: Broker = new LossyBroker({ bus }) as MemoryBroker as Broker,
  nodeTimeoutMs?: number,
) {
  const node = new ScaledWebSocketServer<unknown>({
    port: 0,
    host: '127.0.0.1',
    nodeId: id,
    broker,
    nodeHeartbeatMs: 100,
    ...(nodeTimeoutMs === undefined ? {} : { nodeTimeoutMs }),
    presence: [{ rooms: 'room' }],
    presenceGraceMs: 300,
    authenticate: (request) => {
      const user = new URL(request.url ?? '/', 'http://x').searchParams.get('user');
      return user === null ? true : { id: user };
    },
  });
  node.on('connection', (client) => void client.join('room'));
  nodes.push(node);
  return { node, broker };
}

function connect(node: ScaledWebSocketServer, query = ''): Promise<WebSocket> {
  const ws = new WebSocket(`ws://127.0.0.1:${node.address()!.port}/${query}`);
  sockets.push(ws);
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}

const users = async (node: ScaledWebSocketServer) =>
  (await node.presence('room')).members.map((member) => member.user);

describe('presence on raw clients', () => {
  it('counts a raw client without an identity as its own user, and one with an identity by it', async () => {
    const bus = new MemoryBus();
    const { node: a } = start(bus, 'a');
    const { node: b } = start(bus, 'b');
    await Promise.all([a.ready(), b.ready()]);
    await until(() => a.nodes.length === 1 && b.nodes.length === 1, 3000, 'the nodes to meet');
    await connect(a);
    await connect(b);
    await connect(a, '?user=ann');
    await connect(b, '?user=ann');
    await until(() => b.presenceStats('room').connections === 4, 3000, 'four connections');
    expect(b.presenceStats('room')).toEqual({ users: 3, connections: 4 });
    const anonymous = [...a.clients.values(), ...b.clients.values()]
      .filter((client) => client.identity === true)
      .map((client) => client.id);
    expect((await users(a)).sort()).toEqual(['ann', ...anonymous].sort());
  });

  it('a node that lost presence messages, still alive to the others, converges at the next heartbeat', async () => {
    const bus = new MemoryBus();
    const { node: a } = start(bus, 'a');
    const { node: b, broker: lossy } = start(bus, 'b');
    await Promise.all([a.ready(), b.ready()]);
    await until(() => a.nodes.length === 1 && b.nodes.length === 1, 3000, 'the nodes to meet');
    const heard: string[] = [];
    b.on('presence', (_room: string, change: PresenceChange) =>
      heard.push(`${change.type} ${change.user}`),
    );
    await connect(a, '?user=ann');
    await until(() => heard.length === 1, 3000, 'ann');
    lossy.losing = true;
    await connect(a, '?user=bob');
    const cid = await connect(a, '?user=cid');
    await until(() => a.presenceStats('room').users === 3, 3000, 'bob and cid on a');
    cid.close(1000);
    await until(() => a.presenceStats('room').users === 2, 3000, 'cid gone on a');
    await delay(100);
    expect(await users(b)).toEqual(['ann']); // b missed it all, and still sees a alive
    expect(b.nodes).toEqual(['a']);
    lossy.losing = false;
    await until(async () => (await users(b)).join() === 'ann,bob', 3000, 'b to catch up');
    expect(heard).toEqual(['join ann', 'join bob']);
    expect((await b.presence('room')).missing).toEqual([]);
  });

  it('a node started after others lists their members with no join, and then tells only what changes', async () => {
    const bus = new MemoryBus();
    const { node: a } = start(bus, 'a');
    const { node: b } = start(bus, 'b');
    await Promise.all([a.ready(), b.ready()]);
    await until(() => a.nodes.length === 1 && b.nodes.length === 1, 3000, 'the nodes to meet');
    await connect(a, '?user=ann');
    await connect(b, '?user=bob');
    await connect(a, '?user=cid');
    await connect(b, '?user=cid'); // a second tab of cid
    await until(() => b.presenceStats('room').connections === 4, 3000, 'four connections');

    // A node joins the cluster: what is already there is no news to it.
    const { node: c } = start(bus, 'c');
    const told = new Map<ScaledWebSocketServer, string[]>([
      [a, []],
      [b, []],
      [c, []],
    ]);
    for (const [node, heard] of told) {
      node.on('presence', (_room: string, change: PresenceChange) =>
        heard.push(`${change.type} ${change.user}`),
      );
    }
    await c.ready();
    await until(
      async () => (await c.presence('room')).connections === 4,
      3000,
      'c to list everyone',
    );
    expect(await users(c)).toEqual(['ann', 'bob', 'cid']);
    expect((await c.presence('room')).missing).toEqual([]);

    // What changes afterwards is told on every node alike.
    const dan = await connect(a, '?user=dan');
    await until(() => told.get(c)!.includes('join dan'), 3000, 'c to hear of dan');
    dan.close(1000);
    await until(() => told.get(c)!.includes('leave dan'), 3000, 'c to hear dan leave');

    // A node that comes up later still tells who is new to the cluster, on every node.
    const { node: d } = start(bus, 'd');
    told.set(d, []);
    d.on('presence', (_room: string, change: PresenceChange) =>
      told.get(d)!.push(`${change.type} ${change.user}`),
    );
    await d.ready();
    await until(() => c.nodes.length === 3, 3000, 'c to see d');
    await connect(d, '?user=eve');
    await until(
      () => [...told.values()].every((heard) => heard.includes('join eve')),
      3000,
      'every node to hear of eve',
    );
    expect(told.get(a)).toEqual(['join dan', 'leave dan', 'join eve']);
    expect(told.get(b)).toEqual(['join dan', 'leave dan', 'join eve']);
    expect(told.get(c)).toEqual(['join dan', 'leave dan', 'join eve']);
    expect(told.get(d)).toEqual(['join eve']);
  });

  it('a node started while another is paused (alive to the others) lists its members with no join once it goes on', async () => {
    const bus = new MemoryBus();
    const paused = new PausableBroker({ bus });
    const { node: a } = start(bus, 'a', paused, 1000);
    const { node: b } = start(bus, 'b', undefined, 1000);
    await Promise.all([a.ready(), b.ready()]);
    await until(() => a.nodes.length === 1 && b.nodes.length === 1, 3000, 'the nodes to meet');
    await connect(a, '?user=ann');
    await until(() => b.presenceStats('room').users === 1, 3000, 'ann on b');

    // Paused for less than the nodes' timeout: still alive to b, and unknown to c.
    paused.pause();
    const { node: c } = start(bus, 'c', undefined, 1000);
    const heard: string[] = [];
    c.on('presence', (_room: string, change: PresenceChange) =>
      heard.push(`${change.type} ${change.user}`),
    );
    await c.ready();
    await delay(600);
    expect(b.nodes).toEqual(['a', 'c']);
    paused.resume();
    await until(async () => (await users(c)).join() === 'ann', 3000, 'c to list ann');
    await connect(b, '?user=bob');
    await until(() => heard.length > 0, 3000, 'c to hear of bob');
    expect(heard).toEqual(['join bob']);
  });

  it('lists a member without info when the info hook throws or returns too much, and reports it', async () => {
    const node = new ScaledWebSocketServer<unknown>({
      port: 0,
      host: '127.0.0.1',
      presence: [
        {
          rooms: 'room',
          info: (client) => {
            const user = (client.identity as { id?: string }).id;
            if (user === 'thrower') throw new Error('no info for you');
            return user === 'big' ? { text: 'x'.repeat(2000) } : { user };
          },
        },
      ],
      authenticate: (request) => ({
        id: new URL(request.url ?? '/', 'http://x').searchParams.get('user'),
      }),
    });
    nodes.push(node);
    const errors: Error[] = [];
    node.on('error', (error) => errors.push(error));
    node.on('connection', (client) => void client.join('room'));
    await node.ready();
    for (const user of ['ann', 'thrower', 'big']) await connect(node, `?user=${user}`);
    await until(() => node.presenceStats('room').users === 3, 3000, 'three members');
    const { members } = await node.presence('room');
    expect(members.map((m) => [m.user, m.info])).toEqual([
      ['ann', { user: 'ann' }],
      ['big', undefined],
      ['thrower', undefined],
    ]);
    expect(errors.map((error) => (error as { code?: string }).code)).toEqual([
      'HANDLER_FAILED',
      'HANDLER_FAILED',
    ]);
  });

  it('refuses a grace period longer than the sessions live', async () => {
    const stateStore = new MemoryStateStore({ ttlMs: 1000 });
    const options = { noServer: true, stateStore, sessionSecret: 'a-secret' } as const;
    expect(
      () =>
        new ScaledWebSocketServer({
          ...options,
          presence: [{ rooms: '*' }],
          presenceGraceMs: 5000,
        }),
    ).toThrow(InvalidOptionError);
    await stateStore.close();
  });
});
