/** Resolves as `promise` settles (rejects as it rejects), or after `ms` if it has not by then. */
export function waitAtMost<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  return inTime(promise, ms).then((result) => (result === LATE ? undefined : result));
}

/** What {@link inTime} yields for a promise that had not settled in time. */
export const LATE: unique symbol = Symbol('late');

/**
 * Resolves as `value` settles (rejects as it rejects), or with {@link LATE} after `ms` if it has
 * not by then (for a value that may be anything, `undefined` included).
 */
export function inTime<T>(value: T | PromiseLike<T>, ms: number): Promise<T | typeof LATE> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<typeof LATE>((resolve) => {
    timer = setTimeout(() => resolve(LATE), ms);
  });
  return Promise.race([value, late]).finally(() => clearTimeout(timer));
}
