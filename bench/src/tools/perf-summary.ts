/**
 * Summarizes a `perf record` of node processes (`pnpm bench --perf <id>`), per process: how its
 * samples split between the kernel, native code (Node, V8, libc) and JIT code; in which tier V8
 * ran the JavaScript on the stack (optimized by TurboFan, or Sparkplug's baseline code, which
 * code runs in until V8 finds it hot: the per-message path of a server at 20 messages/s stays
 * there); and the symbols the samples landed in.
 *
 *   node bench/dist/tools/perf-summary.js [--top N] FILE.perf.data
 *
 * It reads `perf script`, which names JIT code from the `/tmp/perf-<pid>.map` files the node
 * processes wrote: run it on the machine that recorded. V8 reuses the addresses of code it
 * collected, and such a map keeps the first name, so a rare JIT name may be another function's.
 */
import { spawnSync } from 'node:child_process';
import { parseArgs } from 'node:util';
import { formatSummary, summarize } from './perf-samples.js';

function main(): void {
  const { values, positionals } = parseArgs({
    options: { top: { type: 'string', default: '25' } },
    allowPositionals: true,
  });
  if (positionals.length !== 1) {
    console.error('usage: perf-summary [--top N] FILE.perf.data');
    process.exitCode = 2;
    return;
  }
  const script = spawnSync('perf', ['script', '-F', 'pid,ip,sym,dso', '-i', positionals[0]!], {
    encoding: 'utf8',
    maxBuffer: 1 << 30,
  });
  if (script.status !== 0) {
    console.error(script.error?.message ?? script.stderr);
    process.exitCode = 1;
    return;
  }
  console.log(formatSummary(summarize(script.stdout), Number(values.top)));
}

main();
