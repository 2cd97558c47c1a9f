/**
 * Summarizes `.cpuprofile` files: where the time went, by function and source line, with code of
 * the bundled wscale packages mapped back to `packages/<name>/src/<file>:<line>` through their
 * source maps.
 *
 *   node bench/dist/tools/profile-summary.js [--top N] FILE.cpuprofile...
 */
import { existsSync, readFileSync } from 'node:fs';
import { SourceMap } from 'node:module';
import { dirname, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
  columnNumber: number;
}

interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}

interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const maps = new Map<string, SourceMap | null>();

function sourceMapOf(file: string): SourceMap | null {
  let map = maps.get(file);
  if (map === undefined) {
    const path = `${file}.map`;
    map = existsSync(path) ? new SourceMap(JSON.parse(readFileSync(path, 'utf8'))) : null;
    maps.set(file, map);
  }
  return map;
}

/** `file:line` of a frame, in the original source when a source map knows it. */
function where(frame: CallFrame): string {
  if (frame.url === '') return '(native)';
  const file = frame.url.startsWith('file://') ? fileURLToPath(frame.url) : frame.url;
  if (file.startsWith('node:')) return `${file}:${frame.lineNumber + 1}`;
  const map = file.includes('/dist/') ? sourceMapOf(file) : null;
  if (map !== null) {
    const entry = map.findEntry(frame.lineNumber, frame.columnNumber) as {
      originalSource?: string;
      originalLine?: number;
    };
    if (entry.originalSource !== undefined && entry.originalLine !== undefined) {
      const source = entry.originalSource.startsWith('file://')
        ? fileURLToPath(entry.originalSource)
        : resolve(dirname(file), entry.originalSource);
      return `${shorten(source)}:${entry.originalLine + 1}`;
    }
  }
  return `${shorten(file)}:${frame.lineNumber + 1}`;
}

function shorten(path: string): string {
  const store = path.lastIndexOf('/node_modules/');
  if (store !== -1)
    return path
      .slice(store + '/node_modules/'.length)
      .replace(/^\.pnpm\/[^/]+\/node_modules\//, '');
  return path.startsWith(ROOT) ? relative(ROOT, path) : path;
}

interface Row {
  name: string;
  where: string;
  self: number;
  total: number;
}

function summarize(profile: Profile): { rows: Row[]; totalMicros: number; idleMicros: number } {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const parent = new Map<number, number>();
  for (const node of profile.nodes)
    for (const child of node.children ?? []) parent.set(child, node.id);
  const self = new Map<number, number>();
  for (let i = 0; i < profile.samples.length; i++) {
    const id = profile.samples[i]!;
    self.set(id, (self.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0));
  }
  const rows = new Map<string, Row>();
  const rowOf = (node: ProfileNode) => {
    const frame = node.callFrame;
    const at = where(frame);
    const key = `${frame.functionName}@${at}`;
    let row = rows.get(key);
    if (row === undefined) {
      row = { name: frame.functionName || '(anonymous)', where: at, self: 0, total: 0 };
      rows.set(key, row);
    }
    return row;
  };
  let totalMicros = 0;
  let idleMicros = 0;
  for (const [id, micros] of self) {
    const node = byId.get(id)!;
    totalMicros += micros;
    if (node.callFrame.functionName === '(idle)') idleMicros += micros;
    rowOf(node).self += micros;
    // Inclusive time: once per distinct function on the stack (recursion counted once).
    const seen = new Set<Row>();
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      const row = rowOf(byId.get(at)!);
      if (seen.has(row)) continue;
      seen.add(row);
      row.total += micros;
    }
  }
  return { rows: [...rows.values()], totalMicros, idleMicros };
}

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { top: { type: 'string', default: '25' } },
});
const top = Number(values.top);
for (const file of positionals) {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile;
  const { rows, totalMicros, idleMicros } = summarize(profile);
  const busy = totalMicros - idleMicros;
  const pct = (micros: number) => `${((100 * micros) / Math.max(1, busy)).toFixed(1)}%`.padStart(6);
  console.log(`\n${file}`);
  console.log(
    `sampled ${(totalMicros / 1000).toFixed(0)} ms, busy ${(busy / 1000).toFixed(0)} ms (percentages are of busy time)`,
  );
  const skip = new Set(['(idle)', '(root)', '(program)']);
  console.log('\nself time');
  for (const row of rows
    .filter((item) => !skip.has(item.name))
    .sort((a, b) => b.self - a.self)
    .slice(0, top)) {
    console.log(`${pct(row.self)}  ${row.name}  ${row.where}`);
  }
  console.log('\ninclusive time, wscale code');
  for (const row of rows
    .filter((item) => item.where.startsWith('packages/'))
    .sort((a, b) => b.total - a.total)
    .slice(0, top)) {
    console.log(`${pct(row.total)}  self ${pct(row.self)}  ${row.name}  ${row.where}`);
  }
}
