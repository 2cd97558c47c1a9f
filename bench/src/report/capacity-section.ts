import type { CapacityRound } from '../harness/capacity-scenario.js';
import { BASELINE } from '../harness/implementations.js';
import type { Results } from '../harness/results.js';

const KiB = 1024;

function median(values: number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

/** Median over the rounds, with the range when there are several. */
function spread(values: number[], digits: number): string {
  if (values.length === 0) return '—';
  const text = median(values).toFixed(digits);
  if (values.length === 1) return text;
  return `${text} <sub>${Math.min(...values).toFixed(digits)}–${Math.max(...values).toFixed(digits)}</sub>`;
}

/** Each node's growth (after GC) divided by its own clients, averaged over the nodes, bytes. */
function perConnection(round: CapacityRound, before: number[], after: number[]): number {
  const parts = round.perNode
    .map((clients, node) => (clients > 0 ? (after[node]! - before[node]!) / clients : Number.NaN))
    .filter((value) => Number.isFinite(value));
  return parts.reduce((sum, value) => sum + value, 0) / Math.max(1, parts.length);
}

export const rssPerConnection = (round: CapacityRound) =>
  perConnection(round, round.rssBefore, round.rssAfter);
export const heapPerConnection = (round: CapacityRound) =>
  perConnection(round, round.heapBefore, round.heapAfter);

/**
 * "Most connections across nodes": per implementation, how many were held, memory per connection
 * per node against the bare `ws` processes at their per-node count, connect rate and the
 * broadcast to all of them. Empty when the scenario did not run.
 */
export function capacitySection(
  results: Results,
  table: (header: string[], rows: string[][]) => string,
): string[] {
  const all = results.capacity ?? {};
  const measured = results.implementations.filter((item) => (all[item.id]?.length ?? 0) > 0);
  if (measured.length === 0) return [];
  const base = all[BASELINE.idle] ?? [];
  const baseHeap = median(base.map(heapPerConnection));
  const baseRss = median(base.map(rssPerConnection));
  const times = (value: number, of: number) =>
    Number.isFinite(of) && of > 0 ? `${(value / of).toFixed(2)}×` : '—';
  const rows = measured.map((item) => {
    const rounds = all[item.id]!;
    const heap = median(rounds.map(heapPerConnection));
    const rss = median(rounds.map(rssPerConnection));
    const stops = [...new Set(rounds.map((round) => round.stop))].join(', ');
    return [
      item.label,
      spread(
        rounds.map((round) => round.held),
        0,
      ),
      spread(
        rounds.map((round) => Math.max(...round.perNode)),
        0,
      ),
      stops,
      spread(
        rounds.map((round) => (round.held / round.connectMs) * 1000),
        0,
      ),
      spread(
        rounds.map((round) => rssPerConnection(round) / KiB),
        2,
      ),
      times(rss, baseRss),
      spread(
        rounds.map((round) => heapPerConnection(round) / KiB),
        2,
      ),
      times(heap, baseHeap),
    ];
  });
  const fanoutRows = measured
    .filter((item) => all[item.id]!.some((round) => round.fanout !== undefined))
    .map((item) => {
      const rounds = all[item.id]!.filter((round) => round.fanout !== undefined);
      const fanouts = rounds.map((round) => round.fanout!);
      const cpu = fanouts.map(
        (fanout) =>
          fanout.nodeCpuMicros.reduce((sum, micros) => sum + micros, 0) /
          Math.max(1, fanout.delivered),
      );
      return [
        item.label,
        spread(
          rounds.map((round) => round.held),
          0,
        ),
        spread(
          fanouts.map((fanout) => fanout.firstCopyMs.p50),
          0,
        ),
        spread(
          fanouts.map((fanout) => fanout.lastCopyMs.p50),
          0,
        ),
        spread(
          fanouts.map((fanout) => fanout.lastCopyMs.max),
          0,
        ),
        spread(cpu, 2),
        spread(
          fanouts.flatMap((fanout) =>
            fanout.brokerCpuMicros === null ? [] : [fanout.brokerCpuMicros / 1000],
          ),
          0,
        ),
        `${fanouts.reduce((sum, fanout) => sum + fanout.lost, 0)} / ${fanouts.reduce((sum, fanout) => sum + fanout.duplicated, 0)}`,
      ];
    });
  const { sizes } = results.meta;
  const first = Object.values(all)[0]?.[0];
  const errors = measured.flatMap((item) =>
    all[item.id]!.filter((round) => round.firstError !== undefined).map(
      (round) => `${item.label}, round ${round.round}: ${round.firstError}`,
    ),
  );
  return [
    '## Most connections across nodes',
    '',
    table(
      [
        'implementation',
        'clients held',
        'most on one node',
        'stopped by',
        'connections/s',
        'RSS KiB / connection',
        '× bare `ws`',
        'JS heap KiB / connection',
        '× bare `ws`',
      ],
      rows,
    ),
    '',
    ...(fanoutRows.length === 0
      ? []
      : [
          table(
            [
              'implementation',
              'clients',
              'first copy p50 ms',
              'last copy p50 ms',
              'last copy, slowest message ms',
              'node CPU µs / delivery',
              'broker CPU ms',
              'lost / duplicated',
            ],
            fanoutRows,
          ),
          '',
        ]),
    `${sizes.capacityNodes ?? '?'} node processes of each implementation on one broker (the bare \`ws\` baseline: as many`,
    `independent processes); ${first?.loads ?? '?'} load-generator processes open plain \`ws\` clients round-robin over the nodes,`,
    `${sizes.capacityStep ?? '?'} per step (100 at a time per process, each bounded to 15 s), until ${first?.ceiling ?? '?'} are held`,
    `(the asked-for ${sizes.capacityMax ?? '?'}, lowered to what each node's open-files limit, ${first?.openFiles ?? 'unlimited'}, allows), a connection`,
    `fails, or ${sizes.capacitySeconds ?? '?'} s pass ("stopped by"). Memory per connection: each node's growth in RSS and JS`,
    'heap, after garbage collection, over its own clients, averaged over the nodes; against the bare',
    '`ws` processes of the same run, which hold the same number per node when both reach the',
    `ceiling. Then a publisher on node 0 broadcasts ${sizes.capacityMessages ?? '?'} messages at ${sizes.capacityRate ?? '?'}/s to all of them; first and`,
    'last copy: per message, from its send to the first and the last client it reached (clocks of',
    "the load processes are the same machine's), medians over the messages (slowest: the worst",
    'message). CPU per delivery: all nodes, from the first send to the last copy.',
    ...(errors.length === 0 ? [] : ['', 'First failures:', ...errors.map((line) => `- ${line}`)]),
    '',
  ];
}
