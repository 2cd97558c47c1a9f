import type { History, StateStore } from '@wscale/core';
import type { Counter } from 'prom-client';
import type { WscaleMetrics } from './collect-metrics.js';

/**
 * Wraps a state store so that every call is timed in `state_store_seconds{op}` and every failure
 * counted in `state_store_errors_total{op}`. Give the node the wrapper; close the store as before.
 */
export function instrumentStateStore<S extends StateStore>(store: S, metrics: WscaleMetrics): S {
  const time = timer(
    (op) => metrics.stateStoreSeconds.startTimer({ op }),
    metrics.stateStoreErrors,
  );
  return wrap<StateStore>(store, {
    get: (key) => time('get', () => store.get(key)),
    set: (key, value, options) => time('set', () => store.set(key, value, options)),
    delete: (key) => time('delete', () => store.delete(key)),
  }) as S;
}

/**
 * Wraps a history store so that reads are timed in `history_read_seconds`, appends and positions
 * in `history_seconds{op}`, and failures counted in `history_errors_total{op}`.
 */
export function instrumentHistory<H extends History>(history: H, metrics: WscaleMetrics): H {
  const time = timer(
    (op) =>
      op === 'read'
        ? metrics.historyReadSeconds.startTimer()
        : metrics.historySeconds.startTimer({ op }),
    metrics.historyErrors,
  );
  return wrap<History>(history, {
    append: (room, payload) => time('append', () => history.append(room, payload)),
    read: (room, after, limit) => time('read', () => history.read(room, after, limit)),
    position: (room) => time('position', () => history.position(room)),
  }) as H;
}

/** Times a call: the histogram is observed whether it succeeds or fails; a failure is counted. */
function timer(start: (op: string) => () => void, errors: Counter<'op'>) {
  return async <T>(op: string, call: () => Promise<T>): Promise<T> => {
    const end = start(op);
    try {
      return await call();
    } catch (error) {
      errors.inc({ op });
      throw error;
    } finally {
      end();
    }
  };
}

/** The same object with some methods replaced: every other member (ttlMs, close…) stays its own. */
function wrap<T extends object>(target: T, overrides: Partial<T>): T {
  return new Proxy(target, {
    get(object, key) {
      if (Object.hasOwn(overrides, key)) return Reflect.get(overrides, key);
      // Read on the target itself: getters that use private fields need it as `this`.
      const value = Reflect.get(object, key);
      return typeof value === 'function' ? value.bind(object) : value;
    },
  });
}
