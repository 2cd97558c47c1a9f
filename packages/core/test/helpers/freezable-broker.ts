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
