/**
 * How a node and a `Publisher` publish frames between nodes: on a broker that stamps as
 * `BaseBroker` does, encoded with room for the stamp and stamped in place; on a broker whose
 * `publish` an application overrode, through that `publish`. Either way every frame arrives once,
 * whole, in order with the broker's other publishes.
 */
import { MemoryBroker, MemoryBus } from '@wscale/core';
import { until } from '@wscale/core/testing';
import { describe, expect, it } from 'vitest';
import { BusKind, type BusMessage, decodeBusFrame } from '../../src/mesh/bus-codec.js';
import { framePublisher } from '../../src/server/publication.js';

/** A broker an application extended to count what it publishes. */
class CountingBroker extends MemoryBroker {
  published = 0;

  override publish(topic: string, payload: Uint8Array): Promise<void> {
    this.published++;
    return super.publish(topic, payload);
  }
}

async function exchange(sender: MemoryBroker, receiver: MemoryBroker) {
  const received: Uint8Array[] = [];
  await receiver.subscribe('t', (payload) => received.push(Buffer.from(payload)));
  const send = framePublisher(sender);
  const frames: BusMessage[] = [1, 2, 3].map((i) => ({
    kind: BusKind.Direct,
    header: { o: 'send', n: 'node-a', c: `client-${i}`, d: 'node-b' },
  }));
  await send('t', frames[0]!, Buffer.from('one'), 0);
  // A plain publish between two frames keeps its place: one stamp sequence for both ways.
  await sender.publish('t', Buffer.from('plain'));
  await Promise.all([
    send('t', frames[1]!, Buffer.from('two'), 1),
    send('t', frames[2]!, Buffer.from('three'), 2),
  ]);
  await until(() => received.length >= 4, 2000, 'four messages');
  expect(received).toHaveLength(4);
  expect(Buffer.from(received[1]!).toString()).toBe('plain');
  const decoded = [received[0], received[2], received[3]].map((bytes) => decodeBusFrame(bytes!));
  expect(decoded.map((frame) => frame.header)).toStrictEqual(frames.map((frame) => frame.header));
  expect(decoded.map((frame) => frame.payload.toString())).toEqual(['one', 'two', 'three']);
  expect(decoded.map((frame) => frame.flags)).toEqual([0, 1, 2]);
}

describe('framePublisher', () => {
  it('stamps frames in place on a BaseBroker: each arrives once, whole, in order', async () => {
    const bus = new MemoryBus();
    const [sender, receiver] = [new MemoryBroker({ bus }), new MemoryBroker({ bus })];
    await exchange(sender, receiver);
    await Promise.all([sender.close(), receiver.close()]);
  });

  it("goes through a subclass's own publish, for every frame", async () => {
    const bus = new MemoryBus();
    const [sender, receiver] = [new CountingBroker({ bus }), new MemoryBroker({ bus })];
    await exchange(sender, receiver);
    expect(sender.published).toBe(4);
    await Promise.all([sender.close(), receiver.close()]);
  });

  it('goes through a publish replaced on the broker after it was made, as a tracer does', async () => {
    const bus = new MemoryBus();
    const [sender, receiver] = [new MemoryBroker({ bus }), new MemoryBroker({ bus })];
    const send = framePublisher(sender);
    const topics: string[] = [];
    const original = sender.publish.bind(sender);
    sender.publish = (topic, payload) => {
      topics.push(topic);
      return original(topic, payload);
    };
    await send('t', { kind: BusKind.Beat, header: { n: 'node-a' } });
    expect(topics).toEqual(['t']);
    await Promise.all([sender.close(), receiver.close()]);
  });

  it('queues frames stamped in place while the broker is down, and sends each once, in order', async () => {
    const bus = new MemoryBus();
    const [sender, receiver] = [new MemoryBroker({ bus }), new MemoryBroker({ bus })];
    const received: string[] = [];
    await receiver.subscribe('t', (payload) => received.push(decodeBusFrame(payload).header.n));
    const send = framePublisher(sender);
    bus.disconnect();
    const sent = ['a', 'b', 'c'].map((n) => send('t', { kind: BusKind.Beat, header: { n } }));
    expect(sender.queued).toBe(3);
    bus.reconnect();
    await Promise.all(sent);
    await until(() => received.length >= 3, 2000, 'the queued frames');
    expect(received).toEqual(['a', 'b', 'c']);
    await Promise.all([sender.close(), receiver.close()]);
  });
});
