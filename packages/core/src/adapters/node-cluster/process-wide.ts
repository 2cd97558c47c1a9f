/**
 * One object per process under `key`, created on first use. Kept on `globalThis` so that the ESM
 * and the CJS copy of `@wscale/core`, when an application loads both, still share it.
 */
export function processWide<T extends object>(key: string, create: () => T): T {
  const slots = globalThis as unknown as Record<symbol, T | undefined>;
  const symbol = Symbol.for(key);
  let value = slots[symbol];
  if (value === undefined) {
    value = create();
    slots[symbol] = value;
  }
  return value;
}
