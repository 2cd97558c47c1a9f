import type { IncomingMessage } from 'node:http';
import type { ScaledWebSocketServer, ServerOptions } from '@wscale/core';
import { delay, until } from '@wscale/core/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import type { ClientOptions, PresenceView, WebSocketConstructor } from '../src/index.js';
import { closeAll, openClient, stateOf } from './helpers/clients.js';
import { Cluster, urlOf } from './helpers/cluster.js';
import { FakeNetwork } from './helpers/fake-network.js';

/** A watched room's presence across dropped connections: asked once per connection, never lost. */

const ROOM = 'chat:lobby';

const presenceOptions: Partial<ServerOptions> = {
  authenticate: (request: IncomingMessage) => ({
    id: new URL(request.url ?? '/', 'http://x').searchParams.get('user') ?? 'nobody',
  }),
  presence: [{ rooms: 'chat:*' }],
};

let cluster = new Cluster();
afterEach(async () => {
  await closeAll();
  await cluster.close();
  cluster = new Cluster();
});

/** What the client's link did with its `presence` frames. */
interface PresenceLink {
  /** `presence` frames the client sent. */
  asked: number;
  /** Lose the next one, with its connection (the frame is in flight when the connection dies). */
  cut: boolean;
  /** Hold each one back this long before it goes out. */
  delayMs?: number;
}

function presenceLink(link: PresenceLink): WebSocketConstructor {
  return function LinkedWebSocket(url: string, protocols: string[]) {
    const socket = new WebSocket(url, protocols);
    const send = socket.send.bind(socket);
    socket.send = ((data: string | Uint8Array) => {
      if (typeof data === 'string' && data.includes('"t":"presence"')) {
        link.asked++;
        if (link.cut) {
          link.cut = false;
          socket.terminate();
          return;
        }
        if (link.delayMs !== undefined) {
          setTimeout(() => send(data), link.delayMs);
          return;
        }
      }
      send(data);
    }) as WebSocket['send'];
    return socket;
  } as unknown as WebSocketConstructor;
}

async function user(name: string, node: ScaledWebSocketServer, options: ClientOptions = {}) {
  const { client } = openClient(`${urlOf(node)}/?user=${name}`, { backoffBaseMs: 10, ...options });
  await stateOf(client, 'open');
  await client.join(ROOM);
  return client;
}

/** Every join a view reports. */
function joins(view: PresenceView): string[] {
  const seen: string[] = [];
  view.on('join', (member) => seen.push(member.user));
  return seen;
}

describe('presence across dropped connections', () => {
  it('a presence() in flight when its connection drops is asked again on the resume and keeps its view', async () => {
    const [node] = await cluster.start(1, presenceOptions);
    const link: PresenceLink = { asked: 0, cut: true };
    const bob = await user('bob', node!, { WebSocket: presenceLink(link) });

    const view = await bob.presence(ROOM); // its first ask was lost with its connection
    expect(view.synced).toBe(true);
    expect([...view.members.keys()]).toEqual(['bob']);
    const told = joins(view);
    await user('ann', node!);
    await until(() => told.includes('ann'), 3000, 'ann to join the view');

    link.cut = true; // asked again for a view it has: that ask is lost too
    expect(await bob.presence(ROOM)).toBe(view);
    await user('cid', node!);
    await until(() => told.includes('cid'), 3000, 'cid to join the view after the resume');
    expect(told).toEqual(['ann', 'cid']);
  });

  it('a presence() asked while disconnected is asked once on the next connection', async () => {
    const [node] = await cluster.start(1, presenceOptions);
    const link: PresenceLink = { asked: 0, cut: false };
    const network = new FakeNetwork();
    const bob = await user('bob', node!, { WebSocket: presenceLink(link), network });
    const view = await bob.presence(ROOM);

    network.set(false);
    node!.clients.get(bob.clientId!)!.terminate();
    await stateOf(bob, 'reconnecting');
    const before = link.asked;
    const again = bob.presence(ROOM);
    network.set(true);
    expect(await again).toBe(view);
    await delay(100); // a second ask would be out by now
    expect(link.asked - before).toBe(1);
    const told = joins(view);
    await user('ann', node!);
    await until(() => told.includes('ann'), 3000, 'ann to join the view');
  });

  it('a room left while disconnected ends its view on the resume, with no error', async () => {
    const [node] = await cluster.start(1, presenceOptions);
    const link: PresenceLink = { asked: 0, cut: false };
    const network = new FakeNetwork();
    const bob = await user('bob', node!, { WebSocket: presenceLink(link), network });
    await bob.presence(ROOM);
    link.delayMs = 100; // the leave is through before the view is asked for again
    const errors: unknown[] = [];
    bob.on('error', (error) => errors.push(error));

    network.set(false);
    node!.clients.get(bob.clientId!)!.terminate();
    await stateOf(bob, 'reconnecting');
    const before = link.asked;
    const left = bob.leave(ROOM); // queued: it goes out before the resume asks for the view again
    network.set(true);
    await left;
    // The view's own ask, refused since the room was left first, is no error of the application's.
    await until(() => link.asked > before, 3000, 'the view to be asked for again');
    await until(
      () => node!.clients.get(bob.clientId!)?.rooms.size === 0,
      3000,
      'bob out of the room',
    );
    await delay(200); // the refusal of that ask is in by now
    expect(errors).toEqual([]);
    expect(bob.rooms).toEqual([]);
    await expect(bob.presence(ROOM)).rejects.toMatchObject({ code: 'FORBIDDEN' });
  });
});
