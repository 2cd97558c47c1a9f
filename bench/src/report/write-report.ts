import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BASELINE } from '../harness/implementations.js';
import type { Results } from '../harness/results.js';
import { type Spread, summarize } from './aggregate.js';
import { markdown } from './markdown.js';
import { type Bar, barChart } from './svg-chart.js';

function bars<Row extends { id: string; label: string }>(
  rows: Row[],
  pick: (row: Row) => Spread | undefined,
  baseline: string,
  experiments: ReadonlySet<string>,
  scale = 1,
): Bar[] {
  const out: Bar[] = [];
  for (const row of rows) {
    const value = pick(row);
    if (value === undefined) continue;
    out.push({
      label: row.label,
      value: {
        ...value,
        median: value.median / scale,
        min: value.min / scale,
        max: value.max / scale,
      },
      baseline: row.id === baseline,
      own: row.id.startsWith('wscale-'),
      experiment: experiments.has(row.id),
    });
  }
  return out;
}

/**
 * Writes `<out>/benchmarks.md`, `<out>/benchmarks/results.json` and the charts; returns the paths.
 * `analysis` (markdown) is appended to the report as it is.
 */
export function writeReport(results: Results, out: string, analysisFile?: string): string[] {
  const dir = join(out, 'benchmarks');
  mkdirSync(dir, { recursive: true });
  const written: string[] = [];
  const write = (path: string, text: string) => {
    writeFileSync(path, text);
    written.push(path);
  };
  write(join(dir, 'results.json'), `${JSON.stringify(results, null, 2)}\n`);

  const { fanout, idle, churn, scale, storm } = summarize(results);
  const experiments = new Set(
    results.implementations.filter((item) => item.experimental).map((item) => item.id),
  );
  const charts: Array<[string, string]> = [
    [
      'cpu-per-delivery.svg',
      barChart(
        'Server CPU per delivery, fan-out at a fixed rate (lower is better)',
        'µs',
        bars(fanout, (row) => row.fixed.cpu, BASELINE.fanout, experiments),
      ),
    ],
    [
      'latency-p99.svg',
      barChart(
        'p99 end-to-end latency, fan-out at a fixed rate (lower is better)',
        'ms',
        bars(fanout, (row) => row.fixed.p99, BASELINE.fanout, experiments),
      ),
    ],
    [
      'throughput-max.svg',
      barChart(
        'Deliveries per second at top speed (higher is better; bounded by the machine)',
        'k/s',
        bars(fanout, (row) => row.max.rate, BASELINE.fanout, experiments, 1000),
        1,
      ),
    ],
    [
      'idle-memory.svg',
      barChart(
        'Idle memory per connection, RSS (lower is better)',
        'KiB',
        bars(idle, (row) => row.rssPerConnection, BASELINE.idle, experiments, 1024),
        2,
      ),
    ],
  ];
  const drawn: string[] = [];
  for (const [name, svg] of charts) {
    if (!svg.includes('<rect x=')) continue;
    write(join(dir, name), svg);
    drawn.push(name);
  }
  const analysis =
    analysisFile !== undefined && existsSync(analysisFile) && !results.meta.smoke
      ? readFileSync(analysisFile, 'utf8')
      : undefined;
  write(
    join(out, 'benchmarks.md'),
    markdown({ results, fanout, idle, churn, scale, storm, charts: drawn, analysis }),
  );
  return written;
}
