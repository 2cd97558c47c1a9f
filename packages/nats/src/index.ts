/**
 * NATS adapters: `NatsBroker` (core subjects), `NatsKvStateStore` (JetStream KV) and
 * `NatsHistory` (JetStream).
 *
 * @packageDocumentation
 * @module @wscale/nats
 */
export type { NatsConnectOptions } from './connection.js';
export { NatsBroker, type NatsBrokerOptions } from './nats-broker.js';
export {
  EPOCH_HEADER,
  NatsHistory,
  type NatsHistoryOptions,
  OFFSET_HEADER,
} from './nats-history.js';
export { NatsKvStateStore, type NatsKvStateStoreOptions } from './nats-kv-state-store.js';
export { encodeToken } from './subject-token.js';
