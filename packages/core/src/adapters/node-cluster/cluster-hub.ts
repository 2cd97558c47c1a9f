import cluster, { type Worker } from 'node:cluster';
import { InvalidOptionError } from '../../errors.js';
import { MemoryHistory } from '../memory/memory-history.js';
import { MemoryStateStore } from '../memory/memory-state-store.js';
import {
  CLUSTER_TAG,
  type DeliverMessage,
  fromWire,
  type HistoryLimits,
  type HubMessage,
  isBinaryChannel,
  isClusterMessage,
  isPublish,
  PROBE,
  type PublishMessage,
  type RequestMessage,
  toBase64,
  toWire,
  type WorkerMessage,
} from './ipc-protocol.js';
import { processWide } from './process-wide.js';

interface WorkerLink {
  worker: Worker;
  /** Whether this worker's channel carries bytes as they are (`serialization: 'advanced'`). */
  binary: boolean;
  topics: Set<string>;
  /** Memory taken by deliveries handed to the worker's IPC channel and not written to it yet. */
  queued: number;
  /** Whether the worker fell behind: it is delivered nothing until it attaches again. */
  lagging: boolean;
}

/** Options of {@link ClusterHub}. */
export interface ClusterHubOptions {
  /**
   * How much of the primary's memory the hub lets deliveries take for a worker that does not read
   * them (busy, stopped, stuck) before it stops delivering to that worker. Each waiting delivery
   * counts what node holds for it: 1 KiB of write bookkeeping plus twice its encoded size (topic,
   * payload as sent, about 64 bytes of envelope), so 32 MiB hold about 28 000 small messages, or
   * 250 of 64 KiB with `'advanced'` serialization. The worker is told: its broker goes `down`,
   * and once it has read what was held it attaches again and is delivered what comes next. What
   * was published meanwhile does not reach it: history rooms fill that gap from the history, plain
   * rooms miss it (as a Redis subscriber past its `client-output-buffer-limit`).
   * @default 33554432 (32 MiB)
   */
  maxWorkerBacklogBytes?: number;
}

/** What a {@link ClusterHub} currently serves. */
export interface ClusterHubStats {
  /** Workers that connected a cluster broker, state store or history. */
  workers: number;
  /** Topics at least one worker subscribes to. */
  topics: number;
  /**
   * Memory taken by deliveries waiting to be written to the workers' IPC channels, counted as
   * `maxWorkerBacklogBytes` counts it.
   */
  queuedBytes: number;
  /** How many times a worker fell more than `maxWorkerBacklogBytes` behind and was cut off. */
  laggedWorkers: number;
}

interface HubRegistry {
  hub?: ClusterHub;
}

// On globalThis so the ESM and CJS copies of core cannot attach two hubs to one primary.
const registry = processWide<HubRegistry>('wscale.cluster.hub.v1', () => ({}));

const ignoreSendError = () => undefined;

/** The bytes an encoded delivery takes besides its topic and payload (json 50, advanced 51). */
const ENVELOPE_BYTES = 64;

/**
 * What one delivery waiting in a worker's IPC channel costs the primary besides its encoded copy:
 * node's write request (a JS `WriteWrap`, its C++ half and libuv's `uv_write_t`), its completion
 * closures and ours. Measured on Node 20.20, x64, a stopped worker and 60 000 waiting deliveries
 * of 0–64 payload bytes, RSS after GC less V8's free heap: `'json'` 900–1 000 bytes besides the
 * encoded copy (288 of them JS heap), `'advanced'` 940–1 250 (471 JS heap). Counted so, a stopped
 * worker flooded through the hub held 0.3–0.5× `maxWorkerBacklogBytes` of heap and buffers after GC
 * for payloads of 16 bytes to 64 KiB, and up to 1.5× for `'json'` payloads of 4 KiB and more.
 */
const WRITE_OVERHEAD_BYTES = 1024;

/**
 * The broker, state store and history of a node:cluster application, run by its primary process.
 *
 * Create one in the primary, before or after forking: workers then use {@link ClusterBroker},
 * {@link ClusterStateStore} and {@link ClusterHistory}, which talk to it over the workers' IPC
 * channels. The hub routes each publish to the workers that subscribed its topic (one IPC message
 * per worker, however many listeners the worker has), and keeps the state and history in the
 * primary's memory: they last as long as the primary does.
 *
 * A worker that exits or disconnects loses its subscriptions. A worker that does not read what is
 * delivered to it is cut off once what waits for it takes `maxWorkerBacklogBytes` of the
 * primary's memory, so that memory stays bounded. The hub holds no timer and no handle of its own:
 * it never keeps the primary alive.
 */
export class ClusterHub {
  readonly #links = new Map<Worker, WorkerLink>();
  readonly #subscribers = new Map<string, Set<WorkerLink>>();
  readonly #state = new MemoryStateStore();
  readonly #histories = new Map<string, MemoryHistory>();
  readonly #maxBacklog: number;
  #lagged = 0;
  #closed = false;

  /**
   * Attaches the hub to node:cluster and tells the workers already running that it is there.
   * @throws {@link InvalidOptionError} outside the primary, when another hub is attached, or when
   * an option is out of range.
   */
  constructor(options: ClusterHubOptions = {}) {
    const maxBacklog = options.maxWorkerBacklogBytes ?? 32 * 1024 * 1024;
    if (!(maxBacklog > 0 && Number.isFinite(maxBacklog))) {
      throw new InvalidOptionError('maxWorkerBacklogBytes must be a positive number');
    }
    this.#maxBacklog = maxBacklog;
    if (!cluster.isPrimary) {
      throw new InvalidOptionError('a ClusterHub runs in the primary process, not in a worker');
    }
    if (registry.hub !== undefined) {
      throw new InvalidOptionError('a ClusterHub is already attached in this process');
    }
    registry.hub = this;
    cluster.on('message', this.#onMessage);
    cluster.on('disconnect', this.#onGone);
    cluster.on('exit', this.#onGone);
    for (const worker of Object.values(cluster.workers ?? {})) {
      if (worker !== undefined) this.#post(worker, { wscale: CLUSTER_TAG, kind: 'hub' });
    }
  }

  /** How many workers and topics the hub serves now. */
  stats(): ClusterHubStats {
    let queuedBytes = 0;
    for (const link of this.#links.values()) queuedBytes += link.queued;
    return {
      workers: this.#links.size,
      topics: this.#subscribers.size,
      queuedBytes,
      laggedWorkers: this.#lagged,
    };
  }

  /**
   * Detaches from node:cluster and drops every subscription, state and history. The workers' brokers
   * go `down` and queue their publishes until a new hub attaches.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    cluster.off('message', this.#onMessage);
    cluster.off('disconnect', this.#onGone);
    cluster.off('exit', this.#onGone);
    if (registry.hub === this) registry.hub = undefined;
    for (const link of this.#links.values()) {
      this.#post(link.worker, { wscale: CLUSTER_TAG, kind: 'bye' });
    }
    this.#links.clear();
    this.#subscribers.clear();
    await this.#state.close();
    await Promise.all([...this.#histories.values()].map((history) => history.close()));
    this.#histories.clear();
  }

  readonly #onMessage = (worker: Worker, message: unknown): void => {
    if (!isClusterMessage(message)) return;
    const msg = message as WorkerMessage;
    if (msg.kind === 'pub') {
      if (isPublish(msg)) this.#publish(msg);
      return;
    }
    const link = this.#link(worker);
    let result: unknown;
    try {
      result = this.#handle(link, msg);
    } catch (error) {
      this.#reply(link, msg.id, error, false);
      return;
    }
    if (result instanceof Promise) {
      result.then(
        (value) => this.#reply(link, msg.id, value, true),
        (error: unknown) => this.#reply(link, msg.id, error, false),
      );
    } else {
      this.#reply(link, msg.id, result, true);
    }
  };

  readonly #onGone = (worker: Worker): void => {
    const link = this.#links.get(worker);
    if (link === undefined) return;
    this.#setTopics(link, []);
    this.#links.delete(worker);
  };

  #link(worker: Worker): WorkerLink {
    let link = this.#links.get(worker);
    if (link === undefined) {
      link = { worker, binary: false, topics: new Set(), queued: 0, lagging: false };
      this.#links.set(worker, link);
    }
    return link;
  }

  #handle(link: WorkerLink, msg: RequestMessage): unknown {
    switch (msg.kind) {
      case 'attach':
        // A worker that was cut off attaches again once it has read what was held for it.
        link.lagging = false;
        link.binary = isBinaryChannel(msg.probe);
        this.#setTopics(link, msg.topics);
        return { probe: PROBE };
      case 'sub':
        this.#subscribe(link, msg.topic);
        return undefined;
      case 'unsub':
        this.#unsubscribe(link, msg.topic);
        return undefined;
      case 'state.get':
        return this.#state.get(msg.key);
      case 'state.set':
        return this.#state.set(msg.key, msg.value, { ifVersion: msg.ifVersion, ttlMs: msg.ttlMs });
      case 'state.delete':
        return this.#state.delete(msg.key);
      case 'history.append':
        return this.#history(msg).append(msg.room, fromWire(msg.payload));
      case 'history.position':
        return this.#history(msg).position(msg.room);
      case 'history.read':
        return this.#history(msg)
          .read(msg.room, msg.after, msg.limit)
          .then((read) =>
            read.ok
              ? {
                  ...read,
                  entries: read.entries.map(({ offset, payload }) => ({
                    offset,
                    payload: toWire(payload, link.binary),
                  })),
                }
              : read,
          );
      default:
        throw new Error(`unknown request kind "${(msg as { kind: unknown }).kind}"`);
    }
  }

  #publish(msg: PublishMessage): void {
    const links = this.#subscribers.get(msg.topic);
    if (links === undefined) return;
    // Each form is built at most once per publish, whatever the number of workers.
    let raw: DeliverMessage | undefined;
    let base64: DeliverMessage | undefined;
    for (const link of links) {
      if (link.binary) {
        raw ??= { wscale: CLUSTER_TAG, kind: 'msg', topic: msg.topic, payload: bytes(msg) };
        this.#deliver(link, raw);
      } else {
        base64 ??= { wscale: CLUSTER_TAG, kind: 'msg', topic: msg.topic, payload: text(msg) };
        this.#deliver(link, base64);
      }
    }
  }

  /** Hands a delivery to a worker, unless it holds too much already: then the worker is cut off. */
  #deliver(link: WorkerLink, message: DeliverMessage): void {
    if (link.lagging || !link.worker.isConnected()) return;
    // Node keeps a copy of the encoded message until it is written, and not a tight one: with
    // `'json'` it reserves three times the string's length once that is over 5 461 (a 16 KiB
    // payload held 66 KB, 29 KB of it resident), with `'advanced'` the serializer's buffer grows
    // by doubling. Twice the encoded size covers both.
    const size =
      WRITE_OVERHEAD_BYTES + 2 * (ENVELOPE_BYTES + message.topic.length + message.payload.length);
    if (link.queued > 0 && link.queued + size > this.#maxBacklog) {
      link.lagging = true;
      this.#lagged += 1;
      this.#post(link.worker, { wscale: CLUSTER_TAG, kind: 'lagged' });
      return;
    }
    link.queued += size;
    link.worker.send(message, () => {
      link.queued -= size;
    });
  }

  #setTopics(link: WorkerLink, topics: string[]): void {
    for (const topic of link.topics) this.#unsubscribe(link, topic);
    for (const topic of topics) this.#subscribe(link, topic);
  }

  #subscribe(link: WorkerLink, topic: string): void {
    link.topics.add(topic);
    let links = this.#subscribers.get(topic);
    if (links === undefined) {
      links = new Set();
      this.#subscribers.set(topic, links);
    }
    links.add(link);
  }

  #unsubscribe(link: WorkerLink, topic: string): void {
    link.topics.delete(topic);
    const links = this.#subscribers.get(topic);
    if (links === undefined) return;
    links.delete(link);
    if (links.size === 0) this.#subscribers.delete(topic);
  }

  /** Histories with the same limits share their room logs. */
  #history(limits: HistoryLimits): MemoryHistory {
    const key = `${limits.maxEntries}/${limits.maxAgeMs}`;
    let history = this.#histories.get(key);
    if (history === undefined) {
      history = new MemoryHistory(limits);
      this.#histories.set(key, history);
    }
    return history;
  }

  #reply(link: WorkerLink, id: number, value: unknown, ok: boolean): void {
    if (ok) {
      this.#post(link.worker, { wscale: CLUSTER_TAG, kind: 'reply', id, ok, result: value });
    } else {
      const error = value instanceof Error ? value.message : String(value);
      this.#post(link.worker, { wscale: CLUSTER_TAG, kind: 'reply', id, ok, error });
    }
  }

  #post(worker: Worker, message: HubMessage): void {
    // A worker that is exiting cannot be told anything; its `exit` event cleans up after it.
    if (worker.isConnected()) worker.send(message, ignoreSendError);
  }
}

function bytes(msg: PublishMessage): Uint8Array {
  return fromWire(msg.payload);
}

function text(msg: PublishMessage): string {
  return typeof msg.payload === 'string' ? msg.payload : toBase64(msg.payload);
}
