import { MemoryBroker, MemoryStateStore, ScaledWebSocketServer } from '@wscale/core';
import { PROTOCOL } from '@wscale/core/protocol';
import { delay, until } from '@wscale/core/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { FreezableBroker, PausableBroker } from './helpers/freezable-broker.js';
import { TestCluster, urlOf } from './helpers/nodes.js';
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
    // (Marked partial, `p: 1`, while the node is new: it may not have heard of other nodes yet.)
    expect(snapshot).toMatchObject({
      t: 'presence',
      r: 'pres:1',
      m: [{ u: welcome.client }],
      n: 1,
    });
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

describe('a presence request on a node that is still building its view', () => {
  it('is answered by a node that just started with a partial snapshot, told of the members a paused node brings once it answers, then a whole one', async () => {
    const options = {
      presence: [{ rooms: 'pres:*' }],
      authorizeJoin: () => true,
      nodeHeartbeatMs: 2000,
    };
    let paused!: PausableBroker;
    const [a] = await cluster.start(1, {
      ...options,
      brokerFor: (bus) => (paused = new PausableBroker({ bus })),
    });
    const [b] = await cluster.start(1, options);
    const alice = await V1Peer.connect(a!);
    alice.peer.send({ t: 'join', id: 1, r: 'pres:1' });
    await alice.peer.next('ack');
    const walt = await V1Peer.connect(b!);
    walt.peer.send({ t: 'join', id: 1, r: 'pres:1' });
    await walt.peer.next('ack');
    await until(async () => (await b!.presence('pres:1')).users === 2, 3000, 'b to see both');
    // Node a stops for a moment (a long pause, SIGSTOP): a node that starts now hears nothing of it.
    paused.pause();
    const c = new ScaledWebSocketServer({
      ...options,
      port: 0,
      host: '127.0.0.1',
      nodeId: 'node-late',
      broker: new MemoryBroker({ bus: cluster.bus }),
    });
    try {
      await c.ready();
      const bob = await V1Peer.connect(c);
      bob.peer.send({ t: 'join', id: 1, r: 'pres:1' });
      await bob.peer.next('ack');
      await until(async () => (await c.presence('pres:1')).users === 2, 3000, 'b heard');
      bob.peer.send({ t: 'presence', id: 2, r: 'pres:1' });
      const first = await bob.peer.next('presence');
      expect(first.m.map(({ u }) => u).sort()).toEqual(
        [bob.welcome.client, walt.welcome.client].sort(),
      );
      // Node c has not heard of every member yet: the list proves no one gone.
      expect(first.p).toBe(1);
      // Node a goes on: its first snapshot reaches c while c still builds its view.
      paused.resume();
      expect(await bob.peer.next('pjoin', 3000)).toEqual({
        t: 'pjoin',
        r: 'pres:1',
        u: alice.welcome.client,
      });
      expect((await c.presence('pres:1')).users).toBe(3);
      // Its view whole, c sends the whole snapshot.
      const whole = await bob.peer.next('presence', 15_000);
      expect(whole.p).toBeUndefined();
      expect(whole.m.map(({ u }) => u).sort()).toEqual(
        [alice.welcome.client, bob.welcome.client, walt.welcome.client].sort(),
      );
    } finally {
      await c.close();
    }
  }, 30_000);
});

describe('a member whose node died, while a node starts in its place', () => {
  it.each([
    ['back on the node that just started', 'new'],
    ['back on a node that was running', 'running'],
  ] as const)(
    '%s, is no join there nor anywhere: the new node counts it present, as the others still do',
    async (_, where) => {
      const { options, dying, b, watcher, ann } = await memberOnDyingNode({});
      const heard: string[] = [];
      b.on('presence', (_room, change) => heard.push(`b ${change.type} ${change.user}`));
      await until(async () => (await b.presence('pres:1')).users === 2, 5000, 'b to list ann');
      heard.length = 0;

      // Node a dies (it sends and hears nothing more), and a new node takes its place.
      dying.frozen = true;
      ann.peer.ws.terminate();
      const c = new ScaledWebSocketServer({
        ...options,
        port: 0,
        host: '127.0.0.1',
        nodeId: 'node-new',
        broker: new MemoryBroker({ bus: cluster.bus }),
      });
      try {
        c.on('presence', (_room, change) => heard.push(`c ${change.type} ${change.user}`));
        await c.ready();
        const lists = (user: string) => async () =>
          (await c.presence('pres:1')).members.some((member) => member.user === user);
        // The new node has b's members before ann comes back (else b's snapshot would bring her).
        await until(lists(watcher.welcome.client), 3000, 'c to list the watcher');
        const back = await V1Peer.connect(where === 'new' ? c : b, {
          session: ann.welcome.session,
        });
        expect(back.welcome).toMatchObject({ resumed: true, rooms: { 'pres:1': {} } });
        await until(lists(ann.welcome.client), 3000, 'c to list ann');

        // A user who really comes is told, on every node; ann's resume was not, anywhere.
        const bob = await V1Peer.connect(c);
        bob.peer.send({ t: 'join', id: 1, r: 'pres:1' });
        await bob.peer.next('ack');
        await until(() => heard.length >= 2, 3000, 'both nodes to hear of bob');
        expect(heard.sort()).toEqual([
          `b join ${bob.welcome.client}`,
          `c join ${bob.welcome.client}`,
        ]);
        await until(
          () => watcher.peer.all('pjoin').some((join) => join.u === bob.welcome.client),
          3000,
          'the watcher to be told of bob',
        );
        expect(watcher.peer.all('pleave')).toEqual([]);
      } finally {
        await c.close();
      }
    },
    30_000,
  );
});

describe('a member whose node died, resumed on another, that leaves on purpose', () => {
  it.each(['leaves the room', 'closes with 1000'])(
    '%s: it leaves at once, not when the dead node’s entries expire',
    async (how) => {
      const { a, b, dying, watcher, ann } = await memberOnDyingNode({ nodeHeartbeatMs: 100 });
      expect(await watcher.peer.next('pjoin')).toMatchObject({ u: ann.welcome.client });

      // Node a dies; b declares it gone and keeps its members for the grace (20 s).
      dying.frozen = true;
      ann.peer.ws.terminate();
      await until(() => !b.nodes.includes(a.nodeId), 5000, 'b to declare a gone');
      const back = await V1Peer.connect(b, { session: ann.welcome.session });
      expect(back.welcome.resumed).toBe(true);
      if (how === 'leaves the room') back.peer.send({ t: 'leave', id: 9, r: 'pres:1' });
      else back.peer.ws.close(1000);
      expect(await watcher.peer.next('pleave', 2000)).toMatchObject({ u: ann.welcome.client });
      expect((await b.presence('pres:1')).members.map((m) => m.user)).toEqual([
        watcher.welcome.client,
      ]);
    },
    30_000,
  );
});

describe('a presence request asked again and again', () => {
  it('in a big room, a burst of them is answered one by one with the same snapshot, and the node stays responsive', async () => {
    const members = 1000;
    const asks = 1000;
    const [node] = await cluster.start(1, {
      presence: [{ rooms: 'pres:*', info: (client) => ({ name: `member ${client.id}` }) }],
      authorizeJoin: () => true,
      // The asker reads nothing while it asks: every answer waits in its send buffer.
      maxBufferedBytes: 1024 * 1024 * 1024,
    });
    node!.on('connection', (client) => {
      if (client.protocol === '') void client.join('pres:big');
    });
    for (let i = 1; i < members; i += 100) {
      const batch = Math.min(100, members - i);
      await Promise.all(Array.from({ length: batch }, () => cluster.connect(node!)));
    }
    const asker = await BarePeer.connect(node!);
    asker.ws.send('{"t":"join","id":1,"r":"pres:big"}');
    await until(() => asker.order.includes('ack 1'), 3000, 'the join');
    await until(() => node!.presenceStats('pres:big').users === members, 5000, 'the members');
    const good = await BarePeer.connect(node!);

    // A good client pings all along, while the asker sends its asks at once and reads nothing.
    const rtts: number[] = [];
    let pinging = true;
    const pinger = (async () => {
      while (pinging) rtts.push(await good.ping());
    })();
    asker.ws.pause();
    const handled = node!.stats.messagesIn;
    const burst = Array.from({ length: asks }, (_, k) => 10 + k);
    for (const id of burst) asker.ws.send(`{"t":"presence","id":${id},"r":"pres:big"}`);
    await until(() => node!.stats.messagesIn >= handled + asks, 30_000, 'the asks handled');
    await delay(50);
    pinging = false;
    await pinger;
    // A list of the room built for each ask stalled the node for over a second here; built once
    // for the burst, the asks cost tens of milliseconds (bounded generously for a shared machine).
    expect(Math.max(...rtts)).toBeLessThan(400);

    // Each ask is answered as the protocol says: a snapshot, then its ack.
    asker.ws.resume();
    await until(() => asker.order.length >= 1 + 2 * asks, 30_000, 'every ask answered');
    expect(asker.order).toEqual(['ack 1', ...burst.flatMap((id) => ['presence', `ack ${id}`])]);
    expect(asker.snapshots.size).toBe(1);
    const snapshot = JSON.parse([...asker.snapshots][0]!);
    expect(snapshot).toMatchObject({ t: 'presence', r: 'pres:big', n: members });
    expect(snapshot.m).toHaveLength(members);
    asker.ws.terminate();
    good.ws.terminate();
  }, 90_000);

  it('after a change of the room, and after a change of a member that stays, is answered with a new snapshot', async () => {
    const [node] = await cluster.start(1, {
      presence: [
        {
          rooms: 'pres:*',
          info: (client) => (client.identity === true ? undefined : (client.identity as Tab).tab),
        },
      ],
      authenticate: (request) => {
        const tab = request.headers['x-tab'];
        return typeof tab === 'string' ? { user: 'alice', tab } : true;
      },
      sessionOwner: (identity) => (identity === true ? '' : (identity as Tab).user),
      authorizeJoin: () => true,
    });
    const watcher = await V1Peer.connect(node!);
    const ask = async (id: number) => {
      watcher.peer.send({ t: 'presence', id, r: 'pres:1' });
      const snapshot = await watcher.peer.next('presence');
      expect(await watcher.peer.next('ack')).toEqual({ t: 'ack', id });
      return snapshot.m;
    };
    watcher.peer.send({ t: 'join', id: 1, r: 'pres:1' });
    await watcher.peer.next('ack');
    const me = { u: watcher.welcome.client };
    expect(await ask(2)).toEqual([me]);
    expect(await ask(3)).toEqual([me]);

    // alice comes with two tabs: she is listed with the info of her first connection (by id).
    const tabs = await Promise.all(
      ['one', 'two'].map(async (tab) => {
        const { peer, welcome } = await V1Peer.connect(node!, {}, { 'x-tab': tab });
        peer.send({ t: 'join', id: 1, r: 'pres:1' });
        await peer.next('ack');
        return { tab, peer, id: welcome.client };
      }),
    );
    tabs.sort((a, b) => (a.id < b.id ? -1 : 1));
    const [first, second] = tabs as [(typeof tabs)[0], (typeof tabs)[0]];
    await watcher.peer.next('pjoin');
    const alice = (m: { u: string }[]) => m.find((member) => member.u === 'alice');
    expect(alice(await ask(4))).toEqual({ u: 'alice', i: first.tab });
    expect(alice(await ask(5))).toEqual({ u: 'alice', i: first.tab });

    // Her first tab leaves: she stays (no pleave), now with her other tab's info.
    first.peer.ws.close(1000);
    await until(
      async () => (await node!.presence('pres:1')).connections === 2,
      3000,
      'the first tab gone',
    );
    expect(alice(await ask(6))).toEqual({ u: 'alice', i: second.tab });
    expect(watcher.peer.all('pleave')).toEqual([]);
    second.peer.ws.terminate();
  });
});

interface Tab {
  user: string;
  tab: string;
}

/**
 * Nodes a (whose broker the test can freeze: `dying`) and b with `options`; on b a watcher of
 * `pres:1`, and ann, a member of it on a.
 */
async function memberOnDyingNode(extra: { nodeHeartbeatMs?: number }) {
  const options = {
    stateStore: new MemoryStateStore({ ttlMs: 30_000 }),
    sessionSecret: 'a-test-secret-of-enough-bytes',
    presence: [{ rooms: 'pres:*' }],
    presenceGraceMs: 20_000,
    authorizeJoin: () => true,
    ...extra,
  };
  let dying!: FreezableBroker;
  const [a, b] = [
    ...(await cluster.start(1, {
      ...options,
      brokerFor: (bus) => (dying = new FreezableBroker({ bus })),
    })),
    ...(await cluster.start(1, options)),
  ] as [ScaledWebSocketServer, ScaledWebSocketServer];
  const watcher = await V1Peer.connect(b);
  watcher.peer.send({ t: 'join', id: 1, r: 'pres:1' });
  await watcher.peer.next('ack');
  watcher.peer.send({ t: 'presence', id: 2, r: 'pres:1' });
  await watcher.peer.next('ack');
  const ann = await V1Peer.connect(a);
  ann.peer.send({ t: 'join', id: 1, r: 'pres:1' });
  await ann.peer.next('ack');
  return { options, dying, a, b, watcher, ann };
}

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

/**
 * A `wscale.v1` peer that keeps only what a burst of presence requests needs: the order of its
 * answers (`presence`, `ack <id>`) and the distinct snapshots as they were sent, so a big room's
 * snapshot is not decoded once per answer; and the time a `ping` waits for its `pong`.
 */
class BarePeer {
  readonly ws: WebSocket;
  readonly order: string[] = [];
  readonly snapshots = new Set<string>();
  #welcomed?: () => void;
  #ponged?: () => void;

  private constructor(server: ScaledWebSocketServer) {
    this.ws = new WebSocket(urlOf(server), [PROTOCOL]);
    this.ws.on('error', () => undefined);
    this.ws.on('message', (data: Buffer) => {
      const text = data.toString();
      if (text.startsWith('{"t":"presence"')) {
        this.order.push('presence');
        this.snapshots.add(text);
        return;
      }
      const message = JSON.parse(text) as { t: string; id?: number };
      if (message.t === 'ack') this.order.push(`ack ${message.id}`);
      else if (message.t === 'welcome') this.#welcomed?.();
      else if (message.t === 'pong') this.#ponged?.();
    });
  }

  static async connect(server: ScaledWebSocketServer): Promise<BarePeer> {
    const peer = new BarePeer(server);
    await new Promise<void>((resolve, reject) => {
      peer.#welcomed = resolve;
      peer.ws.once('open', () => peer.ws.send('{"t":"hello"}'));
      peer.ws.once('error', reject);
    });
    return peer;
  }

  /** Pings and resolves with the milliseconds until the pong. */
  ping(): Promise<number> {
    const sent = performance.now();
    return new Promise((resolve) => {
      this.#ponged = () => resolve(performance.now() - sent);
      this.ws.send('{"t":"ping"}');
    });
  }
}
