import { MemoryStateStore, type ScaledWebSocketServer } from '@wscale/core';
import { until } from '@wscale/core/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { TestCluster } from './helpers/nodes.js';
import { V1Peer } from './helpers/v1-client.js';

const cluster = new TestCluster();
afterEach(() => cluster.closeAll());

/** The `presence` request of a `wscale.v1` client, as a client written from the spec sees it. */
describe('a wscale.v1 presence request', () => {
  it('is answered with the snapshot, then its ack, then joins and leaves', async () => {
    const [node] = await cluster.start(1, {
      presence: [{ rooms: 'pres:*' }],
      authorizeJoin: () => true,
    });
    const { peer, welcome } = await V1Peer.connect(node!);
    peer.send({ t: 'join', id: 1, r: 'pres:1' });
    await peer.next('ack');
    peer.send({ t: 'presence', id: 2, r: 'pres:1' });
    const snapshot = await peer.next('presence');
    expect(snapshot).toEqual({ t: 'presence', r: 'pres:1', m: [{ u: welcome.client }], n: 1 });
    expect(await peer.next('ack')).toEqual({ t: 'ack', id: 2 });

    const other = await V1Peer.connect(node!);
    other.peer.send({ t: 'join', id: 1, r: 'pres:1' });
    expect(await peer.next('pjoin')).toEqual({ t: 'pjoin', r: 'pres:1', u: other.welcome.client });
    other.peer.send({ t: 'leave', id: 2, r: 'pres:1' });
    expect(await peer.next('pleave')).toEqual({
      t: 'pleave',
      r: 'pres:1',
      u: other.welcome.client,
    });
  });

  it('is refused for a room that keeps no presence, and for a room the client is not in', async () => {
    const [node] = await cluster.start(1, {
      presence: [{ rooms: 'pres:*' }],
      authorizeJoin: () => true,
    });
    const { peer } = await V1Peer.connect(node!);
    peer.send({ t: 'join', id: 1, r: 'plain' });
    await peer.next('ack');
    peer.send({ t: 'presence', id: 2, r: 'plain' });
    expect(await peer.next('ack')).toMatchObject({ id: 2, error: { code: 'NOT_FOUND' } });
    peer.send({ t: 'presence', id: 3, r: 'pres:1' });
    expect(await peer.next('ack')).toMatchObject({ id: 3, error: { code: 'FORBIDDEN' } });
  });

  it('is refused by a node where no room keeps presence', async () => {
    const [node] = await cluster.start(1, { authorizeJoin: () => true });
    const { peer } = await V1Peer.connect(node!);
    peer.send({ t: 'presence', id: 1, r: 'pres:1' });
    expect(await peer.next('ack')).toMatchObject({ id: 1, error: { code: 'NOT_FOUND' } });
  });

  it('a member that resumed on another node and then leaves the room leaves at once, not after the grace period', async () => {
    await resumedThenEnds((peer) => peer.send({ t: 'leave', id: 9, r: 'pres:1' }));
  });

  it('a member that resumed on another node and then closes with 1000 leaves at once, not after the grace period', async () => {
    await resumedThenEnds((peer) => peer.ws.close(1000));
  });

  it('a member that resumed on another node while its old socket hangs there, then closes with 1000, leaves at once', async () => {
    await resumedThenEnds((peer) => peer.ws.close(1000), true);
  });
});

/**
 * A member drops from one node, resumes on the other within the grace period (no event), then
 * `end`s its membership on purpose there: a watcher sees its leave at once. With `hang`, the first
 * node never hears the drop: the old socket stays half-open (no close frame comes back, so it
 * ends only after `closeTimeoutMs`) while the session is taken over.
 */
async function resumedThenEnds(end: (peer: V1Peer) => void, hang = false): Promise<void> {
  const nodes = await cluster.start(2, {
    stateStore: new MemoryStateStore({ ttlMs: 30_000 }),
    sessionSecret: 'a-test-secret-of-enough-bytes',
    presence: [{ rooms: 'pres:*' }],
    presenceGraceMs: 20_000,
    closeTimeoutMs: 20_000,
    authorizeJoin: () => true,
  });
  const [a, b] = nodes as [ScaledWebSocketServer, ScaledWebSocketServer];
  const watcher = await V1Peer.connect(b);
  watcher.peer.send({ t: 'join', id: 1, r: 'pres:1' });
  await watcher.peer.next('ack');
  watcher.peer.send({ t: 'presence', id: 2, r: 'pres:1' });
  await watcher.peer.next('ack');
  const first = await V1Peer.connect(a);
  first.peer.send({ t: 'join', id: 1, r: 'pres:1' });
  expect(await watcher.peer.next('pjoin')).toMatchObject({ u: first.welcome.client });

  // Its connection drops; it resumes on the other node within the grace period: no event.
  if (hang) {
    // The client reads nothing more: node a's close of the taken-over socket is never answered.
    (first.peer.ws as unknown as { _socket: { pause(): void } })._socket.pause();
  } else {
    first.peer.ws.terminate();
    await until(() => a.clients.size === 0, 2000, 'node a to see the drop');
  }
  try {
    const back = await V1Peer.connect(b, { session: first.welcome.session });
    expect(back.welcome.resumed).toBe(true);
    expect(a.clients.size).toBe(0);
    end(back.peer);
    // Within moments, though node a keeps the dropped connection for 20 s in case it resumes.
    expect(await watcher.peer.next('pleave', 2000)).toMatchObject({ u: first.welcome.client });
    expect(watcher.peer.all('pjoin')).toHaveLength(1);
    for (const node of nodes) {
      const { members } = await node.presence('pres:1');
      expect(members.map((member) => member.user)).toEqual([watcher.welcome.client]);
    }
  } finally {
    first.peer.ws.terminate();
  }
}
