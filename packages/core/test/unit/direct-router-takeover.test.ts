import { describe, expect, it, vi } from 'vitest';
import { BusKind, type BusMessage } from '../../src/mesh/bus-codec.js';
import { DirectRouter } from '../../src/mesh/direct-router.js';

// Unit tests of a session's takeover between routers (mesh/direct-router.ts): the node taking a
// session over waits for its old holder's `Released`, bounded; the old holder answers once it
// has recorded the connection's close. Real nodes: test/upstream.test.ts.

type Sent = BusMessage & { node: string | undefined };

/** A router on a fake node: what it publishes is kept; its clients and final saves are set. */
function node(nodeId: string) {
  const sent: Sent[] = [];
  const held = new Set<string>();
  const saving = new Map<string, Promise<void>>();
  const mesh = {
    nodeId,
    isAlive: () => true,
    toNode: async (target: string | undefined, message: BusMessage) =>
      void sent.push({ ...message, node: target }),
  };
  const target = {
    apply: () => false,
    release: (id: string) => held.delete(id),
    recorded: (id: string) => saving.get(id),
    unheld: () => false,
  };
  const router = new DirectRouter(mesh, target, (error) => {
    throw error;
  });
  return { router, sent, held, saving };
}

/** What one node's router published, as another node receives it. */
type Received = Parameters<DirectRouter['receive']>[0];

function frame(sent: Sent): Received {
  const { node: _node, ...message } = sent;
  return { ...message, flags: 0, payload: Buffer.alloc(0) } as Received;
}

function deferred() {
  let resolve!: () => void;
  const promise = new Promise<void>((done) => (resolve = done));
  return { promise, resolve };
}

/** Whether a promise has settled, after the microtasks queued now. */
async function settled(promise: Promise<unknown>): Promise<boolean> {
  let done = false;
  void promise.then(() => (done = true));
  await new Promise((resolve) => setImmediate(resolve));
  return done;
}

describe('DirectRouter takeover', () => {
  it('waits for the holder to record the close, then goes on at its answer', async () => {
    const a = node('a');
    const b = node('b');
    a.held.add('s1');
    const taken = b.router.takeOver('s1', 'a', 4409, 'taken over', 60_000);
    const moved = b.sent.find((sent) => sent.kind === BusKind.Moved)!;
    expect(moved.header).toMatchObject({ n: 'b', c: 's1', d: 'a' });

    const save = deferred();
    a.saving.set('s1', save.promise);
    a.router.receive(frame(moved));
    expect(a.held.has('s1')).toBe(false);
    await new Promise((resolve) => setImmediate(resolve));
    // Not before the close is recorded.
    expect(a.sent.filter((sent) => sent.kind === BusKind.Released)).toEqual([]);
    save.resolve();
    await new Promise((resolve) => setImmediate(resolve));
    const released = a.sent.find((sent) => sent.kind === BusKind.Released)!;
    expect(released).toMatchObject({ node: 'b', header: { n: 'a', c: 's1' } });

    expect(await settled(taken)).toBe(false);
    b.router.receive(frame(released));
    expect(await settled(taken)).toBe(true);
  });

  it('answers at once for a session it no longer holds; other nodes do not answer', async () => {
    const a = node('a');
    const c = node('c');
    const b = node('b');
    void b.router.takeOver('s1', 'a', 60_000, 'taken over', 60_000);
    const moved = frame(b.sent[0]!);
    a.router.receive(moved);
    c.router.receive(moved);
    await new Promise((resolve) => setImmediate(resolve));
    expect(a.sent.map((sent) => sent.kind)).toEqual([BusKind.Released]);
    expect(c.sent).toEqual([]);
  });

  it('waits at most its bound for a holder that says nothing, or until the holder is known gone', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    try {
      const b = node('b');
      const silent = b.router.takeOver('s1', 'killed', 4409, 'taken over', 250);
      const gone = b.router.takeOver('s2', 'leaving', 4409, 'taken over', 250);
      b.router.nodeDown('leaving');
      expect(await settled(gone)).toBe(true);
      await vi.advanceTimersByTimeAsync(249);
      expect(await settled(silent)).toBe(false);
      await vi.advanceTimersByTimeAsync(1);
      expect(await settled(silent)).toBe(true);
    } finally {
      vi.useRealTimers();
    }
  });

  it('takes a session over from itself: waits for its own connection to record its close', async () => {
    const a = node('a');
    a.held.add('s1');
    const save = deferred();
    a.saving.set('s1', save.promise);
    const taken = a.router.takeOver('s1', 'a', 4409, 'taken over', 60_000);
    expect(a.held.has('s1')).toBe(false);
    // Every other node hears it moved, none is asked to answer.
    expect(a.sent).toMatchObject([{ kind: BusKind.Moved, node: undefined }]);
    expect(a.sent[0]!.header).not.toHaveProperty('d');
    expect(await settled(taken)).toBe(false);
    save.resolve();
    expect(await settled(taken)).toBe(true);
  });
});
