import { JetStreamApiCodes, JetStreamApiError } from '@nats-io/jetstream';
import { errors } from '@nats-io/transport-node';
import { TimedOutError } from './timeout.js';

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

/**
 * Whether the stream may be gone although the failure does not say so: the operation got no
 * answer in time. A direct get (`$JS.API.DIRECT.GET.<stream>`) of a stream that does not exist is
 * answered by nobody, not even with "no responders" (nats-server 2.9): every read of a store
 * whose stream was lost would time out forever. After a timeout the store checks its stream again
 * with the stream API, which does answer "stream not found", before its next operation.
 */
export function mayBeGone(error: unknown): boolean {
  if (streamGone(error)) return true;
  for (let cause = error; cause instanceof Error; cause = cause.cause) {
    if (cause instanceof TimedOutError || cause instanceof errors.TimeoutError) return true;
  }
  return false;
}

/**
 * Runs a store's operation; when it fails in a way that says its stream is gone, or may be (see
 * {@link mayBeGone}), calls `forget` before passing the failure on: the next operation checks the
 * stream again with the stream API and creates it if it is missing.
 */
export async function forgettingIfGone<T>(run: () => Promise<T>, forget: () => void): Promise<T> {
  try {
    return await run();
  } catch (error) {
    if (mayBeGone(error)) forget();
    throw error;
  }
}
