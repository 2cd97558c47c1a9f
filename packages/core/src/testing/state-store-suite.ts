import assert from 'node:assert/strict';
import process from 'node:process';
import type { StateStore } from '../contracts.js';
import { updateState } from '../util/update-state.js';
import { Cleanup, delay, type SuiteRunner, until } from './runner.js';

/** How {@link stateStoreSuite} reaches the store under test. */
export interface StateStoreSuiteOptions {
  /**
   * Creates a store with the given time to live, connected to the system under test. Called
   * several times in one test: every instance must see the others' writes.
   */
  create(options: { ttlMs: number }): StateStore | Promise<StateStore>;
  /** The time to live the expiry tests use, in ms. @default 1000 */
  ttlMs?: number;
  /** How long one wait may take, in ms. @default 5000 */
  timeoutMs?: number;
}

/** The behaviour every {@link StateStore} must have, as tests. */
export function stateStoreSuite(runner: SuiteRunner, options: StateStoreSuiteOptions): void {
  const { describe, it, afterEach } = runner;
  const ttlMs = options.ttlMs ?? 1000;
  const timeoutMs = options.timeoutMs ?? 5000;
  const cleanup = new Cleanup();
  const open = async (ttl = 60_000) => cleanup.add(await options.create({ ttlMs: ttl }));
  let keyCounter = 0;
  const fresh = (name = 'key') =>
    `conformance:${process.pid}:${Date.now()}:${keyCounter++}:${name}`;

  describe('StateStore conformance', () => {
    afterEach(() => cleanup.run());

    it('reads nothing for a missing key', async () => {
      const store = await open();
      assert.equal(await store.get(fresh()), undefined);
    });

    it('reads back what another instance wrote, with a version', async () => {
      const [a, b] = [await open(), await open()];
      const key = fresh();
      const version = await a.set(key, '{"rooms":["a"]}');
      assert.equal(typeof version, 'string');
      assert.deepEqual(await b.get(key), { value: '{"rooms":["a"]}', version });
    });

    it('writes with ifVersion: null only when the key is absent', async () => {
      const store = await open();
      const key = fresh();
      assert.notEqual(await store.set(key, 'first', { ifVersion: null }), undefined);
      assert.equal(await store.set(key, 'second', { ifVersion: null }), undefined);
      assert.equal((await store.get(key))?.value, 'first');
    });

    it('compare-and-set writes only at the version read', async () => {
      const store = await open();
      const key = fresh();
      const v1 = (await store.set(key, 'one'))!;
      const v2 = await store.set(key, 'two', { ifVersion: v1 });
      assert.equal(typeof v2, 'string');
      assert.notEqual(v2, v1);
      assert.equal(await store.set(key, 'stale', { ifVersion: v1 }), undefined);
      assert.deepEqual(await store.get(key), { value: 'two', version: v2 });
    });

    it('deletes, and deleting a missing key is fine', async () => {
      const store = await open();
      const key = fresh();
      await store.set(key, 'x');
      await store.delete(key);
      assert.equal(await store.get(key), undefined);
      await store.delete(key);
    });

    it('keeps keys with any characters apart, and large values whole', async () => {
      const store = await open();
      const keys = ['a:b', 'a/b', 'a b', 'ünï', '{tag}x', 'a.b'].map((k) => fresh(k));
      await Promise.all(keys.map((key) => store.set(key, `value of ${key}`)));
      for (const key of keys) assert.equal((await store.get(key))?.value, `value of ${key}`);
      const big = 'é'.repeat(32 * 1024);
      const key = fresh('big');
      await store.set(key, big);
      assert.equal((await store.get(key))?.value, big);
    });

    it('serialises concurrent read-modify-write from several instances', async () => {
      const stores = [await open(), await open()];
      const key = fresh('counter');
      const increments = 20;
      await Promise.all(
        Array.from({ length: increments }, (_, i) =>
          updateState(stores[i % 2]!, key, (current) => String(Number(current ?? 0) + 1), 100),
        ),
      );
      assert.equal((await stores[0]!.get(key))?.value, String(increments));
    });

    it(
      'expires a key after its time to live, and every write refreshes it',
      async () => {
        const store = await open(ttlMs);
        assert.equal(store.ttlMs, ttlMs);
        const refreshed = fresh('refreshed');
        const expiring = fresh('expiring');
        await store.set(refreshed, 'r');
        await store.set(expiring, 'e');
        await delay(ttlMs * 0.6);
        await store.set(refreshed, 'r2');
        await delay(ttlMs * 0.6);
        assert.equal((await store.get(refreshed))?.value, 'r2');
        await until(
          async () => (await store.get(expiring)) === undefined,
          timeoutMs + ttlMs * 4,
          'expiry',
        );
      },
      timeoutMs + ttlMs * 8,
    );
  });
}
