import type { IncomingMessage } from 'node:http';
import type { PresenceChange, ScaledWebSocketServer, ServerOptions } from '@wscale/core';
import { delay, until } from '@wscale/core/testing';
import { settle } from '@wscale/test-support';
import { afterEach, describe, expect, it } from 'vitest';
import { type PresenceView, ServerError, type WscaleClient } from '../src/index.js';
import { closeAll, openClient, stateOf } from './helpers/clients.js';
import { Cluster, urlOf } from './helpers/cluster.js';

/**
 * Presence end to end: `@wscale/client` against real nodes on a memory broker. Each client is a
 * user named in its URL; a watcher on another node records every join and leave it is told.
 */

const GRACE_MS = 600;
const ROOM = 'chat:lobby';

const presenceOptions: Partial<ServerOptions> = {
  authenticate: (request: IncomingMessage) => ({
    id: new URL(request.url ?? '/', 'http://x').searchParams.get('user') ?? 'nobody',
  }),
  presence: [
    {
      rooms: 'chat:*',
      info: (client) => ({ name: (client.identity as { id: string }).id.toUpperCase() }),
    },
  ],
  presenceGraceMs: GRACE_MS,
};

let cluster = new Cluster();
afterEach(async () => {
  await closeAll();
  await cluster.close();
  cluster = new Cluster();
});

/** Every `presence` event of every node, as "node: type user". */
function recordServers(nodes: ScaledWebSocketServer[]): string[] {
  const seen: string[] = [];
  for (const node of nodes) {
    node.on('presence', (room: string, change: PresenceChange) => {
      if (room === ROOM) seen.push(`${node.nodeId}: ${change.type} ${change.user}`);
    });
  }
  return seen;
}

/** Every join and leave a view reports, as "type user". */
function recordView(view: PresenceView): string[] {
  const seen: string[] = [];
  view.on('join', (member) => seen.push(`join ${member.user}`));
  view.on('leave', (member) => seen.push(`leave ${member.user}`));
  return seen;
}

async function user(name: string, url: () => string): Promise<WscaleClient> {
  const { client } = openClient(() => `${url()}/?user=${name}`, { backoffBaseMs: 20 });
  await stateOf(client, 'open');
  await client.join(ROOM);
  return client;
}

describe('presence', () => {
  it('two tabs of one user are one member: closing one is no leave, closing both is one', async () => {
    const [a, b, c] = await cluster.start(3, presenceOptions);
    const servers = recordServers([a!, b!, c!]);
    const bob = await user('bob', () => urlOf(c!));
    const view = await bob.presence(ROOM);
    expect([...view.members.keys()]).toEqual(['bob']);
    const told = recordView(view);

    const tab1 = await user('ann', () => urlOf(a!));
    const tab2 = await user('ann', () => urlOf(b!));
    await until(() => c!.presenceStats(ROOM).connections === 3, 3000, 'both tabs counted');
    expect(c!.presenceStats(ROOM)).toEqual({ users: 2, connections: 3 });
    const listed = await c!.presence(ROOM);
    expect(listed.missing).toEqual([]);
    expect(listed.members.map((m) => m.user)).toEqual(['ann', 'bob']);
    expect(listed.members[0]!.info).toEqual({ name: 'ANN' });
    expect(listed.members[0]!.connections.map((conn) => conn.node).sort()).toEqual([
      'node-1',
      'node-2',
    ]);
    expect(view.members.get('ann')).toEqual({ user: 'ann', info: { name: 'ANN' } });

    await tab1.close();
    await until(() => c!.presenceStats(ROOM).connections === 2, 3000, 'one tab gone');
    await delay(GRACE_MS * 2);
    expect(told).toEqual(['join ann']);
    await tab2.close();
    await settle(() => told.length === 2, 3000, 'the leave');
    expect(told).toEqual(['join ann', 'leave ann']);
    for (const node of ['node-1', 'node-2', 'node-3']) {
      expect(servers.filter((line) => line.startsWith(`${node}:`) && line.includes('ann'))).toEqual(
        [`${node}: join ann`, `${node}: leave ann`],
      );
    }
    for (const node of [a!, b!, c!])
      expect(node.presenceStats(ROOM)).toEqual({ users: 1, connections: 1 });
  });

  it('a dropped connection that resumes on another node is no leave and no join', async () => {
    const [a, b, c] = await cluster.start(3, presenceOptions);
    const servers = recordServers([a!, b!, c!]);
    const bob = await user('bob', () => urlOf(c!));
    let target = a!;
    const ann = await user('ann', () => urlOf(target));
    const view = await bob.presence(ROOM);
    const annView = await ann.presence(ROOM);
    const told = recordView(view);
    const annTold = recordView(annView);
    await until(() => servers.length === 6, 3000, 'every node to see both users');

    target = b!;
    a!.clients.get(ann.clientId!)!.terminate();
    await until(() => ann.node === 'node-2' && ann.state === 'open', 5000, 'the resume on node 2');
    await delay(GRACE_MS * 3);
    expect(told).toEqual([]);
    expect(annTold).toEqual([]); // its own view, refreshed after the resume, changed nothing
    expect(servers.filter((line) => line.includes('leave'))).toEqual([]);
    for (const node of [a!, b!, c!])
      expect(node.presenceStats(ROOM)).toEqual({ users: 2, connections: 2 });
  });

  it('a dropped connection that does not come back leaves once, after the grace period', async () => {
    const [a, b] = await cluster.start(2, presenceOptions);
    const servers = recordServers([a!, b!]);
    const bob = await user('bob', () => urlOf(b!));
    const ann = await user('ann', () => urlOf(a!));
    const view = await bob.presence(ROOM);
    const told = recordView(view);
    const clientId = ann.clientId!;
    await ann.close(4000, 'gone for good, abnormally'); // not 1000: the node keeps it for the grace
    await until(() => !a!.clients.has(clientId), 3000, 'the node to see the close');
    const dropped = Date.now();
    await until(() => told.length === 1, GRACE_MS * 5, 'the leave');
    expect(Date.now() - dropped).toBeGreaterThanOrEqual(GRACE_MS - 50);
    await delay(200);
    expect(told).toEqual(['leave ann']);
    expect(servers.filter((line) => line.includes('leave')).sort()).toEqual([
      'node-1: leave ann',
      'node-2: leave ann',
    ]);
  });

  it('a drained node makes no presence event: its clients resume elsewhere within the grace', async () => {
    const [a, b, c] = await cluster.start(3, presenceOptions);
    const bob = await user('bob', () => urlOf(c!));
    let target = a!;
    const users = await Promise.all(
      ['ann', 'cid', 'dan'].map((name) => user(name, () => urlOf(target))),
    );
    const view = await bob.presence(ROOM);
    await until(() => view.count === 4, 3000, 'four users');
    const told = recordView(view);
    const servers = recordServers([b!, c!]);
    target = b!;
    await a!.close();
    await until(
      () => users.every((u) => u.node === 'node-2' && u.state === 'open'),
      5000,
      'resumes',
    );
    await delay(GRACE_MS * 3);
    expect(told).toEqual([]);
    expect(servers).toEqual([]);
    expect(c!.presenceStats(ROOM)).toEqual({ users: 4, connections: 4 });
  });

  it('ends a view when its client leaves the room, or is taken out of it; a view asked after joining again is live', async () => {
    const [node] = await cluster.start(1, presenceOptions);
    const url = () => urlOf(node!);
    const bob = await user('bob', url);
    const view = await bob.presence(ROOM);
    let ended = 0;
    view.on('end', () => ended++);
    await bob.leave(ROOM);
    expect([view.ended, ended]).toEqual([true, 1]);

    await bob.join(ROOM);
    const again = await bob.presence(ROOM);
    expect(again).not.toBe(view);
    const seen = recordView(again);
    await user('carol', url);
    await until(() => seen.length === 1, 3000, 'carol in the new view');
    expect(seen).toEqual(['join carol']);
    expect([...view.members.keys()]).toEqual(['bob']); // the ended view was not updated

    // Taken out by the server: the same.
    await node!.client(bob.clientId!).leave(ROOM);
    await until(() => again.ended, 3000, 'the view to end');
  });

  it('refuses the presence of a room the client is not in, or of one that keeps none', async () => {
    const [a] = await cluster.start(1, presenceOptions);
    const { client } = openClient(() => `${urlOf(a!)}/?user=eve`);
    await stateOf(client, 'open');
    await expect(client.presence('chat:other')).rejects.toMatchObject({ code: 'FORBIDDEN' });
    await client.join('chat-plain');
    const refused = await client.presence('chat-plain').catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(ServerError);
    expect(refused).toMatchObject({ code: 'NOT_FOUND' });
  });

  it('lists a big room a page at a time, with counts that need no listing', async () => {
    const [a, b] = await cluster.start(2, presenceOptions);
    const names = Array.from({ length: 12 }, (_, i) => `user-${String(i).padStart(2, '0')}`);
    await Promise.all(names.map((name, i) => user(name, () => urlOf(i % 2 === 0 ? a! : b!))));
    await until(() => a!.presenceStats(ROOM).users === 12, 3000, 'every user on node 1');
    const first = await a!.presence(ROOM, { limit: 5 });
    expect(first.members.map((m) => m.user)).toEqual(names.slice(0, 5));
    expect(first.next).toBe(names[4]);
    const second = await a!.presence(ROOM, { limit: 5, after: first.next });
    expect(second.members.map((m) => m.user)).toEqual(names.slice(5, 10));
    const last = await a!.presence(ROOM, { limit: 5, after: second.next });
    expect(last.members.map((m) => m.user)).toEqual(names.slice(10));
    expect(last.next).toBeUndefined();
    expect(await b!.presence('chat:empty')).toMatchObject({ users: 0, members: [], missing: [] });
  });
});
