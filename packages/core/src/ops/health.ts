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
  /**
   * Whether the state store took a write in time (`none`: the node keeps sessions itself). A
   * store that answers reads but refuses writes (out of memory, a read-only replica, a user
   * without write permission) is `down`: sessions could not be saved.
   */
  stateStore: DependencyStatus;
  /**
   * Whether every history store took an append in time (`none`: no room keeps history); one that
   * refuses writes is `down`, as above.
   */
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

/**
 * The room every history store's probe appends to: reserved, so no client can join it, and
 * bounded like any room by the store's own length and time limits.
 */
export const PROBE_ROOM = '~health';

const NOTHING = new Uint8Array(0);

/** Writes one key of the state store (the probe's key, never a session's), within `ms`. */
export function probeStateStore(
  store: StateStore,
  key: string,
  ms: number,
): Promise<DependencyStatus> {
  return within(ms, store.set(key, new Date().toISOString()));
}

/** Appends an empty entry to the probe room of every history store, within `ms`. */
export function probeHistories(stores: readonly History[], ms: number): Promise<DependencyStatus> {
  if (stores.length === 0) return Promise.resolve('none');
  return within(
    ms,
    Promise.all([...new Set(stores)].map((store) => store.append(PROBE_ROOM, NOTHING))),
  );
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
