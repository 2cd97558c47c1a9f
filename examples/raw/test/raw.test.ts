import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { createApp } from '../src/app.js';

type Received = { type: string; [key: string]: unknown };

/** A plain `ws` client (no subprotocol, no library) that can wait for its next matching message. */
class RawClient {
  readonly ws: WebSocket;
  readonly received: Received[] = [];
  readonly #waiters = new Set<() => void>();

  constructor(url: string) {
    this.ws = new WebSocket(url);
    this.ws.on('message', (data) => {
      this.received.push(JSON.parse(String(data)) as Received);
      for (const wake of this.#waiters) wake();
    });
  }

  send(message: object): void {
    this.ws.send(JSON.stringify(message));
  }

  /** The first message (received or to come) that matches; fails after 5 s. */
  next(match: (message: Received) => boolean): Promise<Received> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const found = this.received.find(match);
        if (found === undefined) return false;
        clearTimeout(timer);
        this.#waiters.delete(check);
        resolve(found);
        return true;
      };
      const timer = setTimeout(() => {
        this.#waiters.delete(check);
        reject(new Error('no matching message within 5 s'));
      }, 5000);
      if (!check()) this.#waiters.add(check);
    });
  }
}

describe('examples/raw', () => {
  let app: Awaited<ReturnType<typeof createApp>>;
  let host = '';
  const clients: RawClient[] = [];

  beforeAll(async () => {
    app = await createApp();
    await app.wss.ready();
    await new Promise<void>((resolve) => app.server.listen(0, '127.0.0.1', resolve));
    host = `127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  });

  afterAll(async () => {
    for (const client of clients) client.ws.close();
    await app.wss.close();
    await new Promise((resolve) => app.server.close(resolve));
  });

  /** A connected client, once the app said hello. */
  const connect = async () => {
    const client = new RawClient(`ws://${host}/ws`);
    clients.push(client);
    await client.next((m) => m.type === 'hello');
    return client;
  };

  it('serves the page, which uses the browser WebSocket and no library', async () => {
    const response = await fetch(`http://${host}/`);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^text\/html/);
    const html = await response.text();
    expect(html).toContain('new WebSocket(');
    expect(html).not.toMatch(/<script[^>]+src=/);
    expect((await fetch(`http://${host}/missing`)).status).toBe(404);
  });

  it('accepts a raw client without any subprotocol', async () => {
    const client = await connect();
    const hello = await client.next((m) => m.type === 'hello');
    expect(hello.node).toBe(app.wss.nodeId);
    expect(client.ws.protocol).toBe('');
  });

  it('broadcasts to the members of a room only', async () => {
    const [alice, bob, carol] = await Promise.all([connect(), connect(), connect()]);
    alice.send({ join: 'news' });
    bob.send({ join: 'news' });
    carol.send({ join: 'sport' });
    for (const client of [alice, bob, carol]) await client.next((m) => m.type === 'joined');

    alice.send({ to: 'news', text: 'extra!' });
    const hello = await alice.next((m) => m.type === 'hello');
    for (const member of [alice, bob]) {
      expect(await member.next((m) => m.type === 'message')).toEqual({
        type: 'message',
        room: 'news',
        from: hello.id,
        text: 'extra!',
      });
    }
    // carol is in another room: a short settle window, then nothing may have arrived.
    carol.send({ to: 'sport', text: 'marker' });
    await carol.next((m) => m.type === 'message' && m.text === 'marker');
    expect(carol.received.filter((m) => m.type === 'message')).toHaveLength(1);
  });

  it('answers bad requests with an error instead of closing', async () => {
    const client = await connect();
    client.ws.send('not json');
    expect(await client.next((m) => m.type === 'error')).toMatchObject({
      error: 'expected a JSON object',
    });
    client.send({ to: 'news', text: 'not a member' });
    await client.next((m) => m.type === 'error' && m.error !== 'expected a JSON object');
    expect(client.received.filter((m) => m.type === 'error')).toEqual([
      { type: 'error', error: 'expected a JSON object' },
      { type: 'error', error: 'join it first' },
    ]);
    expect(client.ws.readyState).toBe(WebSocket.OPEN);
  });
});
