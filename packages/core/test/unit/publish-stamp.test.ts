import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { PublishStamper, RepeatFilter, STAMP_BYTES } from '../../src/adapters/publish-stamp.js';

const text = (bytes: Uint8Array | undefined) =>
  bytes === undefined ? undefined : Buffer.from(bytes).toString();

describe('publish stamps', () => {
  it('hands on each publish once, whatever the order copies arrive in', () => {
    fc.assert(
      fc.property(
        fc.array(fc.nat({ max: 199 }), { minLength: 1, maxLength: 400 }),
        fc.integer({ min: 1, max: 3 }),
        (order, publishers) => {
          const stampers = Array.from({ length: publishers }, () => new PublishStamper());
          const sent = stampers.flatMap((stamper, p) =>
            Array.from({ length: 200 }, (_, n) => stamper.stamp(Buffer.from(`${p}:${n}`))),
          );
          const filter = new RepeatFilter();
          const handedOn = new Set<string>();
          for (const index of order) {
            const payload = text(filter.open(sent[index % sent.length]!));
            if (payload === undefined) continue;
            expect(handedOn.has(payload)).toBe(false);
            handedOn.add(payload);
          }
          // Every distinct publish that arrived was handed on.
          expect(handedOn.size).toBe(new Set(order.map((i) => i % sent.length)).size);
        },
      ),
    );
  });

  it('drops a copy that comes after others of the same publisher, and keeps the payload intact', () => {
    const stamper = new PublishStamper();
    const filter = new RepeatFilter();
    const [one, two, three] = ['one', 'two', 'three'].map((s) => stamper.stamp(Buffer.from(s)));
    expect(one!.byteLength).toBe(STAMP_BYTES + 3);
    expect([one, two, one, three, two, three].map((m) => text(filter.open(m!)))).toEqual([
      'one',
      'two',
      undefined,
      'three',
      undefined,
      undefined,
    ]);
  });

  it('hands on a number far below the latest (it cannot tell) and one after a long jump', () => {
    const stamper = new PublishStamper();
    const filter = new RepeatFilter();
    const first = stamper.stamp(Buffer.from('first'));
    const later = Array.from({ length: 20_000 }, (_, i) => stamper.stamp(Buffer.from(`${i}`)));
    expect(text(filter.open(first))).toBe('first');
    expect(text(filter.open(later.at(-1)!))).toBe('19999');
    // Between them, nothing arrived: a number in the window is new, not a repeat.
    expect(text(filter.open(later.at(-2)!))).toBe('19998');
    expect(text(filter.open(later.at(-2)!))).toBeUndefined();
    // Far below the window: handed on rather than lost.
    expect(text(filter.open(first))).toBe('first');
  });

  it('tells numbers past 32 bits apart', () => {
    const stamp = (sequence: number) => {
      const bytes = Buffer.alloc(STAMP_BYTES + 1, 7);
      bytes.set([0xf5, 0x01], 0);
      bytes.writeUIntBE(sequence, 8, 6);
      bytes[STAMP_BYTES] = sequence % 256;
      return bytes;
    };
    const filter = new RepeatFilter();
    const numbers = [2 ** 40 + 1, 2 ** 40 + 2, 2 ** 32 * 3 + 2, 2 ** 40 + 1, 2 ** 47 + 2 ** 31];
    expect(numbers.map((n) => filter.open(stamp(n))?.[0])).toEqual([1, 2, 2, undefined, 0]);
  });

  it('forgets the publisher heard from least recently, not the first one heard', () => {
    const filter = new RepeatFilter();
    const steady = new PublishStamper();
    const first = steady.stamp(Buffer.from('steady 1'));
    expect(text(filter.open(first))).toBe('steady 1');
    // Far more short-lived publishers than are remembered, the steady one heard all along.
    for (let i = 0; i < 3000; i++) {
      filter.open(new PublishStamper().stamp(Buffer.from('once')));
      if (i % 100 === 0) filter.open(steady.stamp(Buffer.from('steady')));
    }
    expect(filter.open(first)).toBeUndefined();
  });

  it('hands on bytes without a stamp as they are, every time', () => {
    const filter = new RepeatFilter();
    const unstamped = [
      new Uint8Array(STAMP_BYTES - 1).fill(0xf5),
      Buffer.from('{"a text payload of more than fourteen bytes":1}'),
      Buffer.from([0x01, ...new Uint8Array(20)]),
    ];
    for (const bytes of [...unstamped, ...unstamped]) expect(filter.open(bytes)).toBe(bytes);
  });
});
