import { connect, type NatsConnection, type NodeConnectionOptions } from '@nats-io/transport-node';

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
   * `maxReconnectAttempts: -1` (never give up), `waitOnFirstConnect: true` and
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
    noAsyncTraces: true,
    ...options.connectionOptions,
    ...(options.servers !== undefined ? { servers: options.servers } : {}),
  });
  // Callers await it when they need it; never leave the rejection unhandled meanwhile.
  connection.catch(() => undefined);
  return { connection, owned: true };
}
