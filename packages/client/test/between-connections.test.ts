import type { ScaledWebSocketServer } from '@wscale/core';
import { until } from '@wscale/core/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { closeAll, openClient, stateOf, texts } from './helpers/clients.js';
import { Cluster, urlOf } from './helpers/cluster.js';

/**
 * What the server does to a client while it is away (between two connections) reaches it when it
 * comes back: against real nodes on a memory broker, rooms `chat*` keeping history.
 */

let cluster = new Cluster();
afterEach(async () => {
  await closeAll();
  await cluster.close();
  cluster = new Cluster();
});

/**
 * A client on node `a` (once in `rooms`), then held away (its balancer answers nothing) until
 * `back()`, then on node `b`.
 */
async function awayClient(
  a: ScaledWebSocketServer,
  b: ScaledWebSocketServer,
  rooms: string[] = [],
) {
  let target = a;
  let away: Promise<void> = Promise.resolve();
  const { client, seen } = openClient(() => away.then(() => urlOf(target)), {
    backoffBaseMs: 10,
  });
  const joined: string[] = [];
  const left: string[] = [];
  client.on('joined', ({ room }) => joined.push(room));
  client.on('left', ({ room }) => left.push(room));
  await stateOf(client, 'open');
  await until(() => rooms.every((room) => client.rooms.includes(room)), 3000, 'its rooms');
  const clientId = client.clientId!;
  let back!: () => void;
  away = new Promise((resolve) => {
    back = resolve;
  });
  target = b;
  a.clients.get(clientId)!.terminate();
  await until(() => client.state !== 'open', 3000, 'the drop');
  return { client, seen, clientId, joined, left, back };
}

describe('a client between two connections', () => {
  it('gets a room the server joined it to, with what the room got after the join, once, in order', async () => {
    const [a, b] = (await cluster.start(2)) as [ScaledWebSocketServer, ScaledWebSocketServer];
    const { client, seen, clientId, joined, back } = await awayClient(a, b);
    await b.to('chat-news').send('before the join');
    await b.client(clientId).join('chat-news');
    await a.to('chat-news').send('after 1');
    await b.to('chat-news').send('after 2');
    back();
    await until(() => texts(seen).length >= 2, 3000, 'the replay');
    await a.to('chat-news').send('live');
    await until(() => texts(seen).length >= 3, 3000, 'a live message');
    expect(texts(seen)).toEqual(['after 1', 'after 2', 'live']);
    expect(seen.messages.map(({ meta }) => meta.offset)).toEqual([2, 3, 4]);
    expect(joined).toEqual(['chat-news']);
    expect(client.rooms).toEqual(['chat-news']);
    expect(seen.welcomes.at(-1)).toMatchObject({ resumed: true, clientId });
  });

  it('is out of a room the server took it out of, and told so', async () => {
    const [a, b] = (await cluster.start(2)) as [ScaledWebSocketServer, ScaledWebSocketServer];
    a.on('connection', (connection) => {
      if (!connection.resumed) void connection.join('chat-old');
    });
    const { client, clientId, left, back } = await awayClient(a, b, ['chat-old']);
    await b.client(clientId).leave('chat-old');
    back();
    await until(() => client.state === 'open', 3000, 'the resume');
    expect(left).toEqual(['chat-old']);
    expect(client.rooms).toEqual([]);
  });

  it('keeps its place in a room through a close made while it was away: the next resume replays what it missed, or says it cannot, never skips it', async () => {
    const [a, b] = (await cluster.start(2, { maxReplayEntries: 3 })) as [
      ScaledWebSocketServer,
      ScaledWebSocketServer,
    ];
    a.on('connection', (connection) => {
      if (!connection.resumed) void connection.join('chat-x');
    });
    const { client, seen, clientId, back } = await awayClient(a, b, ['chat-x']);
    for (let i = 1; i <= 6; i++) await a.to('chat-x').send(`missed ${i}`);
    await b.client(clientId).close(4000, 'come back');
    back();
    // Closed right after its welcome (code 4000: the client comes back), then resumed.
    await until(() => seen.welcomes.length === 3 && client.state === 'open', 5000, 'two resumes');
    expect(seen.closes.map(({ code }) => code)).toContain(4000);
    // Six missed, three may be replayed: the room is told lost, not recovered from a later place.
    expect(seen.welcomes[2]!.rooms['chat-x']).toMatchObject({
      recovered: false,
      reason: 'too-old',
    });
    expect(texts(seen)).toEqual([]);
  });
});
