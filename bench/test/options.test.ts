/** The command line of `pnpm bench`: the warm-ups before measuring, as a user sets them. */
import { describe, expect, it } from 'vitest';
import { DEFAULT_SIZES, parseOptions, SMOKE_SIZES } from '../src/harness/config.js';

describe('bench options', () => {
  it('warms the fan-out and direct paths up before measuring, unless told not to', () => {
    const full = parseOptions([], '/tmp/out').sizes;
    expect(full.fanoutWarmup).toBe(DEFAULT_SIZES.fanoutWarmup);
    expect(full.directWarmup).toBe(DEFAULT_SIZES.directWarmup);
    expect(full.directWarmup).toBeGreaterThan(full.directMessages);
    const smoke = parseOptions(['--smoke'], '/tmp/out').sizes;
    expect(smoke.directWarmup).toBe(SMOKE_SIZES.directWarmup);

    const cold = parseOptions(['--direct-warmup', '0', '--fanout-warmup', '0'], '/tmp/out').sizes;
    expect(cold.directWarmup).toBe(0);
    expect(cold.fanoutWarmup).toBe(0);
    const set = parseOptions(['--fanout-warmup', '50', '--warmup', '7'], '/tmp/out').sizes;
    expect(set.fanoutWarmup).toBe(50);
    expect(set.warmup).toBe(7);
  });

  it('refuses a warm-up that is not a count', () => {
    expect(() => parseOptions(['--direct-warmup', '-1'], '/tmp/out')).toThrow(/direct-warmup/);
    expect(() => parseOptions(['--fanout-warmup', 'many'], '/tmp/out')).toThrow(/fanout-warmup/);
  });
});
