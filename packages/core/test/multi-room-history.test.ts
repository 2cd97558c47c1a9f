import { MemoryHistory, MemoryStateStore, type ScaledWebSocketServer } from '@wscale/core';
import { settle } from '@wscale/test-support';
import { afterEach, describe, expect, it } from 'vitest';
import { TestCluster } from './helpers/nodes.js';
import { V1Peer } from './helpers/v1-client.js';

const cluster = new TestCluster();
afterEach(() => cluster.closeAll());

/** Two nodes where rooms named `h*` keep history and every other room does not. */
function startNodes(): Promise<ScaledWebSocketServer[]> {
  return cluster.start(2, {
    stateStore: new MemoryStateStore({ ttlMs: 30_000 }),
    sessionSecret: 'a-test-secret-of-enough-bytes',
    history: [{ rooms: 'h*', store: new MemoryHistory() }],
    authorizeJoin: () => true,
  });
}

/** A `wscale.v1` peer on a node, in these rooms. */
async function member(server: ScaledWebSocketServer, rooms: string[]): Promise<V1Peer> {
  const { peer } = await V1Peer.connect(server);
  for (const [i, room] of rooms.entries()) {
    peer.send({ t: 'join', id: i + 1, r: room });
    await peer.next('ack');
  }
  return peer;
}

/** What a broadcast to several rooms gives a member of several of them (docs/guarantees.md). */
describe('a broadcast to several rooms, some of which keep history', () => {
  it('gives a member of two named history rooms one copy per room, each in its room', async () => {
    const [a, b] = await startNodes();
    const here = await member(a!, ['h1', 'h2']);
    const there = await member(b!, ['h1', 'h2']);
    await a!.to('h1', 'h2').send('both');
    for (const peer of [here, there]) {
      await settle(() => peer.all('msg').length >= 2, 2000, 'the copies');
      const copies = peer.all('msg').map(({ r, o, d }) => ({ r, o, d }));
      expect(copies.sort((x, y) => x.r!.localeCompare(y.r!))).toEqual([
        { r: 'h1', o: 1, d: 'both' },
        { r: 'h2', o: 1, d: 'both' },
      ]);
    }
  });

  it('gives a member of a history room and a plain room one copy per room', async () => {
    const [a, b] = await startNodes();
    const both = await member(b!, ['h1', 'plain']);
    const plainOnly = await member(b!, ['plain']);
    await a!.to('h1', 'plain').send('mixed');
    await settle(() => both.all('msg').length >= 2, 2000, 'the copies');
    const copies = both.all('msg').map(({ r, o }) => ({ r, o }));
    expect(copies.sort((x, y) => x.r!.localeCompare(y.r!))).toEqual([
      { r: 'h1', o: 1 },
      { r: 'plain', o: undefined },
    ]);
    expect(plainOnly.all('msg').map(({ r, d }) => ({ r, d }))).toEqual([
      { r: 'plain', d: 'mixed' },
    ]);
  });

  it('still gives a member of several plain rooms one copy, naming no room', async () => {
    const [a, b] = await startNodes();
    const both = await member(b!, ['p1', 'p2']);
    await a!.to('p1', 'p2').send('once');
    await settle(() => both.all('msg').length >= 1, 2000, 'the copy');
    expect(both.all('msg').map(({ r, d }) => ({ r, d }))).toEqual([{ r: undefined, d: 'once' }]);
  });
});
