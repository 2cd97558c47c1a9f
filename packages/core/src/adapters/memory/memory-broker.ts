import { BaseBroker, type BaseBrokerOptions } from '../base-broker.js';

/** One broker's end of a bus: what the bus calls on it. */
interface Link {
  /** The topics the broker listens to. */
  readonly topics: ReadonlySet<string>;
  receive(topic: string, payload: Uint8Array): void;
  /** The bus went up or down. */
  changed(): void;
}

/** The links of a bus, reachable from this module only. */
let linksOf: (bus: MemoryBus) => Set<Link>;

/**
 * The network that {@link MemoryBroker}s in one process talk over. Give every node's broker the
 * same bus and they form a real multi-node cluster in one process: the way wscale's own tests run,
 * and a way to test an application's multi-node behaviour without an external service.
 */
export class MemoryBus {
  static {
    linksOf = (bus) => bus.#links;
  }

  readonly #links = new Set<Link>();
  #up = true;

  /** Whether the bus is up; while it is down every broker on it reports `down`. */
  get up(): boolean {
    return this.#up;
  }

  /** Simulates losing the broker service: every broker on the bus goes `down` and queues. */
  disconnect(): void {
    this.#up = false;
    for (const link of this.#links) link.changed();
  }

  /** Ends a simulated outage: every broker goes `ready` and sends what it queued, in order. */
  reconnect(): void {
    this.#up = true;
    for (const link of this.#links) link.changed();
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
  readonly #link: Link = {
    topics: this.#topics,
    receive: (topic, payload) => this.deliver(topic, payload),
    changed: () => this.setStatus(this.bus.up ? 'ready' : 'down'),
  };

  constructor(options: MemoryBrokerOptions = {}) {
    super(options);
    this.bus = options.bus ?? new MemoryBus();
    linksOf(this.bus).add(this.#link);
    this.#link.changed();
  }

  protected async subscribeTopic(topic: string): Promise<void> {
    this.#topics.add(topic);
  }

  protected async unsubscribeTopic(topic: string): Promise<void> {
    this.#topics.delete(topic);
  }

  protected async publishTopic(topic: string, payload: Uint8Array): Promise<void> {
    // Delivered on a later microtask, in publish order, like a network broker.
    for (const link of linksOf(this.bus)) {
      if (link.topics.has(topic)) queueMicrotask(() => link.receive(topic, payload));
    }
  }

  protected async closeConnection(): Promise<void> {
    this.#topics.clear();
    linksOf(this.bus).delete(this.#link);
  }
}
