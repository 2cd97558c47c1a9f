import { describe, expect, it } from 'vitest';
import { ClientClosedError } from '../src/errors.js';
import { Outbox, type Upstream } from '../src/outbox.js';

/** Adds `count` messages (and a request at every number in `requests`), all sent. */
function filled(count: number, requests: number[] = []) {
  const outbox = new Outbox();
  const settled: number[] = [];
  const entries: Upstream[] = [];
  for (let n = 1; n <= count; n++) {
    const requestId = requests.includes(n) ? 1000 + n : undefined;
    const message =
      requestId === undefined ? { t: 'msg' as const } : { t: 'req' as const, id: requestId };
    const { entry, acked } = outbox.add(message, `m${n}`, requestId);
    entry.sent = true;
    entries.push(entry);
    // Those still waiting when the outbox is closed are rejected: asserted where it matters.
    acked.then(
      () => settled.push(n),
      () => undefined,
    );
  }
  return { outbox, settled, entries };
}

const flush = () => new Promise((resolve) => setImmediate(resolve));

describe('the client outbox', () => {
  it('settles messages up to a rcv, keeps requests until their ack, and sends again in order', async () => {
    const { outbox, settled } = filled(6, [2, 4]);
    outbox.received(3);
    await flush();
    expect(settled).toEqual([1, 3]);
    expect(outbox.sentBefore().map((entry) => entry.s)).toEqual([2, 4, 5, 6]);
    outbox.answered(1004);
    outbox.received(5);
    await flush();
    expect(settled).toEqual([1, 3, 4, 5]);
    expect(outbox.sentBefore().map((entry) => entry.s)).toEqual([2, 6]);
    expect(outbox.size).toBe(2);
    // A rcv below what was acknowledged changes nothing.
    outbox.received(1);
    expect(outbox.size).toBe(2);
    outbox.renumber();
    expect(outbox.sentBefore().map((entry) => [entry.s, entry.data])).toEqual([
      [1, 'm2'],
      [2, 'm6'],
    ]);
    const rejected: unknown[] = [];
    const { acked } = outbox.add({ t: 'msg' }, 'late');
    acked.catch((error) => rejected.push(error));
    outbox.rejectAll(() => new ClientClosedError());
    await flush();
    expect(outbox.size).toBe(0);
    expect(rejected).toEqual([expect.any(ClientClosedError)]);
  });

  it('numbers what never went out above a resumed session, and acknowledges what the server had', async () => {
    const outbox = new Outbox();
    const sent = outbox.add({ t: 'msg' }, 'a').entry;
    sent.sent = true;
    const unsent = outbox.add({ t: 'msg' }, 'b').entry;
    outbox.resumedAt(7);
    expect(outbox.size).toBe(1);
    expect(unsent.s).toBe(8);
    expect(outbox.sentBefore()).toEqual([]);
    outbox.received(8);
    expect(outbox.size).toBe(0);
  });

  it('visits only what a rcv acknowledged, however many wait behind it', () => {
    const count = 2000;
    const { outbox, entries } = filled(count);
    let reads = 0;
    for (const entry of entries) {
      let s = entry.s;
      Object.defineProperty(entry, 's', {
        get: () => {
          reads++;
          return s;
        },
        set: (value: number) => {
          s = value;
        },
      });
    }
    // One message acknowledged at a time: each rcv looks at the one it settles and the next.
    for (let s = 1; s <= count; s++) outbox.received(s);
    expect(outbox.size).toBe(0);
    expect(reads).toBeLessThanOrEqual(2 * count);
  });
});
