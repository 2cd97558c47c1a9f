import { MemoryBroker, type MemoryBus } from '@wscale/core';
import { delay } from '@wscale/core/testing';
import { STAMP_BYTES } from '../../src/adapters/publish-stamp.js';

/** The first byte of a frame between nodes (after the broker's stamp) is its kind (bus-codec.ts). */
const DIRECT = 2;
const MOVED = 7;

/**
 * A broker with a network's delays: each topic reaches this node after its own fixed latency
 * (order per topic is kept, as the Broker contract says), so frames on different topics overtake
 * each other the way they do on a real broker. Counts the direct operations this node receives.
 */
export class LaggyBroker extends MemoryBroker {
  directs = 0;
  readonly #latency: (topic: string) => number;
  readonly #ackMs: number;

  constructor(bus: MemoryBus, latency: (topic: string) => number, ackMs: number) {
    super({ bus });
    this.#latency = latency;
    this.#ackMs = ackMs;
  }

  /** Acknowledges a takeover's announcement late, as a broker under load may. */
  override async publish(topic: string, payload: Uint8Array): Promise<void> {
    await super.publish(topic, payload);
    if (payload[0] === MOVED && this.#ackMs > 0) await delay(this.#ackMs);
  }

  protected override deliver(topic: string, payload: Uint8Array): void {
    if (payload[STAMP_BYTES] === DIRECT) this.directs++;
    setTimeout(() => super.deliver(topic, payload), this.#latency(topic));
  }
}
