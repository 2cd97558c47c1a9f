/**
 * Compares two heap snapshots (`.heapsnapshot`, as written by `--profile` in the idle scenario):
 * retained bytes and counts per object kind, per connection, for the kinds where they differ most.
 *
 *   node bench/dist/tools/heap-summary.js --per 5000 A.heapsnapshot B.heapsnapshot
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

interface Snapshot {
  snapshot: { meta: { node_fields: string[]; node_types: [string[], ...unknown[]] } };
  nodes: number[];
  strings: string[];
}

/** Self size and count per `type:name` (objects by constructor name). */
function tally(file: string): Map<string, { size: number; count: number }> {
  const data = JSON.parse(readFileSync(file, 'utf8')) as Snapshot;
  const fields = data.snapshot.meta.node_fields;
  const types = data.snapshot.meta.node_types[0];
  const width = fields.length;
  const typeAt = fields.indexOf('type');
  const nameAt = fields.indexOf('name');
  const sizeAt = fields.indexOf('self_size');
  const out = new Map<string, { size: number; count: number }>();
  for (let i = 0; i < data.nodes.length; i += width) {
    const type = types[data.nodes[i + typeAt]!] ?? '?';
    const rawName =
      type === 'string' || type === 'concatenated string' || type === 'sliced string'
        ? '(strings)'
        : (data.strings[data.nodes[i + nameAt]!] ?? '?');
    const name = type === 'code' || type === 'hidden' ? `(${type})` : rawName.slice(0, 60);
    const key = `${type}:${name}`;
    const entry = out.get(key) ?? { size: 0, count: 0 };
    entry.size += data.nodes[i + sizeAt]!;
    entry.count += 1;
    out.set(key, entry);
  }
  return out;
}

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { per: { type: 'string', default: '1' }, top: { type: 'string', default: '25' } },
});
const per = Number(values.per);
const [baseFile, otherFile] = positionals;
if (baseFile === undefined || otherFile === undefined) {
  console.error('usage: heap-summary [--per N] [--top N] BASE.heapsnapshot OTHER.heapsnapshot');
  process.exit(2);
}
const base = tally(baseFile);
const other = tally(otherFile);
const keys = new Set([...base.keys(), ...other.keys()]);
const rows = [...keys].map((key) => {
  const a = base.get(key) ?? { size: 0, count: 0 };
  const b = other.get(key) ?? { size: 0, count: 0 };
  return { key, a, b, delta: b.size - a.size };
});
const total = (map: Map<string, { size: number }>) =>
  [...map.values()].reduce((sum, entry) => sum + entry.size, 0);
console.log(
  `heap: ${(total(base) / per).toFixed(0)} B vs ${(total(other) / per).toFixed(0)} B per unit (${per} units)`,
);
console.log('bytes/unit base → other (count/unit)   kind');
for (const row of rows
  .sort((x, y) => Math.abs(y.delta) - Math.abs(x.delta))
  .slice(0, Number(values.top))) {
  const f = (n: number) => (n / per).toFixed(1).padStart(8);
  console.log(
    `${f(row.a.size)} → ${f(row.b.size)}  (${(row.a.count / per).toFixed(2)} → ${(row.b.count / per).toFixed(2)})  ${row.key}`,
  );
}
