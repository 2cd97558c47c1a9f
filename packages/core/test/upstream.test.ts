import { WscaleClient } from '@wscale/client';
import {
  CloseCode,
  MemoryStateStore,
  type MessageInfo,
  type ScaledWebSocketServer,
  type StateStore,
} from '@wscale/core';
import { delay, until } from '@wscale/core/testing';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { WebSocket } from 'ws';
import { ReceiptBatcher, UpstreamLedger } from '../src/v1/upstream.js';
import { FreezableBroker } from './helpers/freezable-broker.js';
import { TestCluster } from './helpers/nodes.js';
import { recordedClose, V1Peer } from './helpers/v1-client.js';

describe('UpstreamLedger', () => {
  it('hands each number on once and marks what a dead node may have handed on', () => {
    const clean = new UpstreamLedger({ up: 3 }, false);
    expect(clean.admit(2, true)).toBe('duplicate');
    expect(clean.admit(3, true)).toBe('duplicate');
    expect(clean.admit(4, true)).toBe('new'); // the record was exact: 4 never reached anyone
    expect(clean.last).toBe(4);

    const doubtful = new UpstreamLedger({ up: 3 }, true);
    expect(doubtful.admit(4, true)).toBe('redelivery');
    expect(doubtful.admit(5, false)).toBe('new'); // never sent before: it cannot be a repeat
  });

  it('keeps the latest replies, bounded in count and size, and is dirty until recorded', () => {
    const ledger = new UpstreamLedger(undefined, false);
    expect(ledger.dirty).toBe(false);
    for (let s = 1; s <= 40; s++) ledger.keepReply(s, { d: `reply ${s}` });
    ledger.keepReply(41, { d: 'x'.repeat(20_000) });
    expect(ledger.dirty).toBe(true);
    expect(ledger.replyTo(8)).toBeUndefined();
    expect(ledger.replyTo(9)).toEqual({ s: 9, d: 'reply 9' });
    expect(ledger.replyTo(41)).toBeUndefined();
    const record = ledger.record();
    expect(record.replies).toHaveLength(32);
    expect(ledger.dirty).toBe(false);
    expect(new UpstreamLedger(record, false).replyTo(40)).toEqual({ s: 40, d: 'reply 40' });
  });

  it('bounds the replies it keeps by the bytes the session record holds, not by characters', () => {
    const ledger = new UpstreamLedger(undefined, false);
    // 16 000 control characters: 16 000 UTF-16 units, 96 000 bytes of JSON (\u0001 each).
    ledger.keepReply(1, { d: '\u0001'.repeat(16_000) });
    expect(ledger.replyTo(1)).toBeUndefined();
    // 2500 of them: 15 000 bytes each, kept; together at most 64 KiB of the record.
    for (let s = 2; s <= 33; s++) ledger.keepReply(s, { d: '\u0001'.repeat(2500) });
    const record = ledger.record();
    expect(record.replies!.map((reply) => reply.s)).toEqual([30, 31, 32, 33]);
    expect(Buffer.byteLength(JSON.stringify(record))).toBeLessThan(64 * 1024);
    // A record written with more (by an earlier version) is read within the bounds too.
    const big = Array.from({ length: 32 }, (_, i) => ({ s: i + 1, d: '\u0001'.repeat(2500) }));
    const read = new UpstreamLedger({ up: 32, replies: big }, false).record();
    expect(read.replies!.map((reply) => reply.s)).toEqual([29, 30, 31, 32]);
  });

  it('gives one connection at most what the session keeps of its replies: a request sent again and again gets none past that', () => {
    const record = {
      up: 2,
      replies: [
        { s: 1, d: 'x'.repeat(15_000) },
        { s: 2, d: 'short' },
      ],
    };
    const ledger = new UpstreamLedger(record, false);
    // A resume sends each request again once: every kept reply comes back.
    expect(ledger.replyTo(1)?.d).toHaveLength(15_000);
    expect(ledger.replyTo(2)?.d).toBe('short');
    // Over and over, from one connection: about 64 KiB of answers, then none.
    const given = Array.from({ length: 10 }, () => ledger.replyTo(1) !== undefined);
    expect(given).toEqual([true, true, true, false, false, false, false, false, false, false]);
    // The next connection's resume is given them again.
    expect(new UpstreamLedger(record, false).replyTo(1)?.d).toHaveLength(15_000);
  });
});

describe('ReceiptBatcher', () => {
  it('writes one receipt per client per window, however many frames it owes', () => {
    vi.useFakeTimers();
    try {
      const written: string[] = [];
      const batcher = new ReceiptBatcher<string>(20, (client) => written.push(client));
      for (let i = 0; i < 100; i++) batcher.owe(i % 2 === 0 ? 'a' : 'b');
      batcher.owe('c');
      batcher.forget('c');
      expect(written).toEqual([]);
      vi.advanceTimersByTime(20);
      expect(written.sort()).toEqual(['a', 'b']);
      batcher.owe('a');
      vi.advanceTimersByTime(20);
      expect(written).toHaveLength(3);
    } finally {
      vi.useRealTimers();
    }
  });
});

/** A state store that can be made to fail every write, as a node that dies writes nothing more. */
function breakable(store: StateStore) {
  const state = { broken: false };
  const fail = () => Promise.reject(new Error('this node is gone'));
  const view = new Proxy(store, {
    get: (target, key) => {
      if (state.broken && (key === 'set' || key === 'delete')) return fail;
      const value = Reflect.get(target, key, target);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
  return { view, state };
}

/** A state store that can be made unreachable (every call fails), and reachable again. */
function outage(store: StateStore) {
  const state = { down: false };
  const counted = { failures: 0 };
  const fail = () => {
    counted.failures++;
    return Promise.reject(new Error('the store is unreachable'));
  };
  const view = new Proxy(store, {
    get: (target, key) => {
      const value = Reflect.get(target, key, target);
      if (typeof value !== 'function') return value;
      return state.down && key !== 'close' ? fail : value.bind(target);
    },
  });
  return {
    view,
    state,
    get failures() {
      return counted.failures;
    },
  };
}

/** Counts the reads of a state store. */
function counting(store: StateStore) {
  const counted = { reads: 0 };
  const view = new Proxy(store, {
    get: (target, key) => {
      const value = Reflect.get(target, key, target);
      if (typeof value !== 'function') return value;
      if (key !== 'get') return value.bind(target);
      return (...args: unknown[]) => {
        counted.reads++;
        return value.apply(target, args);
      };
    },
  });
  return { view, counted };
}

const cluster = new TestCluster();
afterEach(() => cluster.closeAll());

interface Heard {
  node: string;
  text: string;
  info: MessageInfo;
}

/**
 * Resumes a session on `node` after m1..m3 reached node-1 and were recorded: the client sends them
 * again, then m4; only m4 is handed on, unmarked.
 */
async function resumedExactly(node: ScaledWebSocketServer, session: string, heard: Heard[]) {
  const second = await V1Peer.connect(node, { session });
  expect(second.welcome.s).toBe(3);
  await sentAgainExactly(second.peer, heard, 3);
}

/**
 * The client of a resume sends again m1..m`recorded`, which reached node-1 and were recorded, then
 * one more: only that one is handed on (by node-2), unmarked.
 */
async function sentAgainExactly(peer: V1Peer, heard: Heard[], recorded: number) {
  const next = recorded + 1;
  for (let s = 1; s <= recorded; s++) peer.send({ t: 'msg', d: `m${s}`, s, p: 1 });
  peer.send({ t: 'msg', d: `m${next}`, s: next });
  await until(() => peer.all('rcv').at(-1)?.s === next, 2000, `rcv ${next}`);
  expect(heard.map((h) => `${h.node} ${h.text} ${h.info.redelivered}`)).toEqual([
    ...Array.from({ length: recorded }, (_, i) => `node-1 m${i + 1} false`),
    `node-2 m${next} false`,
  ]);
}

async function startNodes(stores: StateStore[], onRequest?: () => string) {
  const nodes: ScaledWebSocketServer[] = [];
  for (const store of stores) {
    nodes.push(
      ...(await cluster.start(1, {
        stateStore: store,
        sessionSecret: 'a-test-secret-of-enough-bytes',
        upstreamSaveMs: 50,
        onRequest,
      })),
    );
  }
  const heard: Heard[] = [];
  for (const node of nodes) {
    node.on('connection', (client) => {
      client.on('message', (text, _binary, info) => {
        heard.push({ node: node.nodeId, text: String(text), info });
      });
    });
  }
  return { nodes, heard };
}

/**
 * Two nodes on a store that can be made unreachable; a client hands `m1`, `m2` on to node-1 and
 * drops (its close recorded), then comes back on node-2 while the store is down (it stays down):
 * welcomed `unavailable`, the same client, its record neither read nor claimed.
 */
async function backWhileStoreDown() {
  const shared = new MemoryStateStore();
  const store = outage(shared);
  const { nodes, heard } = await startNodes([store.view, store.view]);
  const first = await V1Peer.connect(nodes[0]!);
  for (const s of [1, 2]) first.peer.send({ t: 'msg', d: `m${s}`, s });
  await until(() => heard.length === 2, 2000, 'two messages');
  first.peer.ws.terminate();
  await recordedClose(shared, first.welcome.client);
  store.state.down = true;
  const second = await V1Peer.connect(nodes[1]!, { session: first.welcome.session });
  expect(second.welcome).toMatchObject({ resumed: false, reason: 'unavailable' });
  expect(second.welcome.client).toBe(first.welcome.client);
  return { shared, store, nodes, heard, first, second };
}

/** How a peer's connection was closed by the node, within 3 s. */
async function closedWithin(peer: V1Peer): Promise<{ code: number }> {
  let close: { code: number } | undefined;
  void peer.closed.then((value) => {
    close = value;
  });
  await until(() => close !== undefined, 3000, 'the connection to be closed');
  return close!;
}

/** Waits until a session's record says its first `up` messages were handed on. */
async function recordedUp(store: StateStore, clientId: string, up: number): Promise<void> {
  await until(
    async () => {
      const record = await store.get(`wscale:session:${clientId}`);
      return record !== undefined && JSON.parse(record.value).up === up;
    },
    3000,
    `a record of the first ${up}`,
  );
}

/**
 * Two nodes; a client hands `m1`, `m2` on to node-1, which records nothing of it (as if it died
 * right after), and drops.
 */
async function handedOnUnrecorded() {
  const shared = new MemoryStateStore();
  const dying = breakable(shared);
  const { nodes, heard } = await startNodes([dying.view, shared]);
  const first = await V1Peer.connect(nodes[0]!);
  dying.state.broken = true; // from now on node-1 records nothing, as if it were gone
  for (const s of [1, 2]) first.peer.send({ t: 'msg', d: `m${s}`, s });
  await until(() => heard.length === 2, 2000, 'two messages');
  first.peer.ws.terminate();
  return { nodes, heard, first };
}

describe('upstream delivery (wscale.v1)', () => {
  it('acknowledges numbered messages cumulatively and drops one sent again', async () => {
    const { nodes, heard } = await startNodes([new MemoryStateStore()]);
    const { peer, welcome } = await V1Peer.connect(nodes[0]!);
    expect(welcome.s).toBe(0);
    for (const s of [1, 2, 3]) peer.send({ t: 'msg', d: `m${s}`, s });
    const receipt = await peer.next('rcv');
    expect(receipt.s).toBeLessThanOrEqual(3);
    await until(() => peer.all('rcv').at(-1)?.s === 3, 2000, 'rcv 3');
    // Three frames, far fewer receipts than frames.
    expect(peer.all('rcv').length).toBeLessThan(3);

    peer.send({ t: 'msg', d: 'm2', s: 2, p: 1 });
    peer.send({ t: 'msg', d: 'm4', s: 4 });
    await until(() => peer.all('rcv').at(-1)?.s === 4, 2000, 'rcv 4');
    expect(heard.map((h) => h.text)).toEqual(['m1', 'm2', 'm3', 'm4']);
    expect(heard.map((h) => h.info)).toEqual(
      [1, 2, 3, 4].map((s) => ({ id: `${welcome.client}:${s}`, redelivered: false })),
    );
  });

  it('after a clean close the record is exact: a resume continues with no repeat and no mark', async () => {
    const store = new MemoryStateStore();
    const { nodes, heard } = await startNodes([store, store]);
    const first = await V1Peer.connect(nodes[0]!);
    for (const s of [1, 2, 3]) first.peer.send({ t: 'msg', d: `m${s}`, s });
    await until(() => heard.length === 3, 2000, 'three messages');
    first.peer.ws.terminate(); // no receipt seen: the client must send all three again

    // The node saw the close and recorded it: the resume knows all three arrived.
    await recordedClose(store, first.welcome.client);
    await resumedExactly(nodes[1]!, first.welcome.session, heard);
  });

  it('a new session whose first connection dropped before any message arrived hands its first messages on unmarked', async () => {
    const store = new MemoryStateStore();
    const { nodes, heard } = await startNodes([store, store]);
    // The connection drops with the client's first message still on its way (lost with it).
    const first = await V1Peer.connect(nodes[0]!);
    first.peer.ws.terminate();
    await recordedClose(store, first.welcome.client);

    const second = await V1Peer.connect(nodes[1]!, { session: first.welcome.session });
    expect(second.welcome).toMatchObject({ resumed: true, s: 0 });
    // Sent again, as far as the client knows: no connection of the session handed anything on.
    second.peer.send({ t: 'msg', d: 'm1', s: 1, p: 1 });
    await until(() => heard.length === 1, 2000, 'the message');
    expect(heard.map((h) => [h.text, h.info.redelivered])).toEqual([['m1', false]]);
  });

  it('when the node dies before recording, what comes again is handed on marked, with the same id', async () => {
    const { nodes, heard, first } = await handedOnUnrecorded();

    const second = await V1Peer.connect(nodes[1]!, { session: first.welcome.session });
    expect(second.welcome.resumed).toBe(true);
    expect(second.welcome.s).toBe(0);
    for (const s of [1, 2]) second.peer.send({ t: 'msg', d: `m${s}`, s, p: 1 });
    second.peer.send({ t: 'msg', d: 'm3', s: 3 });
    await until(() => heard.length === 5, 2000, 'five deliveries');
    const again = heard.slice(2);
    expect(again.map((h) => [h.text, h.info.redelivered])).toEqual([
      ['m1', true],
      ['m2', true],
      ['m3', false],
    ]);
    expect(again[0]!.info.id).toBe(heard[0]!.info.id);
    expect(again[1]!.info.id).toBe(heard[1]!.info.id);
  });

  it('marks what comes again after a resume the server closed at once (a close made while away)', async () => {
    const { nodes, heard, first } = await handedOnUnrecorded();
    await nodes[1]!.client(first.welcome.client).close(4000, 'come back');

    // Closed right after its welcome, before the client sent anything again: what node-1 handed
    // on unrecorded is still in doubt, and stays so for the connection after it.
    const closed = await V1Peer.connect(nodes[1]!, { session: first.welcome.session });
    expect((await closedWithin(closed.peer)).code).toBe(4000);
    const third = await V1Peer.connect(nodes[1]!, { session: first.welcome.session });
    expect(third.welcome.resumed).toBe(true);
    for (const s of [1, 2]) third.peer.send({ t: 'msg', d: `m${s}`, s, p: 1 });
    third.peer.send({ t: 'msg', d: 'm3', s: 3 });
    await until(() => heard.length === 5, 2000, 'five deliveries');
    expect(heard.slice(2).map((h) => [h.text, h.info.redelivered])).toEqual([
      ['m1', true],
      ['m2', true],
      ['m3', false],
    ]);
  });

  it('a new client given a saved session numbers above what the session sent: no id names two messages', async () => {
    const shared = new MemoryStateStore();
    const dying = breakable(shared);
    const { nodes, heard } = await startNodes([dying.view, shared]);
    const url = (node: ScaledWebSocketServer) => `ws://127.0.0.1:${node.address()!.port}/`;
    const first = new WscaleClient(url(nodes[0]!), { WebSocket, network: false });
    await until(() => first.state === 'open', 2000, 'the first client');
    dying.state.broken = true; // node-1 records nothing more, as if killed right after
    await Promise.all(['old 1', 'old 2', 'old 3'].map((text) => first.send(text)));
    // The page saves its session as it unloads; the reloaded page resumes with it elsewhere.
    const saved = first.snapshot()!;
    await first.close();
    const second = new WscaleClient(url(nodes[1]!), { WebSocket, network: false, resume: saved });
    try {
      await Promise.all(['new 1', 'new 2', 'new 3'].map((text) => second.send(text)));
      expect(second.clientId).toBe(first.clientId);
      // Six messages, six ids: none given to two of them.
      expect(new Set(heard.map((h) => h.info.id)).size).toBe(6);
      expect(heard.map((h) => h.text)).toEqual([
        'old 1',
        'old 2',
        'old 3',
        'new 1',
        'new 2',
        'new 3',
      ]);
    } finally {
      await second.close();
    }
  });

  it('a node that dies after a periodic record repeats only what came after it, marked', async () => {
    const shared = new MemoryStateStore();
    const dying = breakable(shared);
    const { nodes, heard } = await startNodes([dying.view, shared]);
    const first = await V1Peer.connect(nodes[0]!);
    for (const s of [1, 2, 3]) first.peer.send({ t: 'msg', d: `m${s}`, s });
    // The periodic record (upstreamSaveMs) takes the first three, then the node is gone.
    await recordedUp(shared, first.welcome.client, 3);
    dying.state.broken = true;
    for (const s of [4, 5]) first.peer.send({ t: 'msg', d: `m${s}`, s });
    await until(() => heard.length === 5, 2000, 'five messages');
    first.peer.ws.terminate();

    const second = await V1Peer.connect(nodes[1]!, { session: first.welcome.session });
    expect(second.welcome.s).toBe(3);
    for (const s of [1, 2, 3, 4, 5]) second.peer.send({ t: 'msg', d: `m${s}`, s, p: 1 });
    await until(() => second.peer.all('rcv').at(-1)?.s === 5, 2000, 'rcv 5');
    const again = heard.slice(5);
    expect(again.map((h) => [h.text, h.info.redelivered])).toEqual([
      ['m4', true],
      ['m5', true],
    ]);
    expect(again.map((h) => h.info.id)).toEqual([heard[3]!.info.id, heard[4]!.info.id]);
  });

  it('a resume while the old node still holds the connection repeats nothing', async () => {
    const store = new MemoryStateStore();
    const { view, counted } = counting(store);
    const { nodes, heard } = await startNodes([store, view]);
    const first = await V1Peer.connect(nodes[0]!);
    for (const s of [1, 2]) first.peer.send({ t: 'msg', d: `m${s}`, s });
    await until(() => heard.length === 2, 2000, 'two messages');
    // The first connection is still open: its node has not seen anything drop.
    counted.reads = 0;
    const second = await V1Peer.connect(nodes[1]!, { session: first.welcome.session });
    expect(second.welcome.s).toBe(2);
    // Its node says when it recorded the close: the resume reads the record once after.
    expect(counted.reads).toBeLessThanOrEqual(3);
    expect((await first.peer.closed).code).toBe(4409);
    await sentAgainExactly(second.peer, heard, 2);
  });

  it('a resume on the same node while its old connection still holds the session repeats nothing', async () => {
    const store = new MemoryStateStore();
    const { view, counted } = counting(store);
    const { nodes, heard } = await startNodes([view]);
    const first = await V1Peer.connect(nodes[0]!);
    for (const s of [1, 2]) first.peer.send({ t: 'msg', d: `m${s}`, s });
    await until(() => heard.length === 2, 2000, 'two messages');
    counted.reads = 0;
    const second = await V1Peer.connect(nodes[0]!, { session: first.welcome.session });
    // Who holds it, the old connection's last save, the claim, the save after the welcome.
    expect(counted.reads).toBeLessThanOrEqual(4);
    expect(second.welcome.s).toBe(2);
    expect((await first.peer.closed).code).toBe(4409);
    for (const s of [1, 2]) second.peer.send({ t: 'msg', d: `m${s}`, s, p: 1 });
    second.peer.send({ t: 'msg', d: 'm3', s: 3 });
    await until(() => second.peer.all('rcv').at(-1)?.s === 3, 2000, 'rcv 3');
    expect(heard.map((h) => `${h.text} ${h.info.redelivered}`)).toEqual([
      'm1 false',
      'm2 false',
      'm3 false',
    ]);
  });

  it('a request refused BUSY and sent again is told BUSY again, not that it was handled', async () => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    let calls = 0;
    const [node] = await cluster.start(1, {
      stateStore: new MemoryStateStore(),
      sessionSecret: 'a-test-secret-of-enough-bytes',
      maxInFlightPerClient: 1,
      onRequest: async () => {
        calls++;
        await gate;
        return 'done';
      },
    });
    const { peer } = await V1Peer.connect(node!);
    try {
      peer.send({ t: 'req', id: 1, d: 'slow', s: 1 });
      peer.send({ t: 'req', id: 2, d: 'second', s: 2 });
      expect(await peer.next('ack')).toMatchObject({ id: 2, error: { code: 'BUSY' } });
      // Its answer lost on the way (a dropped link): the client asks again.
      peer.send({ t: 'req', id: 2, d: 'second', s: 2, p: 1 });
      expect(await peer.next('ack')).toMatchObject({ id: 2, error: { code: 'BUSY' } });
      expect(calls).toBe(1);
    } finally {
      release();
    }
  });

  it('a request sent again is answered from the kept reply, not handled twice', async () => {
    const store = new MemoryStateStore();
    let calls = 0;
    const { nodes } = await startNodes([store, store], () => `answer ${++calls}`);
    const first = await V1Peer.connect(nodes[0]!);
    first.peer.send({ t: 'req', id: 7, d: 'q', s: 1 });
    expect((await first.peer.next('ack')).d).toBe('answer 1');
    first.peer.ws.terminate(); // the ack may not have arrived: the client asks again

    await recordedClose(store, first.welcome.client);
    const second = await V1Peer.connect(nodes[1]!, { session: first.welcome.session });
    expect(second.welcome.s).toBe(1);
    second.peer.send({ t: 'req', id: 7, d: 'q', s: 1, p: 1 });
    expect(await second.peer.next('ack')).toEqual({ t: 'ack', id: 7, d: 'answer 1' });
    expect(calls).toBe(1);
  });

  it('a request still running when its connection drops is not handled again on the resume, nor what followed it', async () => {
    const store = new MemoryStateStore();
    let release!: () => void;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const handled: string[] = [];
    const heard: string[] = [];
    const nodes = await cluster.start(2, {
      stateStore: store,
      sessionSecret: 'a-test-secret-of-enough-bytes',
      // No periodic record in between: what the resume knows is what the close recorded.
      upstreamSaveMs: 60_000,
      onRequest: async (_client, data) => {
        handled.push(String(data));
        await gate; // a payment provider taking its time
        return 'charged';
      },
    });
    for (const node of nodes) {
      node.on('connection', (client) => client.on('message', (text) => heard.push(String(text))));
    }
    const first = await V1Peer.connect(nodes[0]!);
    first.peer.send({ t: 'req', id: 1, d: 'charge', s: 1 });
    first.peer.send({ t: 'msg', d: 'after it', s: 2 });
    await until(() => handled.length === 1 && heard.length === 1, 2000, 'both on node-1');
    first.peer.ws.terminate(); // no ack, no rcv: the client sends both again

    try {
      const second = await V1Peer.connect(nodes[1]!, { session: first.welcome.session });
      // The close was recorded at once, the handler still running: both count as handed on.
      expect(second.welcome.s).toBe(2);
      second.peer.send({ t: 'req', id: 1, d: 'charge', s: 1, p: 1 });
      second.peer.send({ t: 'msg', d: 'after it', s: 2, p: 1 });
      expect((await second.peer.next('ack')).error).toMatchObject({ code: 'REPLY_LOST' });
      await until(() => second.peer.all('rcv').at(-1)?.s === 2, 2000, 'rcv 2');
      expect([handled, heard]).toEqual([['charge'], ['after it']]);
    } finally {
      release();
    }
  });

  it('records what was handed on while the store was down once it is back, with nothing more sent', async () => {
    const shared = new MemoryStateStore();
    const store = outage(shared);
    const { nodes, heard } = await startNodes([store.view]);
    const { peer, welcome } = await V1Peer.connect(nodes[0]!);
    store.state.down = true;
    for (const s of [1, 2, 3]) peer.send({ t: 'msg', d: `m${s}`, s });
    await until(() => heard.length === 3, 2000, 'three messages');
    // A periodic record (every 50 ms here) fails meanwhile; the next one after the store is back
    // writes it, though the client sends nothing more.
    await until(() => store.failures > 0, 2000, 'a failed record');
    store.state.down = false;
    await recordedUp(shared, welcome.client, 3);
  });

  it('a close while the store is down is recorded once it is back: the resume on another node repeats nothing', async () => {
    const shared = new MemoryStateStore();
    const store = outage(shared);
    const { nodes, heard } = await startNodes([store.view, store.view]);
    const first = await V1Peer.connect(nodes[0]!);
    store.state.down = true;
    for (const s of [1, 2, 3]) first.peer.send({ t: 'msg', d: `m${s}`, s });
    await until(() => heard.length === 3, 2000, 'three messages');
    first.peer.ws.terminate(); // no receipt seen: the client sends all three again
    await until(() => !nodes[0]!.clients.has(first.welcome.client), 2000, 'the close');
    // Its last record did not get through: the store does not say the connection closed.
    const stored = await shared.get(`wscale:session:${first.welcome.client}`);
    expect(JSON.parse(stored!.value).live).not.toBe(false);
    store.state.down = false;

    // The node lives: its last record, tried again, says all three arrived.
    await recordedClose(shared, first.welcome.client);
    await resumedExactly(nodes[1]!, first.welcome.session, heard);
  });

  it('a connection opened while the store was down is closed 1012 once the store is back, and its resume repeats only what went unrecorded, marked', async () => {
    const { shared, store, nodes, heard, first, second } = await backWhileStoreDown();
    store.state.down = false;
    for (const s of [3, 4]) second.peer.send({ t: 'msg', d: `m${s}`, s });
    await until(() => heard.length === 4, 2000, 'four messages');
    // Its record names the connection before it: it is not overwritten, and this one is told to
    // resume (a record of what it handed on cannot be written under another connection's name).
    expect((await closedWithin(second.peer)).code).toBe(CloseCode.ServiceRestart);
    expect(JSON.parse((await shared.get(`wscale:session:${first.welcome.client}`))!.value).up).toBe(
      2,
    );

    // The client says its last welcome was `unavailable`; it sends again what had no receipt.
    const third = await V1Peer.connect(nodes[0]!, { session: first.welcome.session, u: 1 });
    expect(third.welcome).toMatchObject({ resumed: true, s: 2 });
    expect(nodes[0]!.clients.get(first.welcome.client)!.sessionUnavailable).toBe(false);
    for (const s of [3, 4]) third.peer.send({ t: 'msg', d: `m${s}`, s, p: 1 });
    third.peer.send({ t: 'msg', d: 'm5', s: 5 });
    await until(() => third.peer.all('rcv').at(-1)?.s === 5, 2000, 'rcv 5');
    expect(heard.map((h) => `${h.text} ${h.info.redelivered}`)).toEqual([
      'm1 false',
      'm2 false',
      'm3 false',
      'm4 false',
      'm3 true',
      'm4 true',
      'm5 false',
    ]);
    expect(heard[4]!.info.id).toBe(heard[2]!.info.id);
  });

  it('a connection opened while the store was down, that sends nothing, is closed 1012 soon after the store is back', async () => {
    const { store, nodes, first, second } = await backWhileStoreDown();
    // The application can tell it from a new session: its rooms and data come with the resume.
    const client = nodes[1]!.clients.get(first.welcome.client)!;
    expect([client.sessionUnavailable, client.resumed]).toEqual([true, false]);
    await delay(1500); // a save or two tried while the store is down
    store.state.down = false;
    // Within a few upstream saves (every second), not the session refresh (ttlMs / 3: 100 s here).
    expect((await closedWithin(second.peer)).code).toBe(CloseCode.ServiceRestart);
  });

  it('a session resumed while the store was down keeps its rooms and data: the store is back, the resume gets them', async () => {
    const shared = new MemoryStateStore();
    const store = outage(shared);
    const { nodes } = await startNodes([store.view]);
    nodes[0]!.on('connection', (client) => {
      if (client.resumed) return;
      client.data = { plan: client.data && 'gold' };
      void client.join('feed');
    });
    const first = await V1Peer.connect(nodes[0]!);
    await until(
      async () =>
        ((await shared.get(`wscale:session:${first.welcome.client}`))?.value ?? '').includes(
          'feed',
        ),
      2000,
      'the room recorded',
    );
    first.peer.ws.close(1000);
    await recordedClose(shared, first.welcome.client);
    store.state.down = true;
    const second = await V1Peer.connect(nodes[0]!, { session: first.welcome.session });
    expect(second.welcome).toMatchObject({ resumed: false, reason: 'unavailable', rooms: {} });
    store.state.down = false;
    // Saved again (every 50 ms here) once the store is back: refused, and the client told to resume.
    expect((await closedWithin(second.peer)).code).toBe(CloseCode.ServiceRestart);
    const record = JSON.parse((await shared.get(`wscale:session:${first.welcome.client}`))!.value);
    expect(record).toMatchObject({ rooms: ['feed'], data: { plan: 'gold' } });
    const third = await V1Peer.connect(nodes[0]!, { session: first.welcome.session, u: 1 });
    expect(third.welcome.resumed).toBe(true);
    expect(Object.keys(third.welcome.rooms)).toEqual(['feed']);
    expect(nodes[0]!.clients.get(first.welcome.client)!.data).toEqual({ plan: 'gold' });
  });

  it('a connection whose record the store lost to an older copy is closed 1012, and resumes from what the store says', async () => {
    const shared = new MemoryStateStore();
    const { nodes } = await startNodes([shared, shared]);
    for (const node of nodes) {
      node.on('connection', (client) => {
        if (!client.resumed) void client.join('first');
      });
    }
    const key = (id: string) => `wscale:session:${id}`;
    const first = await V1Peer.connect(nodes[0]!);
    await until(
      async () => ((await shared.get(key(first.welcome.client)))?.value ?? '').includes('first'),
      2000,
      'the room recorded',
    );
    const older = (await shared.get(key(first.welcome.client)))!.value;
    first.peer.ws.terminate();
    const second = await V1Peer.connect(nodes[1]!, { session: first.welcome.session });
    expect(second.welcome.resumed).toBe(true);
    // The store goes back to its copy from before the resume (a restore, a failover that lost it).
    const current = await shared.get(key(first.welcome.client));
    await shared.set(key(first.welcome.client), older, { ifVersion: current!.version });
    await nodes[1]!.clients.get(first.welcome.client)!.join('second');
    // Its saves are refused now: not silently, it is told to resume.
    expect((await closedWithin(second.peer)).code).toBe(CloseCode.ServiceRestart);
    const third = await V1Peer.connect(nodes[1]!, { session: first.welcome.session });
    expect(third.welcome.resumed).toBe(true);
    expect(Object.keys(third.welcome.rooms)).toEqual(['first']);
    expect([...nodes[1]!.clients.get(first.welcome.client)!.rooms]).toEqual(['first']);
  });

  it('what a connection could not record while the store was down comes again marked, when the hello says so', async () => {
    // The whole stay on node-2 without a store: nothing it hands on can be recorded.
    const { store, nodes, heard, first, second } = await backWhileStoreDown();
    for (const s of [3, 4]) second.peer.send({ t: 'msg', d: `m${s}`, s });
    await until(() => heard.length === 4, 2000, 'four messages');
    second.peer.ws.terminate(); // before its rcv
    await until(() => nodes[1]!.clients.size === 0, 2000, 'node-2 to see the drop');
    store.state.down = false;

    // The client says its last welcome was `unavailable`: the record it resumes from may be behind.
    const third = await V1Peer.connect(nodes[0]!, { session: first.welcome.session, u: 1 });
    expect(third.welcome.s).toBe(2);
    for (const s of [3, 4]) third.peer.send({ t: 'msg', d: `m${s}`, s, p: 1 });
    await until(() => heard.length === 6, 2000, 'the two sent again');
    const again = heard.slice(4);
    expect(again.map((h) => [h.text, h.info.redelivered])).toEqual([
      ['m3', true],
      ['m4', true],
    ]);
    expect(again.map((h) => h.info.id)).toEqual([heard[2]!.info.id, heard[3]!.info.id]);
  });
});

describe('resume of a session whose node was killed', () => {
  it('costs one bounded wait and two reads of its record, while the mesh still thinks the node alive', async () => {
    const shared = new MemoryStateStore();
    const dying = breakable(shared);
    const { view, counted } = counting(shared);
    const options = { sessionSecret: 'a-test-secret-of-enough-bytes', nodeTimeoutMs: 60_000 };
    let broker: FreezableBroker | undefined;
    const [killed] = await cluster.start(1, {
      ...options,
      stateStore: dying.view,
      brokerFor: (bus) => (broker = new FreezableBroker({ bus })),
    });
    const [survivor] = await cluster.start(1, { ...options, stateStore: view });
    const heard: string[] = [];
    survivor!.on('connection', (client) =>
      client.on('message', (text) => heard.push(String(text))),
    );
    const first = await V1Peer.connect(killed!);
    first.peer.send({ t: 'msg', d: 'm1', s: 1 });
    await recordedUp(shared, first.welcome.client, 1);
    // Killed: it records nothing and says nothing more, and its client's connection drops.
    dying.state.broken = true;
    broker!.frozen = true;
    first.peer.ws.terminate();

    counted.reads = 0;
    const second = await V1Peer.connect(survivor!, { session: first.welcome.session });
    expect(second.welcome).toMatchObject({ resumed: true, s: 1 });
    // Who holds the session, then its claim, then the save that follows the welcome.
    expect(counted.reads).toBeLessThanOrEqual(3);
    expect(survivor!.nodes).toContain(killed!.nodeId);
    second.peer.send({ t: 'msg', d: 'm2', s: 2 });
    await until(() => heard.length === 1, 2000, 'm2');
    expect(heard).toEqual(['m2']);
  });
});
