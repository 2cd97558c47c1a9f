import {
  type BrokerStatus,
  HistoryError,
  type HistoryPosition,
  StateStoreError,
  WscaleError,
} from '@wscale/core';
import { until } from '@wscale/core/testing';
import { NatsBroker, NatsHistory, NatsKvStateStore } from '@wscale/nats';
import { type NatsCluster, skipWithoutNats, startNatsCluster } from '@wscale/test-support';
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

  beforeAll(async () => {
    cluster = await startNatsCluster(3);
  });
  afterAll(async () => {
    await Promise.all(opened.map((resource) => resource.close()));
    await cluster?.close();
  });

  it('keeps brokers, the KV store and the history working through a node loss', async () => {
    const a = track(new NatsBroker({ servers: servers(0), connectionOptions }));
    const b = track(new NatsBroker({ servers: servers(1), connectionOptions }));
    // R3, one writer per key and room: the server's leader election is what is exercised here.
    const store = track(
      new NatsKvStateStore({
        servers: servers(2),
        connectionOptions,
        bucket: `${name}_kv`,
        replicas: 3,
        timeoutMs: 2000,
      }),
    );
    const history = track(
      new NatsHistory({
        servers: servers(2),
        connectionOptions,
        stream: `${name}_history`,
        subjectPrefix: `${name}.`,
        replicas: 3,
        timeoutMs: 2000,
      }),
    );
    await until(() => a.status === 'ready' && b.status === 'ready', 5000, 'brokers ready');
    const received: number[] = [];
    await b.subscribe('live', (payload) => received.push(Number(Buffer.from(payload))));
    const aStatus: BrokerStatus[] = [];
    a.on('status', (status) => aStatus.push(status));
    await store.set('session', 'v1');
    const firstAppend = await history.append('room', Buffer.from('1'));

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

    await cluster.servers[0]!.kill();

    // The broker on the dead node fails over to another one and delivers again.
    await until(() => aStatus.includes('ready'), 15_000, 'a to fail over');
    const mark = sent;
    await until(
      async () => {
        await a.publish('live', Buffer.from(String(++sent))).catch((error: unknown) => {
          expect(error).toBeInstanceOf(WscaleError);
        });
        return received.some((n) => n > mark);
      },
      10_000,
      'delivery after failover',
    );
    expect(aStatus.some((status) => status === 'down' || status === 'reconnecting')).toBe(true);
    expect(b.status).toBe('ready');
    for (let i = 1; i < received.length; i++) {
      expect(received[i]!).toBeGreaterThanOrEqual(received[i - 1]!);
    }

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
  }, 90_000);
});
