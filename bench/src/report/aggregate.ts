import type { Results } from '../harness/results.js';
import type {
  ChurnCycle,
  ChurnRound,
  FanoutRound,
  IdleRound,
  PhaseResult,
  ScaleRound,
} from '../harness/scenarios.js';
import type { StormRound } from '../harness/storm-scenario.js';

/** A value over the rounds: its median and range. */
export interface Spread {
  median: number;
  min: number;
  max: number;
  rounds: number;
}

export function spread(values: number[]): Spread | undefined {
  const finite = values.filter((value) => Number.isFinite(value)).sort((a, b) => a - b);
  if (finite.length === 0) return undefined;
  return {
    median: median(finite),
    min: finite[0]!,
    max: finite[finite.length - 1]!,
    rounds: finite.length,
  };
}

/** The median of some rounds' values (the mean of the middle two for an even count). */
export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

/** The numbers of one scenario of one implementation, over the rounds. */
export interface PhaseSummary {
  /** Deliveries (or direct messages) per second. */
  rate?: Spread;
  /** Server CPU per delivery: the node processes' own CPU time, µs. */
  cpu?: Spread;
  /** The broker process's CPU per delivery, µs. */
  brokerCpu?: Spread;
  /** The load generator's CPU per delivery, µs. */
  loadCpu?: Spread;
  p50?: Spread;
  p95?: Spread;
  p99?: Spread;
  p99First?: Spread;
  /** Highest RSS of any node during the scenario, bytes. */
  peakRss?: Spread;
  /** Summed over the rounds. */
  lost: number;
  duplicated: number;
  reordered: number;
  misrouted: number;
  deliveries: number;
}

export interface FanoutSummary {
  id: string;
  label: string;
  nodes: number;
  rounds: number;
  fixed: PhaseSummary;
  max: PhaseSummary;
  direct: PhaseSummary;
  /** RSS of a node with its clients connected (mean over nodes), bytes. */
  rssConnected?: Spread;
  /** Highest RSS of any node during the whole round over its connected RSS. */
  peakOverConnected?: Spread;
  /** Clients connected (and in the room) per second, 50 at a time. */
  connectRate?: Spread;
}

/** One churn cycle over the rounds. */
export interface ChurnCycleSummary {
  messages: number;
  dropped: number;
  resumed: number;
  recovered: number;
  /** From starting to resume to `welcome`, ms. */
  p50?: Spread;
  p99?: Spread;
  /** From the drop to the last client back (with the client's reconnect backoff), ms. */
  allBack?: Spread;
  /** Server (node processes') CPU per resumed client, µs. */
  cpu?: Spread;
  brokerCpu?: Spread;
  lost: number;
  duplicated: number;
  reordered: number;
}

export interface ChurnSummary {
  id: string;
  label: string;
  rounds: number;
  clients: number;
  /** `wscale.v1` clients connected and joined (acknowledged) per second. */
  connectRate?: Spread;
  cycles: ChurnCycleSummary[];
}

/** Direct messages and broadcasts at one node count, over the rounds. */
export interface ScaleSummary {
  id: string;
  label: string;
  nodes: number;
  rounds: number;
  direct: PhaseSummary;
  /** The cluster's CPU per message less what it spends idle over as long, µs. */
  netCpu?: Spread;
  /** Broadcasts to every client, when the run had them. */
  fanout?: PhaseSummary;
  /** The cluster's CPU per delivery less what it spends idle over as long, µs. */
  fanoutNetCpu?: Spread;
  /** The cluster's idle CPU per second of wall time, ms. */
  idleCpu?: Spread;
}

export interface IdleSummary {
  id: string;
  label: string;
  rounds: number;
  connections: number;
  /** Connections accepted (and in the room) per second, 100 at a time. */
  connectRate?: Spread;
  /** Broadcasts to all of them in one room, when the run had them. */
  fanout?: PhaseSummary;
  /** RSS growth per connection, bytes. */
  rssPerConnection?: Spread;
  /** JS heap growth per connection, bytes. */
  heapPerConnection?: Spread;
}

const sum = (values: number[]) => values.reduce((total, value) => total + value, 0);
const max = (values: number[]) => values.reduce((top, value) => Math.max(top, value), 0);

function summarizePhase(phases: PhaseResult[]): PhaseSummary {
  const per = (pick: (phase: PhaseResult) => number) => spread(phases.map(pick));
  const delivered = (phase: PhaseResult) => Math.max(1, phase.delivery.delivered);
  const summary: PhaseSummary = {
    lost: sum(phases.map((phase) => phase.delivery.lost)),
    duplicated: sum(phases.map((phase) => phase.delivery.duplicated)),
    reordered: sum(phases.map((phase) => phase.delivery.reordered)),
    misrouted: sum(phases.map((phase) => phase.delivery.misrouted)),
    deliveries: sum(phases.map((phase) => phase.delivery.delivered)),
  };
  const assign = <K extends keyof PhaseSummary>(key: K, value: PhaseSummary[K] | undefined) => {
    if (value !== undefined) summary[key] = value;
  };
  assign(
    'rate',
    per((phase) => phase.delivery.delivered / (phase.delivery.durationMs / 1000)),
  );
  assign(
    'cpu',
    per((phase) => sum(phase.nodeCpuMicros) / delivered(phase)),
  );
  assign(
    'brokerCpu',
    spread(
      phases
        .filter((phase) => phase.brokerCpuMicros !== null)
        .map((phase) => phase.brokerCpuMicros! / delivered(phase)),
    ),
  );
  assign(
    'loadCpu',
    per((phase) => phase.loadCpuMicros / delivered(phase)),
  );
  assign(
    'p50',
    per((phase) => phase.delivery.latencyAll.p50),
  );
  assign(
    'p95',
    per((phase) => phase.delivery.latencyAll.p95),
  );
  assign(
    'p99',
    per((phase) => phase.delivery.latencyAll.p99),
  );
  assign(
    'p99First',
    per((phase) => phase.delivery.latencyFirst.p99),
  );
  assign(
    'peakRss',
    per((phase) => max(phase.peakRss)),
  );
  return summary;
}

function summarizeFanout(id: string, label: string, rounds: FanoutRound[]): FanoutSummary {
  const summary: FanoutSummary = {
    id,
    label,
    nodes: rounds[0]?.nodes ?? 0,
    rounds: rounds.length,
    fixed: summarizePhase(rounds.map((round) => round.fixed)),
    max: summarizePhase(rounds.map((round) => round.max)),
    direct: summarizePhase(rounds.map((round) => round.direct)),
  };
  const connected = spread(
    rounds.map((round) => sum(round.rssConnected) / round.rssConnected.length),
  );
  if (connected !== undefined) summary.rssConnected = connected;
  const peak = spread(
    rounds.map((round) => {
      const peaks = [round.fixed, round.max, round.direct].flatMap((phase) => phase.peakRss);
      return max(peaks) / max(round.rssConnected);
    }),
  );
  if (peak !== undefined) summary.peakOverConnected = peak;
  const connect = spread(rounds.map((round) => (sum(round.perNode) / round.connectMs) * 1000));
  if (connect !== undefined) summary.connectRate = connect;
  return summary;
}

function summarizeCycle(cycles: ChurnCycle[]): ChurnCycleSummary {
  const resumed = (cycle: ChurnCycle) => Math.max(1, cycle.result.resumed);
  const summary: ChurnCycleSummary = {
    messages: cycles[0]?.messages ?? 0,
    dropped: sum(cycles.map((cycle) => cycle.result.dropped)),
    resumed: sum(cycles.map((cycle) => cycle.result.resumed)),
    recovered: sum(cycles.map((cycle) => cycle.result.recovered)),
    lost: sum(cycles.map((cycle) => cycle.result.delivery?.lost ?? 0)),
    duplicated: sum(cycles.map((cycle) => cycle.result.delivery?.duplicated ?? 0)),
    reordered: sum(cycles.map((cycle) => cycle.result.delivery?.reordered ?? 0)),
  };
  const set = <K extends keyof ChurnCycleSummary>(
    key: K,
    value: ChurnCycleSummary[K] | undefined,
  ) => {
    if (value !== undefined) summary[key] = value;
  };
  set('p50', spread(cycles.map((cycle) => cycle.result.resumeLatency.p50)));
  set('p99', spread(cycles.map((cycle) => cycle.result.resumeLatency.p99)));
  set('allBack', spread(cycles.map((cycle) => cycle.result.allBackMs)));
  set('cpu', spread(cycles.map((cycle) => sum(cycle.nodeCpuMicros) / resumed(cycle))));
  set(
    'brokerCpu',
    spread(
      cycles
        .filter((cycle) => cycle.brokerCpuMicros !== null)
        .map((cycle) => cycle.brokerCpuMicros! / resumed(cycle)),
    ),
  );
  return summary;
}

function summarizeChurn(id: string, label: string, rounds: ChurnRound[]): ChurnSummary {
  const summary: ChurnSummary = {
    id,
    label,
    rounds: rounds.length,
    clients: rounds[0]?.clients ?? 0,
    cycles: (rounds[0]?.cycles ?? []).map((_, i) =>
      summarizeCycle(rounds.map((round) => round.cycles[i]!).filter(Boolean)),
    ),
  };
  const connect = spread(rounds.map((round) => (round.clients / round.connectMs) * 1000));
  if (connect !== undefined) summary.connectRate = connect;
  return summary;
}

function summarizeScale(
  id: string,
  label: string,
  nodes: number,
  rounds: ScaleRound[],
): ScaleSummary {
  const summary: ScaleSummary = {
    id,
    label,
    nodes,
    rounds: rounds.length,
    direct: summarizePhase(rounds.map((round) => round.direct)),
  };
  const idlePerMs = (round: ScaleRound) => sum(round.idleCpuMicros ?? []) / (round.idleMs || 1);
  const netOf = (rounds: Array<[ScaleRound, PhaseResult]>) =>
    spread(
      rounds.map(([round, { delivery, nodeCpuMicros }]) => {
        const idle = idlePerMs(round) * delivery.durationMs;
        return (sum(nodeCpuMicros) - idle) / Math.max(1, delivery.delivered);
      }),
    );
  const net = netOf(rounds.map((round) => [round, round.direct]));
  if (net !== undefined) summary.netCpu = net;
  const broadcasts = rounds.flatMap(
    (round): Array<[ScaleRound, PhaseResult]> =>
      round.fanout === undefined ? [] : [[round, round.fanout]],
  );
  if (broadcasts.length > 0) {
    summary.fanout = summarizePhase(broadcasts.map(([, phase]) => phase));
    const fanoutNet = netOf(broadcasts);
    if (fanoutNet !== undefined) summary.fanoutNetCpu = fanoutNet;
  }
  const idle = spread(rounds.map((round) => idlePerMs(round)));
  if (idle !== undefined) summary.idleCpu = idle;
  return summary;
}

function summarizeIdle(id: string, label: string, rounds: IdleRound[]): IdleSummary {
  const summary: IdleSummary = {
    id,
    label,
    rounds: rounds.length,
    connections: rounds[0]?.connections ?? 0,
  };
  const connect = spread(
    rounds.flatMap((round) =>
      round.connectMs === undefined ? [] : [(round.connections / round.connectMs) * 1000],
    ),
  );
  if (connect !== undefined) summary.connectRate = connect;
  const fanouts = rounds.flatMap((round) => (round.fanout === undefined ? [] : [round.fanout]));
  if (fanouts.length > 0) summary.fanout = summarizePhase(fanouts);
  const rss = spread(rounds.map((round) => (round.rssAfter - round.rssBefore) / round.connections));
  const heap = spread(
    rounds.map((round) => (round.heapAfter - round.heapBefore) / round.connections),
  );
  if (rss !== undefined) summary.rssPerConnection = rss;
  if (heap !== undefined) summary.heapPerConnection = heap;
  return summary;
}

/** The resume storm of one implementation, over the rounds. */
export interface StormSummary {
  id: string;
  label: string;
  rounds: number;
  clients: number;
  /** Summed over the rounds. */
  killedClients: number;
  resumed: number;
  recovered: number;
  lost: number;
  duplicated: number;
  reordered: number;
  /** Per client, from the first drop until it was back with every missed message, ms. */
  p50?: Spread;
  p99?: Spread;
  last?: Spread;
  /** From starting to resume to `welcome`, ms. */
  resumeP99?: Spread;
  /** The broker process's CPU over the storm, ms, and as a share of one core, %. */
  brokerCpuMs?: Spread;
  brokerBusy?: Spread;
  /** The surviving nodes' CPU per resumed client, µs. */
  cpu?: Spread;
  /** Commands redis-server processed over the storm per resumed client (Redis only). */
  redisCommands?: Spread;
  /** Messages nats-server received over the storm per resumed client (NATS only). */
  natsMessages?: Spread;
  connectRate?: Spread;
}

function summarizeStorm(id: string, label: string, rounds: StormRound[]): StormSummary {
  const results = rounds.map((round) => round.cycle.result);
  const summary: StormSummary = {
    id,
    label,
    rounds: rounds.length,
    clients: rounds[0]?.clients ?? 0,
    killedClients: sum(rounds.map((round) => round.killedClients)),
    resumed: sum(results.map((result) => result.resumed)),
    recovered: sum(results.map((result) => result.recovered)),
    lost: sum(results.map((result) => result.delivery?.lost ?? 0)),
    duplicated: sum(results.map((result) => result.delivery?.duplicated ?? 0)),
    reordered: sum(results.map((result) => result.delivery?.reordered ?? 0)),
  };
  const set = <K extends keyof StormSummary>(key: K, value: StormSummary[K] | undefined) => {
    if (value !== undefined) summary[key] = value;
  };
  const back = results.flatMap((result) =>
    result.backAndRecovered === undefined ? [] : [result.backAndRecovered],
  );
  set('p50', spread(back.map((value) => value.p50)));
  set('p99', spread(back.map((value) => value.p99)));
  set('last', spread(back.map((value) => value.max)));
  set('resumeP99', spread(results.map((result) => result.resumeLatency.p99)));
  const withBroker = rounds.filter((round) => round.cycle.brokerCpuMicros !== null);
  set('brokerCpuMs', spread(withBroker.map((round) => round.cycle.brokerCpuMicros! / 1000)));
  set(
    'brokerBusy',
    spread(
      withBroker.map(
        (round) => (100 * round.cycle.brokerCpuMicros!) / 1000 / (round.cycle.ms ?? 1),
      ),
    ),
  );
  set(
    'cpu',
    spread(
      rounds.map(
        (round) => sum(round.cycle.nodeCpuMicros) / Math.max(1, round.cycle.result.resumed),
      ),
    ),
  );
  set(
    'redisCommands',
    spread(
      rounds.flatMap(({ cycle }) =>
        cycle.redisCommands === undefined
          ? []
          : [cycle.redisCommands / Math.max(1, cycle.result.resumed)],
      ),
    ),
  );
  set(
    'natsMessages',
    spread(
      rounds.flatMap(({ cycle }) =>
        cycle.natsMessages === undefined
          ? []
          : [cycle.natsMessages / Math.max(1, cycle.result.resumed)],
      ),
    ),
  );
  set('connectRate', spread(rounds.map((round) => (round.clients / round.connectMs) * 1000)));
  return summary;
}

/** Per implementation, in the order of the run's list. */
export function summarize(results: Results): {
  fanout: FanoutSummary[];
  idle: IdleSummary[];
  churn: ChurnSummary[];
  scale: ScaleSummary[];
  storm: StormSummary[];
} {
  const fanout: FanoutSummary[] = [];
  const idle: IdleSummary[] = [];
  const churn: ChurnSummary[] = [];
  const scale: ScaleSummary[] = [];
  const storm: StormSummary[] = [];
  for (const implementation of results.implementations) {
    const rounds = results.fanout[implementation.id];
    if (rounds !== undefined && rounds.length > 0) {
      fanout.push(summarizeFanout(implementation.id, implementation.label, rounds));
    }
    const idleRounds = results.idle[implementation.id];
    if (idleRounds !== undefined && idleRounds.length > 0) {
      idle.push(summarizeIdle(implementation.id, implementation.label, idleRounds));
    }
    const churnRounds = results.churn?.[implementation.id];
    if (churnRounds !== undefined && churnRounds.length > 0) {
      churn.push(summarizeChurn(implementation.id, implementation.label, churnRounds));
    }
    const scaleRounds = results.scale?.[implementation.id] ?? [];
    for (const nodes of [...new Set(scaleRounds.map((round) => round.nodes))].sort(
      (a, b) => a - b,
    )) {
      const rounds = scaleRounds.filter((round) => round.nodes === nodes);
      scale.push(summarizeScale(implementation.id, implementation.label, nodes, rounds));
    }
    const stormRounds = results.storm?.[implementation.id];
    if (stormRounds !== undefined && stormRounds.length > 0) {
      storm.push(summarizeStorm(implementation.id, implementation.label, stormRounds));
    }
  }
  return { fanout, idle, churn, scale, storm };
}
