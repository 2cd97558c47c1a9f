import type { Buffer } from 'node:buffer';
import type { Server as HttpServer, IncomingMessage } from 'node:http';
import type { Server as HttpsServer } from 'node:https';
import type { Broker, History, StateStore } from '../contracts.js';
import type { Logger } from '../ops/logger.js';
import type { PresenceRule } from '../presence/presence-types.js';
import type { Sendable } from '../protocol/payload.js';
import type { HistoryRule } from '../rooms/history-rules.js';
import type { Client } from '../transport/client.js';
import type { MessageInfo } from '../v1/upstream.js';

export type { HistoryRule, RoomPattern } from '../rooms/history-rules.js';

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

  /**
   * This node's id, unique in the cluster: two nodes of one id each get messages meant for the
   * other, and each emits an `InvalidOptionError` as its `error` once it hears the other.
   * @default a random id
   */
  nodeId?: string;
  /**
   * How nodes reach each other. Not closed by `close()` when given: the caller owns it.
   * @default a `MemoryBroker` of its own (a single node)
   */
  broker?: Broker;
  /**
   * Where `wscale.v1` sessions are kept, so a client can resume on any node. Its `ttlMs` is how
   * long a session outlives its connection. Not closed by `close()`.
   * @default a `MemoryStateStore` of its own (resume works on this node only)
   */
  stateStore?: StateStore;
  /**
   * Secret(s) that sign session tokens; the same on every node. Sign with the first, verify with
   * any: to rotate, put the new secret first and drop the old one after a session TTL.
   * Required with a `stateStore` (`undefined`, an unset variable, is refused there). @default a
   * random secret (this node only)
   */
  sessionSecret?: string | string[] | undefined;
  /**
   * The rooms that keep history, and where. The first rule whose pattern matches a room wins.
   * A pattern is a room name, a name with `*` wildcards (`'chat:*'`) or a RegExp. Rooms no rule
   * matches are plain pub/sub: a client that comes back recovers nothing in them.
   * @default no room keeps history
   */
  history?: HistoryRule[];
  /**
   * Keeps each `wscale.v1` session's direct messages (`wss.client(id).send()`) in this history
   * store, a stream per session bounded by the store's own limits, so a client that reconnects, on
   * any node, gets the ones it missed, in order and once — or is told `recovered: false` with a
   * reason, as for a room. Volatile messages are not kept.
   * @default direct messages are not kept (a client reconnecting when one is sent misses it)
   */
  directHistory?: History;
  /**
   * Who may resume a session: the owner key of the identity `authenticate` returned. A session is
   * resumed only by a connection whose key is the same. Asked once per `wscale.v1` connection, at
   * its `hello` (the session's saves reuse the answer), and when the client enters a presence room.
   * @default the identity's `id` (or the identity, without one), named so that two different ones
   * never read alike: as a string when it is not an object, bytes as base64, a date as its ISO time,
   * an object with its own `toString` by it, else as JSON. One JSON cannot hold whole (a `Map`, a
   * class instance with private state only) names no owner and fails the `hello`: give this.
   */
  sessionOwner?: (identity: Identity) => string;
  /**
   * Decides whether a `wscale.v1` client may join a room it asked for. Without it, clients may
   * not join rooms themselves (the server still can, with `client.join`). Asked again for those
   * rooms when the client resumes its session, for all of them at once. Anything but `true`
   * refuses with `FORBIDDEN`; a throw, a value that is not a boolean, or no answer within
   * {@link ServerOptions.hookTimeoutMs} also emits a `HandlerError`. A client's joins and leaves of one room, its own and
   * `client.join`/`client.leave`, run one after another in the order asked, so this hook must not
   * await a join or leave of the room it is asked about.
   */
  authorizeJoin?: (client: Client<Identity, object>, room: string) => Awaitable<boolean>;
  /**
   * Answers a `wscale.v1` client's `request()`; the value returned is the reply (a string, bytes,
   * or nothing). A throw, a rejection, a reply of another type or no reply within
   * {@link ServerOptions.hookTimeoutMs} answers with a `HANDLER_FAILED` error and emits a
   * `HandlerError`. A request the client sends again after a reconnect is
   * answered with the kept reply, not handled twice; `info.redelivered` marks one that a node
   * which died may have handled already.
   */
  onRequest?: (
    client: Client<Identity, object>,
    data: string | Buffer,
    info: MessageInfo,
    // biome-ignore lint/suspicious/noConfusingVoidType: a handler may return nothing
  ) => Awaitable<Sendable | undefined | void>;
  /**
   * How long `authorizeJoin` and `onRequest` may take. Past it the join is refused (`FORBIDDEN`)
   * or the request answered `HANDLER_FAILED`, a `HandlerError` is emitted, and the operation no
   * longer counts against `maxInFlightPerClient`; what the hook settles to later is ignored.
   * @default 30000
   */
  hookTimeoutMs?: number;
  /**
   * How long a `wscale.v1` client may take to send `hello`, and then the node to answer it; past
   * either the connection is closed with 1013 (the client reconnects). @default 10000
   */
  helloTimeoutMs?: number;
  /**
   * How often a session records what its client sent (the last upstream sequence number and the
   * latest request replies), while it sends. A node that dies rewinds at most this far: the client
   * sends those messages again, marked `redelivered`. Never one state-store write per message.
   * @default 1000
   */
  upstreamSaveMs?: number;
  /**
   * Prefix of every broker topic and state-store key, so several applications can share one
   * broker and one store. A history names its keys by its own options (the Redis history's
   * `keyPrefix`, the NATS history's stream): give each application its own there too, or their
   * rooms of the same name share one log.
   * @default 'wscale:'
   */
  topicPrefix?: string;

  /**
   * Accepts or refuses each upgrade before the WebSocket exists. A throw answers 500, a hook that
   * takes longer than {@link ServerOptions.authenticateTimeoutMs} 503; both are emitted as
   * `HandlerError`. @default accept everyone
   */
  authenticate?: Authenticate<Identity>;
  /** How long `authenticate` may take before the upgrade is answered 503. @default 10000 */
  authenticateTimeoutMs?: number;
  /**
   * Origins (`scheme://host[:port]`, as browsers send them) whose pages may connect; an upgrade
   * from another origin is answered 403. A request without an `Origin` header (not from a
   * browser) is let through: check such clients in `authenticate`.
   * @default every origin
   */
  allowedOrigins?: readonly string[];
  /**
   * Most connections this node holds (counting those still upgrading or saying `hello`); the
   * next upgrade is answered 503 and the load balancer can pick another node.
   * @default 50000
   */
  maxConnections?: number;
  /**
   * Most rooms a `wscale.v1` client may be in by its own `join`; one more is refused with a
   * `LIMIT` ack. Rooms the server joins it to (`client.join`), and its `directHistory` stream,
   * neither count nor are limited.
   * @default 128
   */
  maxRoomsPerClient?: number;
  /**
   * Most `join`s and `req`s of one `wscale.v1` client waiting for their `ack`; one more is
   * answered at once with a `BUSY` ack. The default matches `@wscale/client`'s
   * `maxUnacknowledged`, so a client that sends its unacknowledged requests again after a resume
   * stays within it.
   * @default 1000
   */
  maxInFlightPerClient?: number;
  /**
   * Frames a client may send per second, on average: a token bucket that holds two seconds'
   * worth, so a burst passes (such as a `@wscale/client` sending up to its `maxUnacknowledged`
   * frames again after a resume). Past it the connection closes with 1008. Applies to raw and
   * `wscale.v1` clients alike; a client's pings and pongs count too (each heartbeat's pong among
   * them, so `heartbeatIntervalMs × maxOpsPerSecond` must be at least 2000). `Infinity` turns it
   * off.
   * @default 1000
   */
  maxOpsPerSecond?: number;
  /**
   * Largest `client.data` saved with a `wscale.v1` session, in bytes of JSON. A larger one is not
   * saved (the session keeps the `data` saved before) and an `error` names the client.
   * @default 65536
   */
  maxSessionDataBytes?: number;
  /**
   * Most bytes of missed messages replayed on one resume, over all its rooms; the rooms past it
   * are answered `recovered: false, reason: 'too-old'`.
   * @default 1048576
   */
  maxReplayBytes?: number;
  /**
   * Most missed messages replayed on one resume, over all its rooms; the rooms past it are
   * answered `recovered: false, reason: 'too-old'`.
   * @default 5000
   */
  maxReplayEntries?: number;
  /** Largest frame a client may send, in bytes; larger ones close with 1009. @default 1048576 */
  maxPayload?: number;
  /**
   * Compresses messages for the clients that negotiate permessage-deflate (RFC 7692; browsers
   * and the `ws` package offer it by themselves). The node negotiates `server_no_context_takeover`
   * and compresses each message once, whatever the number of sockets it goes to; clients that
   * did not negotiate it get the same message uncompressed. Protocol frames (`welcome`, `ack`, …)
   * and replays on resume are not compressed. What clients send compressed is inflated per socket
   * by `ws` (within {@link ServerOptions.maxPayload}). `true` uses the defaults of
   * {@link PerMessageDeflateOptions}. Off by default for its memory: about 0.5 KiB of heap more
   * per connection that negotiated it, and an inflater (about 19 KiB) per connection that sends
   * compressed messages; the CPU per delivery is no higher (docs/benchmarks.md).
   * @default false
   */
  perMessageDeflate?: boolean | PerMessageDeflateOptions;
  /**
   * Bytes a client's send buffer may hold before it counts as a slow consumer: volatile messages
   * are dropped from then on, and other messages follow {@link ServerOptions.slowConsumer}. Every
   * frame counts, whatever it is: broadcasts, direct messages, replays and protocol replies.
   * @default 4194304
   */
  maxBufferedBytes?: number;
  /**
   * `'close'` closes a slow consumer with 1013 (it reconnects and, with `wscale.v1` history,
   * recovers what it missed); `'drop'` drops its application messages and counts them (a
   * `wscale.v1` client gets a `resync` before the next message of a history room it missed one
   * of). A protocol reply (`ack`, `pong`, `welcome`, …) is never dropped: past the limit it
   * closes the client with 1013 under either policy.
   * @default 'close'
   */
  slowConsumer?: SlowConsumerPolicy;
  /**
   * How often each client is pinged; a client that sent nothing since the previous ping (no
   * pong, no frame) is terminated, and so is one whose one message has been arriving (bytes, but
   * not all of it) for four intervals: a message of `maxPayload` must come at `maxPayload` over
   * four intervals at least (1 MiB in two minutes at the defaults; a shorter interval cuts slower
   * uploads). `0` turns heartbeats off.
   * @default 30000
   */
  heartbeatIntervalMs?: number;
  /** How often this node tells the others it is alive. @default 5000 */
  nodeHeartbeatMs?: number;
  /** A node not heard from for this long counts as gone. @default 3 × nodeHeartbeatMs */
  nodeTimeoutMs?: number;
  /** How long cross-node queries wait for answers. @default 5000 */
  requestTimeoutMs?: number;
  /**
   * How long `close()` waits for clients to close before terminating them, and for each of its
   * other steps (sessions saved, sends already started going out); also how long any closed
   * connection waits for its peer's close frame before its socket is ended (and its place under
   * `maxConnections` freed). @default 5000
   */
  closeTimeoutMs?: number;
  /**
   * Where the node logs: start and stop, broker status, other nodes up and down, errors (also
   * emitted as `error`), slow consumers, partial query answers (`info`/`warn`); limits hit,
   * protocol violations and resumes (`debug`). Fields name the node, client, room and code;
   * message payloads are never logged. pino and `console` fit as they are.
   * @default none: errors go to the `error` event, or a process warning without a listener
   */
  logger?: Logger;

  /**
   * The rooms that keep presence (who is in them, by user, on every node), and the public `info`
   * of their members. `wss.presence(room)`, `wss.presenceStats(room)`, the `presence` event and
   * the clients' `client.presence(room)` work in these rooms.
   * @default no room keeps presence
   */
  presence?: PresenceRule<Client<Identity, object>>[];
  /**
   * How long a member whose connection dropped (or whose node died, counted from when the node is
   * declared gone) stays present: a resume on any node within it is no leave and no join. At most
   * the state store's `ttlMs`.
   * @default 5000
   */
  presenceGraceMs?: number;
}

/** How messages are compressed, with {@link ServerOptions.perMessageDeflate}. */
export interface PerMessageDeflateOptions {
  /** Payloads shorter than this many bytes are sent uncompressed. @default 256 */
  threshold?: number;
  /** The zlib compression level, 0 (none) to 9 (smallest, slowest). @default 6 */
  level?: number;
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
    | 'directHistory'
    | 'authenticate'
    | 'sessionSecret'
    | 'sessionOwner'
    | 'authorizeJoin'
    | 'onRequest'
    | 'presence'
    | 'allowedOrigins'
    | 'logger'
    | 'perMessageDeflate'
  >
> &
  Pick<
    ServerOptions<Identity>,
    | 'port'
    | 'host'
    | 'server'
    | 'noServer'
    | 'path'
    | 'authenticate'
    | 'authorizeJoin'
    | 'onRequest'
    | 'allowedOrigins'
    | 'directHistory'
  > & {
    sessionOwner: (identity: Identity) => string;
    history: HistoryRule[];
    presence: PresenceRule<Client<Identity, object>>[];
    /** Absent when compression is off. */
    perMessageDeflate: Required<PerMessageDeflateOptions> | undefined;
  };
