import type { RedisClusterFixture, RedisServer } from '@wscale/test-support';
import { Cluster, type RedisOptions } from 'ioredis';

/** Options for a client of one of our test servers, reconnecting quickly after an outage. */
export function standalone(server: RedisServer): RedisOptions {
  return { host: '127.0.0.1', port: server.port, retryStrategy: () => 100 };
}

/** A new ioredis Cluster client for a test cluster. */
export function clusterClient(cluster: RedisClusterFixture): Cluster {
  return new Cluster(cluster.nodes);
}

/**
 * An adapter given a client it does not own leaves it open on `close()`; in tests each instance
 * gets its own client, so close that too.
 */
export function closingWith<T extends { close(): Promise<void> }>(adapter: T, client: Cluster): T {
  const close = adapter.close.bind(adapter);
  adapter.close = async () => {
    await close();
    client.disconnect();
  };
  return adapter;
}
