import { MemoryHistory, MemoryStateStore, type ScaledWebSocketServer } from '@wscale/core';
import { inboxOf } from '@wscale/core/protocol';
import { until } from '@wscale/core/testing';
import { settle } from '@wscale/test-support';
import { afterEach, describe, expect, it } from 'vitest';
import { TestCluster } from './helpers/nodes.js';
import { V1Peer } from './helpers/v1-client.js';

const cluster = new TestCluster();
afterEach(() => cluster.closeAll());

/** Nodes sharing sessions and one history for direct messages. */
function startNodes(
  count: number,
  history = new MemoryHistory(),
): Promise<ScaledWebSocketServer[]> {
  return cluster.start(count, {
    stateStore: new MemoryStateStore({ ttlMs: 30_000 }),
    sessionSecret: 'a-test-secret-of-enough-bytes',
    directHistory: history,
    authorizeJoin: () => true,
  });
}

describe('direct messages kept per session (directHistory)', () => {
  it('reach a client that was away after its resume on another node, in order, once', async () => {
    const [a, b] = await startNodes(2);
    const first = await V1Peer.connect(a!);
    const inbox = inboxOf(first.welcome.client);
    expect(first.welcome.rooms[inbox]).toMatchObject({ o: 0 });
    await b!.client(first.welcome.client).send('d1');
    await until(() => first.peer.texts(inbox).length === 1, 2000, 'd1');
    const seen = first.peer.all('msg').at(-1)!;
    expect(seen).toMatchObject({ r: inbox, o: 1, d: 'd1' });

    first.peer.ws.terminate();
    await until(() => a!.clients.size === 0, 2000, 'node a to see the drop');
    for (const text of ['d2', 'd3']) await b!.client(first.welcome.client).send(text);

    const second = await V1Peer.connect(b!, {
      session: first.welcome.session,
      rooms: { [inbox]: { o: seen.o!, e: seen.e! } },
    });
    expect(second.welcome.rooms[inbox]).toMatchObject({ recovered: true, o: 3 });
    await a!.client(first.welcome.client).send('d4'); // from the node it left
    await settle(() => second.peer.texts(inbox).length >= 3, 2000, 'd2..d4');
    expect(second.peer.texts(inbox)).toEqual(['d2', 'd3', 'd4']);
    expect(second.peer.all('msg').map((m) => m.o)).toEqual([2, 3, 4]);
  });

  it('reach a client that joined no room after its node died, from where it says it was', async () => {
    const history = new MemoryHistory();
    const shared = new MemoryStateStore({ ttlMs: 30_000 });
    let dead = false;
    // The node that dies writes nothing more: its session records stay as they were at the open.
    const dying = new Proxy(shared, {
      get: (target, key) => {
        if (dead && (key === 'set' || key === 'delete')) {
          return () => Promise.reject(new Error('this node is gone'));
        }
        const value = Reflect.get(target, key, target);
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
    const options = {
      sessionSecret: 'a-test-secret-of-enough-bytes',
      directHistory: history,
      authorizeJoin: () => true,
    };
    const [a] = await cluster.start(1, { ...options, stateStore: dying });
    const [b] = await cluster.start(1, { ...options, stateStore: shared });
    const first = await V1Peer.connect(a!);
    const inbox = inboxOf(first.welcome.client);
    await b!.client(first.welcome.client).send('before');
    await until(() => first.peer.texts(inbox).length === 1, 2000, 'the first message');
    const seen = first.peer.all('msg').at(-1)!;
    dead = true;
    first.peer.ws.terminate();
    await until(() => a!.clients.size === 0, 2000, 'node a to see the drop');
    for (const text of ['away 1', 'away 2']) await b!.client(first.welcome.client).send(text);

    const second = await V1Peer.connect(b!, {
      session: first.welcome.session,
      rooms: { [inbox]: { o: seen.o!, e: seen.e! } },
    });
    expect(second.welcome.resumed).toBe(true);
    expect(second.welcome.rooms[inbox]).toMatchObject({ recovered: true, o: 3 });
    await settle(() => second.peer.texts(inbox).length >= 2, 2000, 'what it missed');
    expect(second.peer.texts(inbox)).toEqual(['away 1', 'away 2']);
  });

  it('says recovered: false when the stream no longer holds what was missed', async () => {
    const [node] = await startNodes(1, new MemoryHistory({ maxEntries: 2 }));
    const first = await V1Peer.connect(node!);
    const inbox = inboxOf(first.welcome.client);
    first.peer.ws.terminate();
    await until(() => node!.clients.size === 0, 2000, 'the drop');
    for (const text of ['d1', 'd2', 'd3']) await node!.client(first.welcome.client).send(text);
    const second = await V1Peer.connect(node!, {
      session: first.welcome.session,
      rooms: { [inbox]: { o: 0, e: first.welcome.rooms[inbox]!.e! } },
    });
    expect(second.welcome.rooms[inbox]).toMatchObject({ recovered: false, reason: 'too-old' });
  });

  it('is the server’s own: no client may join it, and rooms and queries do not show it', async () => {
    const [node] = await startNodes(1);
    const { peer, welcome } = await V1Peer.connect(node!);
    const other = await V1Peer.connect(node!);
    peer.send({ t: 'join', id: 1, r: inboxOf(other.welcome.client) });
    expect((await peer.next('ack')).error?.code).toBe('FORBIDDEN');
    peer.send({ t: 'join', id: 2, r: 'chat' });
    await peer.next('ack');
    expect([...node!.clients.get(welcome.client)!.rooms]).toEqual(['chat']);
    expect((await node!.fetchRooms()).rooms).toEqual(['chat']);
    const mine = (await node!.fetchClients()).clients.find((c) => c.id === welcome.client);
    expect(mine?.rooms).toEqual(['chat']);
  });
});
