import type { History, StateStore } from '@wscale/core';
import { Counter, Histogram, register } from 'prom-client';
import type { MetricsOptions } from './collect-metrics.js';

/** Options of {@link instrumentStateStore} and {@link instrumentHistory}. */
export interface InstrumentOptions extends MetricsOptions {
  /** Bucket bounds (seconds) of the latency histogram. @default prom-client's default buckets */
  buckets?: number[];
}

/**
 * Wraps a state store so that every call is timed in `wscale_state_store_seconds{op}` and every
 * failure counted in `wscale_state_store_errors_total{op}`. Give the node the wrapper; close the
 * store as before.
 */
export function instrumentStateStore<S extends StateStore>(
  store: S,
  options: InstrumentOptions = {},
): S {
  const time = timer(options, 'state_store', 'State store');
  return wrap<StateStore>(store, {
    get: (key) => time('get', () => store.get(key)),
    set: (key, value, setOptions) => time('set', () => store.set(key, value, setOptions)),
    delete: (key) => time('delete', () => store.delete(key)),
  }) as S;
}

/**
 * Wraps a history store so that every call is timed in `wscale_history_seconds{op}` (`read` is a
 * resume's replay or a gap fill; `append` is on every broadcast to a history room) and every
 * failure counted in `wscale_history_errors_total{op}`.
 */
export function instrumentHistory<H extends History>(
  history: H,
  options: InstrumentOptions = {},
): H {
  const time = timer(options, 'history', 'History');
  return wrap<History>(history, {
    append: (room, payload) => time('append', () => history.append(room, payload)),
    read: (room, after, limit) => time('read', () => history.read(room, after, limit)),
    position: (room) => time('position', () => history.position(room)),
  }) as H;
}

/**
 * Times calls in `<prefix><name>_seconds{op}` and counts failures in `<prefix><name>_errors_total`.
 * The metrics are made once per registry: several stores of one kind share them.
 */
function timer(options: InstrumentOptions, name: string, what: string) {
  const registry = options.registry ?? register;
  const prefix = options.prefix ?? 'wscale_';
  const seconds =
    (registry.getSingleMetric(`${prefix}${name}_seconds`) as Histogram<'op'> | undefined) ??
    new Histogram({
      name: `${prefix}${name}_seconds`,
      help: `${what} call latency, by operation.`,
      labelNames: ['op'],
      registers: [registry],
      ...(options.buckets === undefined ? {} : { buckets: options.buckets }),
    });
  const errors =
    (registry.getSingleMetric(`${prefix}${name}_errors_total`) as Counter<'op'> | undefined) ??
    new Counter({
      name: `${prefix}${name}_errors_total`,
      help: `${what} calls that failed, by operation.`,
      labelNames: ['op'],
      registers: [registry],
    });
  return async <T>(op: string, call: () => Promise<T>): Promise<T> => {
    const end = seconds.startTimer({ op });
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
