import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import { type AddressInfo, connect } from 'node:net';
import { fileURLToPath } from 'node:url';
import {
  CloseCode,
  HandlerError,
  MemoryStateStore,
  ScaledWebSocketServer,
  ServerClosedError,
  type ServerOptions,
  StateStoreError,
} from '@wscale/core';
import { until } from '@wscale/core/testing';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { TestCluster } from './helpers/nodes.js';
import { frame, json, RawSocket, upgradeStatus } from './helpers/raw-socket.js';
import { watchUnawaited } from './helpers/unawaited.js';
import { V1Peer } from './helpers/v1-client.js';

const cluster = new TestCluster();
afterEach(() => {
  RawSocket.destroyAll();
  return cluster.closeAll();
});

async function node(options: Partial<ServerOptions> = {}) {
  const [server] = await cluster.start(1, options);
  const errors: Error[] = [];
  server!.on('error', (error) => errors.push(error));
  return { server: server!, port: (server!.address() as AddressInfo).port, errors };
}

/** A well-behaved client still gets served: the node is alive and answering. */
async function stillServes(server: ScaledWebSocketServer): Promise<void> {
  const { peer } = await V1Peer.connect(server);
  peer.send({ t: 'ping' });
  await peer.next('pong');
  peer.ws.terminate();
}

describe('frames behind hello', () => {
  it('handles join, msg and req written in the same TCP write as hello, in order', async () => {
    const received: string[] = [];
    const { server, port } = await node({
      authorizeJoin: () => true,
      onRequest: (_client, data) => `echo:${String(data)}`,
    });
    server.on('connection', (client) => {
      client.on('message', (data) => void received.push(String(data)));
    });
    const raw = await RawSocket.open(port);
    raw.write(
      Buffer.concat([
        json({ t: 'hello' }),
        json({ t: 'join', id: 1, r: 'room' }),
        json({ t: 'msg', d: 'first' }),
        json({ t: 'req', id: 2, d: 'second' }),
        json({ t: 'ping' }),
      ]),
    );
    await raw.next('pong');
    expect(await raw.next('ack', 2)).toMatchObject({ d: 'echo:second' });
    expect(await raw.next('ack', 1)).not.toHaveProperty('error');
    const types = raw.messages().map((message) => message.t);
    expect(types[0]).toBe('welcome');
    expect(received).toEqual(['first']);
    raw.destroy();
  });
});

describe('a live node process', () => {
  let child: ChildProcess;
  let port = 0;
  let output = '';

  beforeAll(async () => {
    child = spawn(
      process.execPath,
      [fileURLToPath(new URL('./fixtures/lone-node.mjs', import.meta.url))],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    const collect = (chunk: Buffer) => {
      output += chunk.toString();
    };
    child.stdout!.on('data', collect);
    child.stderr!.on('data', collect);
    await until(() => /port \d+/.test(output), 10_000, `the node to start:\n${output}`);
    port = Number(/port (\d+)/.exec(output)![1]);
  });
  afterAll(() => void child.kill());

  /** The process is still running and still serves a well-behaved client. */
  async function alive(): Promise<void> {
    const raw = await RawSocket.open(port);
    raw.write(Buffer.concat([json({ t: 'hello' }), json({ t: 'req', id: 1, d: 'text' })]));
    expect(await raw.next('ack', 1)).toMatchObject({ d: 'ok' });
    raw.destroy();
    expect(child.exitCode, output).toBeNull();
  }

  for (const [name, bad, code] of [
    ['invalid UTF-8 text', frame(0x1, Buffer.from([0xc3, 0x28])), CloseCode.InvalidPayload],
    ['an unmasked frame', frame(0x1, Buffer.from('{"t":"ping"}'), { mask: false }), 1002],
    ['a length over maxPayload', frame(0x2, Buffer.alloc(0), { length: 4096 }), 1009],
  ] as const) {
    it(`survives ${name} right behind hello in one segment`, async () => {
      const raw = await RawSocket.open(port);
      raw.write(Buffer.concat([json({ t: 'hello' }), bad]));
      expect((await raw.closeFrame()).code).toBe(code);
      await alive();
    });

    it(`survives ${name} as the first frame`, async () => {
      const raw = await RawSocket.open(port);
      raw.write(bad);
      expect((await raw.closeFrame()).code).toBe(code);
      await alive();
    });
  }

  it('survives a hello whose bad room name would make a close reason too long', async () => {
    const raw = await RawSocket.open(port);
    raw.write(json({ t: 'hello', rooms: { ['é'.repeat(200)]: { o: -1, e: 'x' } } }));
    expect((await raw.closeFrame()).code).toBe(CloseCode.InvalidPayload);
    await alive();
  });

  for (const reply of ['null', 'number', 'object']) {
    it(`survives an onRequest that returns ${reply}`, async () => {
      const raw = await RawSocket.open(port);
      raw.write(Buffer.concat([json({ t: 'hello' }), json({ t: 'req', id: 7, d: reply })]));
      expect(await raw.next('ack', 7)).toMatchObject({ error: { code: 'HANDLER_FAILED' } });
      await alive();
    });
  }
});

describe('close reasons', () => {
  it('cuts a reason that quotes non-ASCII client input to the 123 bytes a close frame holds', async () => {
    const { server, port } = await node();
    const raw = await RawSocket.open(port);
    raw.write(json({ t: 'hello', rooms: { ['é'.repeat(200)]: { o: -1, e: 'x' } } }));
    const { code, reason } = await raw.closeFrame();
    expect(code).toBe(CloseCode.InvalidPayload);
    expect(reason.length).toBeLessThanOrEqual(123);
    expect(reason.toString('utf8')).toMatch(/^rooms\["é+$/);
    await stillServes(server);
  });

  it('cuts an application close reason instead of throwing', async () => {
    const { server } = await node();
    const { peer, welcome } = await V1Peer.connect(server);
    server.clients.get(welcome.client)!.close(4000, 'ü'.repeat(100));
    const { code, reason } = await peer.closed;
    expect(code).toBe(4000);
    expect(Buffer.byteLength(reason)).toBeLessThanOrEqual(123);
  });
});

describe('application hooks', () => {
  for (const [name, reply] of [
    ['null', null],
    ['a number', 42],
    ['a plain object', { ok: true }],
  ] as const) {
    it(`answers HANDLER_FAILED when onRequest returns ${name}, and emits a HandlerError`, async () => {
      const { server, errors } = await node({ onRequest: () => reply as never });
      const { peer } = await V1Peer.connect(server);
      peer.send({ t: 'req', id: 1, d: 'x' });
      expect(await peer.next('ack')).toMatchObject({ id: 1, error: { code: 'HANDLER_FAILED' } });
      expect(errors).toHaveLength(1);
      expect(errors[0]).toBeInstanceOf(HandlerError);
      await stillServes(server);
    });
  }

  it('refuses a join when authorizeJoin returns something other than a boolean', async () => {
    const { server, errors } = await node({ authorizeJoin: () => 'yes' as never });
    const { peer, welcome } = await V1Peer.connect(server);
    peer.send({ t: 'join', id: 1, r: 'room' });
    expect(await peer.next('ack')).toMatchObject({ id: 1, error: { code: 'FORBIDDEN' } });
    expect(server.clients.get(welcome.client)!.rooms.size).toBe(0);
    expect(errors[0]).toBeInstanceOf(HandlerError);
  });

  it('refuses a join of the empty room, whatever authorizeJoin says: no API can name it', async () => {
    const { server } = await node({ authorizeJoin: () => true });
    const { peer, welcome } = await V1Peer.connect(server);
    peer.send({ t: 'join', id: 1, r: '' });
    expect(await peer.next('ack')).toMatchObject({ id: 1, error: { code: 'FORBIDDEN' } });
    expect(server.clients.get(welcome.client)!.rooms.size).toBe(0);
    expect((await server.fetchRooms()).rooms).toEqual([]);
  });

  it('answers requests and joins whose hooks never settle within hookTimeoutMs, and frees their places', async () => {
    const { server, errors } = await node({
      onRequest: () => new Promise(() => undefined),
      authorizeJoin: () => new Promise(() => undefined),
      hookTimeoutMs: 100,
      maxInFlightPerClient: 2,
    });
    const { peer, welcome } = await V1Peer.connect(server);
    // More than the client may have in flight at once, one after another: each place comes back.
    for (let id = 1; id <= 3; id++) {
      peer.send({ t: 'req', id, d: 'x', s: id });
      peer.send({ t: 'join', id: 100 + id, r: `room-${id}` });
      const acks = [await peer.next('ack'), await peer.next('ack')];
      expect(acks.sort((x, y) => x.id - y.id)).toMatchObject([
        { id, error: { code: 'HANDLER_FAILED' } },
        { id: 100 + id, error: { code: 'FORBIDDEN' } },
      ]);
    }
    expect(server.clients.get(welcome.client)!.rooms.size).toBe(0);
    expect(server.stats.limited.inFlight).toBe(0);
    expect(errors.map((error) => [error.constructor, (error as HandlerError).code])).toEqual(
      Array.from({ length: 6 }, () => [HandlerError, 'HANDLER_FAILED']),
    );
  });

  it('answers 503 when authenticate does not answer within authenticateTimeoutMs', async () => {
    const { port, errors } = await node({
      authenticate: () => new Promise(() => undefined),
      authenticateTimeoutMs: 100,
    });
    expect(await upgradeStatus(port)).toBe(503);
    expect(errors[0]).toBeInstanceOf(HandlerError);
  });

  it('keeps going when an error listener itself throws', async () => {
    const { server } = await node({ onRequest: () => null as never });
    server.on('error', () => {
      throw new Error('the error listener is broken too');
    });
    const warnings: Error[] = [];
    const onWarning = (warning: Error) => warnings.push(warning);
    process.on('warning', onWarning);
    try {
      const { peer } = await V1Peer.connect(server);
      peer.send({ t: 'req', id: 1 });
      expect(await peer.next('ack')).toMatchObject({ error: { code: 'HANDLER_FAILED' } });
      await until(() => warnings.length > 0, 2000, 'the failure to be reported as a warning');
      await stillServes(server);
    } finally {
      process.off('warning', onWarning);
    }
  });
});

describe('a draining node', () => {
  /** Starts a drain that lasts: a raw client that never answers the close keeps it going. */
  async function drain(server: ScaledWebSocketServer, port: number) {
    const stuck = await RawSocket.open(port, { protocol: '' });
    await until(() => server.clients.size === 1, 2000, 'the stuck client');
    const closed = server.close();
    await stuck.closeFrame();
    return { closed, stuck };
  }

  it('answers 503 to an upgrade in port mode', async () => {
    const server = new ScaledWebSocketServer({ port: 0, host: '127.0.0.1', closeTimeoutMs: 2000 });
    await server.ready();
    const port = (server.address() as AddressInfo).port;
    const { closed, stuck } = await drain(server, port);
    expect(await upgradeStatus(port)).toBe(503);
    stuck.destroy();
    await closed;
  });

  it('answers 503 to an upgrade on a connection its HTTP server took before it closed', async () => {
    // As a node:cluster worker's can: the primary hands it a connection as it closes.
    const server = new ScaledWebSocketServer({ port: 0, host: '127.0.0.1' });
    await server.ready();
    const port = (server.address() as AddressInfo).port;
    const socket = connect(port, '127.0.0.1');
    await once(socket, 'connect');
    socket.write('GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n');
    const closed = server.close();
    await until(() => server.address() === null, 2000, 'the HTTP server to close');
    const answer = once(socket, 'data');
    socket.write(
      'Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n' +
        'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n',
    );
    expect(String((await answer)[0]).split('\r\n')[0]).toBe('HTTP/1.1 503 Service Unavailable');
    socket.destroy();
    await closed;
  });

  it('answers 503 to an upgrade on an attached server', async () => {
    const http = createServer();
    await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
    const port = (http.address() as AddressInfo).port;
    const server = new ScaledWebSocketServer({ server: http, closeTimeoutMs: 2000 });
    await server.ready();
    const { closed, stuck } = await drain(server, port);
    expect(await upgradeStatus(port)).toBe(503);
    stuck.destroy();
    await closed;
    await closeHttp(http);
  });

  it('answers 503 to an upgrade handed over with handleUpgrade', async () => {
    const server = new ScaledWebSocketServer({ noServer: true, closeTimeoutMs: 2000 });
    const http = createServer();
    http.on('upgrade', (request, socket, head) => server.handleUpgrade(request, socket, head));
    await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
    const port = (http.address() as AddressInfo).port;
    await server.ready();
    const { closed, stuck } = await drain(server, port);
    expect(await upgradeStatus(port)).toBe(503);
    stuck.destroy();
    await closed;
    await closeHttp(http);
  });
});

describe('health', () => {
  it('says stateStore none for a node given no state store (it keeps sessions itself)', async () => {
    const { server } = await node({});
    expect(await server.health()).toMatchObject({ stateStore: 'none', history: 'none' });
  });
});

describe('logs', () => {
  it('hold an outage to a line a second for each error code, and emit every error', async () => {
    const lines: string[] = [];
    const ignore = () => undefined;
    const logger = {
      debug: ignore,
      info: ignore,
      warn: ignore,
      error: (_fields: object, message: string) => void lines.push(message),
    };
    const store = new (class extends MemoryStateStore {
      down = false;
      override set(key: string, value: string, options?: { ifVersion?: string | null }) {
        return this.down
          ? Promise.reject(new StateStoreError('the store is down'))
          : super.set(key, value, options);
      }
    })({ ttlMs: 60_000 });
    const { server, errors } = await node({
      stateStore: store,
      sessionSecret: 'a-test-secret-of-enough-bytes',
      logger,
    });
    const peers = await Promise.all(Array.from({ length: 5 }, () => V1Peer.connect(server)));
    store.down = true;
    lines.length = 0;
    // Every session's save fails at once.
    await Promise.all([...server.clients.values()].map((client) => client.saveData()));
    const failed = errors.filter(
      (error) => (error as { code?: string }).code === 'STATE_STORE_FAILED',
    );
    expect(failed).toHaveLength(5);
    expect(lines).toHaveLength(1);
    for (const { peer } of peers) peer.ws.terminate();
    store.down = false;
  });
});

describe('sends the application does not await', () => {
  it('do not end the process when they fail: counted, logged, and still rejecting for who awaits', async () => {
    const { unhandled, warned, logger, stop } = watchUnawaited();
    const { server, port } = await node({ closeTimeoutMs: 2000, logger });
    try {
      const raw = await RawSocket.open(port, { protocol: '' });
      await until(() => server.clients.size === 1, 2000, 'the client');
      const [client] = server.clients.values();
      const closed = server.close();
      // Its clients are told to go once its handlers have finished; sends are refused from then.
      expect((await raw.closeFrame()).code).toBe(1012);
      // What a timer of the application (a ticker, a job) starts while the node drains, as
      // statements: nothing awaits or returns what they start.
      void server.to('room').send('tick');
      server.broadcast('tick');
      server.client(client!.id).send('tick');
      // Counted as well, and it still rejects for whoever awaits it.
      await expect(server.to('room').send('tick')).rejects.toBeInstanceOf(ServerClosedError);
      await until(() => server.stats.failedSends === 4, 2000, 'the failures counted');
      await new Promise((resolve) => setImmediate(resolve));
      expect(unhandled).toEqual([]);
      // Logged a line a second at most: an outage fails every send.
      expect(warned).toEqual(['SERVER_CLOSED']);
      raw.destroy();
      await closed;
    } finally {
      stop();
    }
  });
});

describe("the node's own HTTP server (port)", () => {
  /** A raw TCP connection to the node, and everything it is sent until it ends. */
  async function tcp(port: number) {
    const socket = connect(port, '127.0.0.1');
    await new Promise<void>((resolve, reject) =>
      socket.once('connect', resolve).once('error', reject),
    );
    let received = '';
    const ended = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    socket.on('data', (chunk: Buffer) => (received += chunk.toString('latin1')));
    socket.on('error', () => undefined);
    return { socket, ended, received: () => received };
  }

  function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} not within ${ms} ms`)), ms);
    });
    return Promise.race([promise, late]).finally(() => clearTimeout(timer));
  }

  it('answers one plain request per connection, and closes it: pipelined requests cost one answer', async () => {
    const { server, port } = await node();
    const conn = await tcp(port);
    conn.socket.write('GET / HTTP/1.1\r\nHost: a\r\n\r\n'.repeat(1000));
    await within(conn.ended, 2000, 'the close of the connection').finally(() =>
      conn.socket.destroy(),
    );
    expect(conn.received().match(/HTTP\/1\.1 426/g)).toHaveLength(1);
    await stillServes(server);
  });

  it('closes a connection that trickles its request headers within 11 s', async () => {
    const { server, port } = await node();
    const conn = await tcp(port);
    conn.socket.write('GET / HTTP/1.1\r\nHost: a\r\n');
    const started = Date.now();
    const trickle = setInterval(() => conn.socket.write('X-A: b\r\n'), 500);
    try {
      await within(conn.ended, 13_000, 'the close of the connection');
    } finally {
      clearInterval(trickle);
      conn.socket.destroy();
    }
    expect(Date.now() - started).toBeLessThan(12_000);
    await stillServes(server);
  }, 20_000);
});

function closeHttp(http: Server): Promise<void> {
  http.closeAllConnections();
  return new Promise((resolve) => http.close(() => resolve()));
}
