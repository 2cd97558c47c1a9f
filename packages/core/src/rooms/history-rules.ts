import type { History } from '../contracts.js';
import { InvalidOptionError } from '../errors.js';

/** Where a set of rooms keeps its history. */
export interface HistoryRule {
  /** Which rooms: a name, a name with `*` wildcards, a RegExp, or a list of them. */
  rooms: RoomPattern | RoomPattern[];
  /** The history store (its own bounds: entries kept, age). Not closed by `close()`. */
  store: History;
}

/** A room name, a name with `*` wildcards, or a RegExp. */
export type RoomPattern = string | RegExp;

/**
 * Finds the history a room keeps: the store of the first rule whose pattern matches. Throws an
 * `InvalidOptionError` for a rule that is not `{ rooms, store }` (a misspelled key would otherwise
 * leave its rooms without history, silently).
 */
export function historyMatcher(rules: HistoryRule[]): (room: string) => History | undefined {
  if (!Array.isArray(rules)) throw new InvalidOptionError('history must be an array of rules');
  const compiled = rules.map((rule, i) => {
    if (!isHistory(rule?.store)) {
      throw new InvalidOptionError(
        `history[${i}].store must be a History (a store with append and read)`,
      );
    }
    return { test: toTests(rule.rooms, `history[${i}].rooms`), store: rule.store };
  });
  return (room) => compiled.find((rule) => rule.test(room))?.store;
}

function isHistory(store: unknown): store is History {
  const history = store as Partial<History> | null | undefined;
  return typeof history?.append === 'function' && typeof history.read === 'function';
}

/**
 * A test of room names for one or several patterns (shared with the presence rules); `name` is
 * the option they came in, for the `InvalidOptionError` of one that is not a pattern.
 */
export function toTests(
  patterns: RoomPattern | RoomPattern[],
  name: string,
): (room: string) => boolean {
  const list = Array.isArray(patterns) ? patterns : [patterns];
  if (list.length === 0 || !list.every((p) => typeof p === 'string' || p instanceof RegExp)) {
    throw new InvalidOptionError(
      `${name} must be a room name, a name with * wildcards, a RegExp, or a list of them`,
    );
  }
  const tests = list.map(toTest);
  return (room) => tests.some((test) => test(room));
}

function toTest(pattern: RoomPattern): (room: string) => boolean {
  if (pattern instanceof RegExp) {
    // A copy without `g` and `y`, which make `test` go on from where the last match ended (so
    // `/^chat:/g` would match every other room), and which a later change to the caller's
    // RegExp does not reach.
    const regexp = new RegExp(pattern.source, pattern.flags.replace(/[gy]/g, ''));
    return (room) => regexp.test(room);
  }
  if (!pattern.includes('*')) return (room) => room === pattern;
  const source = pattern
    .split('*')
    .map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))
    .join('.*');
  const regexp = new RegExp(`^${source}$`, 's');
  return (room) => regexp.test(room);
}
