import assert from 'node:assert/strict';
import { Buffer } from 'node:buffer';
import process from 'node:process';
import type { Broker, BrokerStatus } from '../contracts.js';
import { WscaleError } from '../errors.js';
import { Cleanup, delay, type SuiteRunner, until } from './runner.js';

/** How {@link brokerSuite} reaches the broker under test. */
export interface BrokerSuiteOptions {
  /**
   * Creates a broker connected to the system under test. Called several times in one test: every
   * instance plays a different node and must reach the others.
   */
  create(): Broker | Promise<Broker>;
  /**
   * Takes the broker service down and brings it back, for the outage tests. Omit it and those
   * tests are not declared.
   */
  outage?: { stop(): Promise<void>; start(): Promise<void> };
  /** How long one wait may take, in ms. @default 5000 */
  timeoutMs?: number;
}

/**
 * The behaviour every {@link Broker} must have, as tests. An adapter's suite file calls it with
 * its runner and a factory that connects to a real broker.
 */
export function brokerSuite(runner: SuiteRunner, options: BrokerSuiteOptions): void {
  const { describe, it, afterEach } = runner;
  const timeoutMs = options.timeoutMs ?? 5000;
  const cleanup = new Cleanup();
  const open = async () => cleanup.add(await options.create());
  let topicCounter = 0;
  const fresh = (name = 'topic') =>
    `conformance:${process.pid}:${Date.now()}:${topicCounter++}:${name}`;

  const inbox = async (broker: Broker, topic: string) => {
    const received: Buffer[] = [];
    const unsubscribe = await broker.subscribe(topic, (payload, t) => {
      assert.equal(t, topic);
      received.push(Buffer.from(payload));
    });
    const waitFor = (count: number) =>
      until(() => received.length >= count, timeoutMs, `${count} messages on ${topic}`);
    return { received, waitFor, unsubscribe };
  };

  describe('Broker conformance', () => {
    afterEach(() => cleanup.run());

    it('reaches ready', async () => {
      const broker = await open();
      await until(() => broker.status === 'ready', timeoutMs, 'status ready');
    });

    it('delivers the exact bytes to a subscriber on another node', async () => {
      const [a, b] = [await open(), await open()];
      const topic = fresh();
      const box = await inbox(b, topic);
      const payload = Uint8Array.from([0, 1, 2, 255, 254, 0, 10, 13]);
      await a.publish(topic, payload);
      await box.waitFor(1);
      assert.deepEqual([...box.received[0]!], [...payload]);
    });

    it('delivers to every subscription once, the publisher included', async () => {
      const [a, b] = [await open(), await open()];
      const topic = fresh();
      const boxes = [await inbox(a, topic), await inbox(b, topic), await inbox(b, topic)];
      await a.publish(topic, Buffer.from('hello'));
      await Promise.all(boxes.map((box) => box.waitFor(1)));
      await delay(50);
      for (const box of boxes) assert.deepEqual(box.received.map(String), ['hello']);
    });

    it('keeps publish order for one publisher', async () => {
      const [a, b] = [await open(), await open()];
      const topic = fresh();
      const box = await inbox(b, topic);
      const sent = Array.from({ length: 300 }, (_, i) => String(i));
      await Promise.all(sent.map((n) => a.publish(topic, Buffer.from(n))));
      await box.waitFor(sent.length);
      assert.deepEqual(box.received.map(String), sent);
    });

    it('never crosses topics, whatever characters the names hold', async () => {
      const [a, b] = [await open(), await open()];
      const names = [
        'plain',
        'a.b',
        'a.*',
        'a.>',
        '*',
        '>',
        'with space',
        'ünï/cødé',
        'a:b',
        '{tag}',
        '',
      ];
      const topics = names.map((name) => fresh(name));
      const boxes = await Promise.all(topics.map((topic) => inbox(b, topic)));
      await Promise.all(topics.map((topic) => a.publish(topic, Buffer.from(topic))));
      await Promise.all(boxes.map((box) => box.waitFor(1)));
      await delay(100);
      assert.deepEqual(
        boxes.map((box) => box.received.map(String)),
        topics.map((topic) => [topic]),
      );
    });

    it('stops delivering to a removed subscription but keeps the others', async () => {
      const [a, b] = [await open(), await open()];
      const topic = fresh();
      const kept = await inbox(b, topic);
      const removed = await inbox(b, topic);
      await removed.unsubscribe();
      await removed.unsubscribe();
      await a.publish(topic, Buffer.from('after'));
      await kept.waitFor(1);
      await delay(50);
      assert.equal(removed.received.length, 0);
      await kept.unsubscribe();
      const again = await inbox(b, topic);
      await a.publish(topic, Buffer.from('again'));
      await again.waitFor(1);
      assert.deepEqual(again.received.map(String), ['again']);
      assert.deepEqual(kept.received.map(String), ['after']);
    });

    it('publishing to a topic nobody listens to succeeds', async () => {
      const broker = await open();
      await broker.publish(fresh('nobody'), Buffer.from('x'));
    });

    it('rejects use after close with a typed error', async () => {
      const broker = await options.create();
      await broker.close();
      assert.equal(broker.status, 'closed');
      await assert.rejects(broker.publish(fresh(), Buffer.from('x')), WscaleError);
      await assert.rejects(
        broker.subscribe(fresh(), () => undefined),
        WscaleError,
      );
      await broker.close();
    });

    const outage = options.outage;
    if (outage === undefined) return;

    it(
      'survives an outage: reports it, resubscribes, and never fails a publish untyped',
      async () => {
        const [a, b] = [await open(), await open()];
        await until(() => a.status === 'ready' && b.status === 'ready', timeoutMs, 'ready');
        const topic = fresh();
        const box = await inbox(b, topic);
        const seen: BrokerStatus[] = [];
        b.on('status', (status) => seen.push(status));
        await outage.stop();
        try {
          await until(() => b.status !== 'ready', timeoutMs * 2, 'status to leave ready');
          // A publish during the outage either queues (and is delivered later) or fails typed.
          const during = a.publish(topic, Buffer.from('during')).then(
            () => 'sent' as const,
            (error: unknown) => {
              assert.ok(error instanceof WscaleError, `untyped publish error: ${String(error)}`);
              return 'rejected' as const;
            },
          );
          await outage.start();
          await until(() => a.status === 'ready' && b.status === 'ready', timeoutMs * 3, 'ready');
          // Whether a queued publish reaches a subscriber that is still resubscribing is a race
          // plain pub/sub cannot close; history (offsets + replay) is what makes delivery exact.
          await during;
          await a.publish(topic, Buffer.from('after'));
          await until(() => box.received.map(String).includes('after'), timeoutMs, 'after');
          assert.ok(seen.includes('ready'));
          assert.ok(seen.some((status) => status !== 'ready'));
        } finally {
          await outage.start();
        }
      },
      timeoutMs * 8,
    );

    it(
      'keeps one publisher in order across an outage while publishing, and repeats nothing',
      async () => {
        const [a, b] = [await open(), await open()];
        await until(() => a.status === 'ready' && b.status === 'ready', timeoutMs, 'ready');
        const topic = fresh();
        // Heard on another broker, and on the publisher's own (which some brokers hand their own
        // publishes without the service: a publish sent again must not come twice there either).
        const [received, own] = [[] as number[], [] as number[]];
        await b.subscribe(topic, (payload) => received.push(Number(Buffer.from(payload))));
        await a.subscribe(topic, (payload) => own.push(Number(Buffer.from(payload))));
        let sent = 0;
        let stop = false;
        // A hundred publishes in flight at a time, so some are out when the connection dies.
        const publisher = (async () => {
          while (!stop && sent < 20_000) {
            const batch = Array.from({ length: 100 }, () => ++sent);
            await Promise.all(
              batch.map((n) =>
                a.publish(topic, Buffer.from(String(n))).catch((error: unknown) => {
                  assert.ok(error instanceof WscaleError, `untyped: ${String(error)}`);
                }),
              ),
            );
            await new Promise((resolve) => setImmediate(resolve));
          }
        })();
        try {
          await until(() => received.length >= 50, timeoutMs, 'traffic before the outage');
          await outage.stop();
          await until(() => a.status !== 'ready', timeoutMs * 2, 'the publisher to notice');
          await outage.start();
          await until(() => a.status === 'ready' && b.status === 'ready', timeoutMs * 3, 'ready');
          const mark = sent;
          const after = (heard: number[]) => heard.some((n) => n > mark);
          await until(() => after(received) && after(own), timeoutMs, 'delivery after');
        } finally {
          stop = true;
          await publisher;
          await outage.start();
        }
        for (const heard of [received, own]) {
          for (let i = 1; i < heard.length; i++) {
            assert.ok(
              heard[i]! > heard[i - 1]!,
              `${heard[i]} after ${heard[i - 1]}: out of order or repeated`,
            );
          }
        }
      },
      timeoutMs * 8,
    );
  });
}
