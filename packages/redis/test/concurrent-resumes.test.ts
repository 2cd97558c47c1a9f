/**
 * Many resumes of one session token at once (browser tabs sharing a stored token, a client
 * retrying on every network change): on a real Redis, where their claims of the session's record
 * race, the last claim holds the session and every other connection is closed as taken over.
 */
import { ScaledWebSocketServer } from '@wscale/core';
import { until } from '@wscale/core/testing';
import { RedisBroker, RedisStateStore } from '@wscale/redis';
import { describeRedis, RedisServer } from '@wscale/test-support';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { V1Peer } from '../../core/test/helpers/v1-client.js';
import { standalone } from './helpers/clients.js';

describeRedis('resumes of one token at once', () => {
  let redis: RedisServer;
  const nodes: ScaledWebSocketServer[] = [];
  beforeAll(async () => {
    redis = await RedisServer.launch();
  });
  afterEach(async () => {
    for (const node of nodes.splice(0)) await node.close();
  });
  afterAll(() => redis?.destroy());

  async function startNodes(count: number): Promise<ScaledWebSocketServer[]> {
    for (let i = 0; i < count; i++) {
      const node = new ScaledWebSocketServer({
        port: 0,
        host: '127.0.0.1',
        broker: new RedisBroker({ redis: standalone(redis) }),
        stateStore: new RedisStateStore({ redis: standalone(redis) }),
        sessionSecret: 'a-test-secret-of-enough-bytes',
      });
      nodes.push(node);
      await node.ready();
    }
    return nodes;
  }

  it('leave exactly one connection holding the session, on whichever node; the others are closed 4409', async () => {
    const [a, b] = await startNodes(2);
    for (let round = 0; round < 3; round++) {
      const first = await V1Peer.connect(a!);
      const id = first.welcome.client;
      first.peer.ws.terminate();
      await until(() => !a!.clients.has(id), 2000, 'the node to see the drop');

      const peers = Array.from({ length: 30 }, (_, i) => new V1Peer(i % 2 === 0 ? a! : b!));
      await Promise.all(peers.map((peer) => peer.opened));
      for (const peer of peers) peer.send({ t: 'hello', session: first.welcome.session });
      const closes: number[] = [];
      for (const peer of peers) void peer.closed.then(({ code }) => closes.push(code));
      await until(() => closes.length >= peers.length - 1, 10_000, 'all but one closed');

      const open = peers.filter((peer) => peer.ws.readyState === peer.ws.OPEN);
      expect(open).toHaveLength(1);
      expect(closes).toEqual(Array(peers.length - 1).fill(4409));
      expect(open[0]!.all('welcome')[0]).toMatchObject({ resumed: true, client: id });
      expect([a, b].filter((node) => node!.clients.has(id))).toHaveLength(1);
      // The session goes on, on the connection that holds it.
      await b!.client(id).send(`round ${round}`);
      await until(() => open[0]!.texts().includes(`round ${round}`), 2000, 'a direct message');
      open[0]!.ws.terminate();
    }
  });
});
