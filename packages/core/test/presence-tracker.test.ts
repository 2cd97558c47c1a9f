import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { PresenceTracker } from '../src/presence/presence-tracker.js';
import type { PresenceChange } from '../src/presence/presence-types.js';
import {
  decodePresence,
  encodePresence,
  type PresenceWire,
} from '../src/presence/presence-wire.js';

/**
 * The replicated presence view, driven by hand: several trackers joined by a simulated broker
 * (one FIFO per sender and receiver, as the Broker contract promises), a clock that only moves
 * when told, and the same routing the node's presence service does.
 */

const GRACE = 1000;

interface SimNode {
  tracker: PresenceTracker;
  changes: { room: string; change: PresenceChange }[];
  /** Cut off from the broker: what it publishes and what is published to it is lost. */
  cut: boolean;
}

class Sim {
  now = 0;
  readonly nodes = new Map<string, SimNode>();
  /** In flight, per "from>to" link, in order. */
  readonly links = new Map<string, PresenceWire[]>();
  #incarnations = 0;

  start(id: string): SimNode {
    const node: SimNode = {
      tracker: new PresenceTracker(id, `i${++this.#incarnations}`, GRACE, (room, change, quiet) => {
        if (!quiet) node.changes.push({ room, change });
      }),
      changes: [],
      cut: false,
    };
    this.nodes.set(id, node);
    for (const other of this.nodes.keys()) {
      if (other === id) continue;
      this.nodes.get(other)!.tracker.nodeUp(id);
      this.#send(other, id, { k: 'q', n: other });
      node.tracker.nodeUp(other);
      this.#send(id, other, { k: 'q', n: id });
    }
    return node;
  }

  node(id: string): SimNode {
    return this.nodes.get(id)!;
  }

  /** Runs an operation on a node's tracker, then publishes what it produced. */
  on(id: string, run: (tracker: PresenceTracker) => void): void {
    const node = this.nodes.get(id);
    if (node === undefined) return;
    run(node.tracker);
    this.#flush(id);
  }

  kill(id: string): void {
    this.nodes.delete(id);
    for (const key of [...this.links.keys()]) if (key.includes(id)) this.links.delete(key);
  }

  /** The mesh's verdict: every other node sees `id` gone (and `id` sees them gone). */
  down(id: string): void {
    for (const [other, node] of this.nodes) {
      if (other === id) continue;
      node.tracker.nodeDown(id, this.now);
      this.nodes.get(id)?.tracker.nodeDown(other, this.now);
    }
  }

  up(id: string): void {
    for (const other of this.nodes.keys()) {
      if (other === id) continue;
      this.#mutual(id, other);
    }
  }

  #mutual(a: string, b: string): void {
    this.nodes.get(b)!.tracker.nodeUp(a);
    this.#send(b, a, { k: 'q', n: b });
    this.nodes.get(a)!.tracker.nodeUp(b);
    this.#send(a, b, { k: 'q', n: a });
  }

  /** Delivers the head of one link (chosen by `pick`); false when nothing is in flight. */
  step(pick = 0): boolean {
    const busy = [...this.links.entries()].filter(([, queue]) => queue.length > 0);
    if (busy.length === 0) return false;
    const [key, queue] = busy[pick % busy.length]!;
    const message = queue.shift()!;
    const to = key.split('>')[1]!;
    this.#deliver(to, message);
    return true;
  }

  /** The broker loses the head of one link (a subscriber briefly disconnected). */
  lose(pick: number): void {
    const busy = [...this.links.values()].filter((queue) => queue.length > 0);
    if (busy.length > 0) busy[pick % busy.length]!.shift();
  }

  drain(): void {
    for (let i = 0; i < 100_000 && this.step(i * 7); i++);
  }

  advance(ms: number): void {
    this.now += ms;
    for (const id of this.nodes.keys()) this.on(id, (tracker) => tracker.expire(this.now));
  }

  /** Every node's periodic tick: its sequence number, and asks for what it misses. */
  tick(): void {
    for (const [id, node] of this.nodes) {
      const t = node.tracker;
      this.#broadcast(id, { k: 't', n: id, x: t.incarnation, s: t.seq });
      for (const other of t.toAsk(this.now)) this.#send(id, other, { k: 'q', n: id });
    }
  }

  #deliver(to: string, message: PresenceWire): void {
    const node = this.nodes.get(to);
    if (node === undefined) return;
    const t = node.tracker;
    let ask = false;
    switch (message.k) {
      case 'd':
        ask = t.receive(message.n, message.x, message.s, message.d, this.now);
        break;
      case 't':
        ask = t.tick(message.n, message.x, message.s, this.now);
        break;
      case 'q': {
        // Cut by count and by bytes (an entry is some 60–100 bytes of JSON).
        const { seq, parts } = t.snapshot(3, 200);
        for (const [p, e] of parts.entries()) {
          this.#send(to, message.n, {
            k: 's',
            n: to,
            x: t.incarnation,
            s: seq,
            p,
            m: parts.length,
            e,
          });
        }
        break;
      }
      case 's':
        t.snapshotPart(message.n, message.x, message.s, message.p, message.m, message.e, this.now);
        break;
    }
    if (ask) this.#send(to, message.n, { k: 'q', n: to });
    this.#flush(to);
  }

  #flush(id: string): void {
    const t = this.nodes.get(id)!.tracker;
    for (const { seq, delta } of t.take()) {
      this.#broadcast(id, { k: 'd', n: id, x: t.incarnation, s: seq, d: delta });
    }
  }

  #broadcast(from: string, message: PresenceWire): void {
    for (const to of this.nodes.keys()) if (to !== from) this.#send(from, to, message);
  }

  #send(from: string, to: string, message: PresenceWire): void {
    if (this.nodes.get(from)?.cut || this.nodes.get(to)?.cut) return;
    const key = `${from}>${to}`;
    let queue = this.links.get(key);
    if (queue === undefined) {
      queue = [];
      this.links.set(key, queue);
    }
    queue.push(message);
  }
}

function users(node: SimNode, room: string): string[] {
  return node.tracker.members(room, 1000).map((m) => m.user);
}

function events(node: SimNode): string[] {
  return node.changes.map(({ room, change }) => `${room} ${change.type} ${change.user}`);
}

describe('presence tracker', () => {
  it('counts a user with two tabs once; one tab closing is no leave, the second is one', () => {
    const sim = new Sim();
    sim.start('a');
    const b = sim.start('b');
    sim.drain();
    const tab1 = {};
    const tab2 = {};
    sim.on('a', (t) => t.join(tab1, 'r', 'c1', 'ann', { name: 'Ann' }));
    sim.on('a', (t) => t.join(tab2, 'r', 'c2', 'ann', { name: 'Ann' }));
    sim.drain();
    expect(b.tracker.stats('r')).toEqual({ users: 1, connections: 2 });
    expect(b.tracker.members('r', 10)).toEqual([
      {
        user: 'ann',
        info: { name: 'Ann' },
        connections: [
          { id: 'c1', node: 'a' },
          { id: 'c2', node: 'a' },
        ],
      },
    ]);
    sim.on('a', (t) => t.leave(tab1, 'r', 'c1'));
    sim.drain();
    expect(events(b)).toEqual(['r join ann']);
    sim.on('a', (t) => t.leave(tab2, 'r', 'c2'));
    sim.drain();
    expect(events(b)).toEqual(['r join ann', 'r leave ann']);
    expect(events(sim.node('a'))).toEqual(['r join ann', 'r leave ann']);
    expect(b.tracker.stats('r')).toEqual({ users: 0, connections: 0 });
  });

  it('keeps a dropped connection for the grace period: back in time is nothing, too late is one leave', () => {
    const sim = new Sim();
    const a = sim.start('a');
    const b = sim.start('b');
    sim.drain();
    const first = {};
    sim.on('a', (t) => t.join(first, 'r', 'c1', 'ann'));
    sim.drain();
    sim.on('a', (t) => t.drop(first, 'r', 'c1', sim.now));
    sim.advance(GRACE - 1);
    const again = {};
    sim.on('a', (t) => t.join(again, 'r', 'c1', 'ann'));
    sim.advance(GRACE * 3);
    sim.drain();
    expect(events(b)).toEqual(['r join ann']);
    sim.on('a', (t) => t.drop(again, 'r', 'c1', sim.now));
    sim.advance(GRACE - 1);
    sim.drain();
    expect(events(b)).toEqual(['r join ann']);
    sim.advance(1);
    sim.drain();
    expect(events(b)).toEqual(['r join ann', 'r leave ann']);
    expect(events(a)).toEqual(['r join ann', 'r leave ann']);
  });

  it('a connection that drops on one node and resumes on another makes no event anywhere', () => {
    const sim = new Sim();
    const a = sim.start('a');
    const b = sim.start('b');
    const c = sim.start('c');
    sim.drain();
    const onA = {};
    sim.on('a', (t) => t.join(onA, 'r', 'c1', 'ann'));
    sim.drain();
    sim.on('a', (t) => t.drop(onA, 'r', 'c1', sim.now));
    sim.on('b', (t) => t.join({}, 'r', 'c1', 'ann'));
    sim.drain();
    // Listed on both nodes until the grace ends on the first.
    expect(c.tracker.members('r', 10)[0]!.connections).toEqual([
      { id: 'c1', node: 'a' },
      { id: 'c1', node: 'b' },
    ]);
    sim.advance(GRACE);
    sim.drain();
    expect(c.tracker.members('r', 10)[0]!.connections).toEqual([{ id: 'c1', node: 'b' }]);
    for (const node of [a, b, c]) expect(events(node)).toEqual(['r join ann']);
  });

  it("a dead node's members leave once after the grace, unless they came back elsewhere", () => {
    const sim = new Sim();
    sim.start('a');
    const b = sim.start('b');
    const c = sim.start('c');
    sim.drain();
    sim.on('a', (t) => t.join({}, 'r', 'c1', 'ann'));
    sim.on('a', (t) => t.join({}, 'r', 'c2', 'bob'));
    sim.on('b', (t) => t.join({}, 'r', 'c3', 'cid'));
    sim.drain();
    sim.kill('a');
    sim.on('c', (t) => t.join({}, 'r', 'c1', 'ann')); // ann's client resumed on c
    sim.drain();
    sim.advance(5000); // the node timeout
    sim.down('a');
    sim.advance(GRACE - 1);
    expect(users(b, 'r')).toEqual(['ann', 'bob', 'cid']);
    sim.advance(1);
    sim.drain();
    for (const node of [b, c]) {
      expect(events(node).sort()).toEqual([
        'r join ann',
        'r join bob',
        'r join cid',
        'r leave bob',
      ]);
      expect(users(node, 'r')).toEqual(['ann', 'cid']);
    }
  });

  it('notices a lost delta at the next tick and converges from a snapshot', () => {
    const sim = new Sim();
    sim.start('a');
    const b = sim.start('b');
    sim.drain();
    sim.node('b').cut = true;
    sim.on('a', (t) => t.join({}, 'r', 'c1', 'ann'));
    sim.on('a', (t) => t.join({}, 'r', 'c2', 'bob'));
    sim.node('b').cut = false;
    sim.drain();
    expect(users(b, 'r')).toEqual([]);
    sim.advance(2000);
    sim.tick();
    sim.drain();
    expect(users(b, 'r')).toEqual(['ann', 'bob']);
    expect(events(b)).toEqual(['r join ann', 'r join bob']);
  });

  it('takes a restarted node for a new one: its old entries go after the grace', () => {
    const sim = new Sim();
    sim.start('a');
    const b = sim.start('b');
    sim.drain();
    sim.on('a', (t) => t.join({}, 'r', 'c1', 'ann'));
    sim.on('a', (t) => t.join({}, 'r', 'c2', 'bob'));
    sim.drain();
    sim.kill('a');
    sim.start('a');
    sim.on('a', (t) => t.join({}, 'r', 'c1', 'ann')); // ann came back to the restarted node
    sim.drain();
    expect(users(b, 'r')).toEqual(['ann', 'bob']);
    sim.advance(GRACE);
    sim.drain();
    expect(users(b, 'r')).toEqual(['ann']);
    expect(events(b)).toEqual(['r join ann', 'r join bob', 'r leave bob']);
  });

  it('lists members in user order, a page at a time', () => {
    const sim = new Sim();
    const a = sim.start('a');
    for (const user of ['d', 'b', 'a', 'c']) sim.on('a', (t) => t.join({}, 'r', user, user));
    expect(a.tracker.members('r', 2).map((m) => m.user)).toEqual(['a', 'b']);
    expect(a.tracker.members('r', 2, 'b').map((m) => m.user)).toEqual(['c', 'd']);
    expect(a.tracker.members('other', 2)).toEqual([]);
  });

  it("changes a room's version with each connection that comes or goes, not only with its users", () => {
    const sim = new Sim();
    const a = sim.start('a');
    const [tab1, tab2] = [{}, {}];
    const versions = new Set([a.tracker.version('r')]);
    const changed = () => {
      const version = a.tracker.version('r');
      const fresh = !versions.has(version);
      versions.add(version);
      return fresh;
    };
    sim.on('a', (t) => t.join(tab1, 'r', 'c1', 'ann', { tab: 1 }));
    expect(changed()).toBe(true);
    sim.on('a', (t) => t.join(tab2, 'r', 'c0', 'ann', { tab: 2 }));
    expect(changed()).toBe(true); // ann is listed with c0's info now
    sim.on('a', (t) => t.join(tab2, 'r', 'c0', 'ann', { tab: 2 }));
    expect(changed()).toBe(false);
    sim.on('a', (t) => t.leave(tab2, 'r', 'c0'));
    expect(changed()).toBe(true);
    sim.on('a', (t) => t.leave(tab1, 'r', 'c1'));
    sim.on('a', (t) => t.join(tab1, 'r', 'c1', 'ann', { tab: 1 }));
    expect(changed()).toBe(true); // the room emptied and filled again
  });

  it('lists a user who joined or left since the last list, and pages after a user who is gone', () => {
    const sim = new Sim();
    const a = sim.start('a');
    const holders = new Map<string, object>();
    const join = (user: string) => {
      const holder = {};
      holders.set(user, holder);
      sim.on('a', (t) => t.join(holder, 'r', user, user));
    };
    for (const user of ['d', 'b', 'a']) join(user);
    const list = (after?: string) => a.tracker.members('r', 10, after).map((m) => m.user);
    expect(list()).toEqual(['a', 'b', 'd']);
    join('c');
    expect(list()).toEqual(['a', 'b', 'c', 'd']);
    sim.on('a', (t) => t.leave(holders.get('b')!, 'r', 'b'));
    expect(list()).toEqual(['a', 'c', 'd']);
    expect(list('b')).toEqual(['c', 'd']);
    expect(list('d')).toEqual([]);
  });
});

type Op =
  | { op: 'join'; node: number; conn: number; user: number; room: number }
  | { op: 'leave'; conn: number; room: number }
  | { op: 'drop'; conn: number }
  | { op: 'resume'; conn: number; node: number }
  | { op: 'kill'; node: number }
  | { op: 'cut'; node: number }
  | { op: 'heal'; node: number }
  | { op: 'deliver'; count: number; pick: number }
  | { op: 'lose'; pick: number }
  | { op: 'advance'; ms: number }
  | { op: 'tick' };

const NODES = ['n0', 'n1', 'n2', 'n3'];
const ROOMS = ['r0', 'r1'];

const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({
    op: fc.constant('join' as const),
    node: fc.nat(3),
    conn: fc.nat(7),
    user: fc.nat(3),
    room: fc.nat(1),
  }),
  fc.record({ op: fc.constant('leave' as const), conn: fc.nat(7), room: fc.nat(1) }),
  fc.record({ op: fc.constant('drop' as const), conn: fc.nat(7) }),
  fc.record({ op: fc.constant('resume' as const), conn: fc.nat(7), node: fc.nat(3) }),
  fc.record({ op: fc.constant('kill' as const), node: fc.nat(3) }),
  fc.record({ op: fc.constant('cut' as const), node: fc.nat(3) }),
  fc.record({ op: fc.constant('heal' as const), node: fc.nat(3) }),
  fc.record({ op: fc.constant('deliver' as const), count: fc.nat(20), pick: fc.nat(50) }),
  fc.record({ op: fc.constant('lose' as const), pick: fc.nat(50) }),
  fc.record({ op: fc.constant('advance' as const), ms: fc.integer({ min: 1, max: 1500 }) }),
  fc.constant({ op: 'tick' as const }),
);

/** A client connection as the test knows it: where it is, its user, rooms, and whether it dropped. */
interface Conn {
  node: string;
  user: string;
  rooms: Set<string>;
  holder: object;
  dropped: boolean;
}

describe('presence tracker convergence', () => {
  it('every live node ends with the same members, the ones really connected, after any history', () => {
    fc.assert(
      fc.property(fc.array(opArb, { maxLength: 60 }), (ops) => {
        const sim = new Sim();
        for (const id of NODES) sim.start(id);
        sim.drain();
        const conns = new Map<string, Conn>();
        const listed = new Map<PresenceTracker, Map<string, [number, string]>>();
        let restarts = 0;
        for (const o of ops) {
          switch (o.op) {
            case 'join': {
              const id = `c${o.conn}`;
              const node = NODES[o.node]!;
              const room = ROOMS[o.room]!;
              let conn = conns.get(id);
              if (conn === undefined || conn.dropped) {
                if (conn !== undefined) continue; // a dropped connection comes back by resume
                if (!sim.nodes.has(node)) continue;
                conn = { node, user: `u${o.user}`, rooms: new Set(), holder: {}, dropped: false };
                conns.set(id, conn);
              }
              const { holder, user } = conn;
              conn.rooms.add(room);
              sim.on(conn.node, (t) => t.join(holder, room, id, user));
              break;
            }
            case 'leave': {
              const id = `c${o.conn}`;
              const conn = conns.get(id);
              const room = ROOMS[o.room]!;
              if (conn === undefined || conn.dropped || !conn.rooms.delete(room)) continue;
              sim.on(conn.node, (t) => t.leave(conn.holder, room, id));
              break;
            }
            case 'drop': {
              const id = `c${o.conn}`;
              const conn = conns.get(id);
              if (conn === undefined || conn.dropped) continue;
              conn.dropped = true;
              for (const room of conn.rooms) {
                sim.on(conn.node, (t) => t.drop(conn.holder, room, id, sim.now));
              }
              break;
            }
            case 'resume': {
              const id = `c${o.conn}`;
              const conn = conns.get(id);
              const node = NODES[o.node]!;
              if (conn === undefined || !conn.dropped || !sim.nodes.has(node)) continue;
              conn.dropped = false;
              conn.node = node;
              conn.holder = {};
              for (const room of conn.rooms) {
                sim.on(node, (t) => t.join(conn.holder, room, id, conn.user));
              }
              break;
            }
            case 'kill': {
              const node = NODES[o.node]!;
              if (!sim.nodes.has(node) || sim.nodes.size === 1) continue;
              sim.kill(node);
              sim.down(node);
              for (const conn of conns.values()) if (conn.node === node) conn.dropped = true;
              // It comes back as a new incarnation, empty, some time later.
              if (restarts++ % 2 === 0) {
                sim.start(node);
              }
              break;
            }
            case 'cut': {
              const node = sim.nodes.get(NODES[o.node]!);
              if (node === undefined || node.cut) continue;
              node.cut = true;
              sim.down(NODES[o.node]!);
              break;
            }
            case 'heal': {
              const node = sim.nodes.get(NODES[o.node]!);
              if (node === undefined || !node.cut) continue;
              node.cut = false;
              sim.up(NODES[o.node]!);
              break;
            }
            case 'deliver':
              for (let i = 0; i < o.count && sim.step(o.pick + i); i++);
              break;
            case 'lose':
              sim.lose(o.pick);
              break;
            case 'advance':
              sim.advance(o.ms);
              break;
            case 'tick':
              sim.tick();
              break;
          }
          sameVersionSameList(sim, listed);
        }
        // Settle: partitions end, the mesh says who is up, time passes beyond the grace.
        for (const [id, node] of sim.nodes) {
          if (node.cut) {
            node.cut = false;
            sim.up(id);
          }
        }
        for (let round = 0; round < 4; round++) {
          sim.drain();
          sim.advance(GRACE + 1);
          sim.tick();
          sim.drain();
        }
        const truth = new Map<string, string[]>();
        for (const [id, conn] of conns) {
          if (conn.dropped || !sim.nodes.has(conn.node)) continue;
          for (const room of conn.rooms) {
            const list = truth.get(room) ?? [];
            list.push(`${conn.user} ${id}@${conn.node}`);
            truth.set(room, list);
          }
        }
        for (const node of sim.nodes.values()) {
          for (const room of ROOMS) {
            const seen = node.tracker
              .members(room, 1000)
              .flatMap((m) => m.connections.map((c) => `${m.user} ${c.id}@${c.node}`));
            expect(seen.sort()).toEqual((truth.get(room) ?? []).sort());
            expect(node.tracker.stats(room).connections).toBe(seen.length);
          }
          // Each node told its members of each user's joins and leaves alternately, never twice.
          const last = new Map<string, string>();
          for (const { room, change } of node.changes) {
            const key = `${room} ${change.user}`;
            expect(last.get(key) ?? 'leave').not.toBe(change.type);
            last.set(key, change.type);
          }
        }
      }),
      { numRuns: 300 },
    );
  });
});

/**
 * A room's version stays the same only while its list does (what a snapshot built from it is kept
 * for): checked against the last version and list seen of each room on each node.
 */
function sameVersionSameList(
  sim: Sim,
  listed: Map<PresenceTracker, Map<string, [number, string]>>,
): void {
  for (const { tracker } of sim.nodes.values()) {
    let rooms = listed.get(tracker);
    if (rooms === undefined) {
      rooms = new Map();
      listed.set(tracker, rooms);
    }
    for (const room of ROOMS) {
      const version = tracker.version(room);
      const list = JSON.stringify([tracker.members(room, 1000), tracker.stats(room)]);
      const [before, listBefore] = rooms.get(room) ?? [];
      if (before === version) expect(list).toBe(listBefore);
      rooms.set(room, [version, list]);
    }
  }
}

describe('presence wire', () => {
  const bytes = (value: unknown) => new TextEncoder().encode(JSON.stringify(value));

  it('decodes what it encodes', () => {
    const messages: PresenceWire[] = [
      { k: 'd', n: 'a', x: 'i', s: 1, d: { j: ['r', 'c', 'u', { name: 'ann' }] } },
      { k: 'd', n: 'a', x: 'i', s: 2, d: { l: ['r', 'c'] } },
      { k: 'd', n: 'a', x: 'i', s: 3, d: { l: ['r', 'c'], p: 1 } },
      { k: 't', n: 'a', x: 'i', s: 2 },
      { k: 'q', n: 'b' },
      { k: 's', n: 'a', x: 'i', s: 2, p: 0, m: 1, e: [['r', 'c', 'u']] },
    ];
    for (const message of messages)
      expect(decodePresence(encodePresence(message))).toEqual(message);
  });

  it('drops what a foreign or broken publisher sends', () => {
    const hostile: unknown[] = [
      null,
      'd',
      [],
      { k: 'q' },
      { k: 'q', n: 1 },
      { k: 't', n: 'a', s: 1 },
      { k: 't', n: 'a', x: 'i', s: '1' },
      { k: 't', n: 'a', x: 'i', s: 1.5 },
      { k: 'd', n: 'a', x: 'i', s: 1 },
      { k: 'd', n: 'a', x: 'i', s: 1, d: null },
      { k: 'd', n: 'a', x: 'i', s: 1, d: { j: ['r', 'c'] } },
      { k: 'd', n: 'a', x: 'i', s: 1, d: { j: null } },
      { k: 'd', n: 'a', x: 'i', s: 1, d: { l: ['r', 2] } },
      { k: 'd', n: 'a', x: 'i', s: 1, d: { l: ['r', 'c'], p: 2 } },
      { k: 'd', n: 'a', x: 'i', s: 1, d: { l: ['r', 'c'], p: true } },
      { k: 's', n: 'a', x: 'i', s: 1, p: 0, m: 1, e: [['r', 'c', 3]] },
      { k: 's', n: 'a', x: 'i', s: 1, p: 0, e: [] },
      { k: 's', n: 'a', x: 'i', s: 1, p: 1, m: 1, e: [] },
      { k: 's', n: 'a', x: 'i', s: 1, p: -1, m: 2, e: [] },
      { k: 's', n: 'a', x: 'i', s: 1, p: 0, m: 0, e: [] },
      { k: 'z', n: 'a', x: 'i', s: 1 },
    ];
    for (const value of hostile) expect(decodePresence(bytes(value))).toBeUndefined();
    expect(decodePresence(new Uint8Array([0x7b, 0xff]))).toBeUndefined();
  });
});
