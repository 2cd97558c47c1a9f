import type { BrokerStatus, History, StateStore } from '../contracts.js';

/** Whether a store a node depends on answered a probe. */
export type DependencyStatus = 'ok' | 'down' | 'none';

/** What `wss.health()` reports about one node. */
export interface HealthReport {
  /**
   * Whether the node should be given new clients: started, listening (or attached to a server)
   * and not draining. A readiness probe answers with this. The broker and the stores do not
   * count: they are shared, so every node would fail alike (watch them in alerts instead).
   */
  ready: boolean;
  /** `ready()` resolved and, with `port`, the HTTP server listens. */
  listening: boolean;
  /** `close()` was called: the node answers new upgrades with 503 and sends its clients away. */
  draining: boolean;
  /** The broker's connection state. */
  broker: BrokerStatus;
  /** Whether the state store answered a read in time (`none`: the node keeps sessions itself). */
  stateStore: DependencyStatus;
  /** Whether every history store answered in time (`none`: no room keeps history). */
  history: DependencyStatus;
  /** The other nodes alive. */
  nodes: string[];
  /** Clients connected to this node. */
  connections: number;
}

/** Options of `wss.health()`. */
export interface HealthOptions {
  /** How long a store may take to answer its probe before it counts as down. @default 1000 */
  timeoutMs?: number;
}

/** Reads one key of the state store (the probe's key, never a session's), within `ms`. */
export function probeStateStore(
  store: StateStore,
  key: string,
  ms: number,
): Promise<DependencyStatus> {
  return within(ms, store.get(key));
}

/** Reads the position of one probe room in every history store, within `ms`. */
export function probeHistories(
  stores: readonly History[],
  room: string,
  ms: number,
): Promise<DependencyStatus> {
  if (stores.length === 0) return Promise.resolve('none');
  return within(ms, Promise.all([...new Set(stores)].map((store) => store.position(room))));
}

async function within(ms: number, probe: Promise<unknown>): Promise<DependencyStatus> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<DependencyStatus>((resolve) => {
    timer = setTimeout(() => resolve('down'), ms);
  });
  try {
    return await Promise.race([probe.then((): DependencyStatus => 'ok'), late]);
  } catch {
    return 'down';
  } finally {
    clearTimeout(timer);
  }
}
