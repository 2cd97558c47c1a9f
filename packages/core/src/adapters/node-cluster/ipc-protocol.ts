import { Buffer } from 'node:buffer';
/**
 * The messages the cluster hub (in the primary) and the cluster clients (in the workers) exchange
 * over node:cluster's IPC channel. Every one carries `wscale: 1`, so both sides ignore the
 * application's own IPC messages and the application can recognise ours with
 * {@link isClusterMessage}.
 *
 * Payload bytes travel as a `Uint8Array` when the channel uses `serialization: 'advanced'` and as
 * a base64 string with node's default `'json'`. Neither side is told which mode the channel uses:
 * each finds out from the `probe` bytes in the handshake (an `advanced` channel delivers them as a
 * `Uint8Array`, a `json` one as a plain object).
 */

/** The tag every wscale IPC message carries (and its protocol version). */
export const CLUSTER_TAG = 1;

/** Bytes as they cross the channel: raw (`advanced`) or base64 (`json`). */
export type WirePayload = Uint8Array | string;

/** A request a worker sends; the hub answers it with a {@link ReplyMessage} of the same `id`. */
export type RequestMessage = { wscale: typeof CLUSTER_TAG; id: number } & (
  | { kind: 'attach'; topics: string[]; probe: unknown }
  | { kind: 'sub'; topic: string }
  | { kind: 'unsub'; topic: string }
  | { kind: 'state.get'; key: string }
  | { kind: 'state.set'; key: string; value: string; ifVersion?: string | null; ttlMs: number }
  | { kind: 'state.delete'; key: string }
  | ({ kind: 'history.append'; room: string; payload: WirePayload } & HistoryLimits)
  | ({
      kind: 'history.read';
      room: string;
      after: { offset: number; epoch: string };
      limit?: number;
    } & HistoryLimits)
  | ({ kind: 'history.position'; room: string } & HistoryLimits)
);

/** The trimming options of one history; histories with the same limits share their logs. */
export interface HistoryLimits {
  maxEntries: number;
  maxAgeMs: number;
}

/** A worker's publish. Not answered: IPC keeps order, and an answer would double the traffic. */
export interface PublishMessage {
  wscale: typeof CLUSTER_TAG;
  kind: 'pub';
  topic: string;
  payload: WirePayload;
}

/** The hub's answer to a {@link RequestMessage}. */
export type ReplyMessage = { wscale: typeof CLUSTER_TAG; kind: 'reply'; id: number } & (
  | { ok: true; result?: unknown }
  | { ok: false; error: string }
);

/** A message the hub delivers to a worker that subscribed its topic. */
export interface DeliverMessage {
  wscale: typeof CLUSTER_TAG;
  kind: 'msg';
  topic: string;
  payload: WirePayload;
}

/**
 * The hub tells every worker it is there (`hub`, when it attaches) or gone (`bye`, when it
 * closes), and a worker that fell behind that it was cut off (`lagged`: nothing more is delivered
 * to it). A worker answers `hub` and `lagged` with a fresh `attach`.
 */
export interface HubNoticeMessage {
  wscale: typeof CLUSTER_TAG;
  kind: 'hub' | 'bye' | 'lagged';
}

/** What a worker sends. */
export type WorkerMessage = RequestMessage | PublishMessage;
/** What the hub sends. */
export type HubMessage = ReplyMessage | DeliverMessage | HubNoticeMessage;

/**
 * Whether an IPC message belongs to wscale's cluster protocol. An application that listens to
 * `process.on('message')` or `cluster.on('message')` sees wscale's messages too; skip them with
 * this.
 */
export function isClusterMessage(message: unknown): boolean {
  return (
    typeof message === 'object' &&
    message !== null &&
    (message as { wscale?: unknown }).wscale === CLUSTER_TAG
  );
}

/**
 * Whether a worker's publish is well formed. Publishes are not answered, so a malformed one can
 * only be dropped; the hub checks before it routes, as nothing may throw in the primary's
 * `message` listener.
 */
export function isPublish(message: { kind: unknown; topic?: unknown; payload?: unknown }): boolean {
  return (
    message.kind === 'pub' &&
    typeof message.topic === 'string' &&
    (typeof message.payload === 'string' || message.payload instanceof Uint8Array)
  );
}

/** The probe bytes sent in the handshake. */
export const PROBE = Uint8Array.of(1);

/** Whether the probe arrived as bytes, i.e. the channel uses `serialization: 'advanced'`. */
export function isBinaryChannel(probe: unknown): boolean {
  return ArrayBuffer.isView(probe);
}

/** Bytes in the form the channel carries. */
export function toWire(payload: Uint8Array, binary: boolean): WirePayload {
  return binary ? payload : toBase64(payload);
}

/** Bytes as base64, the form a `json` channel carries. */
export function toBase64(payload: Uint8Array): string {
  return Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength).toString('base64');
}

/** Bytes back from the form the channel carried. */
export function fromWire(payload: WirePayload): Uint8Array {
  return typeof payload === 'string' ? Buffer.from(payload, 'base64') : payload;
}
