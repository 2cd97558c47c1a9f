import type { SessionSnapshot } from '@wscale/client';
import {
  type History,
  MemoryHistory,
  MemoryStateStore,
  type ScaledWebSocketServer,
  type StateStore,
} from '@wscale/core';
import { until } from '@wscale/core/testing';
import { RedisHistory, RedisStateStore } from '@wscale/redis';
import {
  describeRedis,
  leftSession,
  outageClient,
  outageNode,
  RedisServer,
} from '@wscale/test-support';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { standalone } from './helpers/clients.js';

/**
 * What a resume says when Redis is down (a real `redis-server`, stopped or hung): with the session
 * store gone, new sessions still work and a resume says `unavailable` (keeping the session for
 * later); with the history gone, the session resumes and the room says
 * `recovered: false, reason: "unavailable"`.
 */
describeRedis('resume while Redis is down', () => {
  let redis: RedisServer;
  const closers: Array<() => Promise<void>> = [];
  beforeAll(async () => {
    redis = await RedisServer.launch();
  });
  afterEach(async () => {
    await redis.start();
    for (const close of closers.splice(0).reverse()) await close();
  });
  afterAll(() => redis?.destroy());

  const startNode = (stateStore: StateStore, history: History) =>
    outageNode(stateStore, history, closers);
  const open = (node: ScaledWebSocketServer, resume?: SessionSnapshot) =>
    outageClient(node, closers, resume);

  it('the session store down: new sessions still work, a resume says unavailable', async () => {
    const stateStore = new RedisStateStore({ redis: standalone(redis), commandTimeoutMs: 500 });
    const node = await startNode(stateStore, new MemoryHistory());
    const { first, saved } = await leftSession(node, closers);

    await redis.stop();
    const fresh = open(node);
    await until(() => fresh.client.rooms.includes('feed'), 10_000, 'a new session during outage');
    expect(fresh.welcomes[0]).toMatchObject({ resumed: false, reason: 'new' });
    await node.to('feed').send('served during the outage');
    await until(() => fresh.texts.length === 1, 5000, 'a message to the new session');

    const back = open(node, saved);
    await until(() => back.welcomes.length === 1, 10_000, 'the resume attempt');
    expect(back.welcomes[0]).toMatchObject({ resumed: false, reason: 'unavailable' });
    // The session is not thrown away: same client id and token, to resume once the store is back.
    expect(back.welcomes[0]!.clientId).toBe(first.welcomes[0]!.clientId);
    expect(back.welcomes[0]!.session).toBe(saved.session);
  }, 40_000);

  it('the session store hung: a resume says unavailable, and resumes once it answers again', async () => {
    const stateStore = new RedisStateStore({ redis: standalone(redis), commandTimeoutMs: 500 });
    const node = await startNode(stateStore, new MemoryHistory());
    const { first, saved } = await leftSession(node, closers);
    await until(async () => (await redis.cli('dbsize')) !== '0', 5000, 'the session saved');

    // Redis keeps its data but answers nothing (a restart here would lose it: no persistence).
    const pid = redis.pid!;
    process.kill(pid, 'SIGSTOP');
    try {
      const back = open(node, saved);
      await until(() => back.welcomes.length === 1, 10_000, 'the resume attempt');
      expect(back.welcomes[0]).toMatchObject({ resumed: false, reason: 'unavailable' });
      await back.client.close();
    } finally {
      process.kill(pid, 'SIGCONT');
    }
    const later = open(node, saved);
    await until(() => later.welcomes.length === 1, 10_000, 'the resume once Redis answers');
    expect(later.welcomes[0]).toMatchObject({
      resumed: true,
      clientId: first.welcomes[0]!.clientId,
    });
  }, 40_000);

  it('the session store came back without the session: the connection welcomed unavailable is closed 1012, and its client told the session expired, not kept out of its rooms', async () => {
    const stateStore = new RedisStateStore({ redis: standalone(redis), commandTimeoutMs: 500 });
    const node = await startNode(stateStore, new MemoryHistory());
    const { first, saved } = await leftSession(node, closers);
    await until(async () => (await redis.cli('dbsize')) !== '0', 5000, 'the session saved');

    await redis.stop();
    const back = open(node, saved);
    await until(() => back.welcomes.length === 1, 10_000, 'the resume attempt');
    expect(back.welcomes[0]).toMatchObject({ resumed: false, reason: 'unavailable' });
    await redis.start(); // no persistence: it comes back empty
    await until(() => back.welcomes.length === 2, 10_000, 'the resume once Redis answers');
    expect(back.closes[0]).toMatch(/^1012 /);
    expect(back.welcomes[1]).toMatchObject({ resumed: false, reason: 'expired' });
    expect(back.welcomes[1]!.clientId).not.toBe(first.welcomes[0]!.clientId);
    // A new session: the application joins it to its rooms, as any new client.
    await until(() => back.client.rooms.includes('feed'), 5000, 'the new session in its room');
    await node.to('feed').send('to the new session');
    await until(() => back.texts.includes('to the new session'), 5000, 'a message to it');
  }, 40_000);

  it('the history down: the session resumes and the room says unavailable', async () => {
    const history = new RedisHistory({ redis: standalone(redis), commandTimeoutMs: 500 });
    const node = await startNode(new MemoryStateStore(), history);
    const { first, saved } = await leftSession(node, closers, 'kept');

    await redis.stop();
    const back = open(node, saved);
    await until(() => back.welcomes.length === 1, 10_000, 'the resume');
    expect(back.welcomes[0]).toMatchObject({
      resumed: true,
      clientId: first.welcomes[0]!.clientId,
      rooms: { feed: { recovered: false, reason: 'unavailable' } },
    });
  }, 40_000);
});
