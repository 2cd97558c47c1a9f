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
