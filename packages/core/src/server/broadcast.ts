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

/** Makes operators; the constructor is the class's own, so this module hands them out. */
let create: (
  target: BroadcastTarget,
  rooms: readonly string[],
  except: readonly string[],
) => BroadcastOperator;

/** A new broadcast to `rooms` (everyone, when empty) minus `except`, sent through `target`. */
export function broadcastOperator(
  target: BroadcastTarget,
  rooms: readonly string[],
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
  readonly #rooms: readonly string[];
  readonly #except: readonly string[];

  static {
    create = (target, rooms, except) => new BroadcastOperator(target, rooms, except);
  }

  private constructor(
    target: BroadcastTarget,
    rooms: readonly string[],
    except: readonly string[],
  ) {
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
    return new BroadcastOperator(
      this.#target,
      this.#rooms.length === 0 ? uniqueRooms(rooms) : [...new Set([...this.#rooms, ...rooms])],
      this.#except,
    );
  }

  /** Skips these clients (by id), wherever they are connected. */
  except(...clientIds: string[]): BroadcastOperator {
    return new BroadcastOperator(this.#target, this.#rooms, [...this.#except, ...clientIds]);
  }

  /**
   * Sends to the members of the rooms on every node (everyone, when no room was named). Local
   * members receive it at once; the promise resolves once the broker accepted it for the others.
   * @throws {@link BrokerUnavailableError} when the broker is down and its queue is full.
   */
  send(data: Sendable, options?: SendOptions): Promise<void> {
    return this.#target.broadcast(this.#rooms, this.#except, data, options);
  }
}
