import { describe, expect, it } from 'vitest';
import { PresenceView } from '../src/presence-view.js';

/** `count` users `u0000`, `u0001`… from `from` on, as the server lists them. */
const listed = (count: number, from = 0) =>
  Array.from({ length: count }, (_, i) => ({ u: `u${String(from + i).padStart(4, '0')}` }));

function recorded(view: PresenceView): string[] {
  const seen: string[] = [];
  view.on('join', (member) => seen.push(`join ${member.user}`));
  view.on('leave', (member) => seen.push(`leave ${member.user}`));
  return seen;
}

describe('PresenceView, in a room of more users than a snapshot lists', () => {
  it('reports no leave or join on a resume for users a cut-short list or snapshot leaves out', () => {
    const view = new PresenceView('big');
    view.snapshot(listed(1000), 1001); // the first snapshot lists 1000 of 1001
    const seen = recorded(view);
    view.joined({ u: 'newcomer' });
    expect(view.count).toBe(1002);

    // A resume: the fresh snapshot lists the first 1000 again; the newcomer is past them.
    view.snapshot(listed(1000), 1002);
    expect(seen).toEqual(['join newcomer']);
    expect(view.count).toBe(1002);
    expect(view.members.size).toBe(1000);

    // The room shrank: a whole snapshot proves who left, but not who came (the list was cut).
    view.snapshot([...listed(2), { u: 'u1500' }], 3);
    expect(seen.slice(1)).toEqual(listed(998, 2).map(({ u }) => `leave ${u}`));
    expect([...view.members.keys()]).toEqual(['u0000', 'u0001', 'u1500']);

    // Whole before and after: every difference is reported.
    view.snapshot([{ u: 'u0000' }, { u: 'u2000' }], 2);
    expect(seen.slice(999)).toEqual(['leave u0001', 'leave u1500', 'join u2000']);
  });
});

describe('PresenceView, resumed on a node that just started', () => {
  it('takes no one out for a partial snapshot, and reports who really left once the whole one comes', () => {
    const view = new PresenceView('room');
    view.snapshot(listed(3), 3);
    const seen = recorded(view);
    // The new node has heard of u0001 and a newcomer only: u0000 and u0002 are on nodes it has not
    // heard from yet.
    view.snapshot([{ u: 'u0001' }, { u: 'newcomer' }], 2, true);
    expect(seen).toEqual(['join newcomer']);
    expect([...view.members.keys()].sort()).toEqual(['newcomer', 'u0000', 'u0001', 'u0002']);
    expect(view.count).toBe(4);
    // Its view whole: u0002 had really left meanwhile.
    view.snapshot([{ u: 'newcomer' }, { u: 'u0000' }, { u: 'u0001' }], 3);
    expect(seen).toEqual(['join newcomer', 'leave u0002']);
    expect(view.count).toBe(3);
  });
});

describe('PresenceView, ended', () => {
  it('is not updated again once it ended, and ends once', () => {
    const view = new PresenceView('room');
    view.snapshot(listed(2), 2);
    const seen = recorded(view);
    let ends = 0;
    view.on('end', () => ends++);
    view.end();
    view.end();
    view.joined({ u: 'late' });
    view.left('u0000');
    view.snapshot(listed(1, 5), 1);
    expect([view.ended, ends, seen]).toEqual([true, 1, []]);
    expect([...view.members.keys()]).toEqual(['u0000', 'u0001']);
    expect(view.count).toBe(2);
  });
});
