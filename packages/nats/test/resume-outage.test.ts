import type { SessionSnapshot } from '@wscale/client';
import {
  type History,
  MemoryHistory,
  MemoryStateStore,
  type ScaledWebSocketServer,
  type StateStore,
} from '@wscale/core';
import { until } from '@wscale/core/testing';
import { NatsHistory, NatsKvStateStore } from '@wscale/nats';
import {
  leftSession,
  outageClient,
  outageNode,
  type SingleNats,
  skipWithoutNats,
  startNatsServer,
} from '@wscale/test-support';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
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

  const startNode = (stateStore: StateStore, history: History) =>
    outageNode(stateStore, history, closers);
  const open = (node: ScaledWebSocketServer, resume?: SessionSnapshot) =>
    outageClient(node, closers, resume);

  /** Waits for the resume to end: a welcome, not a close the client would only retry. */
  async function welcomedNotClosed(client: { welcomes: unknown[]; closes: string[] }) {
    const ended = () => client.welcomes.length > 0 || client.closes.length > 0;
    await until(ended, 15_000, 'the resume to end');
    expect(client.closes).toEqual([]);
  }

  /** A history on a stream (and subjects) of its own. */
  function freshHistory(): NatsHistory {
    const stream = uniqueName('history');
    return new NatsHistory({
      servers: nats.server.url,
      connectionOptions: fastReconnect,
      stream,
      subjectPrefix: `${stream}.`,
    });
  }

  /** Hangs nats-server (it keeps its data, answers nothing) until the test ends. */
  function hang(): void {
    process.kill(nats.server.pid!, 'SIGSTOP');
  }

  /** A session store on the test's nats-server. */
  const sessionStore = () =>
    new NatsKvStateStore({
      servers: nats.server.url,
      connectionOptions: fastReconnect,
      bucket: uniqueName('sessions'),
    });

  /** A node whose sessions, room `feed` and direct messages are all on the test's nats-server. */
  const directNode = () =>
    outageNode(sessionStore(), freshHistory(), closers, ['feed'], freshHistory());

  /**
   * A session resumed while nats-server hangs, welcomed `unavailable`, not closed: with `direct`,
   * its direct messages are kept on the same server (as most run it), and one is sent to it
   * while it is away. Resolves with the client and how long the resume took.
   */
  async function resumeWhileHung(node: ScaledWebSocketServer, direct?: string) {
    const { first, saved } = await leftSession(node, closers);
    if (direct !== undefined) await node.client(first.welcomes[0]!.clientId).send(direct);
    hang();
    const started = performance.now();
    const back = open(node, saved);
    await welcomedNotClosed(back);
    expect(back.welcomes[0]).toMatchObject({ resumed: false, reason: 'unavailable' });
    expect(back.welcomes[0]!.clientId).toBe(first.welcomes[0]!.clientId);
    return { back, ms: performance.now() - started };
  }

  it('the session store hung: the resume is welcomed unavailable, not closed', async () => {
    const node = await startNode(sessionStore(), new MemoryHistory());
    const { ms } = await resumeWhileHung(node);
    // One store timeout (5 s by default), not one per read.
    expect(ms).toBeLessThan(8000);
  }, 40_000);

  it('the session store and the direct messages hung together: the resume is welcomed unavailable, not closed', async () => {
    const node = await directNode();
    const { ms } = await resumeWhileHung(node);
    // The store's timeout, then what is left before helloTimeoutMs (10 s): not one more timeout.
    expect(ms).toBeLessThan(10_000);
  }, 40_000);

  it('the session store and the direct messages hung together: a direct message sent while away comes once the server answers', async () => {
    const node = await directNode();
    const { back } = await resumeWhileHung(node, 'sent while away');
    process.kill(nats.server.pid!, 'SIGCONT');
    // Its connection is closed once the server answers, and its resume replays the direct stream
    // from where the client was: not skipped by a resync of the stream that could not read it.
    await until(() => back.welcomes.length >= 2, 20_000, 'the resume after the outage');
    await until(() => back.direct.length > 0, 5000, 'the direct message');
    expect(back.direct).toEqual(['sent while away']);
  }, 60_000);

  it('the history hung: the session resumes and the room says unavailable', async () => {
    const stateStore = new MemoryStateStore();
    const history = new NatsHistory({
      servers: nats.server.url,
      connectionOptions: fastReconnect,
      stream: uniqueName('history'),
    });
    const node = await startNode(stateStore, history);
    const { first, saved } = await leftSession(node, closers, 'kept');

    hang();
    await node
      .to('feed')
      .send('published while the history hangs')
      .catch(() => undefined);
    const back = open(node, saved);
    await welcomedNotClosed(back);
    expect(back.welcomes[0]).toMatchObject({
      resumed: true,
      clientId: first.welcomes[0]!.clientId,
      rooms: { feed: { recovered: false, reason: 'unavailable' } },
    });
  }, 40_000);

  it('the history hung: the next resume replays what the room missed, from where the client was', async () => {
    const history = freshHistory();
    const node = await outageNode(new MemoryStateStore(), history, closers);
    const { saved } = await leftSession(node, closers, 'kept');
    for (const text of ['missed 1', 'missed 2']) await node.to('feed').send(text);

    hang();
    const back = open(node, saved);
    await welcomedNotClosed(back);
    expect(back.welcomes[0]).toMatchObject({
      resumed: true,
      rooms: { feed: { recovered: false, reason: 'unavailable' } },
    });
    process.kill(nats.server.pid!, 'SIGCONT');
    // The history answers again; the client's connection drops and it resumes.
    const clientId = back.welcomes[0]!.clientId;
    node.clients.get(clientId)!.terminate();
    await until(() => back.welcomes.length === 2, 15_000, 'the second welcome');
    expect(back.welcomes[1]).toMatchObject({ resumed: true, rooms: { feed: { recovered: true } } });
    await until(() => back.texts.length === 2, 5000, 'the missed messages');
    expect(back.texts).toEqual(['missed 1', 'missed 2']);
  }, 60_000);

  /**
   * A session in four history rooms resumes while the history hangs; with `longGaps`, each room's
   * gap is longer than the node remembers, so each is read from the history.
   */
  async function resumeInRoomsWhileHung(longGaps: boolean) {
    const rooms = ['feed', 'news', 'chat', 'ops'];
    const history = freshHistory();
    const node = await outageNode(new MemoryStateStore(), history, closers, rooms);
    const { saved } = await leftSession(node, closers, 'kept', rooms.length);
    if (longGaps) {
      // Another client keeps the rooms on the node, which remembers their last 256 messages.
      const keeper = open(node);
      const inRooms = () => keeper.client.rooms.length === rooms.length;
      await until(inRooms, 5000, 'the keeper in its rooms');
      for (let i = 0; i < 300; i++) {
        await Promise.all(rooms.map((room) => node.to(room).send(`${i}`)));
      }
      await until(() => keeper.texts.length === 300, 10_000, 'the keeper to get feed');
    }

    hang();
    const started = performance.now();
    const back = open(node, saved);
    await welcomedNotClosed(back);
    const unavailable = { recovered: false, reason: 'unavailable' };
    expect(back.welcomes[0]).toMatchObject({
      resumed: true,
      rooms: Object.fromEntries(rooms.map((room) => [room, unavailable])),
    });
    // The rooms are read at once: one history timeout (5 s by default) in all.
    expect(performance.now() - started).toBeLessThan(8000);
  }

  it('the history hung: a session in several rooms waits one timeout, not one per room', async () => {
    await resumeInRoomsWhileHung(false);
  }, 40_000);

  it('the history hung: gaps longer than the node remembers wait one timeout, not one per room', async () => {
    await resumeInRoomsWhileHung(true);
  }, 60_000);
});
