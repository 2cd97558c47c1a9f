/** How a node process is told what to run (through its environment). */
export interface NodeConfig {
  impl: string;
  /** This node's index, from 0. */
  node: number;
  /** How many nodes the run has. */
  nodes: number;
  redisUrl?: string;
  natsUrl?: string;
  host: string;
  /**
   * Run wscale with a shared state store and a history for the room, so that `wscale.v1` clients
   * can resume on any node and recover what they missed (the churn scenario).
   */
  resumable?: boolean;
}

/** A server running in this process. */
export interface RunningServer {
  port: number;
  close(): Promise<void>;
  /** Drops up to `limit` `wscale.v1` connections at once, as a crash of the network would. */
  dropClients?(limit: number): number;
  /** Clients this node holds and rooms with members anywhere (the soak's leak check). */
  counts?(): Promise<ServerCounts>;
}

export interface ServerCounts {
  clients: number;
  rooms: number;
}

export const CONFIG_ENV = 'WSCALE_BENCH_NODE';

export function readConfig(): NodeConfig {
  const raw = process.env[CONFIG_ENV];
  if (raw === undefined) throw new Error(`${CONFIG_ENV} is not set`);
  return JSON.parse(raw) as NodeConfig;
}

/** Closes with a bound, so a stuck close never holds the run. */
export function bounded(promise: Promise<unknown>, ms: number): Promise<void> {
  return Promise.race([
    promise.then(() => undefined),
    new Promise<void>((resolve) => setTimeout(resolve, ms).unref()),
  ]);
}
