import type { AckMessage } from '@wscale/core/protocol';
import { delay, until } from '@wscale/core/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { ServerError, type WebSocketConstructor } from '../src/index.js';
import { closeAll, openClient, stateOf } from './helpers/clients.js';
import { Cluster, urlOf } from './helpers/cluster.js';

/**
 * A request whose `ack` was lost with its connection is sent again after the resume; a server that
 * no longer keeps its reply answers `REPLY_LOST`, and the client rejects with it.
 */

let cluster = new Cluster();
afterEach(async () => {
  await closeAll();
  await cluster.close();
  cluster = new Cluster();
});

/** `ws` on a link that loses the first `ack` whose text reply passes `lose`, as a dying link does. */
function losingAck(lose: (reply: string) => boolean, lost: { acks: number }): WebSocketConstructor {
  const { get, set } = Object.getOwnPropertyDescriptor(WebSocket.prototype, 'onmessage')!;
  const losing = (event: { data: unknown }) => {
    if (lost.acks > 0 || typeof event.data !== 'string') return false;
    const message = JSON.parse(event.data) as Partial<AckMessage>;
    if (message.t !== 'ack' || typeof message.d !== 'string' || !lose(message.d)) return false;
    lost.acks++;
    return true;
  };
  return function LosingWebSocket(url: string, protocols: string[]) {
    const socket = new WebSocket(url, protocols);
    Object.defineProperty(socket, 'onmessage', {
      get: () => get!.call(socket),
      set: (handler: ((event: { data: unknown }) => void) | null) =>
        set!.call(
          socket,
          handler && ((event: { data: unknown }) => losing(event) || handler(event)),
        ),
    });
    return socket;
  } as unknown as WebSocketConstructor;
}

describe('REPLY_LOST', () => {
  for (const [name, first, later] of [
    ['32 more replies were kept after it', 'r0', 32],
    ['its reply was over 16 KiB', 'big', 0],
  ] as const) {
    it(`a request sent again after its lost ack is answered REPLY_LOST when ${name}`, async () => {
      let handled = 0;
      const [a, b] = await cluster.start(2, {
        onRequest: (_client, data) => {
          handled++;
          return data === 'big' ? 'x'.repeat(17 * 1024) : `re ${String(data)}`;
        },
      });
      let target = a!;
      const lost = { acks: 0 };
      const { client } = openClient(() => urlOf(target), {
        backoffBaseMs: 10,
        WebSocket: losingAck((reply) => reply === `re ${first}` || reply.length > 16 * 1024, lost),
      });
      await stateOf(client, 'open');
      const reply = client.request(first);
      reply.catch(() => undefined);
      await until(() => lost.acks === 1, 3000, 'the first ack to be lost');
      for (let n = 1; n <= later; n++) expect(await client.request(`r${n}`)).toBe(`re r${n}`);

      // The connection dies; the client resumes on node b and asks again.
      target = b!;
      a!.clients.get(client.clientId!)!.terminate();
      const error = await reply.then(
        () => undefined,
        (failure: unknown) => failure,
      );
      expect(error).toBeInstanceOf(ServerError);
      expect((error as ServerError).code).toBe('REPLY_LOST');
      expect(handled).toBe(1 + later); // asked again, but never handled twice
      expect(client.node).toBe('node-2');
      expect(await client.request('after')).toBe('re after');
    });
  }
});

describe('a request whose handler still runs when its connection dies', () => {
  it('is answered from the reply kept once the handler is done, not REPLY_LOST, and handled once', async () => {
    let calls = 0;
    const [a, b] = await cluster.start(2, {
      onRequest: async (_client, data) => {
        calls++;
        await delay(100);
        return `re ${String(data)}`;
      },
    });
    let target = a!;
    const { client } = openClient(() => urlOf(target), { backoffBaseMs: 10 });
    await stateOf(client, 'open');
    const reply = client.request('slow');
    await until(() => calls === 1, 2000, 'the handler to start');
    target = b!;
    a!.clients.get(client.clientId!)!.terminate();
    expect(await reply).toBe('re slow');
    expect(calls).toBe(1);
    expect(client.node).toBe('node-2');
  });
});
