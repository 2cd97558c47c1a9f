import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { WscaleClient } from '@wscale/client';
import {
  type BrokerStatus,
  HistoryError,
  type HistoryPosition,
  MemoryStateStore,
  ScaledWebSocketServer,
  StateStoreError,
  WscaleError,
} from '@wscale/core';
import { delay, until } from '@wscale/core/testing';
import { NatsBroker, NatsHistory, NatsKvStateStore } from '@wscale/nats';
import {
  type NatsCluster,
  settle,
  skipWithoutNats,
  startNatsCluster,
  WireTap,
} from '@wscale/test-support';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fastReconnect, uniqueName } from './helpers/clients.js';

/** Retries `attempt` until it succeeds, accepting only `expected` errors meanwhile. */
async function eventually<T>(
  attempt: () => Promise<T>,
  expected: new (...args: never[]) => Error,
  timeoutMs: number,
): Promise<{ value: T; failures: number }> {
  const deadline = Date.now() + timeoutMs;
  let failures = 0;
  for (;;) {
    try {
      return { value: await attempt(), failures };
    } catch (error) {
      expect(error).toBeInstanceOf(expected);
      failures++;
      if (Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}

describe.skipIf(skipWithoutNats())('NATS adapters when a cluster node dies', () => {
  let cluster: NatsCluster;
  const opened: Array<{ close(): Promise<void> }> = [];
  const name = uniqueName('faults');
  /** Connects to node `first` first, with the other nodes as failover. */
  const servers = (first: number) => [
    ...cluster.urls.slice(first),
    ...cluster.urls.slice(0, first),
  ];
  const connectionOptions = { ...fastReconnect, noRandomize: true };
  const track = <T extends { close(): Promise<void> }>(resource: T) => {
    opened.push(resource);
    return resource;
  };

  /** Asks a running server which server leads a stream; answers its index in the cluster. */
  async function leaderOf(stream: string): Promise<number> {
    const nc = await connect({
      servers: cluster.servers.filter((s) => s.running).map((s) => s.url),
    });
    try {
      const jsm = await jetstreamManager(nc);
      const leader = (await jsm.streams.info(stream)).cluster?.leader;
      const index = cluster.servers.findIndex((server) => server.name === leader);
      expect(index, `leader of ${stream}: ${leader}`).toBeGreaterThanOrEqual(0);
      return index;
    } finally {
      await nc.close();
    }
  }

  /** Moves a stream's leadership (a random other peer each time) until `server` leads it. */
  async function leadOn(stream: string, server: number): Promise<void> {
    for (let attempt = 0; attempt < 20; attempt++) {
      if ((await leaderOf(stream)) === server) return;
      const nc = await connect({ servers: cluster.urls });
      await nc.request(`$JS.API.STREAM.LEADER.STEPDOWN.${stream}`, undefined, { timeout: 5000 });
      await nc.close();
      await until(async () => (await leaderOf(stream).catch(() => -1)) >= 0, 10_000, 'a leader');
    }
    throw new Error(`${stream} never came to be led by server ${server}`);
  }

  beforeAll(async () => {
    cluster = await startNatsCluster(3);
  });
  afterAll(async () => {
    await Promise.all(opened.map((resource) => resource.close()));
    await cluster?.close();
  });

  it("keeps brokers, the KV store and the history working when the streams' leader dies", async () => {
    const historyStream = `${name}_history`;
    const bucket = `${name}_kv`;
    // R3, one writer per key and room: the server's leader election is what is exercised here.
    const store = track(
      new NatsKvStateStore({
        servers: servers(2),
        connectionOptions,
        bucket,
        replicas: 3,
        timeoutMs: 2000,
      }),
    );
    const history = track(
      new NatsHistory({
        servers: servers(2),
        connectionOptions,
        stream: historyStream,
        subjectPrefix: `${name}.`,
        replicas: 3,
        timeoutMs: 2000,
      }),
    );
    await store.set('session', 'v1');
    const firstAppend = await history.append('room', Buffer.from('1'));
    // The node that dies leads both streams, and broker `a` is connected to it.
    const leader = await leaderOf(historyStream);
    await leadOn(`KV_${bucket}`, leader);
    const a = track(new NatsBroker({ servers: servers(leader), connectionOptions }));
    const b = track(new NatsBroker({ servers: servers((leader + 1) % 3), connectionOptions }));
    await until(() => a.status === 'ready' && b.status === 'ready', 5000, 'brokers ready');
    const received: number[] = [];
    await b.subscribe('live', (payload) => received.push(Number(Buffer.from(payload))));
    const aStatus: BrokerStatus[] = [];
    a.on('status', (status) => aStatus.push(status));

    // Warm up the route before the fault: publish until the subscription is known on node 1.
    let sent = 0;
    await until(
      async () => {
        await a.publish('live', Buffer.from(String(++sent)));
        return received.length > 0;
      },
      5000,
      'first cross-node delivery',
    );

    await cluster.servers[leader]!.kill();

    // The broker on the dead node fails over to another one and delivers again.
    await until(() => aStatus.includes('ready'), 15_000, 'a to fail over');
    const mark = sent;
    const failures: unknown[] = [];
    await until(
      async () => {
        await a.publish('live', Buffer.from(String(++sent))).catch((error: unknown) => {
          failures.push(error);
        });
        return received.some((n) => n > mark);
      },
      10_000,
      'delivery after failover',
    );
    for (const error of failures) expect(error).toBeInstanceOf(WscaleError);
    expect(aStatus.some((status) => status === 'down' || status === 'reconnecting')).toBe(true);
    expect(b.status).toBe('ready');
    // Core NATS may lose what was in flight, but never repeats or reorders.
    for (let i = 1; i < received.length; i++)
      expect(received[i]!).toBeGreaterThan(received[i - 1]!);

    // KV and history answer (or fail typed while the leaders move) and then work again.
    const written = await eventually(() => store.set('session', 'v2'), StateStoreError, 20_000);
    expect(written.value).toBeTypeOf('string');
    const read = await eventually(() => store.get('session'), StateStoreError, 20_000);
    expect(read.value?.value).toBe('v2');
    const appended = await eventually(
      () => history.append('room', Buffer.from('2')),
      HistoryError,
      20_000,
    );
    expect(appended.value.epoch).toBe(firstAppend.epoch);
    expect(appended.value.offset).toBeGreaterThan(1);
    const log = await eventually(
      () => history.read('room', { offset: 0, epoch: firstAppend.epoch } as HistoryPosition),
      HistoryError,
      20_000,
    );
    expect(log.value.ok).toBe(true);
    if (log.value.ok) {
      const offsets = log.value.entries.map((entry) => entry.offset);
      expect(offsets).toEqual(Array.from({ length: offsets.length }, (_, i) => i + 1));
      expect(offsets.at(-1)).toBe(appended.value.offset);
    }
    const newLeader = await leaderOf(historyStream);
    expect(newLeader).not.toBe(leader);
    await cluster.servers[leader]!.start(30_000);
  }, 120_000);

  it('a history room through ScaledWebSocketServer loses, repeats and reorders nothing when its stream leader dies', async () => {
    const stream = `${name}_rooms`;
    const stateStore = track(new MemoryStateStore());
    const nodes = [0, 1].map((i) => {
      const broker = track(new NatsBroker({ servers: servers(i), connectionOptions }));
      const store = track(
        new NatsHistory({
          servers: servers(i),
          connectionOptions,
          stream,
          subjectPrefix: `${name}_rooms.`,
          replicas: 3,
          timeoutMs: 2000,
        }),
      );
      const node = new ScaledWebSocketServer({
        port: 0,
        host: '127.0.0.1',
        nodeId: `wss-${i}`,
        broker,
        stateStore,
        sessionSecret: 'a-secret-for-the-cluster-faults',
        history: [{ rooms: 'feed', store }],
      });
      node.on('error', () => undefined);
      node.on('connection', (client) => void client.join('feed'));
      return track(node);
    });
    await Promise.all(nodes.map((node) => node.ready()));
    const [publisher, holder] = nodes as [ScaledWebSocketServer, ScaledWebSocketServer];
    const tap = new WireTap();
    const client = track(
      new WscaleClient(`ws://127.0.0.1:${holder.address()!.port}/`, {
        WebSocket: tap.WebSocket,
        network: false,
      }),
    );
    await until(() => client.rooms.includes('feed'), 10_000, 'the client in the room');

    // Numbered sends, each number tried once; an application that keeps sending through the fault.
    const delivered: number[] = [];
    let next = 0;
    const send = async () => {
      const n = ++next;
      try {
        await publisher.to('feed').send(String(n));
        delivered.push(n);
      } catch (error) {
        expect(error).toBeInstanceOf(WscaleError);
      }
    };
    while (delivered.length < 20) await send();
    const leader = await leaderOf(stream);
    await cluster.servers[leader]!.kill();
    const before = delivered.length;
    const deadline = Date.now() + 40_000;
    while (delivered.length < before + 20 && Date.now() < deadline) {
      await send();
      await delay(10);
    }
    expect(delivered.length, 'sends that succeeded after the leader died').toBe(before + 20);
    const last = delivered.at(-1)!;
    await settle(() => tap.messages('feed').some((m) => Number(m.d) === last), 20_000, 'the last');

    // On the wire: strictly increasing numbers under consecutive offsets, none twice, and every
    // number whose send() resolved among them.
    const frames = tap.messages('feed');
    const numbers = frames.map((frame) => Number(frame.d));
    for (let i = 1; i < numbers.length; i++) expect(numbers[i]!).toBeGreaterThan(numbers[i - 1]!);
    const offsets = frames.map((frame) => frame.o!);
    expect(offsets).toEqual(offsets.map((_, i) => offsets[0]! + i));
    expect(numbers).toEqual(expect.arrayContaining(delivered));
    await cluster.servers[leader]!.start(30_000);
  }, 120_000);
});
