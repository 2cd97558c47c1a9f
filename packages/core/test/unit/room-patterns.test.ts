import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MemoryHistory } from '../../src/adapters/memory/memory-history.js';
import { historyMatcher, toTests } from '../../src/rooms/history-rules.js';

const store = new MemoryHistory();

describe('room patterns (history and presence rules)', () => {
  it('a RegExp with the g or y flag matches every room it matches, however often asked', () => {
    const keeps = historyMatcher([{ rooms: /^chat:/g, store }]);
    const sticky = toTests(/chat/y, 'rooms');
    for (const room of ['chat:lobby', 'chat:a', 'chat:b', 'chat:c', 'chat:a', 'chat:lobby']) {
      expect(keeps(room)).toBe(store);
      expect(sticky(room)).toBe(true);
    }
    expect(keeps('news')).toBeUndefined();
  });

  it('a RegExp matches as the same RegExp without g and y would, in any order of rooms', () => {
    fc.assert(
      fc.property(
        fc.constantFrom('', 'g', 'y', 'gy', 'gi', 'iy', 'gsu'),
        fc.array(fc.constantFrom('a', 'ab', 'ba', 'abc', 'cab', 'b', ''), { maxLength: 30 }),
        (flags, rooms) => {
          const plain = new RegExp('^a|b$', flags.replace(/[gy]/g, ''));
          const test = toTests(new RegExp('^a|b$', flags), 'rooms');
          for (const room of rooms) expect(test(room)).toBe(plain.test(room));
        },
      ),
    );
  });

  it('a change to the caller’s RegExp afterwards does not move what matches', () => {
    const pattern = /^chat:/g;
    const test = toTests(pattern, 'rooms');
    pattern.lastIndex = 3;
    expect(test('chat:lobby')).toBe(true);
  });
});
