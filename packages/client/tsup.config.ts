import { defineConfig } from 'tsup';

export default defineConfig({
  entry: { index: 'src/index.ts' },
  format: ['esm', 'cjs'],
  // The protocol codec is bundled in, so the client depends on nothing at runtime and never
  // reaches server code or a Node built-in. Its types are inlined in the .d.ts the same way.
  noExternal: ['@wscale/core'],
  dts: true,
  clean: true,
  sourcemap: true,
  platform: 'browser',
  target: 'es2022',
});
