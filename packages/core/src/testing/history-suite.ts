import assert from 'node:assert/strict';
import process from 'node:process';
import type { History } from '../contracts.js';
import { Cleanup, type SuiteRunner } from './runner.js';

/** How {@link historySuite} reaches the history under test. */
export interface HistorySuiteOptions {
  /**
   * Creates a history keeping at most `maxEntries` per room, connected to the system under test.
   * Called several times in one test: every instance must see the others' appends.
   */
  create(options: { maxEntries: number }): History | Promise<History>;
}

/** The behaviour every {@link History} must have, as tests. */
export function historySuite(runner: SuiteRunner, options: HistorySuiteOptions): void {
  const { describe, it, afterEach } = runner;
  const cleanup = new Cleanup();
  const open = async (maxEntries = 100) => cleanup.add(await options.create({ maxEntries }));
  let roomCounter = 0;
  const fresh = (name = 'room') =>
    `conformance:${process.pid}:${Date.now()}:${roomCounter++}:${name}`;
  const bytes = (text: string) => new TextEncoder().encode(text);
  const texts = (entries: Array<{ payload: Uint8Array }>) =>
    entries.map((entry) => new TextDecoder().decode(entry.payload));

  describe('History conformance', () => {
    afterEach(() => cleanup.run());

    it('starts a room at offset 0 with a stable epoch', async () => {
      const [a, b] = [await open(), await open()];
      const room = fresh();
      const first = await a.position(room);
      assert.equal(first.offset, 0);
      assert.equal(typeof first.epoch, 'string');
      assert.ok(first.epoch.length > 0);
      assert.deepEqual(await b.position(room), first);
    });

    it('gives offsets 1, 2, 3… in one epoch and reads them back in order', async () => {
      const [a, b] = [await open(), await open()];
      const room = fresh();
      const epoch = (await a.position(room)).epoch;
      for (let i = 1; i <= 5; i++) {
        assert.deepEqual(await (i % 2 ? a : b).append(room, bytes(`m${i}`)), { offset: i, epoch });
      }
      const all = await b.read(room, { offset: 0, epoch });
      assert.ok(all.ok);
      assert.deepEqual(
        all.entries.map((e) => e.offset),
        [1, 2, 3, 4, 5],
      );
      assert.deepEqual(texts(all.entries), ['m1', 'm2', 'm3', 'm4', 'm5']);
      const tail = await a.read(room, { offset: 3, epoch });
      assert.ok(tail.ok);
      assert.deepEqual(texts(tail.entries), ['m4', 'm5']);
      const limited = await a.read(room, { offset: 1, epoch }, 2);
      assert.ok(limited.ok);
      assert.deepEqual(texts(limited.entries), ['m2', 'm3']);
      const none = await a.read(room, { offset: 5, epoch });
      assert.deepEqual(none, { ok: true, epoch, entries: [] });
      assert.deepEqual(await a.position(room), { offset: 5, epoch });
    });

    it('keeps binary payloads exact', async () => {
      const history = await open();
      const room = fresh();
      const payload = Uint8Array.from([0, 255, 1, 128, 0, 0, 7]);
      const { epoch } = await history.append(room, payload);
      const read = await history.read(room, { offset: 0, epoch });
      assert.ok(read.ok);
      assert.deepEqual([...read.entries[0]!.payload], [...payload]);
    });

    it('answers too-old when the gap was trimmed, never a partial replay', async () => {
      const history = await open(5);
      const room = fresh();
      let epoch = '';
      for (let i = 1; i <= 12; i++) epoch = (await history.append(room, bytes(`m${i}`))).epoch;
      const fromStart = await history.read(room, { offset: 0, epoch });
      assert.deepEqual(fromStart, {
        ok: false,
        reason: 'too-old',
        position: { offset: 12, epoch },
      });
      const oneTooFar = await history.read(room, { offset: 6, epoch });
      assert.equal(oneTooFar.ok, false);
      const kept = await history.read(room, { offset: 7, epoch });
      assert.ok(kept.ok);
      assert.deepEqual(texts(kept.entries), ['m8', 'm9', 'm10', 'm11', 'm12']);
    });

    it('answers epoch-changed for an offset from another epoch', async () => {
      const history = await open();
      const room = fresh();
      const { epoch } = await history.append(room, bytes('x'));
      const read = await history.read(room, { offset: 0, epoch: `not-${epoch}` });
      assert.deepEqual(read, {
        ok: false,
        reason: 'epoch-changed',
        position: { offset: 1, epoch },
      });
    });

    it('keeps rooms apart, whatever characters their names hold', async () => {
      const history = await open();
      const rooms = ['a.b', 'a.*', 'a.>', 'with space', 'ünï', '{tag}', 'a:b'].map((r) => fresh(r));
      for (const room of rooms) await history.append(room, bytes(room));
      for (const room of rooms) {
        const { epoch } = await history.position(room);
        const read = await history.read(room, { offset: 0, epoch });
        assert.ok(read.ok);
        assert.deepEqual(texts(read.entries), [room]);
      }
    });

    it('gives concurrent appends from several instances distinct consecutive offsets', async () => {
      const [a, b] = [await open(), await open()];
      const room = fresh();
      const positions = await Promise.all(
        Array.from({ length: 40 }, (_, i) => (i % 2 ? a : b).append(room, bytes(String(i)))),
      );
      const offsets = positions.map((p) => p.offset).sort((x, y) => x - y);
      assert.deepEqual(
        offsets,
        Array.from({ length: 40 }, (_, i) => i + 1),
      );
      assert.equal(new Set(positions.map((p) => p.epoch)).size, 1);
    });
  });
}
