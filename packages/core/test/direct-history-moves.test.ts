import { MemoryHistory, MemoryStateStore } from '@wscale/core';
import { inboxOf } from '@wscale/core/protocol';
import { delay, until } from '@wscale/core/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { LaggyBroker } from './helpers/laggy-broker.js';
import { TestCluster } from './helpers/nodes.js';
import { V1Peer } from './helpers/v1-client.js';

const cluster = new TestCluster();
afterEach(() => cluster.closeAll());

/** The offsets of the kept direct messages a peer received, checked against their texts. */
function offsets(peer: V1Peer, inbox: string): number[] {
  const kept = peer.all('msg').filter((message) => message.r === inbox);
  for (const message of kept) expect(message.d).toBe(String(message.o));
  return kept.map((message) => message.o!);
}

describe('kept direct messages (directHistory) while the session moves', () => {
  // See direct-routing.test.ts: node topics and takeover acknowledgements that lag open the window
  // in which messages are on their way to the node the session is leaving.
  for (const [name, latency, ackMs] of [
    ['node topics slower', (topic: string) => (topic.includes(':node:') ? 4 : 1), 0],
    ['acknowledged late', () => 1, 15],
  ] as const) {
    it(`each arrives once at the connection that took the session over (${name})`, async () => {
      const nodes = await cluster.start(3, {
        stateStore: new MemoryStateStore({ ttlMs: 60_000 }),
        sessionSecret: 'a-test-secret-of-enough-bytes',
        directHistory: new MemoryHistory(),
        brokerFor: (bus) => new LaggyBroker(bus, latency, ackMs),
      });
      const sender = nodes[2]!;
      const first = await V1Peer.connect(nodes[0]!);
      const { client, session } = first.welcome;
      const inbox = inboxOf(client);
      const total = 150;
      let second: V1Peer | undefined;
      let presented = 0;
      let taking: Promise<unknown> = Promise.resolve();
      for (let i = 1; i <= total; i++) {
        await sender.client(client).send(String(i));
        if (i === 50) {
          // Taken over from what the first connection has seen so far, as a client presents it,
          // while messages keep coming and the first connection still reads.
          await until(() => first.peer.all('msg').length > 0, 2000, 'a first message');
          const seen = first.peer.all('msg').at(-1)!;
          presented = seen.o!;
          const rooms = { [inbox]: { o: seen.o!, e: seen.e! } };
          taking = V1Peer.connect(nodes[1]!, { session, rooms }).then(({ peer }) => {
            second = peer;
          });
        }
        await delay(i % 5 === 0 ? 1 : 0);
      }
      await taking;
      await until(() => offsets(second!, inbox).at(-1) === total, 5000, `message ${total}`);
      await delay(100); // a late duplicate would be here by now
      const before = offsets(first.peer, inbox);
      const after = offsets(second!, inbox);
      // The first connection saw a prefix of the stream; the second everything after what it
      // presented, in order, once.
      expect(before).toEqual(Array.from({ length: before.length }, (_, i) => i + 1));
      expect(second!.all('welcome')[0]!.rooms[inbox]).toMatchObject({ recovered: true });
      expect(after).toEqual(Array.from({ length: total - presented }, (_, i) => presented + i + 1));
      expect(before.length + after.length).toBeGreaterThanOrEqual(total);
    });
  }
});
