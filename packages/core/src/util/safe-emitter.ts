import { EventEmitter } from 'eventemitter3';

type Listener = (...args: never[]) => unknown;
type Wrapped = (this: SafeEmitter<never>, a?: unknown, b?: unknown, c?: unknown) => void;

/** Where the emitters of a class report their handlers' failures and their work under way. */
export interface HandlerSink<E> {
  /** A handler threw, or the promise it returned rejected. */
  failed(emitter: E, error: unknown): void;
  /** A handler returned a promise: its work goes on (settled, never rejected, as given here). */
  running(emitter: E, work: Promise<void>): void;
}

/** Each kind of emitter's sink (not a member: nothing public). */
const sinks = new WeakMap<object, HandlerSink<never>>();

/** Declares where emitters of a class report what their handlers do (see {@link HandlerSink}). */
export function handlersOf<E extends object>(
  type: abstract new (...args: never[]) => E,
  sink: HandlerSink<E>,
): void {
  sinks.set(type.prototype, sink as HandlerSink<never>);
}

/** The sink the nearest class in the emitter's chain declared. */
function sinkOf(emitter: SafeEmitter<never>): HandlerSink<SafeEmitter<never>> | undefined {
  let proto: object | null = Object.getPrototypeOf(emitter);
  while (proto !== null) {
    const sink = sinks.get(proto);
    if (sink !== undefined) return sink;
    proto = Object.getPrototypeOf(proto);
  }
  return undefined;
}

function failed(emitter: SafeEmitter<never>, error: unknown): void {
  sinkOf(emitter)?.failed(emitter, error);
}

function running(emitter: SafeEmitter<never>, work: Promise<unknown>): void {
  const caught = work.then(
    () => undefined,
    (error) => failed(emitter, error),
  );
  sinkOf(emitter)?.running(emitter, caught);
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
        if (result instanceof Promise) running(this, result);
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
 * that rejects, is reported where its class said (see `handlersOf`) instead of taking the process
 * down, and the other handlers still run; a promise a handler returns is reported there while it
 * runs. Handlers are called with the emitter as `this`.
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
