import type { ScaledWebSocketServer } from '@wscale/core';
import { until } from '@wscale/core/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { type ClientCloseInfo, type ClientState, WscaleClient } from '../src/index.js';
import { closeAll, openClient, stateOf } from './helpers/clients.js';
import { Cluster, urlOf } from './helpers/cluster.js';

/** What an application's listeners may do to the client from inside its events, against a real node. */

let cluster = new Cluster();
afterEach(async () => {
  await closeAll();
  await cluster.close();
  cluster = new Cluster();
});

/** Drops the client's connection from the node's side, as a dead link does. */
function drop(node: ScaledWebSocketServer, clientId: string): void {
  node.clients.get(clientId)!.terminate();
}

describe('listeners that close or connect the client', () => {
  it('close() then connect() in a close listener starts over at once, not stuck reconnecting', async () => {
    const [node] = (await cluster.start(1)) as [ScaledWebSocketServer];
    // A long backoff: a client left to its reconnect would not be back within the wait below.
    const { client, seen } = openClient(urlOf(node), {
      backoffBaseMs: 20_000,
      backoffCapMs: 20_000,
    });
    await stateOf(client, 'open');
    const clientId = client.clientId!;
    client.once('close', () => {
      void client.close();
      client.connect();
    });
    drop(node, clientId);
    await until(() => seen.welcomes.length === 2, 3000, 'the second welcome');
    expect(client.state).toBe('open');
    expect(seen.welcomes[1]).toMatchObject({ resumed: true, clientId });
    expect(seen.states.slice(-2)).toEqual(['resuming', 'open']);
  });

  it('a close listener sees the state the client goes to, and connect() in it starts over when the client gives up', async () => {
    const [node] = (await cluster.start(1)) as [ScaledWebSocketServer];
    const { client, seen } = openClient(urlOf(node), { maxReconnectAttempts: 0 });
    await stateOf(client, 'open');
    const during: ClientState[] = [];
    client.once('close', ({ reconnecting }) => {
      during.push(client.state);
      if (!reconnecting) client.connect();
    });
    drop(node, client.clientId!);
    await until(() => seen.welcomes.length === 2, 3000, 'the second welcome');
    expect(during).toEqual(['closed']);
    expect(client.state).toBe('open');
  });

  it('a close listener of a client that will reconnect sees it reconnecting', async () => {
    const [node] = (await cluster.start(1)) as [ScaledWebSocketServer];
    const { client, seen } = openClient(urlOf(node), { backoffBaseMs: 10 });
    await stateOf(client, 'open');
    const during: ClientState[] = [];
    client.once('close', () => during.push(client.state));
    drop(node, client.clientId!);
    await until(() => seen.welcomes.length === 2, 3000, 'the second welcome');
    expect(during).toEqual(['reconnecting']);
    expect(seen.states).toEqual(['connecting', 'open', 'reconnecting', 'resuming', 'open']);
  });

  it('no event follows close() in a welcome listener: not resume', async () => {
    const [node] = (await cluster.start(1)) as [ScaledWebSocketServer];
    const { client } = openClient(urlOf(node), { backoffBaseMs: 10 });
    await stateOf(client, 'open');
    const events: string[] = [];
    client.once('welcome', () => {
      events.push('welcome');
      void client.close();
    });
    client.on('resume', () => events.push('resume'));
    drop(node, client.clientId!);
    await stateOf(client, 'closed');
    // What the client received after closing it would show here, within the bounded wait.
    await until(() => node.clients.size === 0, 3000, 'the node to see it go');
    expect(events).toEqual(['welcome']);
  });

  it('tells listeners attached right after it was created why a bad URL closed it', async () => {
    const client = new WscaleClient('not a url', { WebSocket });
    const errors: Error[] = [];
    const closes: ClientCloseInfo[] = [];
    client.on('error', (error) => errors.push(error));
    client.on('close', (info) => closes.push(info));
    await until(() => client.state === 'closed', 1000, 'the client to close');
    expect(errors).toMatchObject([{ code: 'INVALID_OPTION' }]);
    expect(closes).toMatchObject([{ reason: 'invalid URL', reconnecting: false }]);
  });

  it('each state event names as previous the state told last, whatever a close listener does', async () => {
    const [node] = (await cluster.start(1)) as [ScaledWebSocketServer];
    for (const during of ['close', 'close and connect', 'connect after giving up'] as const) {
      const giveUp = during === 'connect after giving up';
      const { client } = openClient(urlOf(node), {
        backoffBaseMs: 10,
        ...(giveUp ? { maxReconnectAttempts: 0 } : {}),
      });
      const told: Array<[ClientState, ClientState]> = [];
      client.on('state', (state, previous) => told.push([state, previous]));
      await stateOf(client, 'open');
      client.once('close', () => {
        if (!giveUp) void client.close();
        if (during !== 'close') client.connect();
      });
      drop(node, client.clientId!);
      await until(
        () => client.state === (during === 'close' ? 'closed' : 'open') && told.length > 2,
        3000,
        `the client after "${during}"`,
      );
      for (let i = 1; i < told.length; i++) expect(told[i]![1], during).toBe(told[i - 1]![0]);
      await client.close();
    }
  });
});
