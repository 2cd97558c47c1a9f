import { MemoryHistory } from '@wscale/core';
import { afterEach, describe, expect, it, vi } from 'vitest';

afterEach(() => {
  vi.useRealTimers();
});

describe('MemoryHistory over a long life', () => {
  it('forgets a room left empty and unused for roomTtlMs, and keeps one still in use', async () => {
    vi.useFakeTimers();
    const history = new MemoryHistory({ maxAgeMs: 1000, roomTtlMs: 5000 });
    await history.append('busy', new Uint8Array(1024));
    const quiet = await history.position('quiet');
    const used = await history.position('used');
    // Every second: only `used` is read, and `busy` written.
    for (let second = 1; second <= 6; second++) {
      vi.advanceTimersByTime(1000);
      await history.position('used');
      await history.append('busy', new Uint8Array(1024));
    }
    // `quiet`, never written, unused for 6 s: its next use starts a new log.
    expect((await history.position('quiet')).epoch).not.toBe(quiet.epoch);
    expect(await history.position('used')).toEqual(used);
    expect((await history.position('busy')).offset).toBe(7);
    await history.close();
  });
});
