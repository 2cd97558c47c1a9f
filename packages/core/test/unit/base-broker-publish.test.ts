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

/**
 * A broker whose connection the test drops and restores, and whose sends it answers one by one.
 * Payloads are one byte, the last of what goes on the wire; `arrive` hands a sent message to the
 * subscribers, as a broker that got it would, whatever the answer.
 */
class ScriptedBroker extends BaseBroker {
  readonly out: Array<{ n: number; arrive(): void; answer(error?: Error): void }> = [];

  protected async subscribeTopic(): Promise<void> {}
  protected async unsubscribeTopic(): Promise<void> {}
  protected async closeConnection(): Promise<void> {}

  protected publishTopic(topic: string, payload: Uint8Array): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const answer = (error?: Error) => (error === undefined ? resolve(undefined) : reject(error));
      const arrive = () => this.deliver(topic, payload);
      this.out.push({ n: payload.at(-1)!, arrive, answer });
    });
  }

  connection(status: 'ready' | 'reconnecting'): void {
    this.setStatus(status);
  }
}

const tick = () => new Promise((resolve) => setImmediate(resolve));

describe('BaseBroker.publish', () => {
  it('sends its queue pipelined after a reconnect, and keeps in place what a new drop failed', async () => {
    const broker = new ScriptedBroker();
    const settled: number[] = [];
    const publish = (n: number) =>
      broker.publish('t', new Uint8Array([n])).then(() => settled.push(n));
    const published = [1, 2, 3, 4, 5].map(publish);
    broker.connection('ready');
    await tick();
    // All five are out before any is answered.
    expect(broker.out.map((sent) => sent.n)).toEqual([1, 2, 3, 4, 5]);
    broker.connection('reconnecting');
    const sixth = publish(6);
    const [one, two, ...rest] = broker.out.splice(0);
    one!.answer();
    two!.answer();
    for (const sent of rest) sent.answer(new Error('connection lost'));
    await tick();
    expect(settled).toEqual([1, 2]);
    expect(broker.queued).toBe(4);
    broker.connection('ready');
    await tick();
    expect(broker.out.map((sent) => sent.n)).toEqual([3, 4, 5, 6]);
    for (const sent of broker.out.splice(0)) sent.answer();
    await Promise.all([...published, sixth]);
    expect(settled).toEqual([1, 2, 3, 4, 5, 6]);
    expect(broker.queued).toBe(0);
    await broker.close();
  });

  it('drains a long queue in bounded batches, in order', async () => {
    const broker = new ScriptedBroker();
    const published = Array.from({ length: 600 }, (_, i) =>
      broker.publish('t', new Uint8Array([i % 256])),
    );
    broker.connection('ready');
    const batches: number[] = [];
    const sent: number[] = [];
    while (sent.length < 600) {
      await tick();
      const batch = broker.out.splice(0);
      batches.push(batch.length);
      for (const each of batch) {
        sent.push(each.n);
        each.answer();
      }
    }
    await Promise.all(published);
    expect(batches).toEqual([256, 256, 88]);
    expect(sent).toEqual(Array.from({ length: 600 }, (_, i) => i % 256));
    await broker.close();
  });

  it('sends again what the broker may have had when the connection dropped; subscribers get it once', async () => {
    const broker = new ScriptedBroker();
    broker.connection('ready');
    const received: number[] = [];
    await broker.subscribe('t', (payload) => received.push(payload[0]!));
    const published = [1, 2, 3].map((n) => broker.publish('t', new Uint8Array([n])));
    // The broker had all three and passed them on, but the answers are lost with the connection.
    for (const sent of broker.out) sent.arrive();
    broker.connection('reconnecting');
    for (const sent of broker.out.splice(0)) sent.answer(new Error('connection lost'));
    await tick();
    expect(broker.queued).toBe(3);
    broker.connection('ready');
    await tick();
    expect(broker.out.map((sent) => sent.n)).toEqual([1, 2, 3]);
    for (const sent of broker.out.splice(0)) {
      sent.arrive();
      sent.answer();
    }
    await Promise.all(published);
    const fourth = broker.publish('t', new Uint8Array([4]));
    for (const sent of broker.out.splice(0)) {
      sent.arrive();
      sent.answer();
    }
    await fourth;
    expect(received).toEqual([1, 2, 3, 4]);
    await broker.close();
  });

  it('sends again every publish that was out when the connection dropped, past the queue’s bound', async () => {
    const broker = new ScriptedBroker({ maxQueuedPublishes: 2 });
    broker.connection('ready');
    const received: number[] = [];
    await broker.subscribe('t', (payload) => received.push(payload[0]!));
    const settled: string[] = [];
    const published = [1, 2, 3, 4, 5].map((n) =>
      broker.publish('t', new Uint8Array([n])).then(
        () => settled.push(`${n}`),
        () => settled.push(`${n} rejected`),
      ),
    );
    // The broker may have run all five: none of them can be refused now.
    for (const sent of broker.out) sent.arrive();
    broker.connection('reconnecting');
    for (const sent of broker.out.splice(0)) sent.answer(new Error('connection lost'));
    await tick();
    expect(broker.queued).toBe(5);
    // A new publish is held to the bound, though.
    await expect(broker.publish('t', new Uint8Array([6]))).rejects.toThrow(BrokerUnavailableError);
    broker.connection('ready');
    await tick();
    for (const sent of broker.out.splice(0)) {
      sent.arrive();
      sent.answer();
    }
    await Promise.all(published);
    expect(settled.sort()).toEqual(['1', '2', '3', '4', '5']);
    expect(received).toEqual([1, 2, 3, 4, 5]);
    await broker.close();
  });

  it('sends again, never rejects, a publish that failed because the connection hangs', async () => {
    class HangingBroker extends ScriptedBroker {
      protected override hangs(error: unknown): boolean {
        if (!(error instanceof Error && error.message === 'unanswered')) return false;
        this.connection('reconnecting');
        return true;
      }
    }
    const broker = new HangingBroker();
    broker.connection('ready');
    const published = [1, 2].map((n) => broker.publish('t', new Uint8Array([n])));
    const [one, two] = broker.out.splice(0);
    one!.answer(new Error('unanswered'));
    two!.answer(new Error('unanswered'));
    await tick();
    expect(broker.status).toBe('reconnecting');
    expect(broker.queued).toBe(2);
    broker.connection('ready');
    await tick();
    expect(broker.out.map((sent) => sent.n)).toEqual([1, 2]);
    for (const sent of broker.out.splice(0)) sent.answer();
    await Promise.all(published);
    // A refusal is not a hang: rejected.
    const refused = broker.publish('t', new Uint8Array([3]));
    broker.out.splice(0)[0]!.answer(new Error('NOPERM'));
    await expect(refused).rejects.toThrow(BrokerUnavailableError);
    await broker.close();
  });

  it('puts publishes that failed in flight back before those queued after them', async () => {
    const broker = new ScriptedBroker();
    broker.connection('ready');
    const published = [1, 2].map((n) => broker.publish('t', new Uint8Array([n])));
    broker.connection('reconnecting');
    const third = broker.publish('t', new Uint8Array([3]));
    for (const sent of broker.out.splice(0)) sent.answer(new Error('connection lost'));
    await tick();
    broker.connection('ready');
    await tick();
    expect(broker.out.map((sent) => sent.n)).toEqual([1, 2, 3]);
    for (const sent of broker.out.splice(0)) sent.answer();
    await Promise.all([...published, third]);
    await broker.close();
  });

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
