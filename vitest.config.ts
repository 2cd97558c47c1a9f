import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

const src = (path: string) => fileURLToPath(new URL(`./packages/${path}`, import.meta.url));

export default defineConfig({
  resolve: {
    // In-process tests run against the sources; spawned node processes use the built packages.
    alias: [
      { find: /^@wscale\/core\/testing$/, replacement: src('core/src/testing/index.ts') },
      { find: /^@wscale\/core\/protocol$/, replacement: src('core/src/protocol/index.ts') },
      { find: /^@wscale\/core$/, replacement: src('core/src/index.ts') },
      { find: /^@wscale\/client$/, replacement: src('client/src/index.ts') },
      { find: /^@wscale\/nats$/, replacement: src('nats/src/index.ts') },
      { find: /^@wscale\/redis$/, replacement: src('redis/src/index.ts') },
      {
        find: /^@wscale\/prometheus\/cluster-view$/,
        replacement: src('prometheus/src/cluster-view.ts'),
      },
      { find: /^@wscale\/prometheus$/, replacement: src('prometheus/src/index.ts') },
      // Test helpers for every package's tests, whether or not the package lists it.
      { find: /^@wscale\/test-support$/, replacement: src('test-support/src/index.ts') },
    ],
  },
  test: {
    include: [
      'packages/*/test/**/*.test.ts',
      'examples/*/test/**/*.test.ts',
      'bench/test/**/*.test.ts',
      'e2e/test/**/*.test.ts',
      'docs/test/**/*.test.ts',
    ],
    testTimeout: 20_000,
    hookTimeout: 60_000,
    pool: 'forks',
    reporters: process.env.CI
      ? ['default', ['json', { outputFile: '.test-results/vitest.json' }]]
      : ['default'],
  },
});
