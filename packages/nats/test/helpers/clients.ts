import { jetstreamManager } from '@nats-io/jetstream';
import {
  connect,
  type NatsConnection,
  type NodeConnectionOptions,
  type Status,
} from '@nats-io/transport-node';

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

/**
 * Whether compare-and-set on a replicated (R>1) stream is serialisable on this server version.
 * Before the fix for nats-server issue #4320 (released in 2.9.21), the expected-last-subject-
 * sequence check of a clustered stream ran before consensus, so two concurrent writers expecting
 * the same sequence could both be accepted.
 */
export function replicatedCasIsSafe(version: string): boolean {
  const [major = 0, minor = 0, patch = 0] = version.split(/[.-]/).map(Number);
  if (major !== 2) return major > 2;
  if (minor !== 9) return minor > 9;
  return patch >= 21;
}

/**
 * Resolves at the connection's next status of this type; rejects after `timeoutMs`. Call it before
 * what causes the status.
 */
export function nextStatus(
  nc: NatsConnection,
  type: Status['type'],
  timeoutMs: number,
): Promise<void> {
  const statuses = nc.status() as AsyncIterable<Status> & { stop(): void };
  return new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      statuses.stop();
      reject(new Error(`no "${type}" status within ${timeoutMs} ms`));
    }, timeoutMs);
    (async () => {
      for await (const status of statuses) if (status.type === type) return true;
      return false;
    })().then(
      (seen) => {
        clearTimeout(timer);
        statuses.stop();
        if (seen) resolve();
        else reject(new Error(`the connection closed before a "${type}" status`));
      },
      (error: unknown) => {
        clearTimeout(timer);
        reject(error);
      },
    );
  });
}

/** Deletes a JetStream stream through a connection of its own, as an operator would. */
export async function deleteStream(url: string, name: string): Promise<void> {
  const nc = await connect({ servers: url });
  try {
    await (await jetstreamManager(nc)).streams.delete(name);
  } finally {
    await nc.close();
  }
}
