import {
  CloseCode,
  type History,
  type HistoryEntry,
  type HistoryPosition,
  InvalidArgumentError,
  MemoryBroker,
  MemoryHistory,
  MemoryStateStore,
  type ResumeInfo,
} from '@wscale/core';
import { delay, until } from '@wscale/core/testing';
import { settle } from '@wscale/test-support';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { Opaque, UserId } from './helpers/ids.js';
import { TestCluster } from './helpers/nodes.js';
import { recordedClose, V1Peer } from './helpers/v1-client.js';

const cluster = new TestCluster();
const stores: Array<{ close(): Promise<void> }> = [];
afterEach(async () => {
  await cluster.closeAll();
  for (const store of stores.splice(0)) await store.close();
});

/** Nodes sharing one session store, nothing else; `options` starts more of them. */
async function sharingStore(count: number) {
  const store = new MemoryStateStore({ ttlMs: 60_000 });
  stores.push(store);
  const options = { stateStore: store, sessionSecret: 'a-test-secret-of-enough-bytes' };
  return { store, nodes: await cluster.start(count, options), options };
}

/** Nodes sharing one session store and one history for rooms named `chat*`. */
async function startNodes(
  count: number,
  options: { ttlMs?: number; maxEntries?: number; broker?: () => MemoryBroker } = {},
) {
  const stateStore = new MemoryStateStore({ ttlMs: options.ttlMs ?? 60_000 });
  const history = new MemoryHistory({ maxEntries: options.maxEntries ?? 100 });
  stores.push(stateStore, history);
  const nodes = await cluster.start(count, {
    stateStore,
    sessionSecret: 'a-test-secret-of-enough-bytes',
    history: [{ rooms: 'chat*', store: history }],
    authorizeJoin: (_client, room) => room.startsWith('chat'),
    onRequest: (_client, data) => {
      if (data === 'boom') throw new Error('handler failed on purpose');
      return typeof data === 'string' ? data.toUpperCase() : Buffer.from([...data].reverse());
    },
  });
  for (const node of nodes) {
    node.on('connection', (client) => {
      if (client.v1) void client.join('chat');
    });
  }
  return nodes;
}

describe('wscale.v1 sessions', () => {
  it('welcomes a new session, joins a history room and numbers its messages', async () => {
    const [a] = await startNodes(1);
    const { peer, welcome } = await V1Peer.connect(a!);
    expect(welcome).toMatchObject({ t: 'welcome', resumed: false, reason: 'new', node: 'node-1' });
    expect(welcome.session).toMatch(/^v2\./);
    const joined = await peer.next('joined');
    expect(joined).toMatchObject({ r: 'chat', o: 0 });
    await a!.to('chat').send('one');
    await a!.to('chat').send(Buffer.from([7, 8]));
    await until(() => peer.all('msg').length === 2, 2000, 'two messages');
    const [text, binary] = peer.received.filter((entry) => entry.message.t === 'msg');
    expect(text!.message).toEqual({ t: 'msg', r: 'chat', o: 1, e: joined.e, d: 'one' });
    expect([...binary!.binary!]).toEqual([7, 8]);
    expect(binary!.message).toMatchObject({ r: 'chat', o: 2 });
  });

  it('resumes on another node with rooms, data and exactly the missed messages', async () => {
    const [a, b] = await startNodes(2);
    const resumes: ResumeInfo[] = [];
    b!.on('connection', (client) => {
      if (!client.resumed) return;
      resumes.push(client.recovery!);
      client.send(`welcome back ${(client.data as { name?: string }).name}`);
    });
    a!.on('connection', (client) => {
      client.data = { name: 'ada' };
    });
    const first = await V1Peer.connect(a!);
    const joined = await first.peer.next('joined');
    for (const n of [1, 2, 3]) await a!.to('chat').send(`m${n}`);
    await until(() => first.peer.all('msg').length === 3, 2000, 'three messages');
    const last = first.peer.all('msg').at(-1)!;
    first.peer.ws.terminate();
    await until(() => a!.clients.size === 0, 2000, 'node a to see the drop');

    for (const n of [4, 5, 6]) await b!.to('chat').send(`m${n}`);
    const second = await V1Peer.connect(b!, {
      session: first.welcome.session,
      rooms: { chat: { o: last.o!, e: last.e! } },
    });
    expect(second.welcome).toMatchObject({
      resumed: true,
      client: first.welcome.client,
      node: 'node-2',
      rooms: { chat: { recovered: true, o: 6, e: joined.e } },
    });
    await a!.to('chat').send('m7');
    await settle(() => second.peer.texts('chat').length >= 4, 2000, 'replay and live');
    expect(second.peer.texts('chat')).toEqual(['m4', 'm5', 'm6', 'm7']);
    const offsets = second.peer
      .all('msg')
      .filter((m) => m.r === 'chat')
      .map((m) => m.o);
    expect(offsets).toEqual([4, 5, 6, 7]);
    expect(second.peer.texts(undefined)).toEqual(['welcome back ada']);
    expect(resumes).toEqual([
      { recovered: true, rooms: { chat: { recovered: true, o: 6, e: joined.e } } },
    ]);
    expect(b!.clients.get(first.welcome.client)?.rooms.has('chat')).toBe(true);
  });

  it('replays a gap larger than the socket takes at once, in order, then what follows it live', async () => {
    const stateStore = new MemoryStateStore({ ttlMs: 60_000 });
    const history = new MemoryHistory({ maxEntries: 15_000 });
    stores.push(stateStore, history);
    const [a] = await cluster.start(1, {
      stateStore,
      sessionSecret: 'a-test-secret-of-enough-bytes',
      history: [{ rooms: 'chat', store: history }],
      maxReplayBytes: 32 * 1024 * 1024,
      maxReplayEntries: 15_000,
      maxBufferedBytes: 64 * 1024 * 1024,
    });
    a!.on('connection', (client) => {
      if (client.v1) void client.join('chat');
    });
    const first = await V1Peer.connect(a!);
    const joined = await first.peer.next('joined');
    first.peer.ws.terminate();
    await until(() => a!.clients.size === 0, 2000, 'the drop');
    // 15 MB missed: the replay goes out behind the welcome as fast as the socket drains.
    const text = (i: number) => `m${i}`.padEnd(1000, '.');
    for (let i = 0; i < 15_000; i++) await a!.to('chat').send(text(i));
    const second = await V1Peer.connect(a!, {
      session: first.welcome.session,
      rooms: { chat: { o: joined.o!, e: joined.e! } },
    });
    expect(second.welcome.rooms.chat).toMatchObject({ recovered: true });
    await a!.to('chat').send('live');
    await until(() => second.peer.texts('chat').length === 15_001, 15_000, 'replay and live');
    expect(second.peer.texts('chat')).toEqual([
      ...Array.from({ length: 15_000 }, (_, i) => text(i)),
      'live',
    ]);
  });

  it('says recovered: false when the gap is older than the history keeps', async () => {
    const [a] = await startNodes(1, { maxEntries: 3 });
    const first = await V1Peer.connect(a!);
    const joined = await first.peer.next('joined');
    first.peer.ws.terminate();
    await until(() => a!.clients.size === 0, 2000, 'the drop');
    for (let n = 1; n <= 6; n++) await a!.to('chat').send(`m${n}`);
    const second = await V1Peer.connect(a!, {
      session: first.welcome.session,
      rooms: { chat: { o: joined.o!, e: joined.e! } },
    });
    expect(second.welcome.resumed).toBe(true);
    expect(second.welcome.rooms.chat).toEqual({
      recovered: false,
      reason: 'too-old',
      o: 6,
      e: joined.e,
    });
    await a!.to('chat').send('m7');
    await second.peer.next('msg');
    expect(second.peer.texts('chat')).toEqual(['m7']);
  });

  it("says recovered: false with epoch-changed when the room's log was lost and restarted, and replays what the new log holds from its start", async () => {
    // Node b's history is a new log for the same room, as after a history store lost its data.
    const stateStore = new MemoryStateStore();
    const [before, after] = [new MemoryHistory(), new MemoryHistory()];
    stores.push(stateStore, before, after);
    const options = { stateStore, sessionSecret: 'a-test-secret-of-enough-bytes' };
    const [a] = await cluster.start(1, { ...options, history: [{ rooms: 'chat', store: before }] });
    const [b] = await cluster.start(1, { ...options, history: [{ rooms: 'chat', store: after }] });
    for (const node of [a!, b!]) node.on('connection', (client) => void client.join('chat'));
    const first = await V1Peer.connect(a!);
    const joined = await first.peer.next('joined');
    await a!.to('chat').send('m1');
    const seen = await first.peer.next('msg');
    first.peer.ws.terminate();
    await until(() => a!.clients.size === 0, 2000, 'the drop');
    await b!.to('chat').send('in the new log');
    const second = await V1Peer.connect(b!, {
      session: first.welcome.session,
      rooms: { chat: { o: seen.o!, e: seen.e! } },
    });
    const now = second.welcome.rooms.chat!;
    expect(now).toMatchObject({ recovered: false, reason: 'epoch-changed', o: 0 });
    expect(now.e).not.toBe(joined.e);
    // The client starts over at the new log's start, as the members that stayed did: what it
    // holds is replayed, and what comes next is delivered.
    await b!.to('chat').send('next');
    await settle(() => second.peer.texts('chat').length >= 2, 2000, 'the next message');
    expect(second.peer.texts('chat')).toEqual(['in the new log', 'next']);
    expect(second.peer.all('msg').map((message) => message.o)).toEqual([1, 2]);
  });

  it('says recovered: false to a client ahead of a log that went back in its epoch', async () => {
    const stateStore = new MemoryStateStore();
    const history = new RewindableHistory();
    stores.push(stateStore);
    const options = {
      stateStore,
      sessionSecret: 'a-test-secret-of-enough-bytes',
      history: [{ rooms: 'chat', store: history }],
    };
    const [a, b] = await cluster.start(2, options);
    for (const node of [a!, b!]) node.on('connection', (client) => void client.join('chat'));
    const first = await V1Peer.connect(a!);
    await first.peer.next('joined');
    for (const n of [1, 2, 3]) await a!.to('chat').send(`m${n}`);
    await settle(() => first.peer.texts('chat').length >= 3, 2000, 'three messages');
    const seen = first.peer.all('msg').at(-1)!;
    first.peer.ws.terminate();
    await until(() => a!.clients.size === 0, 2000, 'the drop');
    history.rewindTo(1); // restored from a copy taken after m1: m2 and m3 are gone
    const second = await V1Peer.connect(b!, {
      session: first.welcome.session,
      rooms: { chat: { o: seen.o!, e: seen.e! } },
    });
    expect(second.welcome.rooms.chat).toMatchObject({
      recovered: false,
      reason: 'epoch-changed',
      o: 1,
    });
    // It starts over from there: the next message, at an offset it had seen, is delivered.
    await a!.to('chat').send('new 2');
    await settle(() => second.peer.texts('chat').length >= 1, 2000, 'the next message');
    expect(second.peer.texts('chat')).toEqual(['new 2']);
  });

  it('says recovered: false with no-history for a room that keeps no history', async () => {
    const [a, b] = await startNodes(2);
    const first = await V1Peer.connect(a!);
    const joined = await first.peer.next('joined');
    await a!.clients.get(first.welcome.client)!.join('plain');
    await first.peer.next('joined');
    first.peer.ws.terminate();
    await until(() => a!.clients.size === 0, 2000, 'the drop');
    await a!.to('plain').send('sent while away');
    await a!.to('chat').send('kept while away');
    const second = await V1Peer.connect(b!, {
      session: first.welcome.session,
      rooms: { chat: { o: joined.o!, e: joined.e! } },
    });
    expect(second.welcome.rooms).toEqual({
      chat: { recovered: true, o: 1, e: joined.e },
      plain: { recovered: false, reason: 'no-history' },
    });
    await a!.to('plain').send('live again');
    await settle(() => second.peer.texts('plain').length >= 1, 2000, 'live in plain');
    expect(second.peer.texts('plain')).toEqual(['live again']);
    expect(second.peer.texts('chat')).toEqual(['kept while away']);
  });

  it('never resumes from a tampered token or another identity, nor an expired session', async () => {
    const [a] = await startNodes(1, { ttlMs: 300 });
    const first = await V1Peer.connect(a!);
    const [head, id, signature] = first.welcome.session.split('.');
    const forged = `${head}.${id}.${signature!.slice(0, -2)}xx`;
    const tampered = await V1Peer.connect(a!, { session: forged });
    expect(tampered.welcome).toMatchObject({ resumed: false, reason: 'invalid-token' });
    expect(tampered.welcome.client).not.toBe(first.welcome.client);

    first.peer.ws.terminate();
    await until(() => a!.clients.size === 1, 2000, 'the drop');
    await delay(600);
    const late = await V1Peer.connect(a!, { session: first.welcome.session });
    expect(late.welcome).toMatchObject({ resumed: false, reason: 'expired' });
  });

  it('refuses a session to a different authenticated identity', async () => {
    const stateStore = new MemoryStateStore();
    stores.push(stateStore);
    const [a] = await cluster.start(1, {
      stateStore,
      sessionSecret: 'a-test-secret-of-enough-bytes',
      authenticate: (request) => ({ id: request.headers['x-user'] }),
    });
    const ada = await V1Peer.connect(a!, {}, { 'x-user': 'ada' });
    const eve = await V1Peer.connect(a!, { session: ada.welcome.session }, { 'x-user': 'eve' });
    expect(eve.welcome).toMatchObject({ resumed: false, reason: 'forbidden' });
    expect(a!.clients.has(ada.welcome.client)).toBe(true);
  });

  it('tells owners apart by an id that is an object, and by no id at all', async () => {
    const stateStore = new MemoryStateStore();
    stores.push(stateStore);
    const [a] = await cluster.start(1, {
      stateStore,
      sessionSecret: 'a-test-secret-of-enough-bytes',
      // An id that is an object (a tenant and a user) would have read "[object Object]" for all.
      authenticate: (request) => ({ id: { tenant: request.headers['x-tenant'], user: 1 } }),
    });
    const ada = await V1Peer.connect(a!, {}, { 'x-tenant': 'acme' });
    const eve = await V1Peer.connect(a!, { session: ada.welcome.session }, { 'x-tenant': 'evil' });
    expect(eve.welcome).toMatchObject({ resumed: false, reason: 'forbidden' });
    ada.peer.ws.terminate();
    const back = await V1Peer.connect(a!, { session: ada.welcome.session }, { 'x-tenant': 'acme' });
    expect(back.welcome.resumed).toBe(true);
  });

  it('names an owner by its id class toString, and names none for an id it cannot tell apart', async () => {
    const stateStore = new MemoryStateStore();
    stores.push(stateStore);
    const errors: Error[] = [];
    const [a] = await cluster.start(1, {
      stateStore,
      sessionSecret: 'a-test-secret-of-enough-bytes',
      authenticate: (request) => {
        const user = String(request.headers['x-user']);
        return { id: request.headers['x-opaque'] ? new Opaque(user) : new UserId(user) };
      },
    });
    a!.on('error', (error) => errors.push(error));
    const ada = await V1Peer.connect(a!, {}, { 'x-user': 'ada' });
    const eve = await V1Peer.connect(a!, { session: ada.welcome.session }, { 'x-user': 'eve' });
    expect(eve.welcome).toMatchObject({ resumed: false, reason: 'forbidden' });
    // Two such ids would read alike ("{}"): no session is opened on it, and the node says why.
    const opaque = new V1Peer(a!, { 'x-user': 'ada', 'x-opaque': '1' });
    await opaque.opened;
    opaque.send({ t: 'hello' });
    let close: { code: number } | undefined;
    void opaque.closed.then((value) => {
      close = value;
    });
    await until(() => close !== undefined, 3000, 'the hello to be refused');
    expect(close!.code).toBe(CloseCode.InternalError);
    expect(errors.map((error) => error.message).join()).toMatch(/does not name its owner/);
  });

  it('keeps a connection opened after a takeover that a broker outage held back: a takeover closes only older ones', async () => {
    const [a, b] = await startNodes(2);
    const first = await V1Peer.connect(a!);
    // The broker goes down; the client comes back on node b while node a still holds its first
    // connection (half open): b's word to a waits in b's queue.
    cluster.bus.disconnect();
    const second = await V1Peer.connect(b!, { session: first.welcome.session });
    expect(second.welcome.resumed).toBe(true);
    // Then back on node a, a moment later, through a new connection, while the broker is still down.
    second.peer.ws.terminate();
    await until(() => b!.clients.size === 0, 2000, 'node b to see the drop');
    await delay(300);
    const third = await V1Peer.connect(a!, { session: first.welcome.session });
    expect(third.welcome.resumed).toBe(true);
    expect((await first.peer.closed).code).toBe(CloseCode.SessionTakenOver);
    // The broker is back: b's old word arrives, naming the first connection, not the third.
    cluster.bus.reconnect();
    await until(
      () => a!.brokerStatus === 'ready' && b!.brokerStatus === 'ready',
      2000,
      'the broker back',
    );
    await delay(200); // a wrong close would have come by now
    expect(third.peer.ws.readyState).toBe(third.peer.ws.OPEN);
    expect(a!.clients.get(first.welcome.client)).toBeDefined();
  });

  it('closes at once a connection welcomed while the store was down when the session resumes elsewhere, and keeps the newest through a broker outage too', async () => {
    const store = new (class extends MemoryStateStore {
      down = false;
      override get(key: string) {
        return this.down ? Promise.reject(new Error('the store is down')) : super.get(key);
      }
      override set(key: string, value: string, options?: { ifVersion?: string | null }) {
        return this.down
          ? Promise.reject(new Error('the store is down'))
          : super.set(key, value, options);
      }
    })({ ttlMs: 60_000 });
    stores.push(store);
    const [a, b, c] = await cluster.start(3, {
      stateStore: store,
      sessionSecret: 'a-test-secret-of-enough-bytes',
    });
    const first = await V1Peer.connect(a!);
    first.peer.ws.close(1000);
    await recordedClose(store, first.welcome.client);
    // Welcomed while the store is down: never recorded.
    store.down = true;
    const unrecorded = await V1Peer.connect(b!, { session: first.welcome.session });
    expect(unrecorded.welcome.reason).toBe('unavailable');
    store.down = false;
    // The client resumes on node c (the other connection half open): node b closes its own.
    await delay(300);
    const newest = await V1Peer.connect(c!, { session: first.welcome.session });
    expect(newest.welcome.resumed).toBe(true);
    let closed: { code: number } | undefined;
    void unrecorded.peer.closed.then((value) => {
      closed = value;
    });
    await until(() => closed !== undefined, 1000, 'the unrecorded connection to be closed');
    expect(closed!.code).toBe(CloseCode.SessionTakenOver);
    // Store and broker down together: a resume answered unavailable, then a newer connection;
    // when the broker is back, the held-back takeover closes nothing newer than itself.
    store.down = true;
    cluster.bus.disconnect();
    const during = await V1Peer.connect(a!, { session: first.welcome.session });
    expect(during.welcome.reason).toBe('unavailable');
    during.peer.ws.terminate();
    await delay(300);
    const last = await V1Peer.connect(b!, { session: first.welcome.session });
    store.down = false;
    cluster.bus.reconnect();
    await until(() => b!.brokerStatus === 'ready', 2000, 'the broker back');
    await delay(200); // a wrong close would have come by now
    expect(last.peer.ws.readyState).toBe(last.peer.ws.OPEN);
  });

  it('closes the older connection when a session is resumed twice', async () => {
    const [a, b] = await startNodes(2);
    const first = await V1Peer.connect(a!);
    const second = await V1Peer.connect(b!, { session: first.welcome.session });
    expect(second.welcome.resumed).toBe(true);
    expect((await first.peer.closed).code).toBe(CloseCode.SessionTakenOver);
    await b!.client(first.welcome.client).send('to the newest');
    await second.peer.next('msg');
  });

  it.each([
    ['ahead of', 2000],
    ['behind', -2000],
  ])(
    "closes the older connection of a new session when its holder's clock is %s the resuming node's",
    async (_, ahead) => {
      const [a, b] = await startNodes(2);
      // The new session's connection opens on node a, whose clock is `ahead` ms off node b's.
      const now = Date.now.bind(Date);
      const skewed = vi.spyOn(Date, 'now').mockImplementation(() => now() + ahead);
      const first = await V1Peer.connect(a!).finally(() => skewed.mockRestore());
      const second = await V1Peer.connect(b!, { session: first.welcome.session });
      expect(second.welcome.resumed).toBe(true);
      expect((await first.peer.closed).code).toBe(CloseCode.SessionTakenOver);
    },
  );

  it('a resume asks the holder it read to let go, not a connection that claimed the session since', async () => {
    const {
      store,
      nodes: [a, b],
      options,
    } = await sharingStore(2);
    // Node c's store answers late: what it read is old by the time it acts on it.
    let calls = 0;
    const late = new Proxy(store, {
      get: (target, key) => {
        const value = Reflect.get(target, key, target);
        if (typeof value !== 'function' || key === 'close') return value;
        return async (...args: unknown[]) => {
          calls++;
          const answer = await value.apply(target, args);
          await delay(400);
          return answer;
        };
      },
    });
    const [c] = await cluster.start(1, { ...options, stateStore: late });
    const first = await V1Peer.connect(a!);
    const { session } = first.welcome;
    // A resume on c reads the record (node a holds the session)...
    const slow = new V1Peer(c!);
    await slow.opened;
    slow.send({ t: 'hello', session });
    await until(() => calls === 1, 2000, 'its read');
    // ...while another resume of the token claims it on node b.
    const newest = await V1Peer.connect(b!, { session });
    expect(newest.welcome.resumed).toBe(true);
    let closed: { code: number } | undefined;
    void newest.peer.closed.then((value) => {
      closed = value;
    });
    // The resume on c asked node a to let go, and went away before its own claim.
    await until(() => calls >= 2, 3000, 'its takeover');
    slow.ws.terminate();
    await until(() => !c!.clients.has(first.welcome.client) && calls >= 3, 3000, 'its claim');
    await delay(200); // a wrong close would have come by now
    expect(closed?.code).not.toBe(CloseCode.SessionTakenOver);
  });

  it('welcomes a resume after the store went back to an older record, once the race of claims is over', async () => {
    const {
      store,
      nodes: [a, b],
    } = await sharingStore(2);
    const first = await V1Peer.connect(a!);
    const key = `wscale:session:${first.welcome.client}`;
    const copy = (await store.get(key))!.value;
    const second = await V1Peer.connect(b!, { session: first.welcome.session });
    const third = await V1Peer.connect(a!, { session: first.welcome.session });
    expect((await second.peer.closed).code).toBe(CloseCode.SessionTakenOver);
    third.peer.ws.terminate();
    await until(() => !a!.clients.has(first.welcome.client), 2000, 'the drop');
    // The store is restored from a copy made before those resumes: it counts claims from 0 again.
    await store.set(key, copy);
    // Resumes of one token at once race within moments; this one comes well after.
    await delay(5500);
    const back = await V1Peer.connect(a!, { session: first.welcome.session });
    expect(back.welcome).toMatchObject({ resumed: true, client: first.welcome.client });
    await b!.client(first.welcome.client).send('to the newest');
    await back.peer.next('msg');
  }, 15_000);

  for (const where of ['on the node that holds it', 'on another node'] as const) {
    it(`resumes ${where} after the store lost the record and the holder wrote it again: claims never go back`, async () => {
      const {
        store,
        nodes: [a, b],
      } = await sharingStore(2);
      const first = await V1Peer.connect(a!);
      const { client: id, session } = first.welcome;
      const key = `wscale:session:${id}`;
      // Resumed twice: the connection on node a holds the session's second claim.
      await V1Peer.connect(b!, { session });
      const holder = await V1Peer.connect(a!, { session });
      // The store loses every record (a Redis restarted without persistence); the holder saves its
      // session again with its next change.
      await store.delete(key);
      await a!.clients.get(id)!.join('room');
      await until(async () => (await store.get(key)) !== undefined, 2000, 'the record again');
      // Its client's socket died unseen, and the client resumes.
      const back = await V1Peer.connect(where === 'on another node' ? b! : a!, { session });
      expect(back.welcome).toMatchObject({ resumed: true, client: id });
      expect((await holder.peer.closed).code).toBe(CloseCode.SessionTakenOver);
    });
  }

  it('saves every change at once: one resume elsewhere finds rooms and data', async () => {
    const [a, b] = await startNodes(2);
    const first = await V1Peer.connect(a!);
    await first.peer.next('joined');
    const client = a!.clients.get(first.welcome.client)!;
    await client.join('chat-2');
    client.data = { score: 42 };
    // No close, no drain: node a never gets to save on the way out. (The same with a SIGKILLed
    // process: e2e/test/resume-across-nodes.test.ts.)
    first.peer.ws.terminate();
    const resumed: Array<{ data: object; rooms: string[] }> = [];
    b!.on('connection', (c) => {
      if (c.resumed) resumed.push({ data: c.data, rooms: [...c.rooms].sort() });
    });
    const second = await V1Peer.connect(b!, { session: first.welcome.session });
    expect(second.welcome).toMatchObject({ resumed: true, client: first.welcome.client });
    expect(resumed).toEqual([{ data: { score: 42 }, rooms: ['chat', 'chat-2'] }]);
  });

  const cycle: Record<string, unknown> = { score: 1 };
  cycle.self = cycle;
  it.each([
    ['a BigInt', { score: 1n }],
    ['a cycle', cycle],
  ])(
    'goes on saving after client.data could not be encoded (%s), and reports it',
    async (_, data) => {
      const [a, b] = await startNodes(2);
      const errors: unknown[] = [];
      a!.on('error', (error) => errors.push(error));
      const first = await V1Peer.connect(a!);
      await first.peer.next('joined');
      const client = a!.clients.get(first.welcome.client)!;
      client.data = data;
      await until(() => errors.length > 0, 2000, 'the encoding error');
      expect(errors[0]).toBeInstanceOf(InvalidArgumentError);
      client.data = { score: 42 };
      await client.saveData();
      first.peer.ws.terminate();
      const resumed: object[] = [];
      b!.on('connection', (c) => {
        if (c.resumed) resumed.push(c.data);
      });
      const second = await V1Peer.connect(b!, { session: first.welcome.session });
      expect(second.welcome.resumed).toBe(true);
      expect(resumed).toEqual([{ score: 42 }]);
    },
  );
});

/** A node's broker link that loses the next few room messages, as in a broker hiccup. */
class LossyBroker extends MemoryBroker {
  lose = 0;

  /** Goes down, as a broker that dropped this node's subscriber (or cut it off for being slow). */
  cut(): void {
    this.setStatus('down', new Error('cut off'));
  }

  restore(): void {
    this.setStatus('ready');
  }

  protected override deliver(topic: string, payload: Uint8Array): void {
    if (topic.includes(':room:') && this.lose > 0) {
      this.lose--;
      return;
    }
    super.deliver(topic, payload);
  }
}

/**
 * Two nodes on one history for `chat`: one sends, the other's broker loses what the test asks it
 * to; a client of the receiver in `chat`.
 */
async function lossyPair(history: History) {
  let lossy: LossyBroker | undefined;
  const [sender] = await cluster.start(1, { history: [{ rooms: 'chat', store: history }] });
  const [receiver] = await cluster.start(1, {
    history: [{ rooms: 'chat', store: history }],
    brokerFor: (bus) => {
      lossy = new LossyBroker({ bus });
      return lossy;
    },
  });
  receiver!.on('connection', (client) => void client.join('chat'));
  const { peer } = await V1Peer.connect(receiver!);
  return { sender: sender!, lossy: lossy!, peer };
}

/** A memory history whose position cannot be read while `down`, nor its entries while `readsDown`. */
class UnreachableHistory extends MemoryHistory {
  down = false;
  readsDown = false;
  reads = 0;

  override position(room: string) {
    return this.down
      ? Promise.reject(new Error('the history is unreachable'))
      : super.position(room);
  }

  override read(...args: Parameters<MemoryHistory['read']>) {
    this.reads++;
    return this.readsDown
      ? Promise.reject(new Error('the history cannot be read'))
      : super.read(...args);
  }
}

describe('a history that cannot be read', () => {
  it("refuses a client's join of a history room UNAVAILABLE, and once it is back joins it at the end, replaying nothing", async () => {
    const history = new UnreachableHistory();
    stores.push(history);
    for (const n of [1, 2, 3]) await history.append('chat', Buffer.from(`old ${n}`));
    history.down = true;
    const [a] = await cluster.start(1, {
      history: [{ rooms: 'chat', store: history }],
      authorizeJoin: () => true,
    });
    const { peer } = await V1Peer.connect(a!);
    peer.send({ t: 'join', id: 1, r: 'chat' });
    expect((await peer.next('ack')).error).toMatchObject({ code: 'UNAVAILABLE' });
    expect(peer.all('joined')).toEqual([]);
    history.down = false;
    peer.send({ t: 'join', id: 2, r: 'chat' });
    expect((await peer.next('ack', 1)).error).toBeUndefined();
    const position = await history.position('chat');
    expect(peer.all('joined')).toEqual([{ t: 'joined', r: 'chat', o: 3, e: position.epoch }]);
    await a!.to('chat').send('new');
    await until(() => peer.all('msg').length > 0, 2000, 'the new message');
    await delay(50); // an old one handed on after it would show up by now
    expect(peer.texts('chat')).toEqual(['new']);
  });
});

/** A node whose new sessions join the room `chat`, which keeps its history in `history`. */
async function chatNode(history: History) {
  const stateStore = new MemoryStateStore({ ttlMs: 60_000 });
  stores.push(history, stateStore);
  const [node] = await cluster.start(1, {
    stateStore,
    sessionSecret: 'a-test-secret-of-enough-bytes',
    history: [{ rooms: 'chat', store: history }],
  });
  node!.on('connection', (client) => {
    if (!client.resumed) void client.join('chat');
  });
  return node!;
}

describe('a history that could not be read at a resume', () => {
  it('closes a client that came back while its node could not read the room once it can, and the resume replays from its own place', async () => {
    const history = new UnreachableHistory();
    const a = await chatNode(history);
    const first = await V1Peer.connect(a);
    const joined = await first.peer.next('joined');
    for (const n of [1, 2, 3]) await a.to('chat').send(`m${n}`);
    await until(() => first.peer.texts('chat').length === 3, 2000, 'three messages');
    first.peer.ws.terminate();
    await until(() => a.clients.size === 0, 2000, 'the client to leave');
    // The room's stream went with its last member: the node knows nothing of it now.
    history.down = true;
    const rooms = { chat: { o: 3, e: joined.e! } };
    const back = await V1Peer.connect(a, { session: first.welcome.session, rooms });
    expect(back.welcome.rooms.chat).toEqual({ recovered: false, reason: 'unavailable' });
    history.down = false;
    await a.to('chat').send('m4');
    // Not resynced past m4 nor handed it live: closed, to resume from m3.
    expect((await back.peer.closed).code).toBe(1012);
    expect(back.peer.all('resync')).toEqual([]);
    expect(back.peer.texts('chat')).toEqual([]);
    const again = await V1Peer.connect(a, { session: first.welcome.session, rooms });
    expect(again.welcome.rooms.chat).toMatchObject({ recovered: true });
    await until(() => again.peer.texts('chat').length === 1, 2000, 'the replay');
    expect(again.peer.texts('chat')).toEqual(['m4']);
  });

  it('closes a client whose gap its node could not read once the history answers, before any message moves its place, and the resume replays the gap', async () => {
    const history = new UnreachableHistory();
    const a = await chatNode(history);
    // A client that stays keeps the room's stream on the node: it knows the room's position.
    const stays = await V1Peer.connect(a);
    await stays.peer.next('joined');
    const first = await V1Peer.connect(a);
    const joined = await first.peer.next('joined');
    await a.to('chat').send('m1');
    await until(() => first.peer.texts('chat').length === 1, 2000, 'the first message');
    first.peer.ws.terminate();
    await until(() => a.clients.size === 1, 2000, 'the client to leave');
    // Larger than what the node keeps of its recent messages: the gap is read from the history.
    const large = (n: number) => `m${n} ${'.'.repeat(100_000)}`;
    for (const n of [2, 3, 4]) await a.to('chat').send(large(n));
    history.readsDown = true;
    const rooms = { chat: { o: 1, e: joined.e! } };
    const back = await V1Peer.connect(a, { session: first.welcome.session, rooms });
    expect(back.welcome.rooms.chat).toMatchObject({ recovered: false, reason: 'unavailable' });
    history.readsDown = false;
    await a.to('chat').send('m5');
    // Not handed m5, which would move its place past the gap the history still holds.
    expect((await back.peer.closed).code).toBe(1012);
    expect(back.peer.texts('chat')).toEqual([]);
    expect(back.peer.all('resync')).toEqual([]);
    const again = await V1Peer.connect(a, { session: first.welcome.session, rooms });
    expect(again.welcome.rooms.chat).toMatchObject({ recovered: true });
    await until(() => again.peer.texts('chat').length === 4, 2000, 'the replay');
    expect(again.peer.texts('chat')).toEqual([large(2), large(3), large(4), 'm5']);
    expect(stays.peer.texts('chat')).toEqual(['m1', large(2), large(3), large(4), 'm5']);
  });
});

describe('histories that fail at a resume', () => {
  it('one that fails a read is not read again for its other rooms; another history is read as usual', async () => {
    const failing = new UnreachableHistory();
    const working = new MemoryHistory();
    const stateStore = new MemoryStateStore({ ttlMs: 60_000 });
    stores.push(failing, working, stateStore);
    const [a] = await cluster.start(1, {
      stateStore,
      sessionSecret: 'a-test-secret-of-enough-bytes',
      history: [
        { rooms: 'chat*', store: failing },
        { rooms: 'news', store: working },
      ],
    });
    const rooms = ['chat1', 'chat2', 'chat3', 'news'];
    a!.on('connection', (client) => {
      if (!client.resumed) for (const room of rooms) void client.join(room);
    });
    const first = await V1Peer.connect(a!);
    const positions: Record<string, { o: number; e: string }> = {};
    while (Object.keys(positions).length < rooms.length) {
      const joined = await first.peer.next('joined');
      positions[joined.r!] = { o: joined.o!, e: joined.e! };
    }
    first.peer.ws.terminate();
    await until(() => a!.clients.size === 0, 2000, 'the client to leave');
    // Its rooms are gone from the node with it: a resume reads their gaps from the histories.
    for (const room of rooms) for (const n of [1, 2]) await a!.to(room).send(`${room} ${n}`);
    failing.readsDown = true;
    failing.reads = 0;
    const back = await V1Peer.connect(a!, { session: first.welcome.session, rooms: positions });
    for (const room of ['chat1', 'chat2', 'chat3']) {
      expect(back.welcome.rooms[room]).toMatchObject({ recovered: false, reason: 'unavailable' });
    }
    expect(failing.reads).toBe(1);
    expect(back.welcome.rooms.news).toMatchObject({ recovered: true });
    await until(() => back.peer.texts('news').length === 2, 2000, 'the news replayed');
    expect(back.peer.texts('news')).toEqual(['news 1', 'news 2']);
  });
});

describe('wscale.v1 live repair', () => {
  it('fills a gap in what a node received from the history, in order', async () => {
    const history = new MemoryHistory();
    stores.push(history);
    const { sender, lossy, peer } = await lossyPair(history);
    await peer.next('joined');
    lossy.lose = 2;
    for (const n of [1, 2, 3, 4]) await sender.to('chat').send(`m${n}`);
    await settle(() => peer.texts('chat').length >= 4, 2000, 'four messages');
    expect(peer.texts('chat')).toEqual(['m1', 'm2', 'm3', 'm4']);
    expect(peer.all('msg').map((m) => m.o)).toEqual([1, 2, 3, 4]);
  });

  it('delivers what was published while the broker was down once it is back, with no later message to show the gap', async () => {
    const history = new MemoryHistory();
    stores.push(history);
    const { sender, lossy, peer } = await lossyPair(history);
    await peer.next('joined');
    await sender.to('chat').send('m1');
    await settle(() => peer.texts('chat').length === 1, 2000, 'm1');
    lossy.cut();
    lossy.lose = 2; // what the broker did not deliver while it was down
    for (const text of ['m2', 'm3']) await sender.to('chat').send(text);
    lossy.restore();
    await settle(() => peer.texts('chat').length >= 3, 2000, 'the messages sent meanwhile');
    expect(peer.texts('chat')).toEqual(['m1', 'm2', 'm3']);
    expect(peer.all('msg').map((m) => m.o)).toEqual([1, 2, 3]);
    expect(peer.all('resync')).toEqual([]);
  });

  it("fills the start of a restarted log from the history when the room's first messages in it were lost", async () => {
    const history = new RestartableHistory();
    stores.push(history);
    const { sender, lossy, peer } = await lossyPair(history);
    await peer.next('joined');
    await sender.to('chat').send('old');
    await peer.next('msg');
    history.restart(); // the store lost the room's log: the next message starts a new one
    lossy.lose = 2;
    for (const text of ['new 1', 'new 2', 'new 3']) await sender.to('chat').send(text);
    await settle(() => peer.texts('chat').length >= 4, 2000, 'the new log');
    const epoch = (await history.position('chat')).epoch;
    const after = peer.received
      .map((entry) => entry.message)
      .filter((message) => message.t === 'resync' || (message.t === 'msg' && message.d !== 'old'));
    expect(after).toEqual([
      { t: 'resync', r: 'chat', o: 0, e: epoch },
      { t: 'msg', r: 'chat', o: 1, e: epoch, d: 'new 1' },
      { t: 'msg', r: 'chat', o: 2, e: epoch, d: 'new 2' },
      { t: 'msg', r: 'chat', o: 3, e: epoch, d: 'new 3' },
    ]);
  });

  it('follows a log that went back in its epoch: the new messages at old offsets are delivered', async () => {
    const history = new RewindableHistory();
    const { sender, peer } = await lossyPair(history);
    await peer.next('joined');
    for (const n of [1, 2, 3, 4, 5, 6]) await sender.to('chat').send(`m${n}`);
    await settle(() => peer.texts('chat').length >= 6, 2000, 'six messages');
    history.rewindTo(3); // a store restored from a copy taken after m3: same epoch, offset 3
    for (const text of ['n4', 'n5', 'n6', 'n7']) await sender.to('chat').send(text);
    await settle(() => peer.texts('chat').includes('n7'), 2000, 'the last one');
    expect(peer.texts('chat').slice(6)).toEqual(['n4', 'n5', 'n6', 'n7']);
    expect(peer.all('resync')).toEqual([{ t: 'resync', r: 'chat', o: 3, e: history.epoch }]);
  });
});

describe('wscale.v1 resync', () => {
  it('sends resync when a gap can no longer be filled from the history, then goes on', async () => {
    // The history keeps two entries: by the time the receiver sees a gap, its start is gone.
    const history = new MemoryHistory({ maxEntries: 2 });
    stores.push(history);
    const { sender, lossy, peer } = await lossyPair(history);
    const joined = await peer.next('joined');
    lossy.lose = 3;
    for (const n of [1, 2, 3, 4, 5]) await sender.to('chat').send(`m${n}`);
    await settle(() => peer.texts('chat').length >= 2, 2000, 'the messages after the gap');
    // m1 and m2 are trimmed: the client is told it lost up to offset 3, then gets 4 and 5.
    const after = peer.received
      .map((entry) => entry.message)
      .filter((message) => message.t === 'resync' || message.t === 'msg');
    expect(after).toEqual([
      { t: 'resync', r: 'chat', o: 3, e: joined.e },
      { t: 'msg', r: 'chat', o: 4, e: joined.e, d: 'm4' },
      { t: 'msg', r: 'chat', o: 5, e: joined.e, d: 'm5' },
    ]);
  });
});

/**
 * One room's log in memory that can go back to an earlier offset in the same epoch, as a Redis
 * restarted from a snapshot older than its last appends does.
 */
class RewindableHistory implements History {
  readonly epoch = 'the-one-epoch';
  #entries: HistoryEntry[] = [];

  rewindTo(offset: number): void {
    this.#entries.length = offset;
  }

  async append(_room: string, payload: Uint8Array): Promise<HistoryPosition> {
    this.#entries.push({ offset: this.#entries.length + 1, payload });
    return { offset: this.#entries.length, epoch: this.epoch };
  }

  async read(_room: string, after: HistoryPosition, limit = Number.POSITIVE_INFINITY) {
    if (after.epoch !== this.epoch) {
      return {
        ok: false as const,
        reason: 'epoch-changed' as const,
        position: await this.position(),
      };
    }
    const entries = this.#entries.filter((entry) => entry.offset > after.offset).slice(0, limit);
    return { ok: true as const, epoch: this.epoch, entries };
  }

  async position(): Promise<HistoryPosition> {
    return { offset: this.#entries.length, epoch: this.epoch };
  }

  async close(): Promise<void> {}
}

/** A history that can lose everything it holds, as a store without persistence that restarted. */
class RestartableHistory extends MemoryHistory {
  restart(): void {
    // Closing a memory history drops every room's log: the next append starts a new one.
    void super.close();
  }
}

/** A history whose reads wait until the test lets them go, as a slow store would. */
class SlowHistory extends MemoryHistory {
  gate: Promise<void> | undefined;

  override async read(...args: Parameters<MemoryHistory['read']>) {
    await this.gate;
    return super.read(...args);
  }
}

describe('wscale.v1 resume under load', () => {
  it('replays a short gap from memory and never holds live messages behind a history read', async () => {
    const history = new SlowHistory();
    stores.push(history);
    const [a, b] = await cluster.start(2, {
      stateStore: new MemoryStateStore(),
      sessionSecret: 'a-test-secret-of-enough-bytes',
      history: [{ rooms: 'chat', store: history }],
    });
    for (const node of [a!, b!]) node.on('connection', (client) => void client.join('chat'));
    // Sent before anyone is in the room: only the history has it.
    await a!.to('chat').send('m0');
    // b stays in the room the whole time, so its stream and its memory of recent messages live.
    const watcher = await V1Peer.connect(b!);
    await watcher.peer.next('joined');
    const leaver = await V1Peer.connect(a!);
    const joined = await leaver.peer.next('joined');
    leaver.peer.ws.terminate();
    await until(() => a!.clients.size === 0, 2000, 'the drop');
    for (const n of [1, 2, 3]) await a!.to('chat').send(`m${n}`);
    await until(() => watcher.peer.texts('chat').length === 3, 2000, 'the watcher');

    // Every history read now hangs: a resume on b must be served from b's memory.
    let release = () => {};
    history.gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const back = await V1Peer.connect(b!, {
      session: leaver.welcome.session,
      rooms: { chat: { o: joined.o!, e: joined.e! } },
    });
    expect(back.welcome.rooms.chat).toMatchObject({ recovered: true, o: 4 });
    await until(() => back.peer.texts('chat').length === 3, 2000, 'the replay');

    // A resume from before b's stream began needs the (stuck) history; live traffic goes on.
    const old = await V1Peer.connect(a!);
    const oldJoined = await old.peer.next('joined');
    old.peer.ws.terminate();
    await until(() => a!.clients.size === 0, 2000, 'the second drop');
    const slow = V1Peer.connect(b!, {
      session: old.welcome.session,
      rooms: { chat: { o: 0, e: oldJoined.e! } },
    });
    await a!.to('chat').send('m4');
    await until(
      () => watcher.peer.texts('chat').length === 4,
      2000,
      'live delivery while a read hangs',
    );
    release();
    const late = await slow;
    expect(late.welcome.rooms.chat).toMatchObject({ recovered: true, o: 5 });
    await settle(() => late.peer.texts('chat').length >= 5, 2000, 'replay then live');
    expect(late.peer.texts('chat')).toEqual(['m0', 'm1', 'm2', 'm3', 'm4']);
    expect(back.peer.texts('chat')).toEqual(['m1', 'm2', 'm3', 'm4']);
  });
});

describe('wscale.v1 operations', () => {
  it('answers requests with the handler result, and a typed error when it throws', async () => {
    const [a] = await startNodes(1);
    const { peer } = await V1Peer.connect(a!);
    peer.send({ t: 'req', id: 1, d: 'hello' });
    expect(await peer.next('ack')).toEqual({ t: 'ack', id: 1, d: 'HELLO' });
    peer.send({ t: 'req', id: 2 }, Uint8Array.from([1, 2, 3]));
    await until(() => peer.all('ack').length === 2, 2000, 'binary ack');
    const binaryAck = peer.received.find((e) => e.message.t === 'ack' && e.binary !== undefined)!;
    expect(binaryAck.message).toEqual({ t: 'ack', id: 2 });
    expect([...binaryAck.binary!]).toEqual([3, 2, 1]);
    peer.send({ t: 'req', id: 3, d: 'boom' });
    await until(() => peer.all('ack').length === 3, 2000, 'error ack');
    expect(peer.all('ack')[2]).toMatchObject({ id: 3, error: { code: 'HANDLER_FAILED' } });
  });

  it('lets a client join only the rooms authorizeJoin allows', async () => {
    const [a, b] = await startNodes(2);
    const { peer } = await V1Peer.connect(a!);
    await peer.next('joined');
    peer.send({ t: 'join', id: 1, r: 'secret' });
    expect(await peer.next('ack')).toMatchObject({ id: 1, error: { code: 'FORBIDDEN' } });
    peer.send({ t: 'join', id: 2, r: 'chat-x' });
    expect(await peer.next('joined')).toMatchObject({ r: 'chat-x', o: 0 });
    expect(await peer.next('ack')).toEqual({ t: 'ack', id: 2 });
    await b!.to('chat-x').send('hi x');
    await peer.next('msg');
    expect(peer.texts('chat-x')).toEqual(['hi x']);
    peer.send({ t: 'leave', id: 3, r: 'chat-x' });
    await peer.next('left');
    expect(await peer.next('ack')).toEqual({ t: 'ack', id: 3 });
  });

  it('calls the hooks as plain functions: one written with `function` sees no `this`', async () => {
    const seen: unknown[] = [];
    const [a] = await cluster.start(1, {
      authorizeJoin: function (this: unknown) {
        seen.push(this);
        return true;
      },
      onRequest: function (this: unknown) {
        seen.push(this);
        return 'ok';
      },
      sessionOwner: function (this: unknown) {
        seen.push(this);
        return 'anyone';
      },
    });
    const { peer } = await V1Peer.connect(a!);
    peer.send({ t: 'join', id: 1, r: 'room' });
    expect(await peer.next('ack')).toEqual({ t: 'ack', id: 1 });
    peer.send({ t: 'req', id: 2, d: 'q' });
    expect(await peer.next('ack')).toEqual({ t: 'ack', id: 2, d: 'ok' });
    // Each is asked once here: the owner at the hello (the saves reuse it).
    expect(seen.length).toBe(3);
    expect(seen.every((self) => self === undefined)).toBe(true);
  });

  it('asks sessionOwner once per connection, however often its session is saved', async () => {
    const store = new MemoryStateStore();
    stores.push(store);
    const owners: unknown[] = [];
    const [a] = await cluster.start(1, {
      stateStore: store,
      sessionSecret: 'a-test-secret-of-enough-bytes',
      authenticate: (request) => ({ id: request.headers['x-user'] }),
      sessionOwner: (identity) => {
        owners.push(identity);
        return `user:${(identity as { id: string }).id}`;
      },
    });
    let saves: Promise<void>[] = [];
    a!.on('connection', (client) => {
      saves = [1, 2, 3].map((n) => {
        client.data = { n };
        return client.saveData();
      });
    });
    const { peer, welcome } = await V1Peer.connect(a!, {}, { 'x-user': 'ada' });
    await Promise.all(saves);
    for (const id of [1, 2]) {
      peer.send({ t: 'join', id, r: `room-${id}` });
      await peer.next('ack');
    }
    peer.ws.close();
    await recordedClose(store, welcome.client);
    const record = JSON.parse((await store.get(`wscale:session:${welcome.client}`))!.value);
    expect(record).toMatchObject({ owner: 'user:ada', data: { n: 3 }, live: false });
    expect(owners).toEqual([{ id: 'ada' }]);
  });

  it('delivers client messages to the application as text or bytes', async () => {
    const [a] = await startNodes(1);
    const got: Array<[string | Buffer, boolean]> = [];
    a!.on('connection', (client) =>
      client.on('message', (data, binary) => got.push([data, binary])),
    );
    const { peer } = await V1Peer.connect(a!);
    peer.send({ t: 'msg', d: 'text' });
    peer.send({ t: 'msg' }, Uint8Array.from([9]));
    await until(() => got.length === 2, 2000, 'two messages');
    expect(got[0]).toEqual(['text', false]);
    expect([...(got[1]![0] as Buffer)]).toEqual([9]);
    expect(got[1]![1]).toBe(true);
  });

  it('closes with 1007 on malformed frames, 1008 before hello, and answers unknown types', async () => {
    const [a] = await startNodes(1);
    const notJson = new V1Peer(a!);
    await notJson.opened;
    notJson.send({ t: 'hello' });
    await notJson.next('welcome');
    notJson.ws.send('{not json');
    expect((await notJson.closed).code).toBe(CloseCode.InvalidPayload);

    const overrun = (await V1Peer.connect(a!)).peer;
    overrun.ws.send(Uint8Array.from([0, 0, 1, 0, 123]));
    expect((await overrun.closed).code).toBe(CloseCode.InvalidPayload);

    const badField = (await V1Peer.connect(a!)).peer;
    badField.ws.send(JSON.stringify({ t: 'join', id: -1, r: 'chat' }));
    expect((await badField.closed).code).toBe(CloseCode.InvalidPayload);

    const rude = new V1Peer(a!);
    await rude.opened;
    rude.send({ t: 'msg', d: 'before hello' });
    expect((await rude.closed).code).toBe(CloseCode.PolicyViolation);

    const curious = (await V1Peer.connect(a!)).peer;
    curious.ws.send(JSON.stringify({ t: 'teleport' }));
    expect(await curious.next('error')).toMatchObject({ code: 'UNKNOWN_OP' });
    curious.send({ t: 'ping' });
    await curious.next('pong');
  });

  it('close() finishes when a client leaves while its session is being saved', async () => {
    // A store whose writes wait for a gate: close() is saving when the client goes away.
    let openGate = () => {};
    let gate: Promise<void> = Promise.resolve();
    class GatedStore extends MemoryStateStore {
      override async set(...args: Parameters<MemoryStateStore['set']>) {
        await gate;
        return super.set(...args);
      }
    }
    const stateStore = new GatedStore();
    stores.push(stateStore);
    const [a] = await cluster.start(1, {
      stateStore,
      sessionSecret: 'a-test-secret-of-enough-bytes',
    });
    const { peer } = await V1Peer.connect(a!);
    gate = new Promise((resolve) => {
      openGate = resolve;
    });
    const closing = a!.close();
    await delay(20); // close() is now waiting for the save
    peer.ws.close();
    await until(() => a!.clients.size === 0, 2000, 'the node to see the client go');
    openGate();
    await expect(
      Promise.race([closing.then(() => 'closed'), delay(3000).then(() => 'stuck')]),
    ).resolves.toBe('closed');
  });
});
