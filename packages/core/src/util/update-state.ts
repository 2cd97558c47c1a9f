import type { StateStore, Versioned } from '../contracts.js';
import { StateStoreError } from '../errors.js';

/**
 * Atomic read-modify-write on any {@link StateStore}, built on its compare-and-set.
 *
 * `change` receives the current value (or `undefined`) and returns the next one, or `undefined`
 * to leave the key as it is. It may run more than once when writers race, so it must be pure.
 *
 * @returns the value written, or the current one when `change` returned `undefined`.
 * @throws {@link StateStoreError} when the key kept changing for `maxAttempts` tries.
 */
export async function updateState(
  store: StateStore,
  key: string,
  change: (current: string | undefined) => string | undefined,
  maxAttempts = 16,
  /** The key as the caller just read it: the first attempt starts from it instead of a read. */
  read?: { current: Versioned<string> | undefined },
): Promise<string | undefined> {
  for (let attempt = 0; attempt < maxAttempts; attempt++) {
    const current = attempt === 0 && read !== undefined ? read.current : await store.get(key);
    const next = change(current?.value);
    if (next === undefined) return current?.value;
    const written = await store.set(key, next, { ifVersion: current ? current.version : null });
    if (written !== undefined) return next;
  }
  throw new StateStoreError(`update of "${key}" lost the race ${maxAttempts} times in a row`);
}
