/**
 * Counts promises still on their way, for whoever must wait until none is (a node that closes).
 * Each one costs a counter and one `then`: it sits on paths taken for every message.
 */
export class Pending {
  #count = 0;
  readonly #waiting: Array<() => void> = [];

  /** `promise`, counted until it settles. */
  track<T>(promise: Promise<T>): Promise<T> {
    this.#count++;
    promise.then(this.#settled, this.#rejected);
    return promise;
  }

  /** Resolves once every promise tracked so far, and any tracked meanwhile, has settled. */
  settled(): Promise<void> {
    if (this.#count === 0) return Promise.resolve();
    return new Promise((resolve) => this.#waiting.push(resolve));
  }

  /** Told of each tracked promise that rejects (nothing: whoever awaits it has the error). */
  protected rejected(_error: unknown): void {}

  readonly #settled = (): void => {
    if (--this.#count > 0) return;
    for (const resolve of this.#waiting.splice(0)) resolve();
  };

  readonly #rejected = (error: unknown): void => {
    this.rejected(error);
    this.#settled();
  };
}
