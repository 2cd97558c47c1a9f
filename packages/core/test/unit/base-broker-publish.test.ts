import { BaseBroker, BrokerClosedError, BrokerUnavailableError } from '@wscale/core';
import { describe, expect, it } from 'vitest';

/** A broker whose publishes wait until the test settles them. */
class HeldBroker extends BaseBroker {
  readonly held: ((error: Error) => void)[] = [];
  throwOnPublish = false;

  constructor() {
    super();
    this.setStatus('ready');
  }

  protected async subscribeTopic(): Promise<void> {}
  protected async unsubscribeTopic(): Promise<void> {}
  protected async closeConnection(): Promise<void> {}

  protected publishTopic(): Promise<unknown> {
    if (this.throwOnPublish) throw new Error('refused at once');
    return new Promise((_, reject) => this.held.push(reject));
  }
}

describe('BaseBroker.publish', () => {
  it('rejects a publish that fails as the broker closes, instead of queueing it for ever', async () => {
    const broker = new HeldBroker();
    const publish = broker.publish('t', new Uint8Array([1]));
    await broker.close();
    broker.held[0]!(new Error('connection closed'));
    await expect(publish).rejects.toBeInstanceOf(BrokerClosedError);
  });

  it('turns an adapter that throws instead of rejecting into a typed rejection', async () => {
    const broker = new HeldBroker();
    broker.throwOnPublish = true;
    await expect(broker.publish('t', new Uint8Array([1]))).rejects.toBeInstanceOf(
      BrokerUnavailableError,
    );
    await broker.close();
  });
});
