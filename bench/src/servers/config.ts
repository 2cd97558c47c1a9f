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

/** wscale's default `heartbeatIntervalMs`: the hand-written servers ping as often. */
export const HEARTBEAT_MS = 30_000;

/**
 * Pings every client every {@link HEARTBEAT_MS}, as wscale's heartbeat does, keeping nothing per
 * client for it. A socket's first read (here, the pong) leaves about 165 bytes of Node and `ws`
 * state behind: a server that never reads from its clients would not count them. Returns the stop.
 */
export function pingEvery(clients: () => Iterable<{ ping(): void }>): () => void {
  const timer = setInterval(() => {
    for (const ws of clients()) ws.ping();
  }, HEARTBEAT_MS);
  timer.unref();
  return () => clearInterval(timer);
}

/** `promise`, or a rejection naming `what` after `ms`. */
export function within<T>(promise: Promise<T>, what: string, ms: number): Promise<T> {
  return Promise.race([
    promise,
    new Promise<T>((_, reject) =>
      setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms).unref(),
    ),
  ]);
}

/** Calls `send(i)` for i from 0 to `count - 1`, at `rate` a second; resolves once all are sent. */
export function atRate(count: number, rate: number, send: (i: number) => void): Promise<void> {
  const started = performance.now();
  let sent = 0;
  return new Promise((resolve) => {
    const tick = () => {
      const due = Math.min(count, Math.floor(((performance.now() - started) * rate) / 1000) + 1);
      while (sent < due) send(sent++);
      if (sent >= count) resolve();
      else setTimeout(tick, Math.max(1, (sent * 1000) / rate - (performance.now() - started)));
    };
    tick();
  });
}

/** Closes with a bound, so a stuck close never holds the run. */
export function bounded(promise: Promise<unknown>, ms: number): Promise<void> {
  return Promise.race([
    promise.then(() => undefined),
    new Promise<void>((resolve) => setTimeout(resolve, ms).unref()),
  ]);
}
