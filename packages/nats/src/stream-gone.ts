import { JetStreamApiCodes, JetStreamApiError } from '@nats-io/jetstream';

/**
 * Whether an operation failed because the JetStream stream behind a store is not there (deleted,
 * or lost with a server's storage): the store then creates it again before its next operation,
 * instead of keeping the handle it opened once.
 */
export function streamGone(error: unknown): boolean {
  for (let cause = error; cause instanceof Error; cause = cause.cause) {
    if (cause instanceof JetStreamApiError && cause.code === JetStreamApiCodes.StreamNotFound) {
      return true;
    }
    // A publish to a subject no stream takes, or the API of a server whose JetStream lost it.
    if (/no responders|stream not found|jetstream (is )?not enabled/i.test(cause.message)) {
      return true;
    }
  }
  return false;
}
