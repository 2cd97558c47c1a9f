import { MemoryBroker } from '@wscale/core';

/** A broker its node stops using at once, as a killed process does: it sends and hears nothing. */
export class FreezableBroker extends MemoryBroker {
  frozen = false;

  protected override deliver(topic: string, payload: Uint8Array): void {
    if (!this.frozen) super.deliver(topic, payload);
  }

  protected override async publishTopic(topic: string, payload: Uint8Array): Promise<void> {
    if (!this.frozen) await super.publishTopic(topic, payload);
  }
}

/**
 * A broker its node stops using for a while, as a process stopped and continued (SIGSTOP, a long
 * pause): what it would send and hear meanwhile waits, and goes in order once it is let go.
 */
export class PausableBroker extends MemoryBroker {
  #waiting: Array<() => void> | undefined;

  pause(): void {
    this.#waiting ??= [];
  }

  resume(): void {
    const waiting = this.#waiting ?? [];
    this.#waiting = undefined;
    for (const run of waiting) run();
  }

  protected override deliver(topic: string, payload: Uint8Array): void {
    if (this.#waiting === undefined) super.deliver(topic, payload);
    else this.#waiting.push(() => super.deliver(topic, payload));
  }

  protected override async publishTopic(topic: string, payload: Uint8Array): Promise<void> {
    if (this.#waiting === undefined) return super.publishTopic(topic, payload);
    this.#waiting.push(() => void super.publishTopic(topic, payload));
  }
}
