import type { History } from '../contracts.js';
import type { HistoryRule, RoomPattern } from '../server/options.js';

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
  if (pattern instanceof RegExp) return (room) => pattern.test(room);
  if (!pattern.includes('*')) return (room) => room === pattern;
  const source = pattern
    .split('*')
    .map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))
    .join('.*');
  const regexp = new RegExp(`^${source}$`, 's');
  return (room) => regexp.test(room);
}
