import { defineConfig } from 'tsup';

export default defineConfig({
  entry: {
    index: 'src/index.ts',
    'testing/index': 'src/testing/index.ts',
    'protocol/index': 'src/protocol/index.ts',
  },
  format: ['esm', 'cjs'],
  // One copy of each module for the three entries in CommonJS too (ES modules split by default).
  splitting: true,
  dts: true,
  clean: true,
  sourcemap: true,
  // Classes keep their names (esbuild renames a class with static fields): errors name themselves.
  keepNames: true,
  target: 'node20',
  external: ['vitest'],
});
