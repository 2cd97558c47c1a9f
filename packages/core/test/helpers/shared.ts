/**
 * The conformance suites open several instances per test and expect them to see each other, as
 * several processes on one Redis would. In one process the memory implementations get there by
 * sharing one instance: each `get()` hands out a view of it whose `close()` does nothing, and
 * `reset()` closes the real one after the test.
 */
export function shared<T extends { close(): Promise<void> }, A extends unknown[]>(
  make: (...args: A) => T,
) {
  let current: T | undefined;
  return {
    get: (...args: A): T => {
      current ??= make(...args);
      const target = current;
      return new Proxy(target, {
        get: (_, key) => {
          if (key === 'close') return async () => undefined;
          const value = Reflect.get(target, key, target);
          return typeof value === 'function' ? value.bind(target) : value;
        },
      });
    },
    reset: async () => {
      await current?.close();
      current = undefined;
    },
  };
}
