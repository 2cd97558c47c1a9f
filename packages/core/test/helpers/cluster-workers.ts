import cluster, { type Worker } from 'node:cluster';
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import {
  type Broker,
  type BrokerStatus,
  type History,
  type HistoryPosition,
  type HistoryReadResult,
  type StateStore,
  type TopicListener,
  type Version,
  type Versioned,
  WscaleError,
  type WscaleErrorCode,
} from '@wscale/core';
import { EventEmitter } from 'eventemitter3';

const fixture = fileURLToPath(new URL('../fixtures/cluster-worker.mjs', import.meta.url));
const built = fileURLToPath(new URL('../../dist/index.js', import.meta.url));
const callTimeoutMs = 15_000;

/**
 * One real node:cluster worker running `fixtures/cluster-worker.mjs`, driven from the test process
 * (its primary) with plain application IPC messages.
 */
export class WorkerHandle {
  /** What the worker printed (its stdout and stderr), for failure messages. */
  output = '';
  /** Application messages the worker handed back untouched. */
  readonly appEchoes: unknown[] = [];
  readonly #calls = new Map<string, { resolve(v: unknown): void; reject(e: Error): void }>();
  readonly #statusListeners = new Map<string, (status: BrokerStatus) => void>();
  readonly #deliveries = new Map<string, TopicListener>();

  constructor(readonly worker: Worker) {
    worker.process.stdout?.on('data', (chunk: Buffer) => {
      this.output += chunk.toString();
    });
    worker.process.stderr?.on('data', (chunk: Buffer) => {
      this.output += chunk.toString();
    });
    worker.on('message', (raw: unknown) => this.#onMessage(raw));
  }

  get pid(): number {
    return this.worker.process.pid!;
  }

  /** Runs one of the fixture's operations in the worker. */
  call(op: string, ...args: unknown[]): Promise<unknown> {
    const id = randomUUID();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#calls.delete(id);
        reject(new Error(`worker ${this.pid}: ${op} got no answer in ${callTimeoutMs} ms`));
      }, callTimeoutMs);
      this.#calls.set(id, {
        resolve: (value) => {
          clearTimeout(timer);
          resolve(value);
        },
        reject: (error) => {
          clearTimeout(timer);
          reject(error);
        },
      });
      this.worker.send(encode({ rpc: 'call', id, op, args }) as object);
    });
  }

  /** @internal */
  watchStatus(instance: string, listener: (status: BrokerStatus) => void): void {
    this.#statusListeners.set(instance, listener);
  }

  /** @internal */
  onDeliver(subscription: string, listener: TopicListener | undefined): void {
    if (listener) this.#deliveries.set(subscription, listener);
    else this.#deliveries.delete(subscription);
  }

  #onMessage(raw: unknown): void {
    const message = decode(raw) as Record<string, unknown>;
    switch (message.rpc) {
      case 'result': {
        const call = this.#calls.get(message.id as string);
        this.#calls.delete(message.id as string);
        if (message.ok) call?.resolve(message.result);
        else call?.reject(remoteError(message.error as RemoteError));
        return;
      }
      case 'status':
        this.#statusListeners.get(message.instance as string)?.(message.status as BrokerStatus);
        return;
      case 'deliver':
        this.#deliveries.get(message.subscription as string)?.(
          message.payload as Uint8Array,
          message.topic as string,
        );
        return;
      case 'app-echo':
        this.appEchoes.push(message.message);
        return;
    }
  }
}

/**
 * Forks `count` workers with the given IPC serialization and waits until each has loaded the
 * built package and answered.
 */
export async function forkWorkers(
  count: number,
  serialization: 'json' | 'advanced' = 'json',
): Promise<WorkerHandle[]> {
  if (!existsSync(built)) {
    throw new Error(`${built} is missing: the workers run the built package, run pnpm build first`);
  }
  cluster.setupPrimary({ exec: fixture, execArgv: [], args: [], serialization, silent: true });
  return Promise.all(
    Array.from({ length: count }, async () => {
      const handle = new WorkerHandle(cluster.fork());
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => {
          reject(new Error(`worker did not start in 10 s:\n${handle.output}`));
        }, 10_000);
        const onMessage = (message: { rpc?: string }) => {
          if (message?.rpc !== 'ready') return;
          clearTimeout(timer);
          handle.worker.off('message', onMessage);
          resolve();
        };
        handle.worker.on('message', onMessage);
        handle.worker.once('exit', (code) => {
          clearTimeout(timer);
          reject(new Error(`worker exited (${code}) before it started:\n${handle.output}`));
        });
      });
      return handle;
    }),
  );
}

/** Ends workers this test forked (by their own handle, never by name) and waits for them. */
export async function stopWorkers(handles: WorkerHandle[], signal: NodeJS.Signals = 'SIGTERM') {
  await Promise.all(handles.map((handle) => stopWorker(handle, signal)));
}

export function stopWorker(handle: WorkerHandle, signal: NodeJS.Signals = 'SIGTERM') {
  const { worker } = handle;
  if (worker.process.exitCode !== null || worker.process.signalCode !== null) {
    return Promise.resolve();
  }
  return new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`worker ${handle.pid} did not exit`)), 10_000);
    worker.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    worker.process.kill(signal);
  });
}

let nextInstance = 0;
const instanceId = () => `instance-${nextInstance++}`;

/** A {@link Broker} whose real implementation is a ClusterBroker inside a worker. */
export class RemoteBroker extends EventEmitter<{ status: [BrokerStatus] }> implements Broker {
  status: BrokerStatus = 'connecting';
  #nextSubscription = 0;

  private constructor(
    private readonly handle: WorkerHandle,
    private readonly id: string,
  ) {
    super();
  }

  static async create(handle: WorkerHandle, options: object = {}): Promise<RemoteBroker> {
    const broker = new RemoteBroker(handle, instanceId());
    let changed = false;
    handle.watchStatus(broker.id, (status) => {
      changed = true;
      broker.status = status;
      broker.emit('status', status);
    });
    const created = (await handle.call('create', 'broker', broker.id, options)) as {
      status: BrokerStatus;
    };
    // A status change sent right after the answer can be handled before this line runs.
    if (!changed) broker.status = created.status;
    return broker;
  }

  async publish(topic: string, payload: Uint8Array): Promise<void> {
    await this.handle.call('invoke', this.id, 'publish', [topic, payload]);
  }

  async subscribe(topic: string, listener: TopicListener): Promise<() => Promise<void>> {
    const subscription = `${this.id}/${this.#nextSubscription++}`;
    // Registered before asking: the worker may deliver before its answer arrives.
    this.handle.onDeliver(subscription, listener);
    try {
      await this.handle.call('subscribe', this.id, topic, subscription);
    } catch (error) {
      this.handle.onDeliver(subscription, undefined);
      throw error;
    }
    return async () => {
      await this.handle.call('unsubscribe', subscription);
      this.handle.onDeliver(subscription, undefined);
    };
  }

  async close(): Promise<void> {
    await this.handle.call('invoke', this.id, 'close', []);
  }
}

/** A {@link StateStore} whose real implementation is a ClusterStateStore inside a worker. */
export class RemoteStateStore implements StateStore {
  private constructor(
    private readonly handle: WorkerHandle,
    private readonly id: string,
    readonly ttlMs: number,
  ) {}

  static async create(handle: WorkerHandle, options: { ttlMs: number; requestTimeoutMs?: number }) {
    const store = new RemoteStateStore(handle, instanceId(), options.ttlMs);
    await handle.call('create', 'stateStore', store.id, options);
    return store;
  }

  get(key: string) {
    return this.#invoke('get', key) as Promise<Versioned<string> | undefined>;
  }

  set(key: string, value: string, options?: { ifVersion?: Version | null }) {
    return this.#invoke('set', key, value, options) as Promise<Version | undefined>;
  }

  async delete(key: string) {
    await this.#invoke('delete', key);
  }

  async close() {
    await this.#invoke('close');
  }

  #invoke(method: string, ...args: unknown[]) {
    return this.handle.call('invoke', this.id, method, withoutTrailingUndefined(args));
  }
}

/** A {@link History} whose real implementation is a ClusterHistory inside a worker. */
export class RemoteHistory implements History {
  private constructor(
    private readonly handle: WorkerHandle,
    private readonly id: string,
  ) {}

  static async create(handle: WorkerHandle, options: object) {
    const history = new RemoteHistory(handle, instanceId());
    await handle.call('create', 'history', history.id, options);
    return history;
  }

  append(room: string, payload: Uint8Array) {
    return this.#invoke('append', room, payload) as Promise<HistoryPosition>;
  }

  read(room: string, after: HistoryPosition, limit?: number) {
    return this.#invoke('read', room, after, limit) as Promise<HistoryReadResult>;
  }

  position(room: string) {
    return this.#invoke('position', room) as Promise<HistoryPosition>;
  }

  async close() {
    await this.#invoke('close');
  }

  #invoke(method: string, ...args: unknown[]) {
    return this.handle.call('invoke', this.id, method, withoutTrailingUndefined(args));
  }
}

interface RemoteError {
  message: string;
  typed: boolean;
  code?: WscaleErrorCode;
}

/** The worker's error, typed again when it was a WscaleError there. */
function remoteError(error: RemoteError): Error {
  return error.typed && error.code
    ? new WscaleError(error.code, error.message)
    : new Error(error.message);
}

/** Bytes cross the test's own messages as `{ $bytes: base64 }`, whatever the serialization. */
function encode(value: unknown): unknown {
  if (value instanceof Uint8Array) return { $bytes: Buffer.from(value).toString('base64') };
  if (Array.isArray(value)) return value.map(encode);
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([key, v]) => [key, encode(v)]));
  }
  return value;
}

function decode(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(decode);
  if (value !== null && typeof value === 'object') {
    const bytes = (value as { $bytes?: unknown }).$bytes;
    if (typeof bytes === 'string') return new Uint8Array(Buffer.from(bytes, 'base64'));
    return Object.fromEntries(Object.entries(value).map(([key, v]) => [key, decode(v)]));
  }
  return value;
}

/** JSON turns `undefined` in an array into `null`; an omitted argument must stay omitted. */
function withoutTrailingUndefined(args: unknown[]): unknown[] {
  let end = args.length;
  while (end > 0 && args[end - 1] === undefined) end--;
  return args.slice(0, end);
}
