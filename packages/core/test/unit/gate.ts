/**
 * Holds a fake's calls where a test wants them in flight: while the gate is held, `pass()` waits
 * until the test lets every waiting call through, or one of them.
 */
export class Gate {
  #waiting: Array<() => void> | undefined;

  /** Makes calls wait from now on; the returned function lets them all through. */
  hold(): () => void {
    const waiting: Array<() => void> = [];
    this.#waiting = waiting;
    return () => {
      this.#waiting = undefined;
      for (const release of waiting) release();
    };
  }

  /** How many calls wait at the gate now. */
  get waiting(): number {
    return this.#waiting?.length ?? 0;
  }

  /** Lets the `index`th call held so far through (the others keep waiting). */
  answer(index: number): void {
    this.#waiting?.[index]?.();
  }

  /** Where a fake's call waits while the gate is held. */
  async pass(): Promise<void> {
    const waiting = this.#waiting;
    if (waiting !== undefined) await new Promise<void>((resolve) => waiting.push(resolve));
  }
}
