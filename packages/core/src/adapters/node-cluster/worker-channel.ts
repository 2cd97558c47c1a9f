import process from 'node:process';
import { InvalidOptionError } from '../../errors.js';
import {
  CLUSTER_TAG,
  fromWire,
  type HubMessage,
  isBinaryChannel,
  isClusterMessage,
  PROBE,
  type PublishMessage,
  type RequestMessage,
  toWire,
} from './ipc-protocol.js';
import { processWide } from './process-wide.js';

/**
 * State of a worker's link to the hub: `connecting` until the hub first answers, `ready` while it
 * answers, `down` when it closed or the IPC channel to the primary is gone.
 */
export type ChannelStatus = 'connecting' | 'ready' | 'down';

type StatusListener = (status: ChannelStatus, error?: Error) => void;
type Receiver = (topic: string, payload: Uint8Array) => void;
type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;
/** A request without its envelope; built when it is sent, once the channel's mode is known. */
export type RequestBody = DistributiveOmit<RequestMessage, 'wscale' | 'id'>;
/** Turns a failure description into the caller's typed error. */
export type ErrorFactory = (message: string, cause?: unknown) => Error;

interface Pending {
  resolve(result: unknown): void;
  reject(error: Error): void;
  fail: ErrorFactory;
  timer: NodeJS.Timeout;
  /** Builds the message; cleared once it was sent. */
  build: ((binary: boolean) => RequestBody) | undefined;
}

interface TopicEntry {
  receivers: Set<Receiver>;
  /** Settles when the hub confirmed the subscription. */
  ready: Promise<unknown>;
}

interface Registry {
  channel?: WorkerChannel;
  nextId: number;
}

// On globalThis so the ESM and CJS copies of core in one process share one channel and one id
// sequence: two channels would each take the other's replies.
const registry = processWide<Registry>('wscale.cluster.worker-channel.v1', () => ({ nextId: 1 }));

const ignore = () => undefined;

/**
 * A worker process's one link to the {@link ClusterHub}, shared by every cluster broker, state
 * store and history of the process: one subscription per topic per process, one id sequence, one
 * handshake. Requests made before the hub answered wait (each within its own timeout) and are
 * sent in order once it does.
 */
export class WorkerChannel {
  #status: ChannelStatus = 'connecting';
  #error: Error | undefined;
  #binary = false;
  #disconnected = false;
  #users = 0;
  #attachId = 0;
  readonly #send: NonNullable<typeof process.send>;
  readonly #pending = new Map<number, Pending>();
  readonly #topics = new Map<string, TopicEntry>();
  readonly #listeners = new Set<StatusListener>();

  /** The process's channel, created on first use. Pair every call with {@link release}. */
  static acquire(): WorkerChannel {
    registry.channel ??= new WorkerChannel();
    const channel = registry.channel;
    channel.#users += 1;
    return channel;
  }

  private constructor() {
    if (typeof process.send !== 'function') {
      throw new InvalidOptionError(
        'the cluster broker, state store and history run in a node:cluster worker (this process has no IPC channel)',
      );
    }
    this.#send = process.send.bind(process);
    process.on('message', this.#onMessage);
    process.on('disconnect', this.#onDisconnect);
    if (process.connected) this.#attach();
    else this.#onDisconnect();
  }

  get status(): ChannelStatus {
    return this.#status;
  }

  /** Whether the IPC channel to the primary closed: for good, it never comes back. */
  get disconnected(): boolean {
    return this.#disconnected;
  }

  /** Why the channel is not `ready`, when known. */
  get error(): Error | undefined {
    return this.#error;
  }

  /** Calls `listener` on every status change until the returned function is called. */
  onStatus(listener: StatusListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Drops one user; the last one detaches the channel from the process. */
  release(): void {
    this.#users -= 1;
    if (this.#users > 0) return;
    process.off('message', this.#onMessage);
    process.off('disconnect', this.#onDisconnect);
    if (registry.channel === this) registry.channel = undefined;
    this.#failPending(() => true, 'the cluster client was closed');
  }

  /** Sends a request and resolves with the hub's result, or rejects with `fail`'s error. */
  request(
    build: (binary: boolean) => RequestBody,
    fail: ErrorFactory,
    timeoutMs: number,
  ): Promise<unknown> {
    if (this.#disconnected) return Promise.reject(fail(this.#disconnectedReason()));
    return new Promise((resolve, reject) => {
      const id = registry.nextId++;
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        const hint = this.#status === 'ready' ? '' : ' (is a ClusterHub running in the primary?)';
        reject(fail(`the cluster hub did not answer within ${timeoutMs} ms${hint}`));
      }, timeoutMs);
      timer.unref();
      const pending: Pending = { resolve, reject, fail, timer, build };
      this.#pending.set(id, pending);
      if (this.#status === 'ready') this.#sendRequest(id, pending);
    });
  }

  /** Sends a publish. Resolves once it is written to the channel; only call while `ready`. */
  publish(topic: string, payload: Uint8Array, fail: ErrorFactory): Promise<void> {
    if (this.#status !== 'ready') {
      return Promise.reject(fail(`the cluster hub is ${this.#status}`, this.#error));
    }
    const message: PublishMessage = {
      wscale: CLUSTER_TAG,
      kind: 'pub',
      topic,
      payload: toWire(payload, this.#binary),
    };
    return new Promise((resolve, reject) => {
      this.#send(message, undefined, undefined, (error: Error | null) => {
        if (error) reject(fail(`publish failed: ${error.message}`, error));
        else resolve();
      });
    });
  }

  /**
   * Adds a receiver for a topic; the first receiver of a topic subscribes the process at the hub.
   * Resolves once the hub confirmed that subscription.
   */
  async subscribe(
    topic: string,
    receiver: Receiver,
    fail: ErrorFactory,
    timeoutMs: number,
  ): Promise<void> {
    let entry = this.#topics.get(topic);
    if (entry === undefined) {
      entry = {
        receivers: new Set(),
        ready: this.request(() => ({ kind: 'sub', topic }), fail, timeoutMs),
      };
      this.#topics.set(topic, entry);
    }
    entry.receivers.add(receiver);
    try {
      await entry.ready;
    } catch (error) {
      // A late answer may still have subscribed us: undo it, harmlessly if it did not.
      this.unsubscribe(topic, receiver, fail, timeoutMs).catch(ignore);
      throw error;
    }
  }

  /** Removes a receiver; the last receiver of a topic unsubscribes the process at the hub. */
  async unsubscribe(
    topic: string,
    receiver: Receiver,
    fail: ErrorFactory,
    timeoutMs: number,
  ): Promise<void> {
    const entry = this.#topics.get(topic);
    if (entry === undefined || !entry.receivers.delete(receiver) || entry.receivers.size > 0) {
      return;
    }
    this.#topics.delete(topic);
    await this.request(() => ({ kind: 'unsub', topic }), fail, timeoutMs);
  }

  readonly #onMessage = (message: unknown): void => {
    if (!isClusterMessage(message)) return;
    const msg = message as HubMessage;
    switch (msg.kind) {
      case 'msg': {
        const entry = this.#topics.get(msg.topic);
        if (entry === undefined) return;
        const payload = fromWire(msg.payload);
        for (const receiver of entry.receivers) receiver(msg.topic, payload);
        return;
      }
      case 'reply': {
        if (msg.id === this.#attachId) {
          if (msg.ok) this.#onAttached(msg.result);
          return;
        }
        const pending = this.#pending.get(msg.id);
        if (pending === undefined) return;
        this.#pending.delete(msg.id);
        clearTimeout(pending.timer);
        if (msg.ok) pending.resolve(msg.result);
        else pending.reject(pending.fail(msg.error));
        return;
      }
      case 'hub':
        this.#attach();
        return;
      case 'lagged':
        // The hub stopped delivering to this process, which read too slowly: what was published
        // since is lost to it (history rooms fill the gap). Requests it took are still answered.
        this.#setStatus(
          'down',
          new Error('the cluster hub cut this worker off: it fell behind (maxWorkerBacklogBytes)'),
        );
        this.#attach();
        return;
      case 'bye': {
        const error = new Error('the cluster hub closed');
        // Requests the old hub took will never be answered; the ones not sent yet can wait.
        this.#failPending((pending) => pending.build === undefined, error.message);
        this.#setStatus('down', error);
        return;
      }
    }
  };

  readonly #onDisconnect = (): void => {
    this.#disconnected = true;
    this.#failPending(() => true, this.#disconnectedReason());
    this.#setStatus('down', new Error(this.#disconnectedReason()));
  };

  #attach(): void {
    if (this.#disconnected) return;
    this.#attachId = registry.nextId++;
    // The attach carries every topic this process listens to: a new hub learns them at once.
    this.#write({
      wscale: CLUSTER_TAG,
      id: this.#attachId,
      kind: 'attach',
      topics: [...this.#topics.keys()],
      probe: PROBE,
    });
  }

  #onAttached(result: unknown): void {
    this.#binary = isBinaryChannel((result as { probe?: unknown } | undefined)?.probe);
    this.#status = 'ready';
    this.#error = undefined;
    for (const [id, pending] of this.#pending) {
      if (pending.build !== undefined) this.#sendRequest(id, pending);
    }
    this.#notify();
  }

  #sendRequest(id: number, pending: Pending): void {
    const body = pending.build!(this.#binary);
    pending.build = undefined;
    this.#write({ wscale: CLUSTER_TAG, id, ...body } as RequestMessage, (error) => {
      if (!this.#pending.delete(id)) return;
      clearTimeout(pending.timer);
      pending.reject(pending.fail(`request failed: ${error.message}`, error));
    });
  }

  #write(message: RequestMessage, onError?: (error: Error) => void): void {
    this.#send(message, undefined, undefined, (error: Error | null) => {
      if (error) onError?.(error);
    });
  }

  #failPending(which: (pending: Pending) => boolean, reason: string): void {
    for (const [id, pending] of this.#pending) {
      if (!which(pending)) continue;
      this.#pending.delete(id);
      clearTimeout(pending.timer);
      pending.reject(pending.fail(reason));
    }
  }

  #setStatus(status: ChannelStatus, error?: Error): void {
    if (this.#status === status) return;
    this.#status = status;
    this.#error = error;
    this.#notify();
  }

  #notify(): void {
    for (const listener of this.#listeners) listener(this.#status, this.#error);
  }

  #disconnectedReason(): string {
    return 'the IPC channel to the primary process is closed';
  }
}

/** Checks a `requestTimeoutMs` option. */
export function requestTimeout(value: number | undefined): number {
  const timeoutMs = value ?? 5000;
  if (!(timeoutMs > 0 && timeoutMs < 2 ** 31)) {
    throw new InvalidOptionError('requestTimeoutMs must be > 0 and < 2^31');
  }
  return timeoutMs;
}
