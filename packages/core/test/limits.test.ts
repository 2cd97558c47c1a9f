import { spawn } from 'node:child_process';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import {
  CloseCode,
  type History,
  InvalidArgumentError,
  LimitExceededError,
  MemoryHistory,
  MemoryStateStore,
  type ServerOptions,
} from '@wscale/core';
import { until } from '@wscale/core/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { TestCluster } from './helpers/nodes.js';
import { frame, json, RawSocket, upgradeStatus } from './helpers/raw-socket.js';
import { V1Peer } from './helpers/v1-client.js';

const cluster = new TestCluster();
const fixture = (name: string) => fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url));
/** Stores a test made, closed after it. */
const stores: Array<{ close(): Promise<void> }> = [];
afterEach(async () => {
  RawSocket.destroyAll();
  await cluster.closeAll();
  for (const store of stores.splice(0)) await store.close();
});

/** A node that keeps sessions, and the history of every room in `history`. */
function historyNode(history: History, options: Partial<ServerOptions> = {}) {
  const stateStore = new MemoryStateStore({ ttlMs: 60_000 });
  stores.push(history, stateStore);
  return node({
    stateStore,
    sessionSecret: 'a-test-secret-of-enough-bytes',
    history: [{ rooms: '*', store: history }],
    ...options,
  });
}

async function node(options: Partial<ServerOptions> = {}) {
  const [server] = await cluster.start(1, options);
  const errors: Error[] = [];
  server!.on('error', (error) => errors.push(error));
  return { server: server!, port: (server!.address() as AddressInfo).port, errors };
}

/** Writes `total` bytes of `chunk`s, waiting for the socket to drain, until `stop()` holds. */
async function flood(raw: RawSocket, chunk: Buffer, total: number, stop: () => boolean) {
  for (let sent = 0; sent < total && !stop() && !raw.ended; sent += chunk.length) {
    if (!raw.socket.write(chunk)) {
      await new Promise<void>((resolve) => {
        raw.socket.once('drain', resolve);
        raw.socket.once('close', resolve);
      });
    }
  }
}

/** A history that counts the payload bytes its reads return. */
function countingHistory() {
  /** Bytes read; reads under way now, and the most at once. */
  const read = { bytes: 0, now: 0, most: 0 };
  const history = new (class extends MemoryHistory {
    override async read(...args: Parameters<MemoryHistory['read']>) {
      read.most = Math.max(read.most, ++read.now);
      try {
        const result = await super.read(...args);
        if (result.ok) for (const entry of result.entries) read.bytes += entry.payload.length;
        return result;
      } finally {
        read.now--;
      }
    }
  })({ maxEntries: 1000 });
  return { read, history };
}

/** Joins rooms a, b and c (ids 1, 2, 3) and waits for their three acks. */
async function joinAbc(peer: V1Peer): Promise<void> {
  for (const [id, room] of ['a', 'b', 'c'].entries()) peer.send({ t: 'join', id: id + 1, r: room });
  await until(() => peer.all('ack').length === 3, 2000, 'three acks');
}

describe('per-client limits', () => {
  it('refuses a join past maxRoomsPerClient with LIMIT, and counts it', async () => {
    const { server } = await node({ authorizeJoin: () => true, maxRoomsPerClient: 2 });
    const { peer, welcome } = await V1Peer.connect(server);
    await joinAbc(peer);
    expect(peer.all('ack').find((ack) => ack.id === 3)).toMatchObject({ error: { code: 'LIMIT' } });
    expect([...server.clients.get(welcome.client)!.rooms].sort()).toEqual(['a', 'b']);
    expect(server.stats.limited.rooms).toBe(1);
  });

  it('counts only the rooms a client joined itself against maxRoomsPerClient: not its direct stream, nor the rooms the server put it in', async () => {
    const directHistory = new MemoryHistory();
    stores.push(directHistory);
    const { server } = await historyNode(new MemoryHistory(), {
      authorizeJoin: () => true,
      maxRoomsPerClient: 2,
      directHistory,
    });
    server.on('connection', (client) => {
      for (const room of ['s1', 's2', 's3']) void client.join(room);
    });
    const { peer, welcome } = await V1Peer.connect(server);
    const client = server.clients.get(welcome.client)!;
    await until(() => client.rooms.size === 3, 2000, 'the rooms the server joined it to');
    await joinAbc(peer);
    const acks = peer.all('ack').sort((x, y) => x.id - y.id);
    expect(acks.map((ack) => [ack.id, ack.error?.code])).toEqual([
      [1, undefined],
      [2, undefined],
      [3, 'LIMIT'],
    ]);
    expect([...client.rooms].sort()).toEqual(['a', 'b', 's1', 's2', 's3']);
  });

  it('answers BUSY past maxInFlightPerClient without calling the handler', async () => {
    let calls = 0;
    let release!: () => void;
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    const { server } = await node({
      maxInFlightPerClient: 2,
      onRequest: async () => {
        calls++;
        await held;
        return 'done';
      },
    });
    const { peer } = await V1Peer.connect(server);
    for (const id of [1, 2, 3]) peer.send({ t: 'req', id, d: 'x' });
    expect(await peer.next('ack')).toMatchObject({ id: 3, error: { code: 'BUSY' } });
    expect(calls).toBe(2);
    release();
    await until(() => peer.all('ack').length === 3, 2000, 'the held requests to be answered');
    expect(server.stats.limited.inFlight).toBe(1);
  });

  it('closes a client past maxOpsPerSecond with 1008, and counts it', async () => {
    const { server, port } = await node({ maxOpsPerSecond: 20 });
    const raw = await RawSocket.open(port);
    raw.write(json({ t: 'hello' }));
    await raw.next('welcome');
    raw.write(Buffer.concat(Array.from({ length: 100 }, () => json({ t: 'ping' }))));
    expect((await raw.closeFrame()).code).toBe(CloseCode.PolicyViolation);
    // The bucket holds two seconds' worth: 40 pass, the rest close the connection.
    const pongs = raw.messages().filter((m) => m.t === 'pong').length;
    expect(pongs).toBeGreaterThanOrEqual(40);
    expect(pongs).toBeLessThan(45);
    expect(server.stats.limited.rate).toBe(1);
  });

  /** Floods a node with empty control frames past `maxOpsPerSecond`; resolves with the close. */
  async function controlFlood(opcode: number) {
    const { server, port } = await node({ maxOpsPerSecond: 20 });
    const raw = await RawSocket.open(port);
    raw.write(json({ t: 'hello' }));
    await raw.next('welcome');
    raw.write(Buffer.concat(Array.from({ length: 100 }, () => frame(opcode, Buffer.alloc(0)))));
    return { close: await raw.closeFrame(), limited: server.stats.limited.rate };
  }

  it('counts pong frames against maxOpsPerSecond: a pong flood is closed with 1008', async () => {
    expect(await controlFlood(0xa)).toMatchObject({
      close: { code: CloseCode.PolicyViolation },
      limited: 1,
    });
  });

  it('counts ping frames against maxOpsPerSecond: a ping flood is closed with 1008', async () => {
    expect(await controlFlood(0x9)).toMatchObject({
      close: { code: CloseCode.PolicyViolation },
      limited: 1,
    });
  });

  it('takes a message in 128 fragments and closes one in more with 1008 (a fragment costs heap)', async () => {
    const { port } = await node();
    const raw = await RawSocket.open(port);
    raw.write(json({ t: 'hello' }));
    await raw.next('welcome');
    const fragmented = (parts: number) => {
      const text = `{"t":"ping"}${' '.repeat(parts - 12)}`;
      return Buffer.concat(
        [...text].map((char, i) => {
          const part = frame(i === 0 ? 0x1 : 0x0, Buffer.from(char));
          if (i < parts - 1) part[0]! &= 0x7f; // not the last fragment
          return part;
        }),
      );
    };
    raw.write(fragmented(128));
    await raw.next('pong');
    raw.write(fragmented(129));
    expect((await raw.closeFrame()).code).toBe(CloseCode.PolicyViolation);
  });

  it('closes a compressed message in too many fragments with 1008, connection after connection, and stays up', async () => {
    const { server, port } = await node({ perMessageDeflate: true });
    // From another process, as a client across a network: a fragment past the limit arrives
    // while the one before it is still inflating.
    const flood = spawn(process.execPath, [fixture('fragment-flood.mjs'), String(port), '12'], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let output = '';
    flood.stdout.on('data', (chunk: Buffer) => {
      output += chunk;
    });
    const exit = await new Promise<number | null>((resolve) => flood.once('exit', resolve));
    expect(exit).toBe(0);
    expect(output.trim().split('\n')).toEqual(Array(12).fill(String(CloseCode.PolicyViolation)));
    await until(() => server.clients.size === 0, 2000, 'the connections to be gone');
    expect(await upgradeStatus(port)).toBe(101);
  });

  it('ends a closed connection whose peer never answers the close within closeTimeoutMs, freeing its place', async () => {
    const { server, port } = await node({ closeTimeoutMs: 300, maxConnections: 1 });
    const raw = await RawSocket.open(port);
    raw.write(json({ t: 'hello' }));
    const welcome = await raw.next('welcome');
    server.clients.get(welcome.client as string)!.close(CloseCode.Normal, 'bye');
    await raw.closeFrame(); // and never answered
    await until(() => raw.ended, 3000, 'the socket to be ended by the node');
    expect(await upgradeStatus(port)).toBe(101);
  });

  it('limits nothing with maxOpsPerSecond: Infinity', async () => {
    const { server, port } = await node({ maxOpsPerSecond: Number.POSITIVE_INFINITY });
    const raw = await RawSocket.open(port);
    raw.write(json({ t: 'hello' }));
    await raw.next('welcome');
    raw.write(Buffer.concat(Array.from({ length: 5000 }, () => json({ t: 'ping' }))));
    await until(
      () => raw.messages().filter((m) => m.t === 'pong').length === 5000,
      10_000,
      'a pong for every ping',
    );
    expect(server.stats.limited.rate).toBe(0);
    expect(server.clients.size).toBe(1);
  });

  it('keeps the saved data of a session when client.data grows past maxSessionDataBytes', async () => {
    const stateStore = new MemoryStateStore({ ttlMs: 60_000 });
    const { server, errors } = await node({
      stateStore,
      sessionSecret: 'a-test-secret-of-enough-bytes',
      maxSessionDataBytes: 100,
    });
    const { peer, welcome } = await V1Peer.connect(server);
    const client = server.clients.get(welcome.client)!;
    client.data = { name: 'small' };
    await until(
      async () =>
        (await stateStore.get(`wscale:session:${client.id}`))?.value.includes('small') ?? false,
      2000,
      'the small data to be saved',
    );
    client.data = { name: 'x'.repeat(200) };
    await until(() => errors.length > 0, 2000, 'the error');
    expect(errors[0]).toBeInstanceOf(LimitExceededError);
    expect(server.stats.limited.sessionData).toBeGreaterThan(0);
    peer.ws.terminate();
    await until(() => !server.clients.has(client.id), 2000, 'the client to leave');
    const back = await V1Peer.connect(server, { session: welcome.session });
    expect(back.welcome.resumed).toBe(true);
    expect(server.clients.get(client.id)!.data).toEqual({ name: 'small' });
    await stateStore.close();
  });
});

describe('session data JSON cannot encode', () => {
  it('reports a typed error and keeps the saved data when client.data cannot be saved as JSON', async () => {
    const stateStore = new MemoryStateStore({ ttlMs: 60_000 });
    const { server, errors } = await node({
      stateStore,
      sessionSecret: 'a-test-secret-of-enough-bytes',
    });
    const { peer, welcome } = await V1Peer.connect(server);
    const client = server.clients.get(welcome.client)!;
    client.data = { name: 'saved' };
    await client.saveData();
    client.data = { name: 'lost', count: 1n };
    await client.saveData();
    // The assignment saves too: one report per save.
    expect(errors.length).toBeGreaterThan(0);
    for (const error of errors) {
      expect(error).toBeInstanceOf(InvalidArgumentError);
      // Each class's `code` is typed as its own.
      const { code, message }: { code: 'INVALID_ARGUMENT'; message: string } =
        error as InvalidArgumentError;
      expect([code, message]).toEqual(['INVALID_ARGUMENT', expect.stringMatching(/as JSON/)]);
    }
    peer.ws.terminate();
    await until(() => !server.clients.has(client.id), 2000, 'the client to leave');
    const back = await V1Peer.connect(server, { session: welcome.session });
    expect(back.welcome.resumed).toBe(true);
    expect(server.clients.get(client.id)!.data).toEqual({ name: 'saved' });
    await stateStore.close();
  });
});

describe('per-node limits', () => {
  it('answers 503 to an upgrade past maxConnections, and counts it', async () => {
    const { server, port } = await node({ maxConnections: 2 });
    await V1Peer.connect(server);
    await cluster.connect(server);
    expect(await upgradeStatus(port)).toBe(503);
    expect(server.stats.limited.connections).toBe(1);
  });

  it('counts a connection taken over by a resume until its socket is closed', async () => {
    const { server, port } = await node({
      maxConnections: 2,
      stateStore: new MemoryStateStore(),
      sessionSecret: 'a-test-secret-of-enough-bytes',
    });
    const first = await RawSocket.open(port);
    first.write(json({ t: 'hello' }));
    const { session } = (await first.next('welcome')) as { session: string };
    first.socket.pause(); // it never reads the close it is sent: its socket stays open
    const second = await RawSocket.open(port);
    second.write(json({ t: 'hello', session }));
    expect(await second.next('welcome')).toMatchObject({ resumed: true });
    // Two sockets held, one of them closing: a third is one too many.
    expect(first.ended).toBe(false);
    expect(await upgradeStatus(port)).toBe(503);
    expect(server.stats.limited.connections).toBe(1);
  });

  it('answers 403 to a browser from an origin not in allowedOrigins, and counts it', async () => {
    const { server, port } = await node({ allowedOrigins: ['https://app.example'] });
    expect(await upgradeStatus(port, { origin: 'https://evil.example' })).toBe(403);
    expect(await upgradeStatus(port, { origin: 'https://app.example' })).toBe(101);
    expect(await upgradeStatus(port)).toBe(101);
    expect(server.stats.limited.origins).toBe(1);
  });
});

describe('one send budget for every frame', () => {
  it('closes a client that never reads and keeps sending junk, before its replies outgrow the budget', async () => {
    const maxBufferedBytes = 64 * 1024;
    const { server, port } = await node({
      maxBufferedBytes,
      maxOpsPerSecond: Number.POSITIVE_INFINITY,
    });
    const raw = await RawSocket.open(port);
    raw.write(json({ t: 'hello' }));
    await raw.next('welcome');
    const client = [...server.clients.values()][0]!;
    raw.socket.pause();
    let most = 0;
    const junk = Buffer.concat(Array.from({ length: 1000 }, () => json({ t: 'x'.repeat(64) })));
    await flood(raw, junk, 60 * 1024 * 1024, () => {
      most = Math.max(most, client.bufferedAmount);
      return !client.open;
    });
    await until(() => !client.open, 5000, 'the server to close the client');
    expect(server.stats.slowConsumersClosed).toBe(1);
    // Within the budget, plus the one reply that crossed it and the close frame.
    expect(most).toBeLessThan(maxBufferedBytes + 1024);
  });

  it('replays a gap of exactly maxReplayBytes read from the history', async () => {
    const history = new MemoryHistory({ maxEntries: 1000 });
    const { server } = await historyNode(history, { maxReplayBytes: 1000 });
    server.on('connection', (client) => void client.join('chat'));
    const { peer, welcome } = await V1Peer.connect(server);
    const joined = await peer.next('joined');
    peer.ws.terminate();
    await until(() => server.clients.size === 0, 2000, 'the client to leave');
    // Ten messages of 100 bytes, while the room has no member here: the resume reads them back.
    for (let i = 0; i < 10; i++) await server.to('chat').send(String(i).repeat(100));
    const back = await V1Peer.connect(server, {
      session: welcome.session,
      rooms: { chat: { o: joined.o!, e: joined.e! } },
    });
    expect(back.welcome.rooms.chat).toMatchObject({ recovered: true, o: 10 });
    await until(() => back.peer.all('msg').length === 10, 2000, 'the ten replayed');
  });

  it('reads little more than maxReplayBytes from the history for a resume that cannot replay it all', async () => {
    const { read, history } = countingHistory();
    const { server } = await historyNode(history, { maxReplayBytes: 16 * 1024 });
    server.on('connection', (client) => void client.join('chat'));
    const { peer, welcome } = await V1Peer.connect(server);
    const joined = await peer.next('joined');
    peer.ws.terminate();
    await until(() => server.clients.size === 0, 2000, 'the client to leave');
    // 300 messages of 4 KiB: 1.2 MB missed, of which the node remembers only its last 256 KiB.
    for (let i = 0; i < 300; i++) await server.to('chat').send(`${i} ${'x'.repeat(4096)}`);
    read.bytes = 0;
    const back = await V1Peer.connect(server, {
      session: welcome.session,
      rooms: { chat: { o: joined.o!, e: joined.e! } },
    });
    expect(back.welcome.rooms.chat).toMatchObject({ recovered: false, reason: 'too-old' });
    // The budget and a page past it, not the whole gap.
    expect(read.bytes).toBeGreaterThan(0);
    expect(read.bytes).toBeLessThan(100 * 1024);
  });

  it('reads about twice maxReplayBytes at most from the histories for a resume of many rooms that cannot replay', async () => {
    const { read, history } = countingHistory();
    const maxReplayBytes = 16 * 1024;
    const { server } = await historyNode(history, { maxReplayBytes });
    const rooms = Array.from({ length: 20 }, (_, i) => `r${i}`);
    server.on('connection', (client) => {
      for (const room of [...rooms, 'quiet']) void client.join(room);
    });
    const { peer, welcome } = await V1Peer.connect(server);
    const positions: Record<string, { o: number; e: string }> = {};
    while (Object.keys(positions).length < rooms.length + 1) {
      const joined = await peer.next('joined');
      positions[joined.r!] = { o: joined.o!, e: joined.e! };
    }
    peer.ws.terminate();
    await until(() => server.clients.size === 0, 2000, 'the client to leave');
    // 40 messages of 8 KiB in each of 20 rooms: 6.4 MB missed, each room's gap 20 times the budget.
    for (const room of rooms) {
      for (let i = 0; i < 40; i++) await server.to(room).send(`${i} ${'x'.repeat(8192)}`);
    }
    read.bytes = 0;
    const back = await V1Peer.connect(server, { session: welcome.session, rooms: positions });
    for (const room of rooms) {
      expect(back.welcome.rooms[room]).toMatchObject({ recovered: false, reason: 'too-old' });
    }
    // A room with nothing missed needs no read: recovered whatever was read for the others.
    expect(back.welcome.rooms.quiet).toMatchObject({ recovered: true });
    // Twice the budget and a page past it; not a page of every room (20 × 16 × 8 KiB = 2.6 MB).
    expect(read.bytes).toBeGreaterThan(0);
    expect(read.bytes).toBeLessThan(2 * maxReplayBytes + 16 * 8300);

    // Away again: the node knows the size of these rooms' entries now, and reads a page of what
    // the budget holds at that size, not of 16.
    back.peer.ws.terminate();
    await until(() => server.clients.size === 0, 2000, 'the client to leave again');
    for (const room of rooms) {
      for (let i = 0; i < 40; i++) await server.to(room).send(`${i} ${'y'.repeat(8192)}`);
    }
    read.bytes = 0;
    const again = await V1Peer.connect(server, {
      session: welcome.session,
      rooms: Object.fromEntries(
        Object.entries(back.welcome.rooms).map(([room, { o, e }]) => [room, { o: o!, e: e! }]),
      ),
    });
    expect(again.welcome.rooms.r0).toMatchObject({ recovered: false, reason: 'too-old' });
    expect(read.bytes).toBeGreaterThan(0);
    expect(read.bytes).toBeLessThan(2 * maxReplayBytes + 3 * 8300);
  });

  it('reads a history a page at a time for a resume of many rooms, each page sized in its turn', async () => {
    const { read, history } = countingHistory();
    const maxReplayBytes = 64 * 1024;
    const { server } = await historyNode(history, { maxReplayBytes });
    const rooms = ['a', 'b', 'c', 'd', 'e', 'f'];
    server.on('connection', (client) => {
      if (!client.resumed) for (const room of rooms) void client.join(room);
    });
    const { peer, welcome } = await V1Peer.connect(server);
    const positions: Record<string, { o: number; e: string }> = {};
    while (Object.keys(positions).length < rooms.length) {
      const joined = await peer.next('joined');
      positions[joined.r!] = { o: joined.o!, e: joined.e! };
    }
    peer.ws.terminate();
    await until(() => server.clients.size === 0, 2000, 'the client to leave');
    // More than a node remembers of a room: each gap is read from the history. Small entries: the
    // node's replays learn that size.
    for (let i = 0; i < 300; i++) {
      await Promise.all(rooms.map((room) => server.to(room).send(`${room}${i}`)));
    }
    const back = await V1Peer.connect(server, { session: welcome.session, rooms: positions });
    for (const room of rooms) expect(back.welcome.rooms[room]).toMatchObject({ recovered: true });
    const replayed = new Map<string, string[]>(rooms.map((room) => [room, []]));
    for (let i = 0; i < 300 * rooms.length; i++) {
      const message = await back.peer.next('msg');
      replayed.get(message.r!)!.push(String(message.d));
    }
    for (const room of rooms) {
      expect(replayed.get(room)).toEqual(Array.from({ length: 300 }, (_, i) => `${room}${i}`));
    }
    const at = Object.fromEntries(
      Object.entries(back.welcome.rooms).map(([room, { o, e }]) => [room, { o: o!, e: e! }]),
    );
    for (const { o } of Object.values(at)) expect(o).toBe(300);
    back.peer.ws.terminate();
    await until(() => server.clients.size === 0, 2000, 'the client to leave again');

    // Now entries of 16 KiB, 160 KiB missed in each room: far past the budget. The first page is
    // sized by the small entries read before, and reads the whole gap of one room; side by side,
    // every room's would be read (960 KiB).
    for (let i = 0; i < 10; i++) {
      await Promise.all(rooms.map((room) => server.to(room).send(`${i} ${'x'.repeat(16_384)}`)));
    }
    read.bytes = 0;
    read.most = 0;
    const again = await V1Peer.connect(server, { session: welcome.session, rooms: at });
    for (const room of rooms) {
      expect(again.welcome.rooms[room]).toMatchObject({ recovered: false, reason: 'too-old' });
    }
    expect(read.most).toBe(1);
    expect(read.bytes).toBeLessThan(2 * maxReplayBytes + 10 * 16_500);
  });

  for (const [name, limit, missed] of [
    ['maxReplayEntries, read from the history', { maxReplayEntries: 5 }, 300],
    ["maxReplayEntries, from the node's recent messages", { maxReplayEntries: 5 }, 10],
    ['maxReplayBytes', { maxReplayBytes: 100 }, 300],
  ] as const) {
    it(`replays no more than ${name} on a resume: the room is too-old`, async () => {
      const history = new MemoryHistory({ maxEntries: 1000 });
      const { server } = await historyNode(history, limit);
      server.on('connection', (client) => void client.join('chat'));
      const { peer, welcome } = await V1Peer.connect(server);
      const joined = await peer.next('joined');
      peer.ws.terminate();
      await until(() => server.clients.size === 0, 2000, 'the client to leave');
      for (let i = 0; i < missed; i++) await server.to('chat').send(`m${i}`);
      const back = await V1Peer.connect(server, {
        session: welcome.session,
        rooms: { chat: { o: joined.o!, e: joined.e! } },
      });
      expect(back.welcome.rooms.chat).toMatchObject({
        recovered: false,
        reason: 'too-old',
        o: missed,
      });
      expect(back.peer.all('msg')).toHaveLength(0);
      expect(server.stats.limited.replay).toBe(1);
    });
  }
});
