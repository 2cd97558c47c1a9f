import { MemoryHistory, MemoryStateStore, type ScaledWebSocketServer } from '@wscale/core';
import { until } from '@wscale/core/testing';
import { settle, WireTap } from '@wscale/test-support';
import { afterEach, describe, expect, it } from 'vitest';
import type { ClientUrl, WelcomeInfo } from '../src/index.js';
import { closeAll, openClient, stateOf, texts } from './helpers/clients.js';
import { Cluster, switchableStore, urlOf } from './helpers/cluster.js';

/**
 * A client that comes back while the session store is down is welcomed `unavailable` (the session
 * lives on, unread); once the store answers, its node closes it with 1012 and it resumes. Against
 * real nodes on a memory broker, with a history that stays up.
 */

let cluster = new Cluster();
let store = new MemoryStateStore({ ttlMs: 60_000 });
afterEach(async () => {
  await closeAll();
  await cluster.close();
  await store.close();
  cluster = new Cluster();
  store = new MemoryStateStore({ ttlMs: 60_000 });
});

const range = (from: number, to: number) =>
  Array.from({ length: to - from + 1 }, (_, i) => from + i);

/** Publishes `m<n>` for every n of `numbers` to `chat`, in order, from the nodes in turn. */
async function publish(nodes: ScaledWebSocketServer[], numbers: number[]): Promise<void> {
  for (const n of numbers) await nodes[n % nodes.length]!.to('chat').send(`m${n}`);
}

/** A client of the cluster behind a balancer (`url`), recording its events. */
function clientOf(url: ClientUrl, tap: WireTap) {
  const { client, seen } = openClient(url, {
    backoffBaseMs: 10,
    WebSocket: tap.WebSocket,
  });
  const joined: Array<{ room: string; offset?: number }> = [];
  const resyncs: Array<{ room?: string; offset: number }> = [];
  client.on('joined', ({ room, offset }) => joined.push({ room, offset }));
  client.on('resync', ({ room, offset }) => resyncs.push({ room, offset }));
  return { client, seen, joined, resyncs };
}

describe('a resume while the session store is down', () => {
  it('replays what its rooms missed once the store is back: every message once, in order, recovered', async () => {
    const outage = switchableStore(store);
    const [a, b] = (await cluster.start(2, { stateStore: outage.stateStore })) as [
      ScaledWebSocketServer,
      ScaledWebSocketServer,
    ];
    let target = a;
    const tap = new WireTap();
    const { client, seen, joined } = clientOf(() => urlOf(target), tap);
    await stateOf(client, 'open');
    await client.join('chat');
    await publish([a, b], range(1, 5));
    await until(() => seen.messages.length === 5, 3000, 'm1..m5');
    const clientId = client.clientId!;

    // The store goes down; the connection drops and the client comes back on node b, which keeps
    // the session but cannot read it: this connection is in no room.
    outage.down = true;
    target = b;
    a.clients.get(clientId)!.terminate();
    await until(() => seen.welcomes.length === 2, 3000, 'a welcome without the store');
    expect(seen.welcomes[1]).toMatchObject({ resumed: false, reason: 'unavailable', clientId });
    expect(client.rooms).toEqual([]);
    expect(seen.left).toEqual(['chat']);

    // The room goes on without it; the client sends something (its node then saves the session,
    // and finds out once the store is back that the record is not this connection's).
    await publish([a, b], range(6, 85));
    const sent = client.send('while the store is down');

    outage.down = false;
    await until(() => seen.welcomes.length === 3, 8000, 'the resume once the store is back');
    expect(seen.closes.map((close) => close.code)).toEqual([1006, 1012]);
    const resume = seen.welcomes[2] as WelcomeInfo;
    expect(resume).toMatchObject({ resumed: true, clientId });
    expect(resume.rooms.chat).toMatchObject({ recovered: true, o: 85 });
    await sent;

    await publish([a, b], range(86, 90));
    await settle(() => seen.messages.length >= 90, 5000, 'm6..m90');
    expect(texts(seen)).toEqual(range(1, 90).map((n) => `m${n}`));
    expect(seen.messages.map((m) => m.meta.offset)).toEqual(range(1, 90));
    // What the nodes sent: each offset once (nothing was dropped as a duplicate on the way).
    expect(tap.offsets('chat')).toEqual(range(1, 90));
    // Told it left with the unread session, and that it is back, from where it was.
    expect(joined).toEqual([
      { room: 'chat', offset: 0 },
      { room: 'chat', offset: 5 },
    ]);
    expect(client.rooms).toEqual(['chat']);
    expect(client.position('chat')?.offset).toBe(90);
  });

  it('gets the direct messages sent while it was away on a connection welcomed unavailable, and each once after the resume', async () => {
    const outage = switchableStore(store);
    const [a, b] = (await cluster.start(2, {
      stateStore: outage.stateStore,
      directHistory: new MemoryHistory({ maxEntries: 100 }),
    })) as [ScaledWebSocketServer, ScaledWebSocketServer];
    // Where the client connects, and a gate that keeps it away while messages are sent.
    let target = a;
    let away: Promise<void> = Promise.resolve();
    const tap = new WireTap();
    const { client, seen } = clientOf(async () => {
      await away;
      return urlOf(target);
    }, tap);
    await stateOf(client, 'open');
    const clientId = client.clientId!;
    await a.client(clientId).send('d1');
    await until(() => seen.messages.length === 1, 3000, 'd1');

    outage.down = true;
    let back = () => {};
    away = new Promise((resolve) => {
      back = resolve;
    });
    target = b;
    a.clients.get(clientId)!.terminate();
    await stateOf(client, 'resuming');
    await b.client(clientId).send('d2');
    await a.client(clientId).send('d3');
    back();
    await until(() => seen.welcomes.length === 2, 3000, 'a welcome without the store');
    expect(seen.welcomes[1]).toMatchObject({ resumed: false, reason: 'unavailable', clientId });
    await until(() => texts(seen).includes('d3'), 3000, 'what it missed, on this connection');

    outage.down = false;
    await until(() => seen.welcomes.length === 3, 8000, 'the resume once the store is back');
    expect(seen.welcomes[2]).toMatchObject({
      resumed: true,
      clientId,
      direct: { recovered: true },
    });
    await b.client(clientId).send('d4');
    await settle(() => texts(seen).includes('d4'), 3000, 'd4');
    expect(texts(seen)).toEqual(['d1', 'd2', 'd3', 'd4']);
    expect(seen.messages.every((m) => m.meta.room === undefined)).toBe(true);
  });

  it('a room the server puts it in again meanwhile goes on from there, and says resync for what it missed', async () => {
    const outage = switchableStore(store);
    const nodes = (await cluster.start(2, { stateStore: outage.stateStore })) as [
      ScaledWebSocketServer,
      ScaledWebSocketServer,
    ];
    const [a, b] = nodes;
    // The application puts every connection in the room, also the one it cannot read the session of.
    for (const node of nodes) node.on('connection', (client) => void client.join('chat'));
    let target = a;
    let away: Promise<void> = Promise.resolve();
    const tap = new WireTap();
    // The balancer holds the client back while `away` is pending.
    const { client, seen, joined, resyncs } = clientOf(() => away.then(() => urlOf(target)), tap);
    await stateOf(client, 'open');
    await until(() => client.rooms.includes('chat'), 3000, 'the server to join it');
    await publish([a, b], range(1, 5));
    await until(() => seen.messages.length === 5, 3000, 'm1..m5');
    const clientId = client.clientId!;

    // Away while m6..m10 are published, then back on node b while the store is down.
    outage.down = true;
    let back!: () => void;
    away = new Promise((resolve) => {
      back = resolve;
    });
    target = b;
    a.clients.get(clientId)!.terminate();
    await until(() => client.state !== 'open', 3000, 'the drop');
    await publish([a, b], range(6, 10));
    back();
    await until(() => resyncs.length === 1, 5000, 'the join on the unread session');
    expect(seen.welcomes[1]).toMatchObject({ resumed: false, reason: 'unavailable', clientId });
    // Not silent: the connection is in the room from 10 on, and 6..10 are not replayed.
    expect(resyncs).toEqual([{ room: 'chat', offset: 10 }]);
    await publish([a, b], range(11, 15));
    await until(() => seen.messages.length === 10, 3000, 'm11..m15');
    const sent = client.send('while the store is down');

    outage.down = false;
    await until(() => seen.welcomes.length === 3, 8000, 'the resume once the store is back');
    expect(seen.welcomes[2]!.rooms.chat).toMatchObject({ recovered: true, o: 15 });
    await sent;
    await publish([a, b], range(16, 20));
    await settle(() => seen.messages.length >= 15, 5000, 'm16..m20');
    const expected = [...range(1, 5), ...range(11, 20)];
    expect(texts(seen)).toEqual(expected.map((n) => `m${n}`));
    expect(seen.messages.map((m) => m.meta.offset)).toEqual(expected);
    expect(resyncs).toHaveLength(1);
    expect(joined.map(({ room }) => room).every((room) => room === 'chat')).toBe(true);
  });
});
