import { BaseBroker, type BaseBrokerOptions } from '../base-broker.js';

/**
 * The network that {@link MemoryBroker}s in one process talk over. Give every node's broker the
 * same bus and they form a real multi-node cluster in one process: the way wscale's own tests run,
 * and a way to test an application's multi-node behaviour without an external service.
 */
export class MemoryBus {
  readonly #brokers = new Set<MemoryBroker>();
  #up = true;

  /** Whether the bus is up; while it is down every broker on it reports `down`. */
  get up(): boolean {
    return this.#up;
  }

  /** Simulates losing the broker service: every broker on the bus goes `down` and queues. */
  disconnect(): void {
    this.#up = false;
    for (const broker of this.#brokers) broker.linkChanged();
  }

  /** Ends a simulated outage: every broker goes `ready` and sends what it queued, in order. */
  reconnect(): void {
    this.#up = true;
    for (const broker of this.#brokers) broker.linkChanged();
  }

  /** @internal */
  attach(broker: MemoryBroker): void {
    this.#brokers.add(broker);
  }

  /** @internal */
  detach(broker: MemoryBroker): void {
    this.#brokers.delete(broker);
  }

  /** @internal Delivers on a later microtask, in publish order, like a network broker. */
  send(topic: string, payload: Uint8Array): void {
    for (const broker of this.#brokers) {
      if (broker.wants(topic)) queueMicrotask(() => broker.receive(topic, payload));
    }
  }
}

/** Options of {@link MemoryBroker}. */
export interface MemoryBrokerOptions extends BaseBrokerOptions {
  /**
   * The bus to join. Brokers on the same bus reach each other.
   * @default a new bus of its own (a single-node cluster)
   */
  bus?: MemoryBus;
}

/**
 * A {@link Broker} inside one process: one node's connection to a {@link MemoryBus}. One instance
 * may also be shared by several servers of one process.
 */
export class MemoryBroker extends BaseBroker {
  /** The bus this broker is on; call `bus.disconnect()` to simulate an outage. */
  readonly bus: MemoryBus;
  readonly #topics = new Set<string>();

  constructor(options: MemoryBrokerOptions = {}) {
    super(options);
    this.bus = options.bus ?? new MemoryBus();
    this.bus.attach(this);
    this.linkChanged();
  }

  /** @internal */
  linkChanged(): void {
    this.setStatus(this.bus.up ? 'ready' : 'down');
  }

  /** @internal */
  wants(topic: string): boolean {
    return this.#topics.has(topic);
  }

  /** @internal */
  receive(topic: string, payload: Uint8Array): void {
    this.deliver(topic, payload);
  }

  protected async subscribeTopic(topic: string): Promise<void> {
    this.#topics.add(topic);
  }

  protected async unsubscribeTopic(topic: string): Promise<void> {
    this.#topics.delete(topic);
  }

  protected async publishTopic(topic: string, payload: Uint8Array): Promise<void> {
    this.bus.send(topic, payload);
  }

  protected async closeConnection(): Promise<void> {
    this.#topics.clear();
    this.bus.detach(this);
  }
}
