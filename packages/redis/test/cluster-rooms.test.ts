import { WscaleClient } from '@wscale/client';
import { MemoryStateStore, ScaledWebSocketServer, WscaleError } from '@wscale/core';
import { delay, until } from '@wscale/core/testing';
import { RedisBroker, RedisHistory } from '@wscale/redis';
import { describeRedis, RedisClusterFixture, settle, WireTap } from '@wscale/test-support';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { closingWith, clusterClient } from './helpers/clients.js';
import { moveSlot, ownerAndOther } from './helpers/cluster-slots.js';

/** The shard channel of a room's broker topic (channel prefix and topic prefix both `wscale:`). */
const ROOM_CHANNEL = 'wscale:{wscale:room:feed}';

describeRedis('a history room on Redis Cluster', () => {
  let cluster: RedisClusterFixture;
  beforeAll(async () => {
    cluster = await RedisClusterFixture.launch();
  });
  afterAll(() => cluster?.destroy());

  it('loses, repeats and reorders nothing when its channel slot moves to another shard', async () => {
    const stateStore = new MemoryStateStore();
    const closers: Array<{ close(): Promise<void> }> = [stateStore];
    const nodes = [0, 1].map((i) => {
      const [brokerClient, historyClient] = [clusterClient(cluster), clusterClient(cluster)];
      const broker = closingWith(new RedisBroker({ redis: brokerClient }), brokerClient);
      const history = closingWith(new RedisHistory({ redis: historyClient }), historyClient);
      const node = new ScaledWebSocketServer({
        port: 0,
        host: '127.0.0.1',
        nodeId: `node-${i}`,
        broker,
        stateStore,
        sessionSecret: 'a-secret-for-the-slot-move-test',
        history: [{ rooms: 'feed', store: history }],
      });
      node.on('error', () => undefined);
      node.on('connection', (client) => void client.join('feed'));
      closers.unshift(broker, history);
      return node;
    });
    const [publisher, holder] = nodes as [ScaledWebSocketServer, ScaledWebSocketServer];
    const tap = new WireTap();
    let client: WscaleClient | undefined;
    try {
      await Promise.all(nodes.map((node) => node.ready()));
      client = new WscaleClient(`ws://127.0.0.1:${holder.address()!.port}/`, {
        WebSocket: tap.WebSocket,
        network: false,
      });
      await until(() => client!.rooms.includes('feed'), 10_000, 'the client in the room');

      const [source, target] = await ownerAndOther(cluster, ROOM_CHANNEL);
      const slot = await source.cli('cluster', 'keyslot', ROOM_CHANNEL);
      // The channel's slot holds no key (the room's history keys hash elsewhere): a plain move.
      expect(await source.cli('cluster', 'countkeysinslot', slot)).toBe('0');
      expect(await source.cli('pubsub', 'shardnumsub', ROOM_CHANNEL)).toBe(`${ROOM_CHANNEL}\n1`);

      const delivered: number[] = [];
      const failures: unknown[] = [];
      const sendAll = async (from: number, to: number) => {
        for (let n = from; n <= to; n++) {
          await publisher
            .to('feed')
            .send(String(n))
            .then(() => delivered.push(n))
            .catch((error: unknown) => failures.push(error));
          await delay(5);
        }
      };
      await sendAll(1, 30);
      const moving = moveSlot(cluster, ROOM_CHANNEL, source, target);
      await sendAll(31, 60);
      await moving;
      await until(
        async () => (await target.cli('pubsub', 'shardnumsub', ROOM_CHANNEL)).endsWith('\n1'),
        10_000,
        'the holding node subscribed on the new shard',
      );
      await sendAll(61, 90);
      expect(await source.cli('pubsub', 'shardnumsub', ROOM_CHANNEL)).toBe(`${ROOM_CHANNEL}\n0`);
      for (const failure of failures) expect(failure).toBeInstanceOf(WscaleError);
      expect(delivered).toContain(90);
      await settle(() => tap.messages('feed').some((m) => m.d === '90'), 10_000, 'the last');

      // On the wire: strictly increasing numbers under consecutive offsets, every sent one there.
      const frames = tap.messages('feed');
      const numbers = frames.map((frame) => Number(frame.d));
      for (let i = 1; i < numbers.length; i++) expect(numbers[i]!).toBeGreaterThan(numbers[i - 1]!);
      const offsets = frames.map((frame) => frame.o!);
      expect(offsets).toEqual(offsets.map((_, i) => offsets[0]! + i));
      expect(numbers).toEqual(expect.arrayContaining(delivered));
    } finally {
      await client?.close();
      await Promise.all(nodes.map((node) => node.close()));
      for (const closer of closers) await closer.close();
    }
  }, 60_000);
});
