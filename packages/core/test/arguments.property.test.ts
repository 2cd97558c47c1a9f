/**
 * Values the server's API cannot take — a room or client id that is no string, data that is
 * neither text nor bytes, a close code no close frame may carry — are refused with
 * `InvalidArgumentError` (`INVALID_ARGUMENT`): thrown by the calls that return no promise,
 * rejected by those that do, never an untyped error from deep inside, and the node goes on.
 */
import {
  InvalidArgumentError,
  MemoryBroker,
  Publisher,
  type ScaledWebSocketServer,
} from '@wscale/core';
import { until } from '@wscale/core/testing';
import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { fuzzParameters } from './helpers/arbitraries.js';
import { type TestClient, TestCluster } from './helpers/nodes.js';

const cluster = new TestCluster();
let node: ScaledWebSocketServer;
let publisher: Publisher;
let peer: TestClient;
beforeEach(async () => {
  [node] = (await cluster.start(1)) as [ScaledWebSocketServer];
  publisher = new Publisher({ broker: new MemoryBroker({ bus: cluster.bus }) });
  peer = await cluster.connect(node);
});
afterEach(async () => {
  await publisher.close();
  await cluster.closeAll();
});

/** Anything but a string. */
const notString = fc.anything().filter((value) => typeof value !== 'string');
/** Anything that is neither text nor bytes. */
const notSendable = fc
  .anything()
  .filter(
    (value) =>
      typeof value !== 'string' && !ArrayBuffer.isView(value) && !(value instanceof ArrayBuffer),
  );
/** A number no close frame may carry. */
const badCode = fc.oneof(
  fc.integer({ min: -100_000, max: 999 }),
  fc.constantFrom(1004, 1005, 1006, 1015, 2000, 2999, 5000, 1000.5, Number.NaN),
  fc.integer({ min: 5000, max: 1_000_000 }),
);

async function refused(call: () => Promise<unknown>): Promise<void> {
  let promise: Promise<unknown>;
  try {
    promise = call();
  } catch (error) {
    throw new Error(`threw instead of rejecting: ${String(error)}`);
  }
  await expect(promise).rejects.toBeInstanceOf(InvalidArgumentError);
  await expect(promise).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
}

describe('values the API cannot take', () => {
  it('as a room or client id: every call that names one rejects with InvalidArgumentError', async () => {
    const client = node.clients.get(peer.id)!;
    await fc.assert(
      fc.asyncProperty(notString, async (value) => {
        const name = value as string;
        await refused(() => node.client(name).send('x'));
        await refused(() => node.client(name).join('room'));
        await refused(() => node.client(client.id).join(name));
        await refused(() => node.client(client.id).leave(name));
        await refused(() => node.to(name).send('x'));
        await refused(() => node.except(name).send('x'));
        await refused(() => client.join(name));
        await refused(() => client.leave(name));
        await refused(() => publisher.client(name).send('x'));
        await refused(() => publisher.to(name).send('x'));
        // No room names every client.
        if (value !== undefined) await refused(() => node.fetchClients(name));
      }),
      fuzzParameters(40),
    );
  });

  it('as a room, an empty name: every call that names one rejects with InvalidArgumentError', async () => {
    const client = node.clients.get(peer.id)!;
    await refused(() => node.client(client.id).join(''));
    await refused(() => node.client(client.id).leave(''));
    await refused(() => node.to('').send('x'));
    await refused(() => node.to('room', '').send('x'));
    await refused(() => client.join(''));
    await refused(() => client.leave(''));
    await refused(() => publisher.to('').send('x'));
    await refused(() => publisher.client(client.id).join(''));
    await refused(() => node.fetchClients(''));
    expect(client.rooms.size).toBe(0);
  });

  it('as data: a connection throws it, every promise of a send rejects it', async () => {
    const client = node.clients.get(peer.id)!;
    await fc.assert(
      fc.asyncProperty(notSendable, async (value) => {
        const data = value as string;
        expect(() => client.send(data)).toThrow(InvalidArgumentError);
        await refused(() => node.client(client.id).send(data));
        await refused(() => node.to('room').send(data));
        await refused(() => publisher.client(client.id).send(data));
      }),
      fuzzParameters(40),
    );
  });

  it('as a close code: a connection throws it, a close by id rejects it, and the client stays', async () => {
    const client = node.clients.get(peer.id)!;
    await fc.assert(
      fc.asyncProperty(badCode, async (code) => {
        expect(() => client.close(code)).toThrow(InvalidArgumentError);
        await refused(() => node.client(client.id).close(code));
        await refused(() => publisher.client(client.id).close(code));
      }),
      fuzzParameters(40),
    );
    // None of it reached the connection: it is served as before.
    await node.client(client.id).send('still here');
    await until(() => peer.texts.includes('still here'), 2000, 'a message');
  });
});
