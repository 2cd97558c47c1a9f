/**
 * A `wscale.v1` client is told `joined` (or `left`) only once its session record says so: a node
 * killed right after cannot resume the client without a room it was told it joined, or in one it
 * was told it left. The session store here holds back the writes the test names until it lets
 * them through; the client checks what it was sent with a WebSocket ping, whose pong the node's
 * socket writes behind everything written before it.
 */
import { MemoryStateStore, type Version } from '@wscale/core';
import { until } from '@wscale/core/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { TestCluster } from './helpers/nodes.js';
import { V1Peer } from './helpers/v1-client.js';

/** A memory store whose writes matching `holds` wait until {@link GatedStore.open}. */
class GatedStore extends MemoryStateStore {
  holds: (value: string) => boolean = () => false;
  /** Writes waiting at the gate. */
  readonly waiting: Array<() => void> = [];
  /** The value of each key as last written through (not waiting). */
  readonly written = new Map<string, string>();

  override async set(
    key: string,
    value: string,
    options?: { ifVersion?: Version | null },
  ): Promise<Version | undefined> {
    if (this.holds(value)) await new Promise<void>((resolve) => this.waiting.push(resolve));
    const version = await super.set(key, value, options);
    if (version !== undefined) this.written.set(key, value);
    return version;
  }

  /** Lets the waiting writes through, and the ones after them. */
  open(): void {
    this.holds = () => false;
    for (const resolve of this.waiting.splice(0)) resolve();
  }

  /** Whether the last write of any session record names `room`. */
  recorded(room: string): boolean {
    return [...this.written.values()].some((value) => value.includes(JSON.stringify(room)));
  }
}

const ROOM = 'lobby';
const cluster = new TestCluster();
const stores: GatedStore[] = [];
afterEach(async () => {
  // A node saves its sessions as it closes: a write still held would hold the close.
  for (const store of stores.splice(0)) store.open();
  await cluster.closeAll();
});

async function startNode(store: GatedStore) {
  stores.push(store);
  const [node] = await cluster.start(1, {
    stateStore: store,
    sessionSecret: 'a-secret-of-enough-bytes!',
    authorizeJoin: () => true,
  });
  return node!;
}

/**
 * Waits until the store holds a session write back, then checks that the peer was sent no `type`
 * frame meanwhile: after a WebSocket ping's pong, which the node's socket writes behind
 * everything written before it.
 */
async function notToldWhileSaving(store: GatedStore, peer: V1Peer, type: 'joined' | 'left') {
  await until(() => store.waiting.length > 0, 3000, 'a session write held');
  await new Promise<void>((resolve) => {
    peer.ws.once('pong', () => resolve());
    peer.ws.ping();
  });
  expect(peer.all(type)).toEqual([]);
}

describe('joined and left, once saved', () => {
  it("a server's client.join(): joined only after the session has the room", async () => {
    const store = new GatedStore({ ttlMs: 60_000 });
    const node = await startNode(store);
    store.holds = (value) => value.includes(JSON.stringify(ROOM));
    node.on('connection', (client) => void client.join(ROOM));
    const { peer } = await V1Peer.connect(node);
    await notToldWhileSaving(store, peer, 'joined');

    store.open();
    const joined = await peer.next('joined');
    expect(joined.r).toBe(ROOM);
    expect(store.recorded(ROOM)).toBe(true);
  });

  it("a client's own join: joined only after the session has the room, then its ack", async () => {
    const store = new GatedStore({ ttlMs: 60_000 });
    const node = await startNode(store);
    const { peer } = await V1Peer.connect(node);
    store.holds = (value) => value.includes(JSON.stringify(ROOM));
    peer.send({ t: 'join', id: 1, r: ROOM });
    await notToldWhileSaving(store, peer, 'joined');

    store.open();
    await peer.next('joined');
    expect(store.recorded(ROOM)).toBe(true);
    const types = peer.received.map((entry) => entry.message.t);
    expect(types.indexOf('joined')).toBeLessThan(types.indexOf('ack'));
  });

  it('left only after the session no longer has the room', async () => {
    const store = new GatedStore({ ttlMs: 60_000 });
    const node = await startNode(store);
    node.on('connection', (client) => void client.join(ROOM));
    const { peer } = await V1Peer.connect(node);
    await peer.next('joined');
    await until(() => store.recorded(ROOM), 3000, 'the join saved');

    store.holds = (value) => !value.includes(JSON.stringify(ROOM));
    for (const client of node.clients.values()) void client.leave(ROOM);
    await notToldWhileSaving(store, peer, 'left');

    store.open();
    await peer.next('left');
    expect(store.recorded(ROOM)).toBe(false);
  });

  it('a store that does not answer holds the client back one second, not until it times out', async () => {
    const store = new GatedStore({ ttlMs: 60_000 });
    const node = await startNode(store);
    store.holds = (value) => value.includes(JSON.stringify(ROOM));
    node.on('connection', (client) => {
      void client.join(ROOM);
      client.send('hello');
    });
    const { peer } = await V1Peer.connect(node);
    await until(() => store.waiting.length > 0, 3000, 'the join to be saved');
    // The store never answers here: the frames go on after the hold, not never.
    await peer.next('joined', 5000);
    await until(() => peer.texts().includes('hello'), 3000, 'the message sent after the join');
    expect(store.recorded(ROOM)).toBe(false);
    store.open();
  });
});
