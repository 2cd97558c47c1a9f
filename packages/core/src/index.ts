/**
 * The scale-out WebSocket server (`ScaledWebSocketServer`), the `Broker`, `StateStore` and
 * `History` contracts, their in-memory and node:cluster implementations, close codes and typed
 * errors.
 *
 * @packageDocumentation
 * @module @wscale/core
 */
export {
  BaseBroker,
  type BaseBrokerEvents,
  type BaseBrokerOptions,
} from './adapters/base-broker.js';
export {
  MemoryBroker,
  type MemoryBrokerOptions,
  MemoryBus,
} from './adapters/memory/memory-broker.js';
export { MemoryHistory, type MemoryHistoryOptions } from './adapters/memory/memory-history.js';
export {
  MemoryStateStore,
  type MemoryStateStoreOptions,
} from './adapters/memory/memory-state-store.js';
export {
  ClusterBroker,
  type ClusterBrokerOptions,
} from './adapters/node-cluster/cluster-broker.js';
export {
  ClusterHistory,
  type ClusterHistoryOptions,
} from './adapters/node-cluster/cluster-history.js';
export {
  ClusterHub,
  type ClusterHubOptions,
  type ClusterHubStats,
} from './adapters/node-cluster/cluster-hub.js';
export {
  ClusterStateStore,
  type ClusterStateStoreOptions,
} from './adapters/node-cluster/cluster-state-store.js';
export { isClusterMessage } from './adapters/node-cluster/ipc-protocol.js';
export type {
  Broker,
  BrokerEventSource,
  BrokerEvents,
  BrokerStatus,
  History,
  HistoryEntry,
  HistoryPosition,
  HistoryReadResult,
  StateStore,
  TopicListener,
  Unsubscribe,
  Version,
  Versioned,
} from './contracts.js';
export {
  BrokerClosedError,
  BrokerUnavailableError,
  HandlerError,
  HistoryError,
  InvalidArgumentError,
  InvalidOptionError,
  LimitExceededError,
  MessageTooLargeError,
  ProtocolError,
  ServerClosedError,
  SessionRecordError,
  StateStoreError,
  UpgradeRejectedError,
  WscaleError,
  type WscaleErrorCode,
} from './errors.js';
export type { DependencyStatus, HealthOptions, HealthReport } from './ops/health.js';
export type { Logger, LogLevel } from './ops/logger.js';
export type {
  ClientInfo,
  LimitCounters,
  NodeStats,
  ResumeInfo,
  ResumeRecord,
  ServerStats,
} from './ops/node-stats.js';
export type {
  JoinRefusal,
  OutCounters,
  QueryCounters,
  ResumeCounters,
} from './ops/traffic.js';
export type {
  PresenceChange,
  PresenceList,
  PresenceMember,
  PresenceQuery,
  PresenceRule,
  PresenceStats,
} from './presence/presence-types.js';
export { CloseCode } from './protocol/close-codes.js';
export type { Sendable, SendOptions } from './protocol/payload.js';
export { BroadcastOperator } from './server/broadcast.js';
export type {
  Authenticate,
  Awaitable,
  HistoryRule,
  PerMessageDeflateOptions,
  RoomPattern,
  ServerOptions,
  SlowConsumerPolicy,
} from './server/options.js';
export { Publisher, type PublisherOptions } from './server/publisher.js';
export { ScaledWebSocketServer } from './server/scaled-server.js';
export type { QueryOptions, RemoteClient, ServerEvents } from './server/server-types.js';
export type { Client, ClientEvents } from './transport/client.js';
export { updateState } from './util/update-state.js';
export type { MessageInfo } from './v1/upstream.js';
