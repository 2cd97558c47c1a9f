import { EventEmitter } from 'eventemitter3';

type Listener = (...args: never[]) => unknown;
type Wrapped = (this: SafeEmitter<never>, a?: unknown, b?: unknown, c?: unknown) => void;
type Report = (emitter: never, error: unknown) => void;

/** Where each kind of emitter reports its failed handlers (not a member: nothing public). */
const reports = new WeakMap<object, Report>();

/** Declares where emitters of a class report what their handlers threw or rejected with. */
export function failuresOf<E extends object>(
  type: abstract new (...args: never[]) => E,
  report: (emitter: E, error: unknown) => void,
): void {
  reports.set(type.prototype, report);
}

function failed(emitter: SafeEmitter<never>, error: unknown): void {
  // The nearest class in the emitter's chain that declared where its failures go.
  let proto: object | null = Object.getPrototypeOf(emitter);
  while (proto !== null) {
    const report = reports.get(proto);
    if (report !== undefined) {
      report(emitter as never, error);
      return;
    }
    proto = Object.getPrototypeOf(proto);
  }
}

// One wrapper per handler function, shared by every emitter it is registered on, so a handler
// used for thousands of clients costs nothing per client.
const wrappers = new WeakMap<Listener, Wrapped>();

function wrap(listener: Listener): Wrapped {
  let wrapped = wrappers.get(listener);
  if (wrapped === undefined) {
    const handler = listener as (...args: unknown[]) => unknown;
    // Named parameters, not rest ones: an event has three arguments at most, and a rest array
    // would be built for every message a client sends. The handler gets as many as were given.
    wrapped = function (this: SafeEmitter<never>, a?: unknown, b?: unknown, c?: unknown) {
      try {
        // biome-ignore lint/complexity/noArguments: its length only, which builds no object
        const given = arguments.length;
        const result =
          given === 0
            ? handler.call(this)
            : given === 1
              ? handler.call(this, a)
              : given === 2
                ? handler.call(this, a, b)
                : handler.call(this, a, b, c);
        if (result instanceof Promise) result.catch((error) => failed(this, error));
      } catch (error) {
        failed(this, error);
      }
    };
    wrappers.set(listener, wrapped);
  }
  return wrapped;
}

/**
 * An `eventemitter3` emitter for application handlers: a handler that throws, or returns a promise
 * that rejects, is reported where its class said (see `failuresOf`) instead of taking the process
 * down, and the other handlers still run. Handlers are called with the emitter as `this`.
 */
export abstract class SafeEmitter<
  Events extends EventEmitter.ValidEventTypes,
> extends EventEmitter<Events> {
  override on<T extends EventEmitter.EventNames<Events>>(
    event: T,
    listener: EventEmitter.EventListener<Events, T>,
  ): this {
    return super.on(event, wrap(listener) as never);
  }

  override addListener<T extends EventEmitter.EventNames<Events>>(
    event: T,
    listener: EventEmitter.EventListener<Events, T>,
  ): this {
    return this.on(event, listener);
  }

  override once<T extends EventEmitter.EventNames<Events>>(
    event: T,
    listener: EventEmitter.EventListener<Events, T>,
  ): this {
    return super.once(event, wrap(listener) as never);
  }

  override off<T extends EventEmitter.EventNames<Events>>(
    event: T,
    listener?: EventEmitter.EventListener<Events, T>,
  ): this {
    if (listener === undefined) return super.off(event);
    const wrapped = wrappers.get(listener);
    return wrapped === undefined ? this : super.off(event, wrapped as never);
  }

  override removeListener<T extends EventEmitter.EventNames<Events>>(
    event: T,
    listener?: EventEmitter.EventListener<Events, T>,
  ): this {
    return this.off(event, listener);
  }
}
