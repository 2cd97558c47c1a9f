import type { History } from '../contracts.js';

/** Where a set of rooms keeps its history. */
export interface HistoryRule {
  /** Which rooms: a name, a name with `*` wildcards, a RegExp, or a list of them. */
  rooms: RoomPattern | RoomPattern[];
  /** The history store (its own bounds: entries kept, age). Not closed by `close()`. */
  store: History;
}

/** A room name, a name with `*` wildcards, or a RegExp. */
export type RoomPattern = string | RegExp;

/** Finds the history a room keeps: the store of the first rule whose pattern matches. */
export function historyMatcher(rules: HistoryRule[]): (room: string) => History | undefined {
  const compiled = rules.map((rule) => ({
    test: toTests(rule.rooms),
    store: rule.store,
  }));
  return (room) => compiled.find((rule) => rule.test(room))?.store;
}

/** A test of room names for one or several patterns (shared with the presence rules). */
export function toTests(patterns: RoomPattern | RoomPattern[]): (room: string) => boolean {
  const tests = (Array.isArray(patterns) ? patterns : [patterns]).map(toTest);
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
