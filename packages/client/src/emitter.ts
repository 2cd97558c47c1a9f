/** An event map: event name → listener signature. */
export type EventMap<Events> = { [E in keyof Events]: (...args: never[]) => void };

/**
 * A small typed event emitter (no dependency, runs anywhere). A listener that throws does not
 * break the client: the error is reported like an uncaught one (`reportError` in browsers, an
 * uncaught exception on Node), after the other listeners ran.
 */
export class TypedEmitter<Events extends EventMap<Events>> {
  readonly #listeners = new Map<keyof Events, Set<Events[keyof Events]>>();

  /** Adds a listener. Returns a function that removes it. */
  on<E extends keyof Events>(event: E, listener: Events[E]): () => void {
    let set = this.#listeners.get(event);
    if (set === undefined) {
      set = new Set();
      this.#listeners.set(event, set);
    }
    set.add(listener);
    return () => this.off(event, listener);
  }

  /**
   * Adds a listener called at most once. Returns a function that removes it; `off(event, listener)`
   * removes it too.
   */
  once<E extends keyof Events>(event: E, listener: Events[E]): () => void {
    const wrapper = ((...args: Parameters<Events[E]>) => {
      off();
      listener(...args);
    }) as Events[E] & Once;
    wrapper[ONCE] = listener;
    const off = this.on(event, wrapper);
    return off;
  }

  /** Removes a listener, added with `on` or `once`. */
  off<E extends keyof Events>(event: E, listener: Events[E]): void {
    const set = this.#listeners.get(event);
    if (set === undefined || set.delete(listener)) return;
    for (const added of set) {
      if ((added as Partial<Once>)[ONCE] === listener) {
        set.delete(added);
        return;
      }
    }
  }

  /** Calls the listeners of `event`. */
  protected emit<E extends keyof Events>(event: E, ...args: Parameters<Events[E]>): void {
    const set = this.#listeners.get(event);
    if (set === undefined) return;
    for (const listener of [...set]) {
      try {
        listener(...args);
      } catch (error) {
        report(error);
      }
    }
  }

  /** Whether `event` has listeners. */
  protected listens(event: keyof Events): boolean {
    return (this.#listeners.get(event)?.size ?? 0) > 0;
  }
}

/** A `once` wrapper names the listener it calls, for `off`. */
const ONCE = Symbol('once');
interface Once {
  [ONCE]: unknown;
}

function report(error: unknown): void {
  const global = globalThis as { reportError?: (error: unknown) => void };
  if (typeof global.reportError === 'function') global.reportError(error);
  else
    setTimeout(() => {
      throw error;
    });
}
