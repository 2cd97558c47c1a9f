/** Settles like `promise`, or rejects with `onTimeout()` after `ms`. */
export function withTimeout<T>(
  promise: Promise<T>,
  ms: number,
  onTimeout: () => Error,
): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(onTimeout()), ms);
  });
  return Promise.race([promise, expired]).finally(() => clearTimeout(timer));
}

/** The message of anything thrown. */
export function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** An operation that got no answer within its bound. */
export class TimedOutError extends Error {
  override name = 'TimedOutError';
}

/**
 * Runs `work` within `ms`. A failure that is not already a `Typed` error becomes one, with the
 * cause kept: callers only ever see the adapter's typed error.
 */
export async function runTyped<T>(
  work: () => Promise<T>,
  ms: number,
  Typed: new (message: string, options?: { cause?: unknown }) => Error,
  failure: string,
): Promise<T> {
  try {
    return await withTimeout(work(), ms, () => new TimedOutError(`timed out after ${ms} ms`));
  } catch (error) {
    throw asTyped(error, Typed, failure);
  }
}

/** `error` itself when it is already a `Typed` error, else a new one saying `failure`, with it as the cause. */
export function asTyped(
  error: unknown,
  Typed: new (message: string, options?: { cause?: unknown }) => Error,
  failure: string,
): Error {
  if (error instanceof Typed) return error;
  return new Typed(`${failure}: ${describe(error)}`, { cause: error });
}
