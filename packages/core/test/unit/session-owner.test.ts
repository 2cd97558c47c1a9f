import { describe, expect, it } from 'vitest';
import { resolveOptions } from '../../src/server/resolve-options.js';
import { Opaque, UserId } from '../helpers/ids.js';

const owner = resolveOptions({ noServer: true }, () => 'node').sessionOwner as (
  identity: unknown,
) => string;

class Tagged {
  constructor(readonly name: string) {}
  get [Symbol.toStringTag]() {
    return 'User-Id';
  }
}

describe('the default sessionOwner', () => {
  it('never names two different users alike', () => {
    const pairs: Array<[unknown, unknown]> = [
      [{ id: 'ada' }, { id: 'eve' }],
      [{ id: { tenant: 'a', user: 1 } }, { id: { tenant: 'b', user: 1 } }],
      [{ id: new UserId('ada') }, { id: new UserId('eve') }],
      [{ id: Buffer.from([0xff]) }, { id: Buffer.from([0xfe]) }],
      [{ id: new Date(1000) }, { id: new Date(1001) }],
      [{ id: new Tagged('ada') }, { id: new Tagged('eve') }],
      [{ id: [{ a: 1 }] }, { id: [{ a: 2 }] }],
      [
        Object.assign(Object.create(null), { id: 'x' }),
        Object.assign(Object.create(null), { id: 'y' }),
      ],
      ['ada', 'eve'],
    ];
    for (const [a, b] of pairs) expect(owner(a)).not.toBe(owner(b));
    // The same user is one owner, however its id is spelled where the type allows.
    expect(owner({ id: 1 })).toBe(owner({ id: '1' }));
    expect(owner({ id: new UserId('ada') })).toBe(owner({ id: 'ada' }));
  });

  it('names no owner for an id it cannot tell apart: the hello fails, not a session shared', () => {
    for (const id of [
      new Map([['user', 'ada']]),
      new Opaque('ada'),
      { user: new Map([['user', 'ada']]) },
      [new Opaque('ada')],
    ]) {
      expect(() => owner({ id })).toThrow(/does not name its owner/);
    }
  });
});
