import { compressionSection } from '../compression/compression-section.js';
import type { Sizes } from '../harness/config.js';
import { BASELINE } from '../harness/implementations.js';
import type { Results } from '../harness/results.js';
import type {
  ChurnSummary,
  FanoutSummary,
  IdleSummary,
  PhaseSummary,
  ScaleSummary,
  Spread,
  StormSummary,
} from './aggregate.js';
import { capacitySection } from './capacity-section.js';
import { soakSection } from './soak-section.js';

const MiB = 2 ** 20;
const KiB = 1024;

function fmt(value: Spread | undefined, digits = 2, scale = 1): string {
  if (value === undefined) return '—';
  const f = (n: number) => (n / scale).toFixed(digits);
  return value.rounds > 1
    ? `${f(value.median)} <sub>${f(value.min)}–${f(value.max)}</sub>`
    : f(value.median);
}

function ratio(value: Spread | undefined, base: Spread | undefined): string {
  if (value === undefined || base === undefined || base.median === 0) return '—';
  return `${(value.median / base.median).toFixed(2)}×`;
}

function faults(phase: PhaseSummary, misrouted = false): string {
  const parts = [phase.lost, phase.duplicated, phase.reordered];
  if (misrouted) parts.push(phase.misrouted);
  return parts.join(' / ');
}

/** A table laid out the way the repository's formatter (Biome) lays out markdown tables. */
function table(header: string[], rows: string[][]): string {
  const width = (text: string) => [...text].length;
  const widths = header.map((cell, column) =>
    Math.max(3, width(cell), ...rows.map((row) => width(row[column] ?? ''))),
  );
  const pad = (cell: string, column: number) => {
    const fill = ' '.repeat(widths[column]! - width(cell));
    return column === 0 ? cell + fill : fill + cell;
  };
  const line = (cells: string[]) => `| ${cells.map(pad).join(' | ')} |`;
  return [
    line(header),
    `| ${widths.map((size, column) => (column === 0 ? '-'.repeat(size) : `${'-'.repeat(size - 1)}:`)).join(' | ')} |`,
    ...rows.map(line),
  ].join('\n');
}

const isOwn = (id: string) => id.startsWith('wscale-');

/** The targets of DESIGN.md, checked for each wscale implementation measured. */
function targets(
  fanout: FanoutSummary[],
  idle: IdleSummary[],
  churn: ChurnSummary[],
  scale: ScaleSummary[],
): string {
  const base = fanout.find((row) => row.id === BASELINE.fanout);
  const bare = idle.find((row) => row.id === BASELINE.idle);
  const rows: string[][] = [];
  const verdict = (ok: boolean | undefined) => (ok === undefined ? '—' : ok ? 'met' : '**missed**');
  const check = (label: string, target: string, measured: string, ok: boolean | undefined) =>
    rows.push([label, target, measured, verdict(ok)]);
  for (const row of fanout.filter((item) => isOwn(item.id))) {
    const cpu =
      row.fixed.cpu && base?.fixed.cpu ? row.fixed.cpu.median / base.fixed.cpu.median : undefined;
    check(
      row.label,
      'server CPU / delivery ≤ 0.9× hand-written',
      cpu === undefined ? '—' : `${cpu.toFixed(3)}×`,
      cpu === undefined ? undefined : cpu <= 0.9,
    );
    const p99 =
      row.fixed.p99 && base?.fixed.p99 ? row.fixed.p99.median / base.fixed.p99.median : undefined;
    check(
      row.label,
      'p99 latency ≤ hand-written',
      p99 === undefined ? '—' : `${p99.toFixed(3)}×`,
      p99 === undefined ? undefined : p99 <= 1,
    );
    const peak = row.peakOverConnected?.median;
    check(
      row.label,
      'peak RSS under overload ≤ 1.5× connected',
      peak === undefined ? '—' : `${peak.toFixed(3)}×`,
      peak === undefined ? undefined : peak <= 1.5,
    );
    const churnFaults = (churn.find((item) => item.id === row.id)?.cycles ?? []).reduce(
      (total, cycle) => total + cycle.lost + cycle.duplicated + cycle.reordered,
      0,
    );
    const faultsTotal = [row.fixed, row.max, row.direct].reduce(
      (total, phase) => total + phase.lost + phase.duplicated + phase.reordered + phase.misrouted,
      churnFaults,
    );
    check(row.label, 'zero lost / duplicated / reordered', String(faultsTotal), faultsTotal === 0);
  }
  for (const row of idle.filter((item) => isOwn(item.id))) {
    const memory =
      row.rssPerConnection && bare?.rssPerConnection
        ? row.rssPerConnection.median / bare.rssPerConnection.median
        : undefined;
    // DESIGN.md's next target: 10 000 connections on one node at ≤ 1.05× bare ws.
    const bound = row.connections >= 10_000 ? 1.05 : 1.1;
    check(
      row.label,
      `idle memory / connection at ${row.connections} ≤ ${bound}× bare ws`,
      memory === undefined ? '—' : `${memory.toFixed(3)}×`,
      memory === undefined ? undefined : memory <= bound,
    );
  }
  for (const id of new Set(scale.filter((row) => isOwn(row.id)).map((row) => row.id))) {
    const own = scale.filter((row) => row.id === id);
    const fewest = own[0]!;
    const most = own[own.length - 1]!;
    if (most.nodes === fewest.nodes) continue;
    for (const [what, pick] of [
      ['cluster CPU', (row: ScaleSummary) => row.direct.cpu],
      ['cluster CPU less idle', (row: ScaleSummary) => row.netCpu],
    ] as const) {
      const growth = ratioOf(pick(most), pick(fewest));
      check(
        most.label,
        `${what} / direct message at ${most.nodes} nodes ≤ 1.1× at ${fewest.nodes}`,
        growth === undefined ? '—' : `${growth.toFixed(3)}×`,
        growth === undefined ? undefined : growth <= 1.1,
      );
    }
    for (const row of own) {
      const base = scale.find((item) => item.id === BASELINE.fanout && item.nodes === row.nodes);
      const versus = ratioOf(row.direct.cpu, base?.direct.cpu);
      check(
        row.label,
        `cluster CPU / direct message at ${row.nodes} nodes ≤ hand-written`,
        versus === undefined ? '—' : `${versus.toFixed(3)}×`,
        versus === undefined ? undefined : versus <= 1,
      );
    }
  }
  return table(['implementation', 'target (DESIGN.md)', 'measured', ''], rows);
}

function ratioOf(value: Spread | undefined, base: Spread | undefined): number | undefined {
  return value === undefined || base === undefined || base.median === 0
    ? undefined
    : value.median / base.median;
}

/**
 * One phase of the scaling scenario as nodes are added (direct messages or broadcasts): each
 * implementation against its fewest nodes and against the baseline at the same node count.
 */
function scaleTable(
  scale: ScaleSummary[],
  unit: 'message' | 'delivery',
  pick: (row: ScaleSummary) => { phase: PhaseSummary | undefined; net: Spread | undefined },
): string {
  const direct = unit === 'message';
  const rows = scale.filter((row) => pick(row).phase !== undefined);
  return table(
    [
      'implementation',
      'nodes',
      `${unit === 'message' ? 'messages' : 'deliveries'}/s`,
      `cluster CPU µs/${unit}`,
      '× its fewest nodes',
      '× hand-written',
      `less idle µs/${unit}`,
      'less idle × its fewest nodes',
      'less idle × hand-written',
      'idle CPU ms/s',
      `broker CPU µs/${unit}`,
      'p50 ms',
      'p99 ms',
      direct ? 'lost / dup / reordered / misrouted' : 'lost / dup / reordered',
    ],
    rows.map((row) => {
      const { phase, net } = pick(row);
      const fewest = pick(rows.find((item) => item.id === row.id)!);
      const baseRow = rows.find((item) => item.id === BASELINE.fanout && item.nodes === row.nodes);
      const base = baseRow === undefined ? undefined : pick(baseRow);
      return [
        row.label,
        String(row.nodes),
        fmt(phase!.rate, 0),
        fmt(phase!.cpu),
        ratio(phase!.cpu, fewest.phase?.cpu),
        ratio(phase!.cpu, base?.phase?.cpu),
        fmt(net),
        ratio(net, fewest.net),
        ratio(net, base?.net),
        fmt(row.idleCpu),
        fmt(phase!.brokerCpu),
        fmt(phase!.p50),
        fmt(phase!.p99),
        faults(phase!, direct),
      ];
    }),
  );
}

/** The resume storm: per implementation, how long until the killed node's clients were whole. */
function stormTable(storm: StormSummary[]): string {
  return table(
    [
      'implementation',
      'clients (killed node)',
      'connect + join /s',
      'resumed / recovered / killed',
      'back with all p50 ms',
      'p99 ms',
      'last ms',
      'resume p99 ms',
      'surviving nodes CPU µs/resume',
      'broker CPU ms',
      'broker busy % of a core',
      'Redis commands / resume',
      'NATS messages in / resume',
      'lost / dup / reordered',
    ],
    storm.map((row) => [
      row.label,
      `${row.clients} (${Math.round(row.killedClients / Math.max(1, row.rounds))})`,
      fmt(row.connectRate, 0),
      `${row.resumed} / ${row.recovered} / ${row.killedClients}`,
      fmt(row.p50, 0),
      fmt(row.p99, 0),
      fmt(row.last, 0),
      fmt(row.resumeP99, 0),
      fmt(row.cpu, 0),
      fmt(row.brokerCpuMs, 0),
      fmt(row.brokerBusy, 0),
      fmt(row.redisCommands, 0),
      fmt(row.natsMessages, 0),
      `${row.lost} / ${row.duplicated} / ${row.reordered}`,
    ]),
  );
}

export interface ReportInput {
  results: Results;
  fanout: FanoutSummary[];
  idle: IdleSummary[];
  churn: ChurnSummary[];
  scale: ScaleSummary[];
  storm: StormSummary[];
  charts: string[];
  analysis: string | undefined;
}

/** `docs/benchmarks.md`. */
export function markdown({
  results,
  fanout,
  idle,
  churn,
  scale,
  storm,
  charts,
  analysis,
}: ReportInput): string {
  const { meta } = results;
  const { sizes, machine } = meta;
  const base = fanout.find((row) => row.id === BASELINE.fanout);
  const bare = idle.find((row) => row.id === BASELINE.idle);
  const lines: string[] = [];
  const push = (...items: string[]) => lines.push(...items);

  push(
    '# Benchmarks',
    '',
    '<!-- Generated by `pnpm bench` (bench/src/report). Edit bench/ANALYSIS.md, not this file. -->',
    '',
  );
  if (meta.smoke) {
    push(
      '> **Smoke run**: sizes far too small to mean anything; it only proves the harness works.',
      '',
    );
  }
  push(
    `wscale side by side with a hand-written \`ws\` + \`ioredis\` pub/sub server (the least overhead any`,
    'library can have) and Socket.IO 4, in one run, interleaved: every implementation runs once per',
    `round with fresh processes, in an order that rotates each round; ${sizes.rounds} round(s).`,
    'Each cell is the median over the rounds, with the range (min–max) in small print.',
    ...(results.implementations.some((item) => item.experimental && item.available)
      ? [
          'Rows named "experiment" are not products: each tries one idea by hand, to measure what it',
          'would give (see the analysis at the end).',
        ]
      : []),
    '',
    '## Reproduce',
    '',
    '```sh',
    'pnpm install',
    'pnpm bench            # full run, writes docs/benchmarks.md and docs/benchmarks/',
    'pnpm bench --smoke    # tiny sizes, a few seconds',
    '```',
    '',
    'It needs `redis-server` (and `nats-server` for the NATS row) on the PATH; it starts its own on',
    'free loopback ports with temporary directories and stops everything it started by pid, also',
    'when interrupted. `pnpm bench --help` lists the sizes that can be changed.',
    '',
    `This run: \`${meta.command}\`, started ${meta.startedAt}, took ${(meta.durationMs / 60_000).toFixed(1)} min.`,
    '',
    '## Machine, and what bounds the numbers',
    '',
    `- ${machine.cores} × ${machine.cpuModel}, ${machine.memoryGiB} GiB, ${machine.os}, Node ${machine.node}`,
    `- brokers: ${
      Object.entries(meta.brokers)
        .map(([name, version]) => `${name}: ${version ?? '?'}`)
        .join('; ') || 'none'
    }`,
    `- packages: ${Object.entries(meta.packages)
      .map(([name, version]) => `${name} ${version}`)
      .join(', ')}`,
  );
  if (meta.load !== undefined) {
    push(
      `- machine load: load average ${meta.load.loadavgStart.toFixed(2)} at the start, ${meta.load.loadavgEnd.toFixed(2)} at the end; all cores ${meta.load.busyPercent.toFixed(0)}% busy over the run (other work on the machine disturbs the numbers; the rounds and medians absorb some of it)`,
    );
  }
  push(
    '',
    `Everything shares ${machine.cores} cores: the ${sizes.nodes} node processes, the broker and the load`,
    'generator (one process holding every client and the publisher). So throughput at top speed is',
    "bounded by the machine, mostly by the load generator's own CPU (its column shows it), not by",
    'the servers alone; compare implementations with each other, not with other machines. Server CPU',
    "is each node process's own `process.cpuUsage()` delta over the scenario, reported over IPC, so",
    "the load generator's work is never counted; the broker's CPU (redis-server, nats-server, or the",
    'node:cluster primary) is read from `/proc` and shown apart. Latency is end to end, from the',
    "publisher's send to the client's receive, both in the load generator (one clock); it includes",
    "the load generator's own queueing, the same for every implementation.",
    '',
    '## Scenarios',
    '',
    `- **Fan-out**: ${sizes.clients} clients in one room, spread round-robin over ${sizes.nodes} node processes`,
    `  (the memory broker runs one node); a publisher client on node 0 sends numbered, timestamped`,
    `  ${sizes.size}-byte messages that the server broadcasts to the room, after ${fanoutWarmup(sizes)}. _Fixed rate_: ${sizes.messages} messages at`,
    `  ${sizes.rate}/s (${sizes.rate * sizes.clients} deliveries/s). _Top speed_: ${sizes.maxMessages} messages as fast as the publisher can send.`,
    `- **Direct**: ${sizes.directMessages} messages at ${sizes.directRate}/s from the publisher to clients on other nodes, round robin${directWarmup(sizes)}.`,
    '  The phases run in this order on the same nodes: direct, fixed rate, top speed (the overload last: what it',
    '  leaves behind, grown heaps and buffers, would weigh on a phase after it).',
    `- **Idle memory**: RSS growth of one node process (after garbage collection) per connection, at`,
    `  ${sizes.idleClients} connections, each in the room, and how many it accepts per second (100 at a time);`,
    '  then a broadcast to all of them in that one room.',
    `- **Connect + resume churn** (wscale only: the others have no session resume across nodes):`,
    `  ${sizes.churnClients ?? '?'} \`wscale.v1\` clients (\`@wscale/client\`) join the room, which keeps history, on a shared`,
    '  state store. Then the connections of one node (1/K of the clients) are dropped at once; each',
    '  client reconnects (with',
    '  its backoff) to the next node and resumes its session there. First with nothing published',
    `  meanwhile (the cost of a resume), then with ${sizes.churnMessages ?? '?'} messages published while they are away,`,
    '  which each client must recover exactly once and in order.',
    '- **Churn soak** (wscale on Redis): thousands of client lives against one node, bad clients among',
    '  them; then heap, clients, rooms and broker subscriptions must be back to their baseline.',
    `- **As nodes are added**: the fan-out scenario's clients over ${(sizes.scaleNodes ?? []).join(', ')} node processes, direct`,
    "  messages to the clients of one node, then broadcasts to all; the whole cluster's CPU.",
    `- **Resume storm** (wscale on Redis and NATS): ${sizes.stormClients ?? '?'} \`wscale.v1\` clients over 3 nodes, one node`,
    '  killed, its clients resume elsewhere and recover what was published meanwhile.',
    `- **Most connections across nodes**: clients opened over ${sizes.capacityNodes ?? '?'} node processes, step by step, up to`,
    `  ${sizes.capacityMax ?? '?'} (or what the open-files limit allows), until one fails or ${sizes.capacitySeconds ?? '?'} s pass; memory per`,
    '  connection per node against bare `ws`, connect rate, then a broadcast to all of them.',
    '',
    'Before measuring, a warm-up publishes until a broadcast reaches every client. A message counts',
    'as lost if it has not arrived when nothing more arrived for a few seconds; duplicated and',
    'reordered are counted per client.',
    '',
  );

  push(
    '## Fan-out at a fixed rate',
    '',
    table(
      [
        'implementation',
        'nodes',
        'deliveries/s',
        'server CPU µs/delivery',
        '× hand-written',
        'broker CPU µs/delivery',
        'load-gen CPU µs/delivery',
        'p50 ms',
        'p95 ms',
        'p99 ms',
        '× hand-written',
        'p99 first copy ms',
        'lost / dup / reordered',
        'RSS per node, connected (MiB)',
      ],
      fanout.map((row) => [
        row.label,
        String(row.nodes),
        fmt(row.fixed.rate, 0),
        fmt(row.fixed.cpu),
        ratio(row.fixed.cpu, base?.fixed.cpu),
        fmt(row.fixed.brokerCpu),
        fmt(row.fixed.loadCpu),
        fmt(row.fixed.p50),
        fmt(row.fixed.p95),
        fmt(row.fixed.p99),
        ratio(row.fixed.p99, base?.fixed.p99),
        fmt(row.fixed.p99First),
        faults(row.fixed),
        fmt(row.rssConnected, 1, MiB),
      ]),
    ),
    '',
    '## Fan-out at top speed (overload)',
    '',
    table(
      [
        'implementation',
        'deliveries/s',
        'server CPU µs/delivery',
        '× hand-written',
        'broker CPU µs/delivery',
        'load-gen CPU µs/delivery',
        'p99 ms',
        'peak RSS of a node (MiB)',
        'peak ÷ connected RSS',
        'lost / dup / reordered',
      ],
      fanout.map((row) => [
        row.label,
        fmt(row.max.rate, 0),
        fmt(row.max.cpu),
        ratio(row.max.cpu, base?.max.cpu),
        fmt(row.max.brokerCpu),
        fmt(row.max.loadCpu),
        fmt(row.max.p99),
        fmt(row.max.peakRss, 1, MiB),
        fmt(row.peakOverConnected),
        faults(row.max),
      ]),
    ),
    '',
    '## Direct messages to clients on other nodes',
    '',
    table(
      [
        'implementation',
        'messages/s',
        'server CPU µs/message',
        '× hand-written',
        'broker CPU µs/message',
        'p50 ms',
        'p99 ms',
        'lost / dup / reordered / misrouted',
      ],
      fanout.map((row) => [
        row.label,
        fmt(row.direct.rate, 0),
        fmt(row.direct.cpu),
        ratio(row.direct.cpu, base?.direct.cpu),
        fmt(row.direct.brokerCpu),
        fmt(row.direct.p50),
        fmt(row.direct.p99),
        faults(row.direct, true),
      ]),
    ),
    '',
    `## One node, ${sizes.idleClients} connections: memory and connect rate`,
    '',
    table(
      [
        'implementation',
        'connections',
        'RSS KiB/connection',
        '× bare ws',
        'JS heap KiB/connection',
        'connections accepted /s',
        'connections × bare ws',
      ],
      idle.map((row) => [
        row.label,
        String(row.connections),
        fmt(row.rssPerConnection, 2, KiB),
        ratio(row.rssPerConnection, bare?.rssPerConnection),
        fmt(row.heapPerConnection, 2, KiB),
        fmt(row.connectRate, 0),
        ratio(row.connectRate, bare?.connectRate),
      ]),
    ),
    '',
  );
  if (churn.length > 0) {
    push(
      '## Connect + resume churn',
      '',
      table(
        [
          'implementation',
          'connect + join /s',
          'messages while away',
          'resumed / dropped',
          'recovered',
          'resume p50 ms',
          'resume p99 ms',
          'all back after (ms)',
          'server CPU µs/resume',
          'broker CPU µs/resume',
          'lost / dup / reordered',
        ],
        churn.flatMap((row) =>
          row.cycles.map((cycle, i) => [
            i === 0 ? row.label : '',
            i === 0 ? fmt(row.connectRate, 0) : '',
            String(cycle.messages),
            `${cycle.resumed} / ${cycle.dropped}`,
            String(cycle.recovered),
            fmt(cycle.p50),
            fmt(cycle.p99),
            fmt(cycle.allBack, 0),
            fmt(cycle.cpu, 0),
            fmt(cycle.brokerCpu, 0),
            cycle.messages > 0 ? `${cycle.lost} / ${cycle.duplicated} / ${cycle.reordered}` : '—',
          ]),
        ),
      ),
      '',
      'Resume latency runs from the moment a client starts to resume (after its backoff) to its',
      '`welcome`; "all back" runs from the drop to the last client back, backoff included (the',
      "client's default: a random wait below 500 ms). Counts are summed over the rounds.",
      '',
    );
  }
  push(...soakSection(results, table));
  push(...compressionSection(results.compression, table));
  if (scale.length > 0) {
    push(
      '## Direct messages as nodes are added',
      '',
      scaleTable(scale, 'message', (row) => ({ phase: row.direct, net: row.netCpu })),
      '',
      `The ${sizes.clients} clients spread over ${(sizes.scaleNodes ?? []).join(', ')} node processes; the publisher (on node 0) sends ${sizes.directMessages} direct`,
      `messages at ${sizes.directRate}/s to the clients of node 1 alone, round robin${directWarmup(sizes)}. What a message needs (node 0 takes it,`,
      'node 1 writes it) is the same at every node count; the other nodes hold clients but none of these',
      'messages is for them. "Cluster CPU" is the sum over every node process: what a message costs the',
      'whole cluster.',
      '"Less idle" subtracts what the same nodes spent over an idle window as long as the sending,',
      'measured just before it (after collecting garbage): the cost of the messages themselves.',
      '',
    );
  }
  if (scale.some((row) => row.fanout !== undefined)) {
    push(
      '## Broadcasts as nodes are added',
      '',
      scaleTable(scale, 'delivery', (row) => ({ phase: row.fanout, net: row.fanoutNetCpu })),
      '',
      `The same clusters: after the direct messages, the publisher (on node 0) broadcasts ${sizes.scaleMessages ?? '?'} messages at`,
      `${sizes.rate}/s to the room of all ${sizes.clients} clients, which every node delivers to its share of them. The`,
      'deliveries are the same at every node count; what grows with the nodes is what each node spends',
      'per message besides its own deliveries (taking it from the broker, decoding it, framing it once).',
      '',
    );
  }
  const bigRoom = idle.filter((row) => row.fanout !== undefined);
  if (bigRoom.length > 0) {
    const baseRoom = bigRoom.find((row) => row.id === BASELINE.fanout);
    push(
      `## One room of ${sizes.idleClients} clients on one node`,
      '',
      table(
        [
          'implementation',
          'deliveries/s',
          'server CPU µs/delivery',
          '× hand-written',
          'broker CPU µs/delivery',
          'p50 ms',
          'p99 ms',
          '× hand-written',
          'lost / dup / reordered',
        ],
        bigRoom.map((row) => [
          row.label,
          fmt(row.fanout!.rate, 0),
          fmt(row.fanout!.cpu),
          ratio(row.fanout!.cpu, baseRoom?.fanout?.cpu),
          fmt(row.fanout!.brokerCpu),
          fmt(row.fanout!.p50),
          fmt(row.fanout!.p99),
          ratio(row.fanout!.p99, baseRoom?.fanout?.p99),
          faults(row.fanout!),
        ]),
      ),
      '',
      `The clients of the idle-memory scenario, after it measured them; then a publisher on the same node`,
      `broadcasts ${sizes.bigRoomMessages ?? '?'} messages at ${sizes.bigRoomRate ?? '?'}/s to the room (${(sizes.bigRoomRate ?? 0) * sizes.idleClients} deliveries/s). Bare \`ws\` broadcasts`,
      'to every socket of its process, with no broker.',
      '',
    );
  }
  if (storm.length > 0) {
    push(
      '## Resume storm: a node killed',
      '',
      stormTable(storm),
      '',
      `${sizes.stormClients ?? '?'} \`wscale.v1\` clients (\`@wscale/client\`) in the room, which keeps history, on a shared state store,`,
      'spread over 3 node processes; the publisher is on node 2. Node 0, holding a third of them, is',
      `killed (SIGKILL); once its clients noticed, ${sizes.stormMessages ?? '?'} messages are published, and each of them`,
      "reconnects (with the client's backoff, a random wait below 500 ms) to node 1, resumes its",
      'session there and recovers the messages. "Back with all" runs, per client, from the first',
      'client noticing the drop until it had its `welcome` and every message; "resume" from starting to',
      "resume to `welcome`. The broker's CPU (redis-server or nats-server, from `/proc`) is over the",
      'storm, from just before the kill until every client was back with every message. Counts are',
      'summed over the rounds.',
      '',
    );
  }
  push(...capacitySection(results, table));
  push(
    '## Connecting',
    '',
    table(
      ['implementation', 'clients connected and in the room per second'],
      fanout.map((row) => [row.label, fmt(row.connectRate, 0)]),
    ),
    '',
    `${sizes.clients} clients of the fan-out scenario, 50 at a time, each counted once its server said it is in the room.`,
    '',
    '## Targets',
    '',
    targets(fanout, idle, churn, scale),
    '',
  );
  if (charts.length > 0) {
    push('## Charts', '', ...charts.map((chart) => `![${chart}](benchmarks/${chart})\n`));
  }
  const missing = results.implementations.filter((item) => !item.available);
  if (missing.length > 0) {
    push('## Not in this run', '', ...missing.map((item) => `- ${item.label}: ${item.reason}`), '');
  }
  if (results.errors.length > 0) {
    push(
      '## Errors',
      '',
      ...results.errors.map(
        (error) =>
          `- ${error.implementation}, ${error.scenario}, round ${error.round}: ${error.message.split('\n')[0]}`,
      ),
      '',
    );
  }
  if (analysis !== undefined) push(analysis.trim(), '');
  push(
    '## Raw data',
    '',
    'Every round of every scenario, with per-node numbers: [benchmarks/results.json](benchmarks/results.json).',
    '',
  );
  return lines.join('\n');
}

/** How the fan-out phases were warmed up (results before `fanoutWarmup` had `warmup` alone). */
function fanoutWarmup(sizes: Sizes): string {
  return sizes.fanoutWarmup === undefined
    ? `${sizes.warmup} warm-up broadcasts`
    : `${sizes.fanoutWarmup} warm-up broadcasts (unmeasured: the per-message path then runs optimized, as on a server that has run a while)`;
}

/** How the direct phases were warmed up, as the scenario lines say it. */
function directWarmup(sizes: Sizes): string {
  const warmup = sizes.directWarmup ?? 0;
  return warmup > 0
    ? `, after ${warmup} of the same sent unmeasured (the direct path compiled, as on a server that has run a while)`
    : '';
}
