import { until } from '@wscale/core/testing';
import { afterEach, describe, expect, it } from 'vitest';
import {
  ClientClosedError,
  ClientError,
  DisconnectedError,
  InvalidArgumentError,
  QueueFullError,
  ServerError,
  TimeoutError,
} from '../src/index.js';
import { closeAll, openClient, startFixture, stateOf } from './helpers/clients.js';
import { FakeNetwork } from './helpers/fake-network.js';

afterEach(closeAll);

const bytes = (...values: number[]) => new Uint8Array(values);

describe('requests', () => {
  it('resolves with the reply: text, bytes, or nothing', async () => {
    const fixture = await startFixture({
      request: ({ message, binary }) => {
        if (binary) return { binary: binary.map((b) => b * 2) };
        const d = (message as { d?: string }).d;
        return d === 'empty' ? {} : { d: `re:${d}` };
      },
    });
    const { client } = openClient(fixture.url);
    await stateOf(client, 'open');
    expect(await client.request('hi')).toBe('re:hi');
    expect(await client.request(bytes(1, 2, 3))).toEqual(bytes(2, 4, 6));
    expect(await client.request('empty')).toBeUndefined();
    const ids = fixture.last.messages
      .filter((m) => m.t === 'req')
      .map((m) => (m as { id: number }).id);
    expect(new Set(ids).size).toBe(3);
  });

  it('rejects with a ServerError carrying the code of an error ack', async () => {
    const fixture = await startFixture({
      request: () => ({ error: { code: 'HANDLER_FAILED', message: 'boom' } }),
    });
    const { client } = openClient(fixture.url);
    const error = await client.request('x').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ServerError);
    expect(error).toBeInstanceOf(ClientError);
    expect(error).toMatchObject({ code: 'HANDLER_FAILED', message: 'boom' });
  });

  it('rejects with a TimeoutError when no ack comes in time', async () => {
    const fixture = await startFixture({ request: () => 'no-answer' });
    const { client } = openClient(fixture.url);
    await stateOf(client, 'open');
    const started = performance.now();
    const error = await client.request('x', { timeoutMs: 80 }).catch((e: unknown) => e);
    expect(performance.now() - started).toBeGreaterThanOrEqual(75);
    expect(error).toBeInstanceOf(TimeoutError);
    expect(error).toMatchObject({ code: 'TIMEOUT', timeoutMs: 80 });
    // Each class's `code` is typed as its own: a check on the class narrows it.
    if (error instanceof TimeoutError) {
      const code: 'TIMEOUT' = error.code;
      expect(code).toBe('TIMEOUT');
    }
  });

  it('rejects an in-flight request with DISCONNECTED when the connection drops', async () => {
    const fixture = await startFixture({ request: () => 'no-answer' });
    const { client } = openClient(fixture.url, { backoffBaseMs: 10 });
    await stateOf(client, 'open');
    const pending = client.request('x');
    await fixture.last.waitFor((m) => m.t === 'req');
    fixture.last.ws.terminate();
    const error = await pending.catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DisconnectedError);
    expect(error).toMatchObject({ code: 'DISCONNECTED' });
    await stateOf(client, 'open'); // and the client carries on
  });

  it('ignores a late ack for a request that already timed out', async () => {
    const fixture = await startFixture({ request: () => 'no-answer' });
    const { client, seen } = openClient(fixture.url);
    await stateOf(client, 'open');
    const timedOut = client.request('x', { timeoutMs: 30 }).catch((e: unknown) => e);
    const req = await fixture.last.waitFor((m) => m.t === 'req');
    expect(await timedOut).toBeInstanceOf(TimeoutError);
    fixture.last.send({ t: 'ack', id: (req.message as { id: number }).id, d: 'late' });
    fixture.behavior.request = () => ({ d: 'still works' });
    expect(await client.request('y')).toBe('still works');
    expect(seen.errors).toEqual([]);
  });
});

describe('join and leave', () => {
  it('join resolves after joined and ack; leave removes the room', async () => {
    const fixture = await startFixture();
    const { client, seen } = openClient(fixture.url);
    const joined: string[] = [];
    client.on('joined', ({ room }) => joined.push(room));
    await client.join('chat');
    expect(joined).toEqual(['chat']);
    expect(client.rooms).toEqual(['chat']);
    await client.leave('chat');
    expect(client.rooms).toEqual([]);
    expect(seen.left).toEqual(['chat']);
    expect(fixture.last.messages.map((m) => m.t)).toEqual(['hello', 'join', 'leave']);
  });

  it('a refused join rejects with FORBIDDEN', async () => {
    const fixture = await startFixture({
      join: (_room, connection, id) =>
        connection.send({ t: 'ack', id, error: { code: 'FORBIDDEN', message: 'members only' } }),
    });
    const { client } = openClient(fixture.url);
    await expect(client.join('vip')).rejects.toMatchObject({
      name: 'ServerError',
      code: 'FORBIDDEN',
    });
    expect(client.rooms).toEqual([]);
  });

  it('refuses a room name out of the protocol bounds before sending anything', async () => {
    const fixture = await startFixture();
    const { client } = openClient(fixture.url);
    await stateOf(client, 'open');
    await expect(client.join('x'.repeat(257))).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(client.join('')).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    // A huge name is measured in the message, not quoted.
    const huge = await client.join('x'.repeat(5_000_000)).catch((error: Error) => error);
    expect(huge).toBeInstanceOf(InvalidArgumentError);
    expect((huge as Error).message).toMatch(/got 5000000 characters$/);
    expect(fixture.last.messages.map((m) => m.t)).toEqual(['hello']);
    expect(client.state).toBe('open');
  });
});

describe('binary frames', () => {
  it('sends bytes as a binary frame and delivers binary messages as Uint8Array', async () => {
    const fixture = await startFixture();
    const { client, seen } = openClient(fixture.url);
    const connection = await fixture.connection(1);
    await stateOf(client, 'open');

    client.send(bytes(0, 1, 2, 255));
    client.send('text');
    await until(() => connection.received.length >= 3, 2000, 'two messages');
    expect(connection.received[1]).toEqual({ message: { t: 'msg' }, binary: bytes(0, 1, 2, 255) });
    expect(connection.received[2]).toEqual({ message: { t: 'msg', d: 'text' } });

    connection.send({ t: 'msg', r: 'files', o: 1, e: 'E' }, bytes(9, 8, 7));
    connection.send({ t: 'msg', d: 'plain' });
    connection.send({ t: 'msg' }, new Uint8Array(0));
    await until(() => seen.messages.length === 3, 2000, 'three messages');
    const [binary, text, empty] = seen.messages;
    expect(binary!.data).toBeInstanceOf(Uint8Array);
    expect([...(binary!.data as Uint8Array)]).toEqual([9, 8, 7]);
    expect(binary!.meta).toEqual({ room: 'files', offset: 1, epoch: 'E' });
    expect(text!.data).toBe('plain');
    expect(empty!.data).toEqual(new Uint8Array(0));
  });

  it('refuses a payload that is neither a string nor bytes', async () => {
    const fixture = await startFixture();
    const { client } = openClient(fixture.url);
    await stateOf(client, 'open');
    expect(() => client.send({ not: 'a payload' } as unknown as string)).toThrow(
      InvalidArgumentError,
    );
  });
});

describe('while not connected', () => {
  it('queues sends and requests, and sends them in order after the next welcome', async () => {
    const fixture = await startFixture();
    const network = new FakeNetwork();
    const { client } = openClient(fixture.url, { network, backoffBaseMs: 10 });
    await stateOf(client, 'open');
    network.set(false);
    fixture.last.ws.terminate();
    await stateOf(client, 'reconnecting');
    client.send('q1');
    const reply = client.request('q2');
    client.send(bytes(3));
    const joining = client.join('later');
    expect(client.queued).toBe(4);
    network.set(true);
    const second = await fixture.connection(2);
    expect(await reply).toBe('q2');
    await joining;
    expect(second.received.map((r) => r.message.t)).toEqual(['hello', 'msg', 'req', 'msg', 'join']);
    expect(second.received[1]!.message).toEqual({ t: 'msg', d: 'q1' });
    expect(second.received[3]!.binary).toEqual(bytes(3));
    expect(client.queued).toBe(0);
  });

  it('throws QueueFullError when the queue is full', async () => {
    const fixture = await startFixture();
    const network = new FakeNetwork();
    network.online = false;
    fixture.refuseWith = 503;
    const { client } = openClient(fixture.url, { network, sendQueueSize: 2 });
    await stateOf(client, 'reconnecting');
    client.send('1');
    client.send('2');
    expect(() => client.send('3')).toThrow(QueueFullError);
    await expect(client.request('4')).rejects.toMatchObject({ code: 'QUEUE_FULL' });
  });

  it('throws DisconnectedError at once with sendQueueSize 0', async () => {
    const fixture = await startFixture();
    fixture.refuseWith = 503;
    const network = new FakeNetwork();
    network.online = false;
    const { client } = openClient(fixture.url, { network, sendQueueSize: 0 });
    await stateOf(client, 'reconnecting');
    expect(() => client.send('x')).toThrow(DisconnectedError);
  });

  it('does not send later a queued request that timed out', async () => {
    const fixture = await startFixture();
    const network = new FakeNetwork();
    const { client } = openClient(fixture.url, { network, backoffBaseMs: 10 });
    await stateOf(client, 'open');
    network.set(false);
    fixture.last.ws.terminate();
    await stateOf(client, 'reconnecting');
    await expect(client.request('stale', { timeoutMs: 30 })).rejects.toBeInstanceOf(TimeoutError);
    expect(client.queued).toBe(0);
    client.send('fresh');
    network.set(true);
    const second = await fixture.connection(2);
    await second.waitFor((m) => m.t === 'msg');
    expect(second.messages).toEqual([
      { t: 'hello', session: 'token-1' },
      { t: 'msg', d: 'fresh' },
    ]);
  });

  it('after close(): in-flight requests DISCONNECTED, queued ones and new calls CLIENT_CLOSED', async () => {
    const fixture = await startFixture({ request: () => 'no-answer' });
    const network = new FakeNetwork();
    const { client } = openClient(fixture.url, { network });
    await stateOf(client, 'open');
    const inFlight = client.request('a').catch((e: unknown) => e);
    await fixture.last.waitFor((m) => m.t === 'req');
    await client.close();
    expect(await inFlight).toBeInstanceOf(DisconnectedError);

    client.connect();
    await fixture.connection(2);
    await stateOf(client, 'open');
    network.set(false); // hold the next connection back
    fixture.last.ws.terminate();
    await stateOf(client, 'reconnecting');
    const queued = client.request('b').catch((e: unknown) => e);
    await client.close();
    expect(await queued).toBeInstanceOf(ClientClosedError);
    expect(() => client.send('c')).toThrow(ClientClosedError);
    await expect(client.join('d')).rejects.toMatchObject({ code: 'CLIENT_CLOSED' });
  });
});
