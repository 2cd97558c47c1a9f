import { defineConfig } from 'tsup';

export default defineConfig({
  // The cluster view is its own entry: it needs no prom-client.
  entry: { index: 'src/index.ts', 'cluster-view': 'src/cluster-view.ts' },
  format: ['esm', 'cjs'],
  dts: true,
  clean: true,
  sourcemap: true,
  target: 'node20',
  external: ['@wscale/core', 'prom-client'],
});
