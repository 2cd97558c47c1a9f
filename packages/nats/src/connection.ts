import {
  connect,
  type NatsConnection,
  type NodeConnectionOptions,
  type Status,
} from '@nats-io/transport-node';

/**
 * How often the client pings the server on a connection the adapter opens. Two unanswered pings
 * make the connection stale and the client reconnects: a server that hangs with its TCP connection
 * open (stopped, swapping, partitioned without a reset) is left within about half a minute, not
 * the client's default six minutes (a ping every two minutes).
 */
const PING_INTERVAL_MS = 10_000;

/** How an adapter reaches NATS: an existing connection, or options to open its own. */
export interface NatsConnectOptions {
  /**
   * An open connection to share. The adapter never closes a connection it was given; pass the
   * same one to the broker, the state store and the history to use a single socket.
   */
  connection?: NatsConnection;
  /**
   * Servers to connect to when no `connection` is given, e.g. `'nats://127.0.0.1:4222'` or the
   * URLs of several cluster nodes.
   * @default '127.0.0.1:4222'
   */
  servers?: string | string[];
  /**
   * Options for the connection the adapter opens itself (auth, TLS, timings…), passed to
   * `connect()` of `@nats-io/transport-node`. Defaults that differ from the client's:
   * `maxReconnectAttempts: -1` (never give up), `waitOnFirstConnect: true`,
   * `pingInterval: 10000` (with the client's `maxPingOut: 2`, a server that hangs without
   * closing the connection is left for another within about half a minute, not six) and
   * `noAsyncTraces: true` (the client otherwise builds two errors with stack traces for every
   * request in case it fails: half of the client's CPU per state-store read).
   * @default {}
   */
  connectionOptions?: NodeConnectionOptions;
}

/** A connection and whether the adapter owns it (and so must close it). */
export interface ResolvedConnection {
  connection: Promise<NatsConnection>;
  owned: boolean;
}

/** Uses the given connection, or opens one with wscale's defaults. */
export function resolveConnection(options: NatsConnectOptions, name: string): ResolvedConnection {
  if (options.connection !== undefined) {
    return { connection: Promise.resolve(options.connection), owned: false };
  }
  const connection = connect({
    name,
    maxReconnectAttempts: -1,
    waitOnFirstConnect: true,
    pingInterval: PING_INTERVAL_MS,
    noAsyncTraces: true,
    ...options.connectionOptions,
    ...(options.servers !== undefined ? { servers: options.servers } : {}),
  });
  // Callers await it when they need it; never leave the rejection unhandled meanwhile.
  connection.catch(() => undefined);
  return { connection, owned: true };
}

/**
 * Calls `onChange` whenever the connection (once it is open) drops and whenever it is back. The
 * server it is back on may have lost its JetStream storage, or be another server of a cluster:
 * what a store cached about its stream (that it exists, where a room's last entry is) must be read
 * again. Returns a function that stops watching.
 */
export function watchReconnects(
  connection: Promise<NatsConnection>,
  onChange: () => void,
): () => void {
  let stopped = false;
  let statuses: (AsyncIterable<Status> & { stop?: () => void }) | undefined;
  connection
    .then(async (nc) => {
      if (stopped) return;
      statuses = nc.status();
      for await (const status of statuses) {
        if (status.type === 'disconnect' || status.type === 'reconnect') onChange();
      }
    })
    .catch(() => undefined);
  return () => {
    stopped = true;
    statuses?.stop?.();
  };
}
