import type { Results } from '../harness/results.js';

const MiB = 2 ** 20;

/**
 * The churn soak's section of the report: per round, the cycles run and the node's state before
 * and after, each of which must be back to its baseline. Empty when no soak ran.
 */
export function soakSection(
  results: Results,
  table: (header: string[], rows: string[][]) => string,
): string[] {
  const rows: string[][] = [];
  for (const implementation of results.implementations) {
    for (const round of results.soak?.[implementation.id] ?? []) {
      const { result, baseline, after } = round;
      const cycles = Object.values(result.cycles).reduce((sum, count) => sum + count, 0);
      const heapDelta = after.heapUsed - baseline.heapUsed;
      rows.push([
        `${implementation.label}, round ${round.round}`,
        String(cycles),
        String(result.failures),
        (result.ms / 1000).toFixed(1),
        `${(baseline.heapUsed / MiB).toFixed(1)} → ${(after.heapUsed / MiB).toFixed(1)}`,
        (heapDelta / cycles).toFixed(0),
        `${baseline.clients} → ${after.clients}`,
        `${baseline.rooms} → ${after.rooms}`,
        `${baseline.subscriptions} → ${after.subscriptions}`,
      ]);
    }
  }
  if (rows.length === 0) return [];
  const first = Object.values(results.soak ?? {})[0]?.[0];
  const mix = Object.entries(first?.result.cycles ?? {})
    .map(([kind, count]) => `${kind} ${count}`)
    .join(', ');
  return [
    '## Churn soak',
    '',
    table(
      [
        'implementation',
        'client lives',
        'failed',
        'seconds',
        'heap MiB (after GC)',
        'heap bytes / life',
        'clients',
        'rooms',
        'broker subscriptions',
      ],
      rows,
    ),
    '',
    'One node on Redis, 50 client lives at a time, against the default limits. Each life is one',
    `client from connect to gone; the mix (first round): ${mix}.`,
    '`v1`: `@wscale/client` joins the room and a soak room, leaves it, closes; `resume`: joins, loses',
    'its connection, resumes, closes; `raw`: a plain `ws` client put in the room; `malformed`: a frame',
    'that breaks RFC 6455; `silent`: hello, join, then 20 000 pings without ever reading; `vanish`:',
    'half a hello, then gone. Before: after a warm-up of a fifth as many lives (at most 1000).',
    'After: once the node let go of the last clients (bounded), after garbage collection. Clients,',
    'rooms and Redis channels must be back to their baseline exactly; the heap to within noise.',
    `First round started ${first?.startedAt ?? '?'}.`,
    '',
  ];
}
