/**
 * Nodes on a NATS server that refuses some of what they are asked to do: messages larger than its
 * `max_payload`, a room its user may not use. Clients cause both (a big message, a join), so
 * neither may end the node, and a broadcast reaches everyone or no one.
 */
import { type SessionSnapshot, WscaleClient } from '@wscale/client';
import {
  BrokerUnavailableError,
  MemoryHistory,
  MessageTooLargeError,
  Publisher,
  ScaledWebSocketServer,
} from '@wscale/core';
import { until } from '@wscale/core/testing';
import { NatsBroker, NatsHistory } from '@wscale/nats';
import { type SingleNats, skipWithoutNats, startNatsServer } from '@wscale/test-support';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { fastReconnect } from './helpers/clients.js';

/** The subject the broker publishes a topic on (one base64url token). */
const subject = (topic: string) => `wscale.${Buffer.from(topic).toString('base64url')}`;
const ROOM_TOPIC = (room: string) => `wscale:room:${room}`;

const MAX_PAYLOAD = 4096;

describe.skipIf(skipWithoutNats())('nodes on a NATS server that refuses some messages', () => {
  let nats: SingleNats;
  const opened: { close(): unknown }[] = [];
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown) => unhandled.push(reason);

  beforeAll(async () => {
    const user = {
      user: 'app',
      password: 'secret',
      permissions: {
        publish: { allow: ['>'], deny: [subject(ROOM_TOPIC('staff'))] },
        subscribe: { allow: ['>'], deny: [subject(ROOM_TOPIC('staff'))] },
      },
    };
    nats = await startNatsServer({
      config: `max_payload: ${MAX_PAYLOAD}\nauthorization { users = [${JSON.stringify(user)}] }`,
    });
    process.on('unhandledRejection', onUnhandled);
  });
  afterEach(async () => {
    for (const each of opened.splice(0).reverse()) await each.close();
  });
  afterAll(async () => {
    process.off('unhandledRejection', onUnhandled);
    await nats?.close();
  });

  /** Two nodes whose clients join `lobby`; what a client types is broadcast to it, unawaited. */
  async function twoNodes() {
    const nodes = [0, 1].map(() => {
      const broker = new NatsBroker({
        servers: nats.server.url,
        connectionOptions: { ...fastReconnect, user: 'app', pass: 'secret' },
      });
      const node = new ScaledWebSocketServer({ port: 0, host: '127.0.0.1', broker });
      opened.push(broker, node);
      node.on('connection', (client) => {
        void client.join('lobby');
        client.on('message', (text) => {
          if (String(text) === 'join staff') void client.join('staff');
          else void node.to('lobby').send(text);
        });
      });
      return node;
    });
    await Promise.all(nodes.map((node) => node.ready()));
    const clients = await Promise.all(
      nodes.map(async (node) => {
        const ws = new WebSocket(`ws://127.0.0.1:${node.address()!.port}/`);
        opened.push({ close: () => ws.terminate() });
        const got: string[] = [];
        ws.on('message', (data) => got.push(String(data)));
        await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
        return { ws, got };
      }),
    );
    await until(() => nodes.every((node) => node.clients.size === 1), 5000, 'both clients');
    await until(
      () => nodes.every((node) => [...node.clients.values()][0]!.inRoom('lobby')),
      5000,
      'both in the lobby',
    );
    return { nodes, clients };
  }

  it('refuses a message larger than max_payload everywhere, not only on other nodes', async () => {
    const { nodes, clients } = await twoNodes();
    const [a, b] = clients as [(typeof clients)[0], (typeof clients)[0]];
    a.ws.send('x'.repeat(MAX_PAYLOAD));
    a.ws.send('small');
    await until(() => a.got.length >= 1 && b.got.length >= 1, 5000, 'the small message');
    expect(a.got).toEqual(['small']);
    expect(b.got).toEqual(['small']);
    expect(nodes[0]!.stats.failedSends).toBe(1);
    await expect(nodes[0]!.to('lobby').send('y'.repeat(MAX_PAYLOAD))).rejects.toBeInstanceOf(
      MessageTooLargeError,
    );
    // One that fits goes through from either node, and from the application.
    await nodes[1]!.to('lobby').send('z'.repeat(MAX_PAYLOAD - 400));
    await until(() => a.got.length === 2 && b.got.length === 2, 5000, 'the one that fits');
    expect(unhandled).toEqual([]);
  });

  it('refuses a direct message larger than max_payload wherever its client is', async () => {
    const { nodes, clients } = await twoNodes();
    const [a, b] = clients as [(typeof clients)[0], (typeof clients)[0]];
    const [here, there] = nodes.map((node) => [...node.clients.keys()][0]!) as [string, string];
    const big = 'x'.repeat(MAX_PAYLOAD);
    // The client on the sending node as the one on the other: placement decides nothing.
    await expect(nodes[0]!.client(here).send(big)).rejects.toBeInstanceOf(MessageTooLargeError);
    await expect(nodes[0]!.client(there).send(big)).rejects.toBeInstanceOf(MessageTooLargeError);
    await nodes[0]!.client(here).send('after');
    await nodes[0]!.client(there).send('after');
    await until(() => a.got.length === 1 && b.got.length === 1, 5000, 'the message after');
    expect([a.got, b.got]).toEqual([['after'], ['after']]);
    expect(unhandled).toEqual([]);
  });

  it('answers fetchClients and fetchRooms in parts when a node has more than max_payload holds', async () => {
    const { nodes } = await twoNodes();
    const [asking, holding] = nodes as [ScaledWebSocketServer, ScaledWebSocketServer];
    // Each client also in a room of its own, with a long name: every list is several frames long.
    holding.on('connection', (client) => void client.join(`own:${client.id}:${'x'.repeat(40)}`));
    const count = 120;
    const sockets = Array.from({ length: count }, () => {
      const ws = new WebSocket(`ws://127.0.0.1:${holding.address()!.port}/`);
      opened.push({ close: () => ws.terminate() });
      return ws;
    });
    const inBoth = () => [...holding.clients.values()].filter((c) => c.rooms.size === 2).length;
    await until(() => inBoth() === count, 10_000, 'every client in its rooms');
    expect(sockets).toHaveLength(count);
    const everyone = await asking.fetchClients();
    expect(everyone.missing).toEqual([]);
    expect(everyone.clients.filter((c) => c.nodeId === holding.nodeId)).toHaveLength(count + 1);
    const ids = new Set(everyone.clients.map((c) => c.id));
    expect(ids.size).toBe(count + 2);
    const lobby = await asking.fetchClients('lobby');
    expect([lobby.missing, lobby.clients.length]).toEqual([[], count + 2]);
    const { rooms, missing } = await asking.fetchRooms();
    expect(missing).toEqual([]);
    expect(rooms.filter((room) => room.startsWith('own:'))).toHaveLength(count);
    expect(unhandled).toEqual([]);
  });

  it('refuses a message larger than max_payload to a history room, typed, and keeps the room going', async () => {
    const connectionOptions = { ...fastReconnect, user: 'app', pass: 'secret' };
    const broker = new NatsBroker({ servers: nats.server.url, connectionOptions });
    const store = new NatsHistory({
      servers: nats.server.url,
      connectionOptions,
      stream: `refusals_${process.pid}`,
    });
    const node = new ScaledWebSocketServer({
      port: 0,
      host: '127.0.0.1',
      broker,
      history: [{ rooms: 'feed', store }],
    });
    opened.push(broker, store, node);
    node.on('connection', (client) => void client.join('feed'));
    await node.ready();
    const ws = new WebSocket(`ws://127.0.0.1:${node.address()!.port}/`);
    opened.push({ close: () => ws.terminate() });
    const got: string[] = [];
    ws.on('message', (data) => got.push(String(data)));
    await until(() => [...node.clients.values()][0]?.inRoom('feed') === true, 5000, 'joined');
    const refused = node.to('feed').send('x'.repeat(MAX_PAYLOAD));
    await expect(refused).rejects.toBeInstanceOf(MessageTooLargeError);
    await node.to('feed').send('small');
    await until(() => got.length >= 1, 5000, 'the small message');
    expect(got).toEqual(['small']);
    expect(unhandled).toEqual([]);
  });

  it('refuses a message before a history keeps it: a resume replays nothing it refused', async () => {
    // A history that takes more than the broker carries (in memory here; Redis's takes 512 MB).
    const feed = new MemoryHistory();
    const inboxes = new MemoryHistory();
    const broker = new NatsBroker({
      servers: nats.server.url,
      connectionOptions: { ...fastReconnect, user: 'app', pass: 'secret' },
    });
    const node = new ScaledWebSocketServer({
      port: 0,
      host: '127.0.0.1',
      broker,
      sessionSecret: 'a-secret-for-the-refusal-tests',
      history: [{ rooms: 'feed', store: feed }],
      directHistory: inboxes,
    });
    const publisher = new Publisher({
      broker,
      history: [{ rooms: 'feed', store: feed }],
      directHistory: inboxes,
    });
    opened.push(broker, node, publisher);
    node.on('connection', (client) => void client.join('feed'));
    await node.ready();
    const got: string[] = [];
    const open = (resume?: SessionSnapshot) => {
      const client = new WscaleClient(`ws://127.0.0.1:${node.address()!.port}/`, {
        WebSocket,
        network: false,
        ...(resume ? { resume } : {}),
      });
      opened.push({ close: () => client.close() });
      client.on('message', (data) => got.push(String(data)));
      return client;
    };
    const first = open();
    await until(() => first.rooms.includes('feed'), 5000, 'the client in feed');
    const id = first.clientId!;
    const saved = first.snapshot()!;
    await first.close();

    // While it is away: too large for the broker, from the node and from a publisher, to the room
    // and to the session (both kept while a client is away); then one that fits of each.
    const big = 'x'.repeat(MAX_PAYLOAD - 100);
    for (const sender of [node, publisher]) {
      await expect(sender.to('feed').send(big)).rejects.toBeInstanceOf(MessageTooLargeError);
      await expect(sender.client(id).send(big)).rejects.toBeInstanceOf(MessageTooLargeError);
    }
    await node.to('feed').send('room');
    await publisher.client(id).send('inbox');

    open(saved);
    // Replayed in the order they were kept: anything refused but kept would come first.
    await until(() => got.includes('room') && got.includes('inbox'), 5000, 'the replays');
    expect(got.sort()).toEqual(['inbox', 'room']);
    expect((await feed.position('feed')).offset).toBe(1);
    expect(unhandled).toEqual([]);
  });

  it('sends a presence snapshot larger than max_payload in parts: a node started later lists everyone', async () => {
    const connectionOptions = { ...fastReconnect, user: 'app', pass: 'secret' };
    const start = () => {
      const broker = new NatsBroker({ servers: nats.server.url, connectionOptions });
      const node = new ScaledWebSocketServer({
        port: 0,
        host: '127.0.0.1',
        broker,
        nodeHeartbeatMs: 200,
        authenticate: (request) => ({
          id: new URL(request.url ?? '/', 'http://x').searchParams.get('user') ?? 'nobody',
        }),
        // 200 bytes of info each: twenty users are more than one frame of 4096 bytes holds.
        presence: [{ rooms: 'lobby', info: (client) => ({ about: `${client.id} `.repeat(10) }) }],
      });
      opened.push(broker, node);
      node.on('connection', (client) => void client.join('lobby'));
      return node;
    };
    const first = start();
    await first.ready();
    const users = Array.from({ length: 20 }, (_, i) => `user${i}`);
    for (const user of users) {
      const ws = new WebSocket(`ws://127.0.0.1:${first.address()!.port}/?user=${user}`);
      opened.push({ close: () => ws.terminate() });
    }
    await until(async () => (await first.presence('lobby')).members.length === 20, 5000, 'all in');
    const later = start();
    await later.ready();
    await until(
      async () => {
        const { members, missing } = await later.presence('lobby');
        return members.length === 20 && missing.length === 0;
      },
      10_000,
      'the later node to list everyone',
    );
    const listed = (await later.presence('lobby')).members.map((member) => member.user);
    expect(listed.sort()).toEqual([...users].sort());
    expect(unhandled).toEqual([]);
  });

  it('keeps serving when a join the broker refuses is left unawaited', async () => {
    const { nodes, clients } = await twoNodes();
    const [a, b] = clients as [(typeof clients)[0], (typeof clients)[0]];
    a.ws.send('join staff');
    await until(() => nodes[0]!.stats.failedSends === 1, 5000, 'the refused join counted');
    expect([...nodes[0]!.clients.values()][0]!.inRoom('staff')).toBe(false);
    await expect(nodes[0]!.clients.values().next().value!.join('staff')).rejects.toBeInstanceOf(
      BrokerUnavailableError,
    );
    a.ws.send('still here');
    await until(() => b.got.includes('still here'), 5000, 'a broadcast after it');
    expect(unhandled).toEqual([]);
  });
});
