import { defineConfig } from 'tsup';

// Each process of the harness is an entry of its own; packages stay external (the built ones).
export default defineConfig({
  entry: {
    run: 'src/run.ts',
    // At the root: it starts the harness's node processes, which sit next to it.
    'direct-cost': 'src/tools/direct-cost.ts',
    'servers/node-main': 'src/servers/node-main.ts',
    'servers/cluster-primary': 'src/servers/cluster-primary.ts',
    'load/load-main': 'src/load/load-main.ts',
    'tools/profile-summary': 'src/tools/profile-summary.ts',
    'tools/perf-summary': 'src/tools/perf-summary.ts',
    'tools/heap-summary': 'src/tools/heap-summary.ts',
    'tools/publisher-cost': 'src/tools/publisher-cost.ts',
    'tools/write-cost': 'src/tools/write-cost.ts',
    'tools/send-cost': 'src/tools/send-cost.ts',
    'tools/callgrind-summary': 'src/tools/callgrind-summary.ts',
    'tools/nats-history-reads': 'src/tools/nats-history-reads.ts',
    'upstream/upstream-run': 'src/upstream/upstream-run.ts',
    'upstream/upstream-node': 'src/upstream/upstream-node.ts',
    'presence/presence-run': 'src/presence/presence-run.ts',
    'compression/compression-node': 'src/compression/compression-node.ts',
  },
  format: ['esm'],
  target: 'node20',
  clean: true,
  sourcemap: true,
  splitting: false,
});
