/**
 * Runs tasks one after the other for each key, and those of different keys side by side: the
 * changes of one session's record, in the order they were asked for.
 */
export class OneAtATime {
  /** The last task of each key that has one running or waiting. */
  readonly #last = new Map<string, Promise<void>>();

  /** Whether tasks of `key` run or wait. */
  has(key: string): boolean {
    return this.#last.has(key);
  }

  /** Runs `task` once every task started before it for `key` settled; settles as it does. */
  run(key: string, task: () => Promise<void>): Promise<void> {
    const result = (this.#last.get(key) ?? DONE).then(task);
    const settled = result.then(nothing, nothing);
    this.#last.set(key, settled);
    void settled.then(() => {
      if (this.#last.get(key) === settled) this.#last.delete(key);
    });
    return result;
  }
}

const DONE = Promise.resolve();

function nothing(): void {}
