import { spawn } from 'node:child_process';
import cluster from 'node:cluster';
import { fileURLToPath } from 'node:url';
import { ClusterHub, isClusterMessage, type WscaleError } from '@wscale/core';
import { delay, until } from '@wscale/core/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  forkWorkers,
  RemoteBroker,
  RemoteHistory,
  RemoteStateStore,
  stopWorker,
  stopWorkers,
  type WorkerHandle,
} from './helpers/cluster-workers.js';

const codeOf = (promise: Promise<unknown>) =>
  promise.then(
    () => 'resolved',
    (error: WscaleError) => error.code ?? String(error),
  );
const text = (value: string) => new TextEncoder().encode(value);

describe('node:cluster without a hub', () => {
  let workers: WorkerHandle[] = [];
  let hub: ClusterHub | undefined;

  beforeAll(async () => {
    workers = await forkWorkers(3);
  });

  afterAll(async () => {
    await stopWorkers(workers);
    await hub?.close();
  });

  it('fails requests with typed errors after their timeout, and the broker stays connecting', async () => {
    const [w] = workers;
    const store = await RemoteStateStore.create(w!, { ttlMs: 60_000, requestTimeoutMs: 200 });
    const history = await RemoteHistory.create(w!, { requestTimeoutMs: 200 });
    const broker = await RemoteBroker.create(w!, { requestTimeoutMs: 200 });
    expect(await codeOf(store.get('key'))).toBe('STATE_STORE_FAILED');
    expect(await codeOf(history.append('room', text('x')))).toBe('HISTORY_FAILED');
    expect(await codeOf(broker.subscribe('topic', () => undefined))).toBe('BROKER_UNAVAILABLE');
    expect(broker.status).toBe('connecting');
    await Promise.all([store.close(), history.close(), broker.close()]);
  });

  it('fails waiting requests at once and goes down when the IPC channel closes', async () => {
    const w = workers[2]!;
    await w.call('armDisconnectReport');
    const exited = new Promise((resolve) => w.worker.once('exit', resolve));
    w.worker.disconnect();
    await Promise.race([exited, delay(10_000)]);
    const line = w.output.split('\n').find((l) => l.startsWith('DISCONNECT-REPORT '));
    expect(line, `worker output:\n${w.output}`).toBeDefined();
    const report = JSON.parse(line!.slice('DISCONNECT-REPORT '.length));
    expect(report.pending.settled).toBe('rejected');
    expect(report.pending.code).toBe('STATE_STORE_FAILED');
    // The request's own timeout is 30 s: it failed because the channel closed, not by timing out.
    expect(report.pending.ms).toBeLessThan(10_000);
    expect(report.after).toBe('STATE_STORE_FAILED');
    expect(report.publish).toBe('BROKER_UNAVAILABLE');
    expect(report.status).toBe('down');
  });

  it('becomes ready when a hub attaches later, and sends what it queued', async () => {
    const [w0, w1] = workers;
    const publisher = await RemoteBroker.create(w0!);
    const subscriber = await RemoteBroker.create(w1!, { requestTimeoutMs: 10_000 });
    expect([publisher.status, subscriber.status]).toEqual(['connecting', 'connecting']);
    const received: string[] = [];
    const subscribed = subscriber.subscribe('late', (payload) => {
      received.push(new TextDecoder().decode(payload));
    });
    const queued = publisher.publish('late', text('queued'));
    hub = new ClusterHub();
    await subscribed;
    await queued;
    await until(
      () => publisher.status === 'ready' && subscriber.status === 'ready',
      5000,
      'both ready',
    );
    // Whether "queued" beats the subscription to the hub is a race; what follows it is not.
    await publisher.publish('late', text('after'));
    await until(() => received.includes('after'), 5000, 'after');
    await Promise.all([publisher.close(), subscriber.close()]);
  });
});

describe('node:cluster with a hub', () => {
  let workers: WorkerHandle[] = [];
  let hub: ClusterHub;

  beforeAll(async () => {
    hub = new ClusterHub();
    workers = await forkWorkers(3, 'advanced');
  });

  afterAll(async () => {
    await stopWorkers(workers);
    await hub.close();
  });

  it('refuses a second hub in the same process', () => {
    expect(() => new ClusterHub()).toThrow(/already attached/);
  });

  it('drops the subscriptions of a worker that dies, and the others carry on', async () => {
    const [w0, w1, w2] = workers;
    const publisher = await RemoteBroker.create(w0!);
    const survivor = await RemoteBroker.create(w1!);
    const doomed = await RemoteBroker.create(w2!);
    const received: string[] = [];
    await survivor.subscribe('shared', (payload) => received.push(String(Buffer.from(payload))));
    await doomed.subscribe('shared', () => undefined);
    await doomed.subscribe('only-doomed', () => undefined);
    expect(hub.stats()).toMatchObject({ workers: 3, topics: 2 });

    await stopWorker(w2!, 'SIGKILL');
    await until(() => hub.stats().workers === 2, 5000, 'the hub to drop the dead worker');
    expect(hub.stats().topics).toBe(1);

    await publisher.publish('shared', text('still here'));
    await until(() => received.length === 1, 5000, 'delivery to the survivor');
    expect(received).toEqual(['still here']);
    const store = await RemoteStateStore.create(w1!, { ttlMs: 60_000 });
    const version = await store.set('after-death', 'ok');
    expect(await store.get('after-death')).toEqual({ value: 'ok', version });
    await Promise.all([publisher.close(), survivor.close(), store.close()]);
  });

  it("passes the application's own IPC messages through untouched, both ways", async () => {
    const w = workers[0]!;
    const seenByApp: unknown[] = [];
    const appListener = (worker: unknown, message: unknown) => {
      if (worker === w.worker && !isClusterMessage(message)) seenByApp.push(message);
    };
    cluster.on('message', appListener);
    try {
      const broker = await RemoteBroker.create(w);
      const received: number[] = [];
      await broker.subscribe('busy', (payload) => received.push(payload[0]!));
      const sent: unknown[] = [
        { hello: 'app' },
        'a plain string',
        [1, 2, 3],
        { wscale: 2, kind: 'reply', id: 1, ok: true },
        { kind: 'msg', topic: 'busy', payload: 'AQ==' },
        42,
      ];
      // Application traffic interleaved with wscale traffic on the same channel.
      for (const [i, message] of sent.entries()) {
        w.worker.send(message as object);
        await broker.publish('busy', Uint8Array.of(i));
      }
      await until(() => w.appEchoes.length === sent.length, 5000, 'echoes');
      await until(() => received.length === sent.length, 5000, 'deliveries');
      expect(w.appEchoes).toEqual(sent);
      expect(received).toEqual([0, 1, 2, 3, 4, 5]);
      expect(seenByApp.filter((m) => (m as { rpc?: string }).rpc === 'app-echo')).toHaveLength(
        sent.length,
      );
      await broker.close();
    } finally {
      cluster.off('message', appListener);
    }
  });
});

describe('a node:cluster worker that does not read', () => {
  // 23 of the messages below: a healthy worker on a busy machine may fall a dozen behind.
  const maxWorkerBacklogBytes = 4 * 1024 * 1024;
  let workers: WorkerHandle[] = [];
  let hub: ClusterHub;

  beforeAll(async () => {
    hub = new ClusterHub({ maxWorkerBacklogBytes });
    workers = await forkWorkers(3);
  });

  afterAll(async () => {
    await stopWorkers(workers, 'SIGKILL');
    await hub.close();
  });

  it('is cut off once maxWorkerBacklogBytes wait for it, is told, and is delivered to again once it reads', async () => {
    const [w0, w1, w2] = workers;
    const publisher = await RemoteBroker.create(w0!);
    const healthy = await RemoteBroker.create(w2!);
    const slow = await RemoteBroker.create(w1!);
    const numberOf = (payload: Uint8Array) => Buffer.from(payload).readUInt32BE(0);
    const healthyGot: number[] = [];
    const slowGot: number[] = [];
    await healthy.subscribe('busy', (payload) => healthyGot.push(numberOf(payload)));
    await slow.subscribe('busy', (payload) => slowGot.push(numberOf(payload)));
    const statuses: string[] = [];
    slow.on('status', (status) => statuses.push(status));
    const message = (n: number) => {
      const bytes = Buffer.alloc(64 * 1024, n);
      bytes.writeUInt32BE(n, 0);
      return bytes;
    };
    // Counted at 1 KiB plus twice their 87 KB of base64, 40 MiB: ten times what the hub may hold
    // for one worker.
    const count = 240;

    process.kill(w1!.pid, 'SIGSTOP');
    let held: number;
    try {
      for (let n = 0; n < count; n++) {
        await publisher.publish('busy', message(n));
        // Paced by the healthy worker: on a loaded machine a burst would cut it off too (the
        // bound holds for every worker), and this is about the one that does not read.
        if (n % 8 === 7) await until(() => healthyGot.length === n + 1, 10_000, 'the healthy one');
      }
      await until(() => healthyGot.length === count, 15_000, 'every message at the healthy worker');
      held = hub.stats().queuedBytes;
    } finally {
      process.kill(w1!.pid, 'SIGCONT');
    }
    // The primary held about the bound for the stopped worker, not the 40 MiB the 240 count.
    expect(held).toBeLessThanOrEqual(maxWorkerBacklogBytes);
    expect(hub.stats().laggedWorkers).toBe(1);
    expect(healthyGot).toEqual([...Array(count).keys()]);

    // Once it has read what was held, it is told (its broker goes down) and attaches again.
    await until(() => statuses.includes('down') && slow.status === 'ready', 10_000, 'a reattach');
    await publisher.publish('busy', message(count));
    await until(() => slowGot.includes(count), 10_000, 'the next message at the slow worker');
    // What it got is what came before the cut, in order, then what came after it.
    const before = slowGot.slice(0, -1);
    expect(before).toEqual([...Array(before.length).keys()]);
    expect(before.length).toBeLessThan(count);
    expect(hub.stats().queuedBytes).toBe(0);
    await Promise.all([publisher.close(), healthy.close(), slow.close()]);
  });
});

describe('a node:cluster application', () => {
  it('runs end to end, and its primary exits by itself once the workers are gone', async () => {
    const app = fileURLToPath(new URL('./fixtures/cluster-app.mjs', import.meta.url));
    const child = spawn(process.execPath, [app], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk));
    const code = await new Promise<number | null>((resolve, reject) => {
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new Error(`the primary did not exit in 15 s:\n${output}`));
      }, 15_000);
      child.once('exit', (exitCode) => {
        clearTimeout(timer);
        resolve(exitCode);
      });
    });
    expect(code, output).toBe(0);
    expect(output).toContain('worker 1 saw from 1, from 2; stored done');
    expect(output).toContain('worker 2 saw from 1, from 2; stored done');
    expect(output).toContain('primary exited');
  });
});
