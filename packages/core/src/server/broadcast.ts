import type { Sendable, SendOptions } from '../protocol/payload.js';

/** What a broadcast needs from its server. */
export interface BroadcastTarget {
  broadcast(
    rooms: readonly string[],
    except: readonly string[],
    data: Sendable,
    options?: SendOptions,
  ): Promise<void>;
}

/**
 * `rooms` without repeats. A rest parameter is an array of the call's own, so one room is kept
 * as it came: `wss.to(room).send()` is on the path of every broadcast.
 */
export function uniqueRooms(rooms: string[]): string[] {
  return rooms.length < 2 ? rooms : [...new Set(rooms)];
}

/** Whom a broadcast goes to: the members of some rooms (none: nobody), or everyone. */
export type Audience = readonly string[] | typeof EVERYONE;

/** The audience of `wss.except()` and `wss.broadcast()`. */
export const EVERYONE = 'everyone';

/** Makes operators; the constructor is the class's own, so this module hands them out. */
let create: (
  target: BroadcastTarget,
  rooms: Audience,
  except: readonly string[],
) => BroadcastOperator;

/** A new broadcast to `rooms` minus `except`, sent through `target`. */
export function broadcastOperator(
  target: BroadcastTarget,
  rooms: Audience,
  except: readonly string[],
): BroadcastOperator {
  return create(target, rooms, except);
}

/**
 * A broadcast being described: `wss.to('a').to('b').except(id).send(msg)`. Immutable: each call
 * returns a new operator, so one can be kept and reused.
 */
export class BroadcastOperator {
  readonly #target: BroadcastTarget;
  readonly #rooms: Audience;
  readonly #except: readonly string[];

  static {
    create = (target, rooms, except) => new BroadcastOperator(target, rooms, except);
  }

  private constructor(target: BroadcastTarget, rooms: Audience, except: readonly string[]) {
    this.#target = target;
    this.#rooms = rooms;
    this.#except = except;
  }

  /**
   * Adds rooms: members of any of them receive the message. A member of several of the named rooms
   * receives it once, unless one of the named rooms keeps history: then the message is published to
   * each named room on its own (each history room numbers it in its own log), and a member receives
   * one copy per named room it is in, each naming its room (see docs/guarantees.md).
   */
  to(...rooms: string[]): BroadcastOperator {
    const named = this.#rooms;
    return new BroadcastOperator(
      this.#target,
      named === EVERYONE || named.length === 0
        ? uniqueRooms(rooms)
        : [...new Set([...named, ...rooms])],
      this.#except,
    );
  }

  /** Skips these clients (by id), wherever they are connected. */
  except(...clientIds: string[]): BroadcastOperator {
    return new BroadcastOperator(this.#target, this.#rooms, [...this.#except, ...clientIds]);
  }

  /**
   * Sends to the members of the rooms on every node: to nobody when `to()` was given no room (an
   * empty list spread into it), to everyone after `except()` alone. Local members receive it at
   * once; the promise resolves once the broker accepted it for the others.
   * @throws {@link BrokerUnavailableError} when the broker is down and its queue is full.
   */
  send(data: Sendable, options?: SendOptions): Promise<void> {
    const rooms = this.#rooms;
    if (rooms === EVERYONE) return this.#target.broadcast([], this.#except, data, options);
    if (rooms.length === 0) return Promise.resolve();
    return this.#target.broadcast(rooms, this.#except, data, options);
  }
}
