import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { MemoryBroker, MemoryBus } from '@wscale/core';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { createApp } from '../src/app.js';

type App = ReturnType<typeof createApp>;
type Received = { type: string; [key: string]: unknown };

/** Collects a socket's JSON messages so a test can wait for the next one that matches. */
class TestClient {
  readonly ws: WebSocket;
  readonly #messages: Received[] = [];
  readonly #waiters = new Set<() => void>();

  constructor(url: string) {
    this.ws = new WebSocket(url);
    this.ws.on('message', (data) => {
      this.#messages.push(JSON.parse(String(data)) as Received);
      for (const wake of this.#waiters) wake();
    });
  }

  /** Resolves with the first message (received or to come) that matches; fails after 5 s. */
  next(match: (message: Received) => boolean): Promise<Received> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const index = this.#messages.findIndex(match);
        if (index === -1) return false;
        const [message] = this.#messages.splice(index, 1);
        clearTimeout(timer);
        this.#waiters.delete(check);
        resolve(message!);
        return true;
      };
      const timer = setTimeout(() => {
        this.#waiters.delete(check);
        reject(new Error('no matching message within 5 s'));
      }, 5000);
      if (!check()) this.#waiters.add(check);
    });
  }

  close(): void {
    this.ws.close();
  }
}

function listen(server: Server): Promise<string> {
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () => {
      resolve(`127.0.0.1:${(server.address() as AddressInfo).port}`);
    }),
  );
}

describe('examples/express', () => {
  // Two nodes on one in-memory bus: HTTP on one node reaches WebSocket clients of the other.
  // Each test gets its own pair: none depends on what an earlier one left behind.
  const nodes: App[] = [];
  const hosts: string[] = [];
  const clients: TestClient[] = [];

  beforeEach(async () => {
    const bus = new MemoryBus();
    for (const nodeId of ['node-a', 'node-b']) {
      const node = createApp({ nodeId, broker: new MemoryBroker({ bus }) });
      await node.wss.ready();
      hosts.push(await listen(node.server));
      nodes.push(node);
    }
  });

  afterEach(async () => {
    for (const client of clients.splice(0)) client.close();
    for (const { server, wss } of nodes.splice(0)) {
      await wss.close();
      await new Promise((resolve) => server.close(resolve));
    }
    hosts.length = 0;
  });

  const connect = (host: string, room: string) => {
    const client = new TestClient(`ws://${host}/ws?room=${room}`);
    clients.push(client);
    return client;
  };

  it('serves its HTTP routes on the same port: liveness, readiness, metrics', async () => {
    await connect(hosts[0]!, 'news').next((m) => m.type === 'welcome');
    const live = await fetch(`http://${hosts[0]}/livez`);
    expect(live.status).toBe(200);
    expect(await live.json()).toEqual({ status: 'ok', node: 'node-a' });
    const ready = await fetch(`http://${hosts[0]}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toMatchObject({ ready: true, broker: 'ready', connections: 1 });
    const metrics = await (await fetch(`http://${hosts[0]}/metrics`)).text();
    expect(metrics).toContain('wscale_connections{protocol="raw"} 1');
  });

  it('carries WebSocket messages between clients of different nodes', async () => {
    const alice = connect(hosts[0]!, 'news');
    const bob = connect(hosts[1]!, 'news');
    const welcome = await alice.next((m) => m.type === 'welcome');
    expect(welcome).toMatchObject({ node: 'node-a', room: 'news' });
    expect(await bob.next((m) => m.type === 'welcome')).toMatchObject({ node: 'node-b' });

    alice.ws.send('hello from alice');
    const heard = await bob.next((m) => m.type === 'message');
    expect(heard).toEqual({
      type: 'message',
      room: 'news',
      from: welcome.id,
      text: 'hello from alice',
    });
  });

  it('answers GET /api/rooms from every node and broadcasts from POST', async () => {
    const carol = connect(hosts[1]!, 'ops');
    await carol.next((m) => m.type === 'welcome');
    await connect(hosts[0]!, 'news').next((m) => m.type === 'welcome');

    const rooms = await fetch(`http://${hosts[0]}/api/rooms`);
    expect(await rooms.json()).toEqual({ rooms: ['news', 'ops'], missing: [] });

    const posted = await fetch(`http://${hosts[0]}/api/rooms/ops/messages`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ text: 'deploy done' }),
    });
    expect(posted.status).toBe(202);
    expect(await carol.next((m) => m.type === 'message')).toEqual({
      type: 'message',
      room: 'ops',
      from: 'http',
      text: 'deploy done',
    });

    const bad = await fetch(`http://${hosts[0]}/api/rooms/ops/messages`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ nope: true }),
    });
    expect(bad.status).toBe(400);
  });

  it('fails readiness first when it shuts down, then drains', async () => {
    const node = createApp({ nodeId: 'node-c' });
    await node.wss.ready();
    const host = await listen(node.server);
    const stopped = node.shutDown(300);
    const during = await fetch(`http://${host}/readyz`);
    expect(during.status).toBe(503);
    expect(await during.json()).toMatchObject({ ready: false, draining: false });
    expect((await fetch(`http://${host}/livez`)).status).toBe(200); // alive all along
    await stopped;
    expect((await node.wss.health()).draining).toBe(true);
  });

  it('leaves other paths to Express', async () => {
    expect((await fetch(`http://${hosts[0]}/nothing-here`)).status).toBe(404);
    const stray = new WebSocket(`ws://${hosts[0]}/elsewhere`);
    const status = await new Promise<number | undefined>((resolve) => {
      stray.on('unexpected-response', (_request, response) => resolve(response.statusCode));
      stray.on('error', () => resolve(undefined));
    });
    expect(status).toBe(400);
  });
});
