import type { ClientKind } from '../load/clients.js';

/** Which external broker an implementation needs. */
export type Needs = 'redis' | 'nats';

/** One contender of the benchmark. */
export interface Implementation {
  id: string;
  label: string;
  client: ClientKind;
  needs: Needs[];
  /** A node:cluster application: one primary (the broker) forks the nodes. */
  cluster: boolean;
  /** Runs all its clients on one node whatever the run's node count (the memory broker). */
  singleNode: boolean;
  /** Takes part in the fan-out and direct scenarios. */
  fanout: boolean;
  /** Takes part in the idle-memory scenario. */
  idle: boolean;
  /** Takes part in the connect + resume churn scenario (needs session resume). */
  churn?: boolean;
  /** Takes part in the churn soak (wscale on Redis: its subscriptions can be counted). */
  soak?: boolean;
  /** Takes part in the scaling scenario (direct messages and broadcasts at several node counts). */
  scale?: boolean;
  /** Takes part in the resume storm (a node of three killed; needs an external broker). */
  storm?: boolean;
  /**
   * Takes part in "most connections across nodes" (its broadcast too when `fanout`: the bare `ws`
   * baseline runs as independent processes, for memory and connect rate only).
   */
  capacity?: boolean;
  /** An experiment (not a product): shown in the tables, left out of the targets. */
  experimental?: boolean;
  /** What must be importable for it to run (besides its brokers). */
  requires?: { module: string; exportName?: string };
}

export const IMPLEMENTATIONS: readonly Implementation[] = [
  {
    id: 'ws-redis',
    capacity: true,
    scale: true,
    label: 'hand-written ws + ioredis',
    client: 'ws',
    needs: ['redis'],
    cluster: false,
    singleNode: false,
    fanout: true,
    idle: true,
  },
  {
    id: 'wscale-redis',
    capacity: true,
    churn: true,
    storm: true,
    soak: true,
    scale: true,
    label: 'wscale (Redis)',
    client: 'ws',
    needs: ['redis'],
    cluster: false,
    singleNode: false,
    fanout: true,
    idle: true,
    requires: { module: '@wscale/redis', exportName: 'RedisBroker' },
  },
  {
    // The cost of metrics: wscale-redis with @wscale/prometheus collecting, scraped every second
    // (a real Prometheus scrapes every 15 s or so). Its counters in core run in every variant.
    id: 'wscale-redis-metrics',
    label: 'wscale (Redis) + Prometheus metrics, scraped every second',
    client: 'ws',
    needs: ['redis'],
    cluster: false,
    singleNode: false,
    fanout: true,
    idle: false,
    experimental: true,
    requires: { module: '@wscale/prometheus', exportName: 'collectMetrics' },
  },
  {
    id: 'wscale-memory',
    churn: true,
    label: 'wscale (memory, 1 node)',
    client: 'ws',
    needs: [],
    cluster: false,
    singleNode: true,
    fanout: true,
    idle: true,
  },
  {
    id: 'wscale-cluster',
    churn: true,
    label: 'wscale (node:cluster)',
    client: 'ws',
    needs: [],
    cluster: true,
    singleNode: false,
    fanout: true,
    idle: false,
    requires: { module: '@wscale/core', exportName: 'ClusterHub' },
  },
  {
    id: 'wscale-nats',
    churn: true,
    storm: true,
    label: 'wscale (NATS)',
    client: 'ws',
    needs: ['nats'],
    cluster: false,
    singleNode: false,
    fanout: true,
    idle: false,
    requires: { module: '@wscale/nats', exportName: 'NatsBroker' },
  },
  {
    id: 'socketio-redis',
    scale: true,
    label: 'Socket.IO 4 + redis-adapter',
    client: 'socketio',
    needs: ['redis'],
    cluster: false,
    singleNode: false,
    fanout: true,
    idle: true,
  },
  {
    id: 'socketio-streams',
    label: 'Socket.IO 4 + redis-streams-adapter',
    client: 'socketio',
    needs: ['redis'],
    cluster: false,
    singleNode: false,
    fanout: true,
    idle: false,
  },
  {
    id: 'ws-redis-preframed',
    label: 'experiment: hand-written, framed once + corked',
    client: 'ws',
    needs: ['redis'],
    cluster: false,
    singleNode: false,
    fanout: true,
    idle: false,
    experimental: true,
  },
  {
    id: 'bare-ws',
    capacity: true,
    label: 'bare ws (1 process, no broker)',
    client: 'ws',
    needs: [],
    cluster: false,
    singleNode: true,
    fanout: false,
    idle: true,
  },
];

/** The baselines the report compares with. */
export const BASELINE = { fanout: 'ws-redis', idle: 'bare-ws' } as const;

/** Why an implementation cannot run here, or undefined when it can. */
export async function unavailableReason(
  implementation: Implementation,
  binaries: Record<Needs, boolean>,
): Promise<string | undefined> {
  for (const need of implementation.needs) {
    if (!binaries[need]) return `${need}-server is not installed`;
  }
  const requires = implementation.requires;
  if (requires === undefined) return undefined;
  try {
    const module = (await import(requires.module)) as Record<string, unknown>;
    if (requires.exportName !== undefined && module[requires.exportName] === undefined) {
      return `not yet available (${requires.module} has no ${requires.exportName})`;
    }
    return undefined;
  } catch {
    return `not yet available (${requires.module} is not in this workspace or not built)`;
  }
}
