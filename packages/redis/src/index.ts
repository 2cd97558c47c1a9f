/**
 * Redis adapters: `RedisBroker` (pub/sub, sharded pub/sub on a Cluster), `RedisStateStore` and
 * `RedisHistory` (Streams), on ioredis.
 *
 * @packageDocumentation
 * @module @wscale/redis
 */
export type { RedisClient, RedisConnection } from './connection.js';
export {
  decodeHistoryMessage,
  encodeHistoryMessage,
  HISTORY_MESSAGE_VERSION,
  type HistoryMessage,
} from './history-message.js';
export { RedisBroker, type RedisBrokerOptions } from './redis-broker.js';
export { RedisHistory, type RedisHistoryOptions } from './redis-history.js';
export { RedisStateStore, type RedisStateStoreOptions } from './redis-state-store.js';
