import { readFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  InvalidArgumentError,
  MemoryHistory,
  MemoryStateStore,
  ScaledWebSocketServer,
} from '@wscale/core';
import { PROTOCOL } from '@wscale/core/protocol';
import { until } from '@wscale/core/testing';
import {
  clusterView,
  collectMetrics,
  instrumentHistory,
  instrumentStateStore,
} from '@wscale/prometheus';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { TestClient, urlOf } from '../../core/test/helpers/nodes.js';
import { frame, RawSocket } from '../../core/test/helpers/raw-socket.js';
import { V1Peer } from '../../core/test/helpers/v1-client.js';

const cleanup: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) await step();
});

/** Serves a registry on `/metrics` and returns a scrape function: metric line → value. */
async function endpoint(registry: Registry): Promise<() => Promise<(series: string) => number>> {
  const server: Server = createServer(async (_request, response) => {
    response.writeHead(200, { 'content-type': registry.contentType }).end(await registry.metrics());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanup.push(() => new Promise((resolve) => server.close(resolve)));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/metrics`;
  return async () => {
    const text = await (await fetch(url)).text();
    return (series) => {
      const line = text.split('\n').find((l) => l.startsWith(`${series} `));
      return line === undefined ? 0 : Number(line.slice(series.length + 1));
    };
  };
}

describe('collectMetrics', () => {
  it('moves with real traffic: connections, messages by kind, a limit, a resume, disconnects', async () => {
    const registry = new Registry();
    const history = new MemoryHistory();
    const wss = new ScaledWebSocketServer({
      port: 0,
      host: '127.0.0.1',
      maxRoomsPerClient: 1,
      authorizeJoin: () => true,
      history: [{ rooms: 'h:*', store: history }],
    });
    collectMetrics(wss, { registry });
    cleanup.push(() => wss.close());
    wss.on('connection', (client) => {
      if (!client.v1) void client.join('h:room');
    });
    await wss.ready();
    const scrape = await endpoint(registry);

    const raw = new TestClient(urlOf(wss));
    await raw.opened;
    const { peer, welcome } = await V1Peer.connect(wss);
    peer.send({ t: 'join', id: 1, r: 'h:room' });
    await peer.next('ack');
    await until(() => wss.stats.subscriptions === 2, 3000, 'both in the room');

    let m = await scrape();
    expect(m('wscale_connections{protocol="raw"}')).toBe(1);
    expect(m('wscale_connections{protocol="wscale.v1"}')).toBe(1);
    expect(m('wscale_connects_total')).toBe(2);
    expect(m('wscale_rooms')).toBe(1);
    expect(m('wscale_subscriptions')).toBe(2);
    expect(m('wscale_broker_status{status="ready"}')).toBe(1);
    expect(m('wscale_broker_status{status="down"}')).toBe(0);
    const controlBefore = m('wscale_messages_out_total{kind="control"}');
    expect(controlBefore).toBeGreaterThanOrEqual(3); // welcome, joined, ack

    for (let i = 0; i < 3; i++) await wss.to('h:room').send(`m${i}`);
    const rawId = [...wss.clients.values()].find((client) => !client.v1)!.id;
    await wss.client(rawId).send('just you');
    await raw.waitFor(4);
    await until(() => peer.texts('h:room').length === 3, 3000, 'the v1 peer got the broadcasts');
    m = await scrape();
    expect(m('wscale_messages_out_total{kind="broadcast"}')).toBe(6); // 3 messages × 2 members
    expect(m('wscale_messages_out_total{kind="direct"}')).toBe(1);
    expect(m('wscale_bytes_out_total{kind="direct"}')).toBe(2 + 'just you'.length); // one frame
    expect(m('wscale_messages_in_total')).toBe(1); // the join (a hello is not counted)

    // A second room is one too many: refused with LIMIT, and the limit counted.
    peer.send({ t: 'join', id: 2, r: 'other' });
    expect((await peer.next('ack')).error?.code).toBe('LIMIT');
    m = await scrape();
    expect(m('wscale_joins_refused_total{code="LIMIT"}')).toBe(1);
    expect(m('wscale_limit_hits_total{limit="rooms"}')).toBe(1);
    expect(m('wscale_messages_in_total')).toBe(2);
    // A send of the application that failed (a client id is a string).
    await wss
      .client(42 as unknown as string)
      .send('no')
      .catch(() => undefined);
    m = await scrape();
    expect(m('wscale_failed_sends_total')).toBe(1);

    // The v1 client goes away, misses two messages, and comes back: a recovered resume.
    const last = peer.all('msg').at(-1)!;
    peer.ws.close();
    await until(() => wss.stats.connections === 1, 3000, 'the v1 client gone');
    await wss.to('h:room').send('missed 1');
    await wss.to('h:room').send('missed 2');
    const back = await V1Peer.connect(wss, {
      session: welcome.session,
      rooms: { 'h:room': { o: last.o!, e: last.e! } },
    });
    cleanup.push(() => back.peer.ws.terminate());
    expect(back.welcome.resumed).toBe(true);
    m = await scrape();
    expect(m('wscale_resumes_total{result="recovered"}')).toBe(1);
    expect(m('wscale_replayed_messages_total')).toBe(2);
    expect(m('wscale_messages_out_total{kind="replay"}')).toBe(2);
    expect(m('wscale_disconnects_total{code="1005"}')).toBe(1); // closed without a code
    expect(m('wscale_connects_total')).toBe(3);

    raw.ws.close(1000);
    await raw.closed;
    await until(() => wss.stats.connections === 1, 3000, 'the raw client gone');
    m = await scrape();
    expect(m('wscale_connections{protocol="raw"}')).toBe(0);
    expect(m('wscale_disconnects_total{code="1000"}')).toBe(1);
  });

  it('refuses, with a typed error, a second node on one registry, and takes it with its own prefix', async () => {
    const registry = new Registry();
    const [a, b] = [1, 2].map(() => new ScaledWebSocketServer({ noServer: true }));
    cleanup.push(
      () => a!.close(),
      () => b!.close(),
    );
    collectMetrics(a!, { registry });
    expect(() => collectMetrics(b!, { registry })).toThrow(InvalidArgumentError);
    collectMetrics(b!, { registry, prefix: 'b_' });
    expect(registry.getSingleMetric('b_connects_total')).toBeDefined();
  });

  it('counts the close codes clients choose by range: a series per code would let them add thousands', async () => {
    const registry = new Registry();
    const wss = new ScaledWebSocketServer({ port: 0, host: '127.0.0.1' });
    collectMetrics(wss, { registry });
    cleanup.push(() => wss.close());
    await wss.ready();
    const scrape = await endpoint(registry);
    const codes = [3001, 3999, 4000, 4001, 4998, 1000];
    for (const code of codes) {
      const client = new TestClient(urlOf(wss));
      await client.opened;
      client.ws.close(code);
      await client.closed;
    }
    await until(() => wss.stats.connections === 0, 3000, 'every client gone');
    const m = await scrape();
    expect(m('wscale_disconnects_total{code="3000-3999"}')).toBe(2);
    expect(m('wscale_disconnects_total{code="4000-4999"}')).toBe(3);
    expect(m('wscale_disconnects_total{code="1000"}')).toBe(1);
    const text = await registry.getSingleMetricAsString('wscale_disconnects_total');
    expect(
      text.split('\n').filter((line) => line.startsWith('wscale_disconnects_total{')),
    ).toHaveLength(3);
  });

  it('counts a resume that lost messages of a history room by that room, though a room without history came first', async () => {
    const registry = new Registry();
    const wss = new ScaledWebSocketServer({
      port: 0,
      host: '127.0.0.1',
      authorizeJoin: () => true,
      history: [{ rooms: 'h:*', store: new MemoryHistory({ maxEntries: 2 }) }],
    });
    collectMetrics(wss, { registry });
    cleanup.push(() => wss.close());
    await wss.ready();
    const { peer, welcome } = await V1Peer.connect(wss);
    for (const [id, room] of [
      [1, 'plain'],
      [2, 'h:room'],
    ] as const) {
      peer.send({ t: 'join', id, r: room });
      await peer.next('ack');
    }
    await wss.to('h:room').send('seen');
    const seen = await peer.next('msg');
    peer.ws.close();
    await until(() => wss.stats.connections === 0, 3000, 'the client gone');
    // More than the history keeps: the gap is too old to replay.
    for (let i = 1; i <= 5; i++) await wss.to('h:room').send(`missed ${i}`);
    const back = await V1Peer.connect(wss, {
      session: welcome.session,
      rooms: { 'h:room': { o: seen.o!, e: seen.e! } },
    });
    cleanup.push(() => back.peer.ws.terminate());
    expect(back.welcome.rooms).toMatchObject({
      plain: { recovered: false, reason: 'no-history' },
      'h:room': { recovered: false, reason: 'too-old' },
    });
    const m = await (await endpoint(registry))();
    expect(m('wscale_resumes_total{result="partial",reason="too-old"}')).toBe(1);
    expect(m('wscale_resumes_total{result="partial",reason="no-history"}')).toBe(0);
  });

  it('counts connections closed for breaking the protocol by the code the node sent, which the disconnects count as 1006', async () => {
    const registry = new Registry();
    const wss = new ScaledWebSocketServer({ port: 0, host: '127.0.0.1', maxPayload: 1024 });
    collectMetrics(wss, { registry });
    cleanup.push(() => wss.close());
    await wss.ready();
    const port = wss.address()!.port;
    const refused = async (protocol: string, bytes: Buffer) => {
      const raw = await RawSocket.open(port, { protocol });
      cleanup.push(() => raw.destroy());
      raw.write(bytes);
      // The node's close frame; the socket is then left unanswered, as an attacker leaves it.
      return (await raw.closeFrame()).code;
    };
    expect(await refused('', frame(0x2, Buffer.alloc(2048)))).toBe(1009);
    expect(await refused('', frame(0x1, Buffer.from([0xff, 0xfe])))).toBe(1007);
    expect(await refused(PROTOCOL, frame(0x1, Buffer.from('{"t":"msg","d":"no hello"}')))).toBe(
      1008,
    );
    await until(() => wss.stats.connections === 0, 5000, 'the three closed');
    expect(wss.stats.violations).toEqual({ 1007: 1, 1008: 1, 1009: 1 });
    const m = await (await endpoint(registry))();
    for (const code of [1007, 1008, 1009]) {
      expect(m(`wscale_violations_total{code="${code}"}`)).toBe(1);
    }
    // The one refused before its hello was never a client: only the violations count it.
    expect(m('wscale_disconnects_total{code="1006"}')).toBe(2);
  });

  it('times the stores through instrumented ones, and counts a resume that failed', async () => {
    const registry = new Registry();
    const stateStore = instrumentStateStore(new MemoryStateStore(), { registry });
    const wss = new ScaledWebSocketServer({
      port: 0,
      host: '127.0.0.1',
      stateStore,
      sessionSecret: 'a secret of sixteen bytes or more',
    });
    cleanup.push(() => stateStore.close());
    collectMetrics(wss, { registry });
    const history = instrumentHistory(new MemoryHistory(), { registry });
    cleanup.push(() => wss.close());
    await wss.ready();
    const position = await history.append('room', Buffer.from('x'));
    await history.read('room', { offset: 0, epoch: position.epoch });
    const { peer, welcome } = await V1Peer.connect(wss, { session: 'not-a-token' });
    cleanup.push(() => peer.ws.terminate());
    expect(welcome.resumed).toBe(false);
    const scrape = await endpoint(registry);
    const m = await scrape();
    expect(m('wscale_history_seconds_count{op="read"}')).toBe(1);
    expect(m('wscale_history_seconds_count{op="append"}')).toBe(1);
    expect(m('wscale_state_store_seconds_count{op="set"}')).toBeGreaterThanOrEqual(1); // the session
    expect(stateStore.ttlMs).toBe(new MemoryStateStore().ttlMs); // other members are the store's own
    expect(m(`wscale_resumes_total{result="failed",reason="${welcome.reason}"}`)).toBe(1);
  });
});

describe('instrumented stores', () => {
  it('count a failing call as an error, timed too, and share the metrics between two stores', async () => {
    class DownStore extends MemoryStateStore {
      override get(_key: string): Promise<never> {
        return Promise.reject(new Error('store down'));
      }
    }
    const registry = new Registry();
    const down = instrumentStateStore(new DownStore(), { registry });
    const up = instrumentStateStore(new MemoryStateStore(), { registry });
    cleanup.push(
      () => down.close(),
      () => up.close(),
    );
    await expect(down.get('k')).rejects.toThrow('store down');
    expect(await up.get('k')).toBeUndefined();
    const m = await (await endpoint(registry))();
    expect(m('wscale_state_store_errors_total{op="get"}')).toBe(1);
    expect(m('wscale_state_store_seconds_count{op="get"}')).toBe(2);
  });
});

describe('clusterView', () => {
  it('serves the page, and the numbers of every node under stats.json', async () => {
    const wss = new ScaledWebSocketServer({ port: 0, host: '127.0.0.1' });
    cleanup.push(() => wss.close());
    await wss.ready();
    const server = createServer(clusterView(wss));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    cleanup.push(() => new Promise((resolve) => server.close(resolve)));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/cluster`;
    const page = await fetch(`${base}/`);
    expect(page.headers.get('content-type')).toContain('text/html');
    expect(await page.text()).toContain('stats.json');
    const stats = await fetch(`${base}/stats.json`);
    expect(stats.status).toBe(200);
    const body = (await stats.json()) as { node: string; nodes: Array<{ nodeId: string }> };
    expect(body.node).toBe(wss.nodeId);
    expect(body.nodes.map((node) => node.nodeId)).toEqual([wss.nodeId]);
    expect(body).toMatchObject({ missing: [] });
  });
});

describe('direct messages kept for a session (directHistory)', () => {
  it('count as direct, and their stream is no room', async () => {
    const registry = new Registry();
    const wss = new ScaledWebSocketServer({
      port: 0,
      host: '127.0.0.1',
      directHistory: new MemoryHistory(),
    });
    collectMetrics(wss, { registry });
    cleanup.push(() => wss.close());
    await wss.ready();
    const { peer, welcome } = await V1Peer.connect(wss);
    cleanup.push(() => peer.ws.terminate());
    await wss.client(welcome.client).send('for you');
    await until(() => peer.all('msg').length === 1, 3000, 'the direct message');
    const m = await (await endpoint(registry))();
    expect(m('wscale_messages_out_total{kind="direct"}')).toBe(1);
    expect(m('wscale_messages_out_total{kind="broadcast"}')).toBe(0);
    expect(m('wscale_rooms')).toBe(0);
    expect(m('wscale_subscriptions')).toBe(0);
  });
});

describe('compression', () => {
  it('counts a message compressed once, whatever the number of its clients', async () => {
    const registry = new Registry();
    const wss = new ScaledWebSocketServer({ port: 0, host: '127.0.0.1', perMessageDeflate: true });
    collectMetrics(wss, { registry });
    cleanup.push(() => wss.close());
    wss.on('connection', (client) => void client.join('room'));
    await wss.ready();
    const scrape = await endpoint(registry);
    const clients = [new TestClient(urlOf(wss)), new TestClient(urlOf(wss))];
    cleanup.push(async () => {
      for (const client of clients) client.ws.terminate();
    });
    for (const client of clients) await client.opened;
    await until(() => wss.stats.subscriptions === 2, 3000, 'both in the room');
    await wss.to('room').send('compressible '.repeat(100));
    for (const client of clients) await client.waitFor(1);
    expect((await scrape())('wscale_messages_compressed_total')).toBe(1);
  });
});

describe('the Grafana dashboard and the metrics table', () => {
  it('name only metrics that exist', async () => {
    const registry = new Registry();
    const wss = new ScaledWebSocketServer({ noServer: true });
    cleanup.push(() => wss.close());
    collectMetrics(wss, { registry });
    instrumentStateStore(new MemoryStateStore(), { registry });
    instrumentHistory(new MemoryHistory(), { registry });
    const registered = new Set(registry.getMetricsAsArray().map((metric) => metric.name));
    const root = new URL('../../../docs/', import.meta.url);
    for (const file of ['grafana-dashboard.json', 'operations.md']) {
      const text = await readFile(new URL(file, root), 'utf8');
      const named = new Set(
        [...text.matchAll(/\bwscale_[a-z_]+/g)].map(([name]) => name.replace(/_bucket$/, '')),
      );
      expect(named.size).toBeGreaterThan(10);
      expect(
        [...named].filter((name) => !registered.has(name)),
        file,
      ).toEqual([]);
    }
  });
});
