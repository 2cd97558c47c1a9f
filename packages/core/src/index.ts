/**
 * The scale-out WebSocket server (`ScaledWebSocketServer`), the `Broker`, `StateStore` and
 * `History` contracts, their in-memory and node:cluster implementations, close codes and typed
 * errors.
 *
 * @packageDocumentation
 * @module @wscale/core
 */
export { BaseBroker, type BaseBrokerEvents, type BaseBrokerOptions } from './broker/base-broker.js';
export { MemoryBroker, type MemoryBrokerOptions, MemoryBus } from './broker/memory-broker.js';
export { CloseCode } from './close-codes.js';
export { ClusterBroker, type ClusterBrokerOptions } from './cluster/cluster-broker.js';
export { ClusterHistory, type ClusterHistoryOptions } from './cluster/cluster-history.js';
export { ClusterHub, type ClusterHubStats } from './cluster/cluster-hub.js';
export { ClusterStateStore, type ClusterStateStoreOptions } from './cluster/cluster-state-store.js';
export { isClusterMessage } from './cluster/protocol.js';
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
  InvalidOptionError,
  LimitExceededError,
  ProtocolError,
  ServerClosedError,
  StateStoreError,
  UpgradeRejectedError,
  WscaleError,
  type WscaleErrorCode,
} from './errors.js';
export { MemoryHistory, type MemoryHistoryOptions } from './history/memory-history.js';
export type { DependencyStatus, HealthOptions, HealthReport } from './ops/health.js';
export type { Logger, LogLevel } from './ops/logger.js';
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
export { BroadcastOperator } from './server/broadcast.js';
export { Client, type ClientEvents } from './server/client.js';
export type {
  Authenticate,
  Awaitable,
  HistoryRule,
  RoomPattern,
  ServerOptions,
  SlowConsumerPolicy,
} from './server/options.js';
export type { Sendable, SendOptions } from './server/payload.js';
export { ScaledWebSocketServer } from './server/scaled-server.js';
export type {
  ClientInfo,
  LimitCounters,
  NodeStats,
  QueryOptions,
  RemoteClient,
  ResumeInfo,
  ResumeRecord,
  ServerEvents,
  ServerStats,
} from './server/server-types.js';
export type { MessageInfo } from './server/upstream.js';
export { MemoryStateStore, type MemoryStateStoreOptions } from './state/memory-state-store.js';
export { updateState } from './state/update-state.js';
