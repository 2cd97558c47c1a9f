import { BrokerUnavailableError } from '../../errors.js';
import { BaseBroker, type BaseBrokerOptions } from '../base-broker.js';
import { type ErrorFactory, requestTimeout, WorkerChannel } from './worker-channel.js';

/** Options of {@link ClusterBroker}. */
export interface ClusterBrokerOptions extends BaseBrokerOptions {
  /**
   * How long a subscribe waits for the {@link ClusterHub} to confirm it before it rejects with
   * {@link BrokerUnavailableError}.
   * @default 5000
   */
  requestTimeoutMs?: number;
}

const unavailable: ErrorFactory = (message, cause) =>
  new BrokerUnavailableError(message, { cause });
const ignore = () => undefined;

/**
 * A {@link Broker} for a node:cluster worker: publishes go over the worker's IPC channel to the
 * {@link ClusterHub} in the primary, which hands them to every worker that subscribed the topic.
 *
 * Status: `connecting` until the hub first answers, `ready` while it does, `down` when the hub
 * closed (publishes queue until a new hub attaches) or the IPC channel to the primary closed (for
 * good: a disconnected worker should exit). Several brokers in one worker share one subscription
 * per topic at the hub.
 *
 * @throws {@link InvalidOptionError} when created outside a node:cluster worker.
 */
export class ClusterBroker extends BaseBroker {
  readonly #channel: WorkerChannel;
  readonly #timeoutMs: number;
  readonly #topics = new Set<string>();
  readonly #stopWatching: () => void;
  readonly #receiver = (topic: string, payload: Uint8Array): void => this.deliver(topic, payload);

  constructor(options: ClusterBrokerOptions = {}) {
    super(options);
    this.#timeoutMs = requestTimeout(options.requestTimeoutMs);
    this.#channel = WorkerChannel.acquire();
    this.#stopWatching = this.#channel.onStatus((status, error) => this.setStatus(status, error));
    this.setStatus(this.#channel.status, this.#channel.error);
  }

  /**
   * Publishes as {@link BaseBroker.publish}, except that once the IPC channel to the primary has
   * closed it rejects at once: that channel never comes back, so queueing would only hide the loss.
   */
  override async publish(topic: string, payload: Uint8Array): Promise<void> {
    if (this.#channel.disconnected && this.status !== 'closed') {
      throw new BrokerUnavailableError('the IPC channel to the primary process is closed');
    }
    return super.publish(topic, payload);
  }

  protected async subscribeTopic(topic: string): Promise<void> {
    this.#topics.add(topic);
    try {
      await this.#channel.subscribe(topic, this.#receiver, unavailable, this.#timeoutMs);
    } catch (error) {
      this.#topics.delete(topic);
      throw error;
    }
  }

  protected async unsubscribeTopic(topic: string): Promise<void> {
    this.#topics.delete(topic);
    await this.#channel.unsubscribe(topic, this.#receiver, unavailable, this.#timeoutMs);
  }

  protected publishTopic(topic: string, payload: Uint8Array): Promise<void> {
    return this.#channel.publish(topic, payload, unavailable);
  }

  protected async closeConnection(): Promise<void> {
    this.#stopWatching();
    for (const topic of this.#topics) {
      this.#channel.unsubscribe(topic, this.#receiver, unavailable, this.#timeoutMs).catch(ignore);
    }
    this.#topics.clear();
    this.#channel.release();
  }
}
