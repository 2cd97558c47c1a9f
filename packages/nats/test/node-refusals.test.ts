/**
 * Nodes on a NATS server that refuses some of what they are asked to do: messages larger than its
 * `max_payload`, a room its user may not use. Clients cause both (a big message, a join), so
 * neither may end the node, and a broadcast reaches everyone or no one.
 */
import {
  BrokerUnavailableError,
  MessageTooLargeError,
  ScaledWebSocketServer,
  WscaleError,
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
    await nodes[1]!.to('lobby').send('z'.repeat(MAX_PAYLOAD - 200));
    await until(() => a.got.length === 2 && b.got.length === 2, 5000, 'the one that fits');
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
    await expect(refused).rejects.toBeInstanceOf(WscaleError);
    await expect(refused).rejects.toThrow(/max_payload/);
    await node.to('feed').send('small');
    await until(() => got.length >= 1, 5000, 'the small message');
    expect(got).toEqual(['small']);
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
