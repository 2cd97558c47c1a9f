import type { NodeConnectionOptions } from '@nats-io/transport-node';

/** Client timings for tests: reconnect quickly so outages stay short. */
export const fastReconnect: NodeConnectionOptions = {
  reconnectTimeWait: 200,
  reconnectJitter: 50,
  timeout: 2000,
};

/** A unique name for this test file's buckets and streams. */
export function uniqueName(prefix: string): string {
  return `${prefix}_${process.pid}_${Date.now().toString(36)}`;
}
