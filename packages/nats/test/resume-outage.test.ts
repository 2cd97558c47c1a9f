import { type SessionSnapshot, type WelcomeInfo, WscaleClient } from '@wscale/client';
import {
  type History,
  MemoryHistory,
  MemoryStateStore,
  ScaledWebSocketServer,
  type StateStore,
} from '@wscale/core';
import { until } from '@wscale/core/testing';
import { NatsHistory, NatsKvStateStore } from '@wscale/nats';
import { type SingleNats, skipWithoutNats, startNatsServer } from '@wscale/test-support';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { fastReconnect, uniqueName } from './helpers/clients.js';

/**
 * What a resume says while nats-server hangs (SIGSTOPped: it keeps its data and answers nothing),
 * with the adapters' and the server's default timeouts, as a user runs them: every wait of the
 * resume is bounded, and the client is welcomed (`unavailable`) before the server's
 * `helloTimeoutMs` would close it, instead of a close it can only retry into the same hang.
 */
describe.skipIf(skipWithoutNats())('resume while nats-server hangs', () => {
  let nats: SingleNats;
  const closers: Array<() => Promise<void>> = [];
  beforeAll(async () => {
    nats = await startNatsServer();
  });
  afterEach(async () => {
    const pid = nats.server.pid;
    if (pid !== undefined) process.kill(pid, 'SIGCONT');
    for (const close of closers.splice(0).reverse()) await close();
  });
  afterAll(async () => {
    await nats?.close();
  });

  async function startNode(stateStore: StateStore, history: History) {
    const node = new ScaledWebSocketServer({
      port: 0,
      host: '127.0.0.1',
      stateStore,
      sessionSecret: 'a-secret-for-the-outage-tests',
      history: [{ rooms: 'feed', store: history }],
    });
    node.on('error', () => undefined);
    node.on('connection', (client) => void client.join('feed'));
    closers.push(
      () => stateStore.close(),
      () => history.close(),
      () => node.close(),
    );
    await node.ready();
    return node;
  }

  /** A client of the node, recording its welcomes and closes. */
  function open(node: ScaledWebSocketServer, resume?: SessionSnapshot) {
    const welcomes: WelcomeInfo[] = [];
    const closes: string[] = [];
    const client = new WscaleClient(`ws://127.0.0.1:${node.address()!.port}/`, {
      WebSocket,
      network: false,
      ...(resume ? { resume } : {}),
    });
    client.on('welcome', (info) => welcomes.push(info));
    client.on('close', (close) => closes.push(`${close.code} ${close.reason}`));
    closers.push(() => client.close());
    return { client, welcomes, closes };
  }

  /** Hangs nats-server (it keeps its data, answers nothing) until the test ends. */
  function hang(): void {
    process.kill(nats.server.pid!, 'SIGSTOP');
  }

  it('the session store hung: the resume is welcomed unavailable, not closed', async () => {
    const stateStore = new NatsKvStateStore({
      servers: nats.server.url,
      connectionOptions: fastReconnect,
      bucket: uniqueName('sessions'),
    });
    const node = await startNode(stateStore, new MemoryHistory());
    const first = open(node);
    await until(() => first.client.rooms.includes('feed'), 5000, 'the first client in feed');
    const saved = first.client.snapshot()!;
    await first.client.close();

    hang();
    const started = performance.now();
    const back = open(node, saved);
    await until(
      () => back.welcomes.length > 0 || back.closes.length > 0,
      15_000,
      'the resume to end',
    );
    expect(back.closes).toEqual([]);
    expect(back.welcomes[0]).toMatchObject({ resumed: false, reason: 'unavailable' });
    expect(back.welcomes[0]!.clientId).toBe(first.welcomes[0]!.clientId);
    // One store timeout (5 s by default), not one per read.
    expect(performance.now() - started).toBeLessThan(8000);
  }, 40_000);

  it('the history hung: the session resumes and the room says unavailable', async () => {
    const stateStore = new MemoryStateStore();
    const history = new NatsHistory({
      servers: nats.server.url,
      connectionOptions: fastReconnect,
      stream: uniqueName('history'),
    });
    const node = await startNode(stateStore, history);
    const first = open(node);
    await until(() => first.client.rooms.includes('feed'), 5000, 'the first client in feed');
    await node.to('feed').send('kept');
    await until(() => first.client.position('feed')?.offset === 1, 5000, 'the first message');
    const saved = first.client.snapshot()!;
    await first.client.close();

    hang();
    await node
      .to('feed')
      .send('published while the history hangs')
      .catch(() => undefined);
    const back = open(node, saved);
    await until(
      () => back.welcomes.length > 0 || back.closes.length > 0,
      15_000,
      'the resume to end',
    );
    expect(back.closes).toEqual([]);
    expect(back.welcomes[0]).toMatchObject({
      resumed: true,
      clientId: first.welcomes[0]!.clientId,
      rooms: { feed: { recovered: false, reason: 'unavailable' } },
    });
  }, 40_000);
});
