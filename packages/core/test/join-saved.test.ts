/**
 * A `wscale.v1` client is told `joined` (or `left`) only once its session record says so: a node
 * killed right after cannot resume the client without a room it was told it joined, or in one it
 * was told it left. The session store here holds back the writes the test names at a gate; the
 * client checks what it was sent with a WebSocket ping, whose pong the node's socket writes
 * behind everything written before it.
 */
import { MemoryStateStore, StateStoreError, type Version } from '@wscale/core';
import { until } from '@wscale/core/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { TestCluster } from './helpers/nodes.js';
import { V1Peer } from './helpers/v1-client.js';
import { Gate } from './unit/gate.js';

/** A memory store whose writes matching `holds` wait at `gate`, or fail while `down`. */
class GatedStore extends MemoryStateStore {
  readonly gate = new Gate();
  holds: (value: string) => boolean = () => false;
  down = false;

  override async set(
    key: string,
    value: string,
    options?: { ifVersion?: Version | null },
  ): Promise<Version | undefined> {
    if (this.down) throw new StateStoreError('the store is down');
    if (this.holds(value)) await this.gate.pass();
    return super.set(key, value, options);
  }

  /** Whether the stored session of client `id` names `room`. */
  async recorded(id: string, room: string): Promise<boolean> {
    const record = await this.get(`wscale:session:${id}`);
    return record?.value.includes(JSON.stringify(room)) ?? false;
  }
}

const ROOM = 'lobby';
const names = (room: string) => (value: string) => value.includes(JSON.stringify(room));
const cluster = new TestCluster();
/** Gates still held when a test ends: a node saves its sessions as it closes. */
const opened: Array<() => void> = [];
afterEach(async () => {
  for (const open of opened.splice(0)) open();
  await cluster.closeAll();
});

async function startNodes(store: GatedStore, count = 1) {
  return cluster.start(count, {
    stateStore: store,
    sessionSecret: 'a-secret-of-enough-bytes!',
    authorizeJoin: () => true,
  });
}

/** Holds the store's writes that `holds` names from now on; the function lets them through. */
function holdWrites(store: GatedStore, holds: (value: string) => boolean): () => void {
  store.holds = holds;
  const open = store.gate.hold();
  opened.push(open);
  return open;
}

/**
 * Waits until the store holds a session write back, then checks that the peer was sent no `type`
 * frame meanwhile (after a ping's pong: everything written before it has arrived).
 */
async function notToldWhileSaving(store: GatedStore, peer: V1Peer, type: 'joined' | 'left') {
  await until(() => store.gate.waiting > 0, 3000, 'a session write held');
  await new Promise<void>((resolve) => {
    peer.ws.once('pong', () => resolve());
    peer.ws.ping();
  });
  expect(peer.all(type)).toEqual([]);
}

describe('joined and left, once saved', () => {
  it("a server's client.join(): joined only after the session has the room", async () => {
    const store = new GatedStore({ ttlMs: 60_000 });
    const [node] = await startNodes(store);
    const open = holdWrites(store, names(ROOM));
    node!.on('connection', (client) => void client.join(ROOM));
    const { peer, welcome } = await V1Peer.connect(node!);
    await notToldWhileSaving(store, peer, 'joined');

    open();
    const joined = await peer.next('joined');
    expect(joined.r).toBe(ROOM);
    expect(await store.recorded(welcome.client, ROOM)).toBe(true);
  });

  it("a client's own join: joined only after the session has the room, then its ack", async () => {
    const store = new GatedStore({ ttlMs: 60_000 });
    const [node] = await startNodes(store);
    const { peer, welcome } = await V1Peer.connect(node!);
    const open = holdWrites(store, names(ROOM));
    peer.send({ t: 'join', id: 1, r: ROOM });
    await notToldWhileSaving(store, peer, 'joined');

    open();
    await peer.next('joined');
    expect(await store.recorded(welcome.client, ROOM)).toBe(true);
    const types = peer.received.map((entry) => entry.message.t);
    expect(types.indexOf('joined')).toBeLessThan(types.indexOf('ack'));
  });

  it('left only after the session no longer has the room', async () => {
    const store = new GatedStore({ ttlMs: 60_000 });
    const [node] = await startNodes(store);
    node!.on('connection', (client) => void client.join(ROOM));
    const { peer, welcome } = await V1Peer.connect(node!);
    await peer.next('joined');
    await until(() => store.recorded(welcome.client, ROOM), 3000, 'the join saved');

    const open = holdWrites(store, (value) => !names(ROOM)(value));
    for (const client of node!.clients.values()) void client.leave(ROOM);
    await notToldWhileSaving(store, peer, 'left');

    open();
    await peer.next('left');
    expect(await store.recorded(welcome.client, ROOM)).toBe(false);
  });

  it('after a resume on another node: a join there is told once saved too', async () => {
    const store = new GatedStore({ ttlMs: 60_000 });
    const [a, b] = await startNodes(store, 2);
    const first = await V1Peer.connect(a!);
    first.peer.ws.terminate();
    const open = holdWrites(store, names('second'));
    b!.on('connection', (client) => {
      if (client.resumed) void client.join('second');
    });
    const { peer, welcome } = await V1Peer.connect(b!, { session: first.welcome.session });
    expect(welcome.resumed).toBe(true);
    await notToldWhileSaving(store, peer, 'joined');

    open();
    expect((await peer.next('joined')).r).toBe('second');
    expect(await store.recorded(welcome.client, 'second')).toBe(true);
  });

  it('a store that does not answer holds the client back one second, not until it times out', async () => {
    const store = new GatedStore({ ttlMs: 60_000 });
    const [node] = await startNodes(store);
    holdWrites(store, names(ROOM));
    node!.on('connection', (client) => {
      void client.join(ROOM);
      client.send('hello');
    });
    const { peer, welcome } = await V1Peer.connect(node!);
    await until(() => store.gate.waiting > 0, 3000, 'the join to be saved');
    // The store never answers here: the frames go on after the hold, not never.
    await peer.next('joined', 5000);
    await until(() => peer.texts().includes('hello'), 3000, 'the message sent after the join');
    expect(await store.recorded(welcome.client, ROOM)).toBe(false);
  });

  it('a store that is down: joined at once, the save failed and reported', async () => {
    const store = new GatedStore({ ttlMs: 60_000 });
    const [node] = await startNodes(store);
    const errors: unknown[] = [];
    node!.on('error', (error) => errors.push(error));
    node!.on('connection', (client) => {
      store.down = true;
      void client.join(ROOM);
    });
    const { peer } = await V1Peer.connect(node!);
    // Well within the hold: a failed save lets the frames go as soon as it fails.
    await peer.next('joined', 900);
    await until(() => errors.some((error) => error instanceof StateStoreError), 3000, 'the report');
  });
});
