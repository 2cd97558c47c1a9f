import type { Server as HttpServer, IncomingMessage } from 'node:http';
import type { Server as HttpsServer } from 'node:https';
import type { Broker, History, StateStore } from '../contracts.js';

/** A value or a promise of it. */
export type Awaitable<T> = T | Promise<T>;

/**
 * Decides whether an upgrade request may become a WebSocket. Return the client's identity (any
 * value but `false`, `null` or `undefined`) to accept; return `false`, `null` or `undefined` to
 * answer HTTP 401; throw `UpgradeRejectedError(403)` to answer another status.
 */
export type Authenticate<Identity> = (
  request: IncomingMessage,
) => Awaitable<Identity | false | null | undefined>;

/** What to do with a client whose send buffer is over {@link ServerOptions.maxBufferedBytes}. */
export type SlowConsumerPolicy = 'close' | 'drop';

/** Options of `ScaledWebSocketServer`. Exactly one of `port`, `server` and `noServer` is given. */
export interface ServerOptions<Identity = unknown> {
  /** Listen on this port (0 picks a free one); the server creates its own HTTP server. */
  port?: number;
  /** Host to listen on with `port`. @default all interfaces */
  host?: string;
  /** Attach to an existing HTTP(S) server, such as an Express or Fastify app's. */
  server?: HttpServer | HttpsServer;
  /** Accept no connections by itself: call `handleUpgrade` from the framework's upgrade hook. */
  noServer?: boolean;
  /** Only upgrade requests for this path are accepted. @default every path */
  path?: string;

  /** This node's id, unique in the cluster. @default a random id */
  nodeId?: string;
  /**
   * How nodes reach each other. Not closed by `close()` when given: the caller owns it.
   * @default a `MemoryBroker` of its own (a single node)
   */
  broker?: Broker;
  /** Where sessions are kept (used by `wscale.v1` resume). Not closed by `close()`. */
  stateStore?: StateStore;
  /** Where room history is kept (used by `wscale.v1` recovery). Not closed by `close()`. */
  history?: History;
  /**
   * Prefix of every broker topic, so several applications can share one broker.
   * @default 'wscale:'
   */
  topicPrefix?: string;

  /** Accepts or refuses each upgrade before the WebSocket exists. @default accept everyone */
  authenticate?: Authenticate<Identity>;
  /** Largest frame a client may send, in bytes; larger ones close with 1009. @default 1048576 */
  maxPayload?: number;
  /**
   * Bytes a client's send buffer may hold before it counts as a slow consumer: volatile messages
   * are dropped from then on, and other messages follow {@link ServerOptions.slowConsumer}.
   * @default 4194304
   */
  maxBufferedBytes?: number;
  /**
   * `'close'` closes a slow consumer with 1013 (it reconnects and, with `wscale.v1` history,
   * recovers what it missed); `'drop'` drops its messages and counts them.
   * @default 'close'
   */
  slowConsumer?: SlowConsumerPolicy;
  /**
   * How often each client is pinged; a client that has not answered the previous ping is
   * terminated. `0` turns heartbeats off.
   * @default 30000
   */
  heartbeatIntervalMs?: number;
  /** How often this node tells the others it is alive. @default 5000 */
  nodeHeartbeatMs?: number;
  /** A node not heard from for this long counts as gone. @default 3 × nodeHeartbeatMs */
  nodeTimeoutMs?: number;
  /** How long cross-node queries wait for answers. @default 5000 */
  requestTimeoutMs?: number;
  /** How long `close()` waits for clients to close before terminating them. @default 5000 */
  closeTimeoutMs?: number;
}

/** Options with every default applied. */
export type ResolvedOptions<Identity> = Required<
  Omit<
    ServerOptions<Identity>,
    | 'port'
    | 'host'
    | 'server'
    | 'noServer'
    | 'path'
    | 'broker'
    | 'stateStore'
    | 'history'
    | 'authenticate'
  >
> &
  Pick<
    ServerOptions<Identity>,
    'port' | 'host' | 'server' | 'noServer' | 'path' | 'stateStore' | 'history' | 'authenticate'
  >;
