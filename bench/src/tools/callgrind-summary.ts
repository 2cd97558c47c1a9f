/**
 * Where a node process's instructions went, from the counts `direct-cost --instructions` leaves:
 * each function's own instructions (per message with `--per`), JIT code named from the
 * `/tmp/perf-<pid>.map` the node wrote (callgrind knows only its address). With `--base` it prints
 * the difference from another process's counts instead, largest first: what one server does per
 * message that the other does not.
 *
 *   node bench/dist/tools/callgrind-summary.js [--top N] [--per MESSAGES] [--base FILE] FILE
 *
 * FILE is a dump, `callgrind.<pid>.out.<n>-01` (thread 1, the main thread). It reads the counts
 * through `callgrind_annotate`. V8 reuses the addresses of code it collected; the map's latest
 * name for an address is the one taken.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { parseArgs } from 'node:util';

/** JIT code ranges of one process, by start address. */
interface CodeMap {
  starts: number[];
  ends: number[];
  names: string[];
}

function readCodeMap(pid: string): CodeMap | undefined {
  const file = `/tmp/perf-${pid}.map`;
  if (!existsSync(file)) return undefined;
  const byStart = new Map<number, [number, string]>();
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const [start, size, ...name] = line.split(' ');
    if (name.length === 0) continue;
    byStart.set(Number.parseInt(start!, 16), [Number.parseInt(size!, 16), name.join(' ')]);
  }
  const starts = [...byStart.keys()].sort((a, b) => a - b);
  return {
    starts,
    ends: starts.map((start) => start + byStart.get(start)![0]),
    names: starts.map((start) => byStart.get(start)![1]),
  };
}

/** The code range holding `address` (the last one starting at or before it), if any. */
function nameAt(map: CodeMap, address: number): string | undefined {
  let low = 0;
  let high = map.starts.length - 1;
  while (low <= high) {
    const middle = (low + high) >> 1;
    if (map.starts[middle]! <= address) low = middle + 1;
    else high = middle - 1;
  }
  return high >= 0 && address < map.ends[high]! ? map.names[high] : undefined;
}

/** Each function's own instructions in a dump. */
function countsOf(file: string): Map<string, number> {
  const pid = /^callgrind\.(\d+)\./.exec(basename(file))?.[1];
  const code = pid === undefined ? undefined : readCodeMap(pid);
  const annotated = spawnSync('callgrind_annotate', ['--threshold=100', file], {
    encoding: 'utf8',
    maxBuffer: 1 << 28,
  });
  if (annotated.status !== 0) throw new Error(`callgrind_annotate failed: ${annotated.stderr}`);
  const counts = new Map<string, number>();
  let listing = false;
  for (const line of annotated.stdout.split('\n')) {
    if (line.includes('file:function')) listing = true;
    const row = listing ? /^\s*([\d,]+)\s+\(\s*[\d.]+%\)\s+(.*)$/.exec(line) : null;
    if (row === null) continue;
    let name = row[2]!.replace(/\s*\[[^\]]*\]\s*$/, '');
    const jit = /^\?\?\?:0x([0-9a-f]+)$/.exec(name);
    if (jit !== null) {
      name = `JS ${(code && nameAt(code, Number.parseInt(jit[1]!, 16))) ?? '(unnamed JIT code)'}`;
    }
    counts.set(name, (counts.get(name) ?? 0) + Number(row[1]!.replaceAll(',', '')));
  }
  return counts;
}

function main(): void {
  const { values, positionals } = parseArgs({
    options: {
      top: { type: 'string', default: '40' },
      per: { type: 'string', default: '1' },
      base: { type: 'string' },
    },
    allowPositionals: true,
  });
  if (positionals.length !== 1) {
    console.error('usage: callgrind-summary [--top N] [--per MESSAGES] [--base FILE] FILE');
    process.exitCode = 2;
    return;
  }
  const per = Number(values.per);
  const counts = countsOf(positionals[0]!);
  const base = values.base === undefined ? undefined : countsOf(values.base);
  const total = (of: Map<string, number>) => [...of.values()].reduce((sum, n) => sum + n, 0) / per;
  const round = (n: number) => Math.round(n).toString().padStart(9);
  if (base === undefined) {
    console.log(`${round(total(counts))}  in all`);
    const rows = [...counts].sort((a, b) => b[1] - a[1]);
    for (const [name, n] of rows.slice(0, Number(values.top)))
      console.log(`${round(n / per)}  ${name}`);
    return;
  }
  console.log(
    `${round(total(counts) - total(base))}  in all (${round(total(base))} -> ${round(total(counts))})`,
  );
  const names = new Set([...counts.keys(), ...base.keys()]);
  const rows = [...names]
    .map((name) => [name, ((counts.get(name) ?? 0) - (base.get(name) ?? 0)) / per] as const)
    .sort((a, b) => Math.abs(b[1]) - Math.abs(a[1]));
  for (const [name, n] of rows.slice(0, Number(values.top))) console.log(`${round(n)}  ${name}`);
}

main();
