import { randomBytes } from 'node:crypto';
import { createServer, request as httpRequest } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { Duplex } from 'node:stream';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { deflateRawSync } from 'node:zlib';
import {
  CloseCode,
  HandlerError,
  InvalidOptionError,
  MemoryBroker,
  MemoryHistory,
  MemoryStateStore,
  Publisher,
  ScaledWebSocketServer,
  ServerClosedError,
  UpgradeRejectedError,
} from '@wscale/core';
import { until } from '@wscale/core/testing';
import { afterEach, describe, expect, it } from 'vitest';
import type { WebSocket } from 'ws';
import { TestClient, TestCluster, urlOf } from './helpers/nodes.js';
import { frame, RawSocket } from './helpers/raw-socket.js';
import { V1Peer } from './helpers/v1-client.js';

const cluster = new TestCluster();
afterEach(() => cluster.closeAll());

/**
 * A stream over a TCP socket that, like a TLS-less proxy's or a test's duplex, does not count the
 * bytes it read (no `bytesRead`): the heartbeat then needs the `pong` listener.
 */
function uncounted(socket: Socket): Duplex {
  const duplex = new Duplex({
    read: () => socket.resume(),
    write: (chunk, _encoding, done) => socket.write(chunk, done),
    final: (done) => socket.end(done),
    destroy: (error, done) => {
      socket.destroy();
      done(error);
    },
  });
  socket.on('data', (chunk) => {
    if (!duplex.push(chunk)) socket.pause();
  });
  socket.on('end', () => duplex.push(null));
  socket.on('close', () => duplex.destroy());
  socket.on('error', () => undefined);
  return duplex;
}

/**
 * An HTTP server on a free port that hands its upgrades to `wss` (made with `noServer`), each
 * socket through `adapt` first, if given. `close()` closes the node, then the server.
 */
async function upgradesThrough(
  wss: ScaledWebSocketServer,
  adapt: (socket: Socket) => Duplex = (socket) => socket,
): Promise<{ url: string; close(): Promise<void> }> {
  const http = createServer();
  http.on('upgrade', (request, socket, head) =>
    wss.handleUpgrade(request, adapt(socket as Socket), head),
  );
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  await wss.ready();
  return {
    url: `ws://127.0.0.1:${(http.address() as AddressInfo).port}/`,
    async close() {
      await wss.close();
      await new Promise((resolve) => http.close(resolve));
    },
  };
}

/** The text of a small unmasked server frame (a 2-byte header); the upgrade's answer as it is. */
function frameText(chunk: Buffer | string): string {
  return typeof chunk === 'string' ? chunk : chunk.subarray(2).toString();
}

/** Sends an upgrade request and returns the HTTP status the server answered with. */
function upgradeStatus(port: number, path: string, headers: Record<string, string> = {}) {
  return new Promise<number>((resolve, reject) => {
    const req = httpRequest({
      host: '127.0.0.1',
      port,
      path,
      headers: {
        connection: 'Upgrade',
        upgrade: 'websocket',
        'sec-websocket-version': '13',
        'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==',
        ...headers,
      },
    });
    req.on('response', (response) => resolve(response.statusCode ?? 0));
    req.on('upgrade', (response, socket) => {
      socket.destroy();
      resolve(response.statusCode ?? 0);
    });
    req.on('error', reject);
    req.end();
  });
}

describe('connections', () => {
  it('terminates a peer that stops answering pings', async () => {
    const [node] = await cluster.start(1, { heartbeatIntervalMs: 50 });
    const silent = await cluster.connect(node!, { autoPong: false });
    const lively = await cluster.connect(node!);
    const { code } = await silent.closed;
    expect(code).toBe(1006);
    await until(() => !node!.clients.has(silent.id), 2000, 'the server to drop the silent peer');
    expect(node!.clients.has(lively.id)).toBe(true);
  });

  it('ends a connection whose one message keeps arriving a byte at a time past four heartbeat rounds', async () => {
    const [node] = await cluster.start(1, { heartbeatIntervalMs: 50 });
    const raw = await RawSocket.open(node!.address()!.port, { protocol: '' });
    await until(() => node!.clients.size === 1, 2000, 'the client');
    const message = frame(0x2, Buffer.alloc(64 * 1024, 7));
    raw.write(message.subarray(0, 1024));
    // A byte every 20 ms: bytes at every round, a pong at none, the message never whole.
    let at = 1024;
    const trickle = setInterval(() => raw.write(message.subarray(at, ++at)), 20);
    try {
      await until(() => raw.ended, 2000, 'the connection to end');
    } finally {
      clearInterval(trickle);
    }
    expect(raw.frames.some((f) => f.opcode === 0x8)).toBe(false); // ended, not closed: no frame
    await until(() => node!.clients.size === 0, 2000, 'the server to drop it');
  });

  it('ends a connection whose message keeps arriving in fragments between pings past four heartbeat rounds', async () => {
    const [node] = await cluster.start(1, { heartbeatIntervalMs: 50 });
    const raw = await RawSocket.open(node!.address()!.port, { protocol: '' });
    const notFinal = (bytes: Buffer) => {
      bytes[0]! &= 0x7f;
      return bytes;
    };
    raw.write(notFinal(frame(0x2, Buffer.alloc(1024, 1))));
    // A ping answered and a fragment more every 20 ms: signs of life, but the message never ends.
    const trickle = setInterval(() => {
      raw.write(frame(0x9, Buffer.alloc(0)));
      raw.write(notFinal(frame(0x0, Buffer.alloc(16, 2))));
    }, 20);
    try {
      await until(() => raw.ended, 1500, 'the connection to end'); // 128 fragments take 2.5 s
    } finally {
      clearInterval(trickle);
    }
    expect(raw.frames.some((f) => f.opcode === 0x8)).toBe(false);
  });

  it('ends a connection whose compressed message keeps arriving in fragments between pings past four heartbeat rounds', async () => {
    const [node] = await cluster.start(1, { heartbeatIntervalMs: 50, perMessageDeflate: true });
    const raw = await RawSocket.open(node!.address()!.port, {
      protocol: '',
      headers: { 'Sec-WebSocket-Extensions': 'permessage-deflate' },
    });
    // Random bytes do not shrink: the deflated stream is as long, and never ends here.
    const deflated = deflateRawSync(randomBytes(64 * 1024));
    const fragment = (opcode: number, at: number) => {
      const bytes = frame(opcode, deflated.subarray(at, at + 16));
      bytes[0]! &= 0x7f; // not the last
      return bytes;
    };
    const first = fragment(0x2, 0);
    first[0]! |= 0x40; // RSV1: compressed
    raw.write(first);
    let at = 16;
    const trickle = setInterval(() => {
      raw.write(frame(0x9, Buffer.alloc(0)));
      raw.write(fragment(0x0, at));
      at += 16;
    }, 20);
    try {
      await until(() => raw.ended, 1500, 'the connection to end');
    } finally {
      clearInterval(trickle);
    }
    expect(raw.frames.some((f) => f.opcode === 0x8)).toBe(false);
  });

  it('keeps a connection whose messages each arrive within a few rounds, one after another', async () => {
    const [node] = await cluster.start(1, { heartbeatIntervalMs: 50 });
    const received: number[] = [];
    node!.on('connection', (client) => client.on('message', (data) => received.push(data.length)));
    const raw = await RawSocket.open(node!.address()!.port, { protocol: '' });
    // Eight messages of 8 KiB, each written over some 60 ms (about a round), back to back.
    for (let n = 0; n < 8; n++) {
      const message = frame(0x2, Buffer.alloc(8 * 1024, n));
      for (let at = 0; at < message.length; at += 1024) {
        raw.write(message.subarray(at, at + 1024));
        await new Promise((resolve) => setTimeout(resolve, 7));
      }
    }
    await until(() => received.length === 8, 2000, 'every message');
    expect(raw.ended).toBe(false);
    expect(node!.clients.size).toBe(1);
  });

  it('listens for no pong on a TCP socket: the heartbeat reads what the socket read', async () => {
    const [node] = await cluster.start(1, { heartbeatIntervalMs: 50 });
    const sockets: object[] = [];
    node!.on('connection', (_client, request) => sockets.push(request.socket));
    const lively = await cluster.connect(node!);
    // `ws` names the WebSocket of a socket with a symbol of its own.
    const socket = sockets[0] as Record<symbol, unknown>;
    const key = Object.getOwnPropertySymbols(socket).find((s) => s.description === 'websocket')!;
    const ws = socket[key] as WebSocket;
    expect(ws.eventNames().sort()).toEqual(['close', 'error', 'message']);
    // Several rounds: its pongs keep it.
    let pings = 0;
    lively.ws.on('ping', () => pings++);
    await until(() => pings >= 4, 2000, 'four heartbeat rounds');
    expect(node!.clients.has(lively.id)).toBe(true);
  });

  it('listens for pongs on a socket that does not count bytes: they keep it, silence ends it', async () => {
    const wss = new ScaledWebSocketServer({ noServer: true, heartbeatIntervalMs: 50 });
    wss.on('error', () => undefined);
    const streams: Duplex[] = [];
    const served = await upgradesThrough(wss, (socket) => {
      const stream = uncounted(socket);
      streams.push(stream);
      return stream;
    });
    try {
      const lively = new TestClient(served.url);
      const silent = new TestClient(served.url, { autoPong: false });
      await Promise.all([lively.opened, silent.opened]);
      expect(streams.every((stream) => !('bytesRead' in stream))).toBe(true);
      await until(() => wss.clients.size === 2, 2000, 'both connections');
      // The silent one misses its pong: terminated (1006) within a few rounds.
      expect((await silent.closed).code).toBe(1006);
      // The lively one's pongs keep it through several rounds.
      let pings = 0;
      lively.ws.on('ping', () => pings++);
      await until(() => pings >= 4, 2000, 'four heartbeat rounds');
      expect(wss.clients.size).toBe(1);
      lively.ws.close();
    } finally {
      await served.close();
    }
  });

  it('closes with 1009 on a frame over maxPayload and keeps serving others', async () => {
    const [node] = await cluster.start(1, { maxPayload: 1024 });
    const big = await cluster.connect(node!);
    const fine = await cluster.connect(node!);
    big.ws.send(Buffer.alloc(2048));
    expect((await big.closed).code).toBe(CloseCode.MessageTooBig);
    await node!.clients.get(fine.id)!.join('r');
    await node!.to('r').send('still here');
    await fine.waitFor(1);
  });

  it('takes a frame of exactly maxPayload bytes and closes with 1009 at one byte more', async () => {
    const [node] = await cluster.start(1, { maxPayload: 1024 });
    const got: number[] = [];
    node!.on('connection', (client) => client.on('message', (data) => got.push(data.length)));
    const client = await cluster.connect(node!);
    client.ws.send(Buffer.alloc(1024));
    client.ws.send('x'.repeat(1024));
    await until(() => got.length === 2, 2000, 'both frames at the limit');
    expect(got).toEqual([1024, 1024]);
    client.ws.send(Buffer.alloc(1025));
    expect((await client.closed).code).toBe(CloseCode.MessageTooBig);
    expect(got).toEqual([1024, 1024]);
  });

  it('applies maxPayload to a whole wscale.v1 frame, envelope included', async () => {
    const [node] = await cluster.start(1, { maxPayload: 1024 });
    const got: string[] = [];
    node!.on('connection', (client) => client.on('message', (data) => got.push(String(data))));
    const { peer } = await V1Peer.connect(node!);
    /** A `msg` frame whose JSON text is exactly `bytes` long. */
    const frameOf = (bytes: number) => {
      const empty = JSON.stringify({ t: 'msg', d: '' });
      return JSON.stringify({ t: 'msg', d: 'y'.repeat(bytes - empty.length) });
    };
    expect(frameOf(1024)).toHaveLength(1024);
    peer.ws.send(frameOf(1024));
    await until(() => got.length === 1, 2000, 'the frame at the limit');
    expect(got[0]).toHaveLength(1024 - JSON.stringify({ t: 'msg', d: '' }).length);
    peer.ws.send(frameOf(1025));
    expect((await peer.closed).code).toBe(CloseCode.MessageTooBig);
    expect(got).toHaveLength(1);
  });

  it('answers 401 before the upgrade when authentication fails, and 403 when told', async () => {
    const connections: string[] = [];
    const [node] = await cluster.start(1, {
      authenticate: (request) => {
        const token = request.headers.authorization;
        if (token === 'Bearer banned') throw new UpgradeRejectedError(403);
        return token === 'Bearer good' ? { user: 'ada' } : undefined;
      },
    });
    node!.on('connection', (client) =>
      connections.push(String((client.identity as { user: string }).user)),
    );
    const { port } = node!.address()!;
    expect(await upgradeStatus(port, '/')).toBe(401);
    expect(await upgradeStatus(port, '/', { authorization: 'Bearer banned' })).toBe(403);
    expect(node!.stats.connections).toBe(0);
    await cluster.connect(node!, { headers: { authorization: 'Bearer good' } });
    expect(connections).toEqual(['ada']);
  });

  it('closes a slow consumer with 1013 and keeps feeding the others', async () => {
    const [node] = await cluster.start(1, { maxBufferedBytes: 256 * 1024 });
    const slow = await cluster.connect(node!);
    const fast = await cluster.connect(node!);
    const server = node!;
    await server.clients.get(slow.id)!.join('feed');
    await server.clients.get(fast.id)!.join('feed');
    slow.ws.pause();
    const chunk = 'x'.repeat(64 * 1024);
    let sent = 0;
    while (server.stats.slowConsumersClosed === 0 && sent < 2000) {
      await server.to('feed').send(chunk);
      sent++;
      await fast.waitFor(sent);
    }
    expect(server.stats.slowConsumersClosed).toBe(1);
    expect(server.clients.get(slow.id)?.open ?? false).toBe(false);
    await fast.waitFor(sent);
    slow.ws.resume();
    expect((await slow.closed).code).toBe(CloseCode.TryAgainLater);
  });

  it('a client that read nothing for a while gets every one of many small messages once it reads, in order', async () => {
    const [node] = await cluster.start(1, { maxBufferedBytes: 32 * 1024 * 1024 });
    const server = node!;
    const slow = await cluster.connect(server);
    const fast = await cluster.connect(server);
    for (const client of [slow, fast]) await server.clients.get(client.id)!.join('feed');
    slow.ws.pause();
    // 20 MB: more than the kernel's socket buffers hold, so most of it waits in the node.
    const count = 20_000;
    const text = (i: number) => `m${i}`.padEnd(1000, '.');
    for (let i = 0; i < count; i++) await server.to('feed').send(text(i));
    await fast.waitFor(count, 10_000);
    slow.ws.resume();
    await slow.waitFor(count, 10_000);
    const expected = Array.from({ length: count }, (_, i) => text(i));
    expect(slow.texts).toEqual(expected);
    expect(fast.texts).toEqual(expected);
    expect(server.stats.slowConsumersClosed).toBe(0);
  });

  it('an application closes a client that reads nothing: the close comes after what it was sent', async () => {
    const [node] = await cluster.start(1, { maxBufferedBytes: 8 * 1024 * 1024 });
    const server = node!;
    const slow = await cluster.connect(server);
    await server.clients.get(slow.id)!.join('feed');
    slow.ws.pause();
    const count = 5000;
    const text = (i: number) => `m${i}`.padEnd(1000, '.');
    for (let i = 0; i < count; i++) await server.to('feed').send(text(i));
    server.clients.get(slow.id)!.close(4000, 'bye');
    slow.ws.resume();
    expect(await slow.closed).toEqual({ code: 4000, reason: 'bye' });
    expect(slow.texts).toEqual(Array.from({ length: count }, (_, i) => text(i)));
  });

  it('a client that reads nothing and breaks the protocol gets nothing after the close frame: what waited is dropped', async () => {
    const [node] = await cluster.start(1, { maxBufferedBytes: 32 * 1024 * 1024 });
    const server = node!;
    const raw = await RawSocket.open(server.address()!.port, { protocol: '' });
    await until(() => server.clients.size === 1, 2000, 'the client');
    const client = [...server.clients.values()][0]!;
    await client.join('feed');
    raw.socket.pause();
    const text = 'x'.repeat(1000);
    for (let i = 0; i < 20_000; i++) {
      await server.to('feed').send(text);
      // The node's I/O goes on meanwhile, as on a server: what waited is written as the socket drains.
      if (i % 100 === 0) await new Promise((resolve) => setImmediate(resolve));
    }
    // The client sends a text that is not UTF-8 (ws closes it 1007 itself), then reads.
    raw.write(frame(0x1, Buffer.from([0xff, 0xfe])));
    await until(() => !client.open, 3000, 'the close answered');
    raw.socket.resume();
    await until(() => raw.ended, 10_000, 'the socket to end');
    const close = raw.frames.findIndex((f) => f.opcode === 0x8);
    expect(close).toBeGreaterThan(0);
    expect(raw.frames.slice(close + 1)).toEqual([]);
  });

  it('a client that reads nothing holds about maxBufferedBytes of the node, however small its frames', async () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const budget = 1024 * 1024;
    const [node] = await cluster.start(1, { maxBufferedBytes: budget });
    const server = node!;
    const slow = await cluster.connect(server);
    await server.clients.get(slow.id)!.join('feed');
    slow.ws.pause();
    gc();
    const before = process.memoryUsage();
    // Frames of 8 to 12 bytes until it is closed: some hundred thousand of them.
    for (let i = 0; i < 500_000 && server.stats.slowConsumersClosed === 0; i++) {
      await server.to('feed').send(String(i));
    }
    // Closed at the budget, the node still holds what it queued: the close frame waits behind it.
    expect(server.stats.slowConsumersClosed).toBe(1);
    gc();
    const after = process.memoryUsage();
    const held = after.arrayBuffers - before.arrayBuffers + after.heapUsed - before.heapUsed;
    expect(held).toBeLessThan(4 * budget);
  });

  it("drops a slow consumer's volatile messages and counts them", async () => {
    const [node] = await cluster.start(1, { maxBufferedBytes: 256 * 1024, slowConsumer: 'drop' });
    const slow = await cluster.connect(node!);
    const server = node!;
    await server.clients.get(slow.id)!.join('cursor');
    slow.ws.pause();
    const chunk = 'y'.repeat(64 * 1024);
    for (let i = 0; i < 2000 && server.stats.dropped === 0; i++) {
      await server.to('cursor').send(chunk, { volatile: true });
      if (i % 10 === 0) await new Promise((resolve) => setImmediate(resolve));
    }
    expect(server.stats.dropped).toBeGreaterThan(0);
    expect(server.clients.get(slow.id)!.dropped).toBe(server.stats.dropped);
    expect(server.stats.droppedVolatile).toBe(server.stats.dropped);
    expect(server.clients.get(slow.id)!.open).toBe(true);
    expect(server.stats.slowConsumersClosed).toBe(0);
  });

  it('counts what one tick wrote against the send buffer: the frames past the budget are dropped', async () => {
    const [node] = await cluster.start(1, { maxBufferedBytes: 10 * 1024, slowConsumer: 'drop' });
    const server = node!;
    const client = await cluster.connect(server);
    await server.clients.get(client.id)!.join('burst');
    const payload = 'z'.repeat(1024); // a 1028-byte frame: ten fit in 10 KiB, the eleventh does not
    // Sent in one tick: nothing reaches the kernel before the socket is uncorked at its end.
    await Promise.all(Array.from({ length: 20 }, () => server.to('burst').send(payload)));
    expect(server.stats.messagesOut.broadcast).toBe(10);
    expect(server.stats.bytesOut.broadcast).toBe(10 * 1028);
    expect(server.stats.dropped).toBe(10);
    expect(server.clients.get(client.id)!.dropped).toBe(10);
    await client.waitFor(10);
    expect(client.texts).toEqual(Array.from({ length: 10 }, () => payload));
    expect(server.clients.get(client.id)!.open).toBe(true);
  });

  it('writes the messages of one tick to a socket in one write, and each tick in its own', async () => {
    const wss = new ScaledWebSocketServer({ noServer: true, heartbeatIntervalMs: 0 });
    let joined: Promise<void> | undefined;
    wss.on('connection', (client) => {
      joined = client.join('room');
    });
    /** What reached the server socket's writes to the kernel: the frames of each, as text. */
    const writes: string[][] = [];
    const served = await upgradesThrough(wss, (socket) => {
      const tapped = socket as Socket & {
        _write(chunk: Buffer | string, encoding: BufferEncoding, done: () => void): void;
        _writev(chunks: { chunk: Buffer | string }[], done: () => void): void;
      };
      const write = tapped._write.bind(socket);
      const writev = tapped._writev.bind(socket);
      tapped._write = (chunk, encoding, done) => {
        writes.push([frameText(chunk)]);
        write(chunk, encoding, done);
      };
      tapped._writev = (chunks, done) => {
        writes.push(chunks.map(({ chunk }) => frameText(chunk)));
        writev(chunks, done);
      };
      return socket;
    });
    try {
      const client = new TestClient(served.url);
      await client.opened;
      await until(() => joined !== undefined, 2000, 'the connection');
      await joined;
      writes.length = 0;
      await wss.to('room').send('alone');
      await client.waitFor(1);
      expect(writes).toEqual([['alone']]);
      await Promise.all(['a', 'b', 'c'].map((text) => wss.to('room').send(text)));
      await client.waitFor(4);
      expect(writes).toEqual([['alone'], ['a', 'b', 'c']]);
      expect(client.texts).toEqual(['alone', 'a', 'b', 'c']);
      client.ws.close();
    } finally {
      await served.close();
    }
  });

  it('survives handlers that throw or reject, and reports them as error events', async () => {
    const [node] = await cluster.start(1);
    const server = node!;
    const errors: Error[] = [];
    server.on('error', (error) => errors.push(error));
    server.on('connection', () => {
      throw new Error('connection handler broke');
    });
    server.on('connection', (client) => {
      client.on('message', async (data) => {
        if (data === 'reject') throw new Error('async handler broke');
        if (data === 'throw') JSON.parse('{not json');
        client.send(`echo:${data}`);
      });
    });
    const client = await cluster.connect(server);
    client.ws.send('throw');
    client.ws.send('reject');
    client.ws.send('ok');
    await client.waitFor(1);
    expect(client.texts).toEqual(['echo:ok']);
    await until(() => errors.length === 3, 2000, 'three error events');
    expect(errors.every((error) => error instanceof HandlerError)).toBe(true);
    expect(errors.map((error) => (error as HandlerError).code)).toEqual([
      'HANDLER_FAILED',
      'HANDLER_FAILED',
      'HANDLER_FAILED',
    ]);
  });

  it('close() closes every client with 1012 and refuses new ones', async () => {
    const [node] = await cluster.start(1);
    const clients = [await cluster.connect(node!), await cluster.connect(node!)];
    const { port } = node!.address()!;
    await node!.close();
    for (const client of clients) expect((await client.closed).code).toBe(CloseCode.ServiceRestart);
    await expect(upgradeStatus(port, '/')).rejects.toThrow();
    await expect(node!.broadcast('late')).rejects.toMatchObject({ code: 'SERVER_CLOSED' });
  });
});

describe('attaching', () => {
  it('shares an existing HTTP server, only on its path, beside the HTTP routes', async () => {
    const http = createServer((_request, response) => response.end('plain http'));
    await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
    const wss = new ScaledWebSocketServer({ server: http, path: '/ws' });
    await wss.ready();
    const { port } = http.address() as AddressInfo;
    try {
      const body = await fetch(`http://127.0.0.1:${port}/`).then((response) => response.text());
      expect(body).toBe('plain http');
      expect(await upgradeStatus(port, '/elsewhere')).toBe(400);
      const client = new TestClient(`ws://127.0.0.1:${port}/ws?x=1`);
      await client.opened;
      await until(() => wss.clients.size === 1, 2000, 'connection');
      await wss.broadcast('hi');
      await client.waitFor(1);
      client.ws.close();
    } finally {
      await wss.close();
      await new Promise((resolve) => http.close(resolve));
    }
  });

  it('takes upgrades handed over with noServer', async () => {
    const wss = new ScaledWebSocketServer({ noServer: true });
    const served = await upgradesThrough(wss);
    try {
      const client = new TestClient(`${served.url}anything`);
      await client.opened;
      await until(() => wss.clients.size === 1, 2000, 'connection');
      client.ws.close();
    } finally {
      await served.close();
    }
  });

  it('refuses contradictory options with a typed error', () => {
    expect(() => new ScaledWebSocketServer({})).toThrow(InvalidOptionError);
    expect(() => new ScaledWebSocketServer({ port: 0, noServer: true })).toThrow(
      InvalidOptionError,
    );
    expect(() => new ScaledWebSocketServer({ noServer: true, maxPayload: 0 })).toThrow(
      /maxPayload/,
    );
    // A state store of its own that leaves out `ttlMs` (or a wrapper that hides it).
    const store = new MemoryStateStore();
    for (const ttlMs of [undefined, Number.NaN, 0, Number.POSITIVE_INFINITY]) {
      const stateStore = new Proxy(store, {
        get: (target, key) => (key === 'ttlMs' ? ttlMs : Reflect.get(target, key)),
      });
      const options = {
        noServer: true,
        stateStore,
        sessionSecret: 'a-test-secret-of-enough-bytes',
      };
      expect(() => new ScaledWebSocketServer(options)).toThrow(/ttlMs/);
    }
  });

  it('refuses history and presence rules it cannot use, naming the rule: a misspelled key would leave rooms without them', () => {
    const store = new MemoryHistory();
    const history = [
      [{ rooms: 'chat', history: store }, /history\[0\]\.store/],
      [[{ rooms: 'a', store }, { rooms: 'b' }], /history\[1\]\.store/],
      [{ rooms: 'chat', store: {} }, /history\[0\]\.store/],
      [{ room: 'chat', store }, /history\[0\]\.rooms/],
      [{ rooms: [], store }, /history\[0\]\.rooms/],
      [{ rooms: ['chat', 7], store }, /history\[0\]\.rooms/],
    ] as const;
    for (const [rules, message] of history) {
      const list = (Array.isArray(rules) ? rules : [rules]) as never;
      expect(() => new ScaledWebSocketServer({ noServer: true, history: list })).toThrow(message);
      expect(() => new Publisher({ broker: new MemoryBroker(), history: list })).toThrow(message);
    }
    for (const rule of [{ room: 'lobby' }, { rooms: 42 }]) {
      expect(
        () => new ScaledWebSocketServer({ noServer: true, presence: [rule as never] }),
      ).toThrow(/presence\[0\]\.rooms/);
    }
    expect(
      () => new ScaledWebSocketServer({ noServer: true, history: [{ rooms: /^chat:/, store }] }),
    ).not.toThrow();
  });

  it('refuses numbers that are not finite, timeouts past what a timer holds, and origins that are no list', async () => {
    const timeouts = [
      'authenticateTimeoutMs',
      'hookTimeoutMs',
      'helloTimeoutMs',
      'nodeHeartbeatMs',
      'nodeTimeoutMs',
      'requestTimeoutMs',
      'closeTimeoutMs',
      'upstreamSaveMs',
      'presenceGraceMs',
      'heartbeatIntervalMs',
    ] as const;
    const counts = ['maxBufferedBytes', 'maxReplayBytes', 'maxConnections'] as const;
    // A client is told maxPayload (`welcome`'s `m`), and it bounds what a compressed frame inflates to.
    for (const key of [...timeouts, 'maxPayload', ...counts]) {
      const values = (counts as readonly string[]).includes(key)
        ? [Number.NaN]
        : [Number.POSITIVE_INFINITY, Number.NaN];
      for (const value of values) {
        expect(() => new ScaledWebSocketServer({ noServer: true, [key]: value })).toThrow(
          new RegExp(key),
        );
      }
    }
    // Node runs a timer set past 2³¹−1 ms after 1 ms: such a timeout would end every wait at once.
    for (const key of timeouts) {
      expect(() => new ScaledWebSocketServer({ noServer: true, [key]: 2 ** 31 })).toThrow(
        InvalidOptionError,
      );
      // (The node timeout is three heartbeats unless given.)
      const longest = { noServer: true, nodeTimeoutMs: 2 ** 31 - 1, [key]: 2 ** 31 - 1 };
      await new ScaledWebSocketServer(longest).close();
    }
    // A string's `includes` would let any part of it through as an origin.
    const origins = 'https://app.example.com' as unknown as string[];
    expect(() => new ScaledWebSocketServer({ noServer: true, allowedOrigins: origins })).toThrow(
      /allowedOrigins/,
    );
  });

  it('refuses a heartbeat whose pongs alone would spend most of a client’s rate', () => {
    // A pong every 20 ms is 50 operations a second: past 20 allowed, every idle client is closed.
    expect(
      () =>
        new ScaledWebSocketServer({ noServer: true, heartbeatIntervalMs: 20, maxOpsPerSecond: 20 }),
    ).toThrow(/heartbeatIntervalMs \(20\) × maxOpsPerSecond \(20\)/);
    expect(
      () =>
        new ScaledWebSocketServer({
          noServer: true,
          heartbeatIntervalMs: 100,
          maxOpsPerSecond: 20,
        }),
    ).not.toThrow();
    expect(
      () =>
        new ScaledWebSocketServer({ noServer: true, heartbeatIntervalMs: 0, maxOpsPerSecond: 1 }),
    ).not.toThrow();
  });

  it('says through ready() that a node closed before it was ready, or since, will not serve', async () => {
    const early = new ScaledWebSocketServer({ port: 0, host: '127.0.0.1' });
    const closed = early.close();
    await expect(early.ready()).rejects.toBeInstanceOf(ServerClosedError);
    await closed;
    const [late] = await cluster.start(1);
    await late!.ready();
    await late!.close();
    await expect(late!.ready()).rejects.toMatchObject({ code: 'SERVER_CLOSED' });
  });

  it('serves a URL built from its address', async () => {
    const [node] = await cluster.start(1);
    expect(urlOf(node!)).toMatch(/^ws:\/\/127\.0\.0\.1:\d+\/$/);
  });
});
