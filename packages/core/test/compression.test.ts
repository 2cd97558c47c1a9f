import { randomBytes } from 'node:crypto';
import { request } from 'node:http';
import { connect, type Socket } from 'node:net';
import { WscaleClient } from '@wscale/client';
import { InvalidOptionError, type ScaledWebSocketServer } from '@wscale/core';
import { until } from '@wscale/core/testing';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { type ClientOptions, WebSocket } from 'ws';
import { TestCluster, urlOf } from './helpers/nodes.js';
import { V1Peer } from './helpers/v1-client.js';

const cluster = new TestCluster();
const opened: Array<WebSocket | WscaleClient> = [];
afterEach(async () => {
  for (const socket of opened.splice(0)) {
    if (socket instanceof WebSocket) socket.terminate();
    else socket.close();
  }
  await cluster.closeAll();
});

/** A chat-like JSON message of about `size` bytes: compressible, as real traffic is. */
function chat(size: number, seed = 0): string {
  const items = [];
  let text = '';
  for (let i = 0; text.length < size; i++) {
    items.push({ id: `m${seed}-${i}`, user: `user${i % 5}`, text: `message ${i} of the day` });
    text = JSON.stringify({ room: 'general', items });
  }
  return text;
}

/** A raw `ws` client, with or without permessage-deflate, that records what it receives. */
class Peer {
  readonly ws: WebSocket;
  readonly messages: Array<{ data: Buffer; binary: boolean }> = [];
  /** The TCP socket under it, for the bytes that came over the wire. */
  tcp: Socket | undefined;
  /** The server's answer to the extension offer. */
  extensionsHeader: string | undefined;
  readonly opened: Promise<void>;

  constructor(url: string, options: ClientOptions & { protocol?: string } = {}) {
    this.ws = new WebSocket(url, options.protocol === undefined ? [] : [options.protocol], {
      ...options,
      createConnection: (connectOptions: object) => {
        const { port, host } = connectOptions as { port: number; host: string };
        this.tcp = connect(port, host);
        return this.tcp;
      },
    });
    opened.push(this.ws);
    this.ws.on('upgrade', (response) => {
      this.extensionsHeader = response.headers['sec-websocket-extensions'];
    });
    this.ws.on('message', (data: Buffer, binary) => this.messages.push({ data, binary }));
    this.opened = new Promise((resolve, reject) => {
      this.ws.once('open', () => resolve()).once('error', reject);
    });
  }

  static async open(
    server: ScaledWebSocketServer,
    options: ClientOptions & { protocol?: string } = {},
  ): Promise<Peer> {
    const peer = new Peer(urlOf(server), options);
    await peer.opened;
    return peer;
  }

  waitFor(count: number): Promise<void> {
    return until(() => this.messages.length >= count, 5000, `${count} messages`);
  }
}

/** Every client of every node joins a room; resolves when all of them are in it, cluster-wide. */
async function joinAll(servers: ScaledWebSocketServer[], room: string): Promise<void> {
  let count = 0;
  for (const server of servers) {
    for (const client of server.clients.values()) {
      await client.join(room);
      count++;
    }
  }
  await until(
    async () => (await servers[0]!.fetchClients(room)).clients.length === count,
    3000,
    'joins',
  );
}

const payloads = [
  { data: 'short', binary: false },
  { data: chat(3000), binary: false },
  { data: Buffer.from([1, 2, 3]), binary: true },
  { data: Buffer.from(chat(3000, 1)), binary: true },
];

describe('permessage-deflate', () => {
  it('negotiates server_no_context_takeover and delivers raw and wscale.v1 broadcasts across nodes byte for byte, text and binary, under and over the threshold', async () => {
    const servers = await cluster.start(2, { perMessageDeflate: true });
    const [a, b] = servers as [ScaledWebSocketServer, ScaledWebSocketServer];
    const raw = [await Peer.open(a), await Peer.open(b)];
    const v1 = [(await V1Peer.connect(a)).peer, (await V1Peer.connect(b)).peer];
    for (const peer of raw) {
      expect(peer.ws.extensions).toBe('permessage-deflate');
      expect(peer.extensionsHeader).toContain('server_no_context_takeover');
    }
    for (const peer of v1) expect(peer.ws.extensions).toBe('permessage-deflate');
    await joinAll(servers, 'news');

    for (const { data } of payloads) await b.to('news').send(data);

    for (const peer of raw) {
      await peer.waitFor(payloads.length);
      expect(peer.messages.map((m) => m.binary)).toEqual(payloads.map((p) => p.binary));
      expect(peer.messages.map((m) => m.data)).toEqual(payloads.map((p) => Buffer.from(p.data)));
    }
    for (const peer of v1) {
      await until(() => peer.all('msg').length === payloads.length, 5000, 'v1 messages');
      const received = peer.received.filter((entry) => entry.message.t === 'msg');
      received.forEach((entry, i) => {
        const { data, binary } = payloads[i]!;
        if (binary) expect(Buffer.from(entry.binary!)).toEqual(data);
        else expect((entry.message as { d?: string }).d).toBe(data);
      });
    }
    // The two long payloads were compressed; the short ones went as they were.
    for (const server of servers) expect(server.stats.compressed).toBe(4);
  });

  it('sends the same broadcast uncompressed to a client that did not negotiate the extension, and fewer bytes to one that did', async () => {
    const [a] = await cluster.start(1, { perMessageDeflate: true });
    const plain = await Peer.open(a!, { perMessageDeflate: false });
    const deflate = await Peer.open(a!);
    expect(plain.ws.extensions).toBe('');
    await joinAll([a!], 'news');
    const before = [plain.tcp!.bytesRead, deflate.tcp!.bytesRead];

    const message = chat(2000);
    await a!.to('news').send(message);

    for (const peer of [plain, deflate]) {
      await peer.waitFor(1);
      expect(peer.messages[0]!.data.toString()).toBe(message);
    }
    const plainBytes = plain.tcp!.bytesRead - before[0]!;
    const deflateBytes = deflate.tcp!.bytesRead - before[1]!;
    expect(plainBytes).toBe(message.length + 4);
    expect(deflateBytes).toBeLessThan(plainBytes / 3);
  });

  it('compresses a broadcast once per node, whatever the number of sockets it goes to', async () => {
    const servers = await cluster.start(2, { perMessageDeflate: true });
    for (const server of servers) for (let i = 0; i < 5; i++) await Peer.open(server);
    await joinAll(servers, 'news');
    for (let i = 0; i < 3; i++) await servers[0]!.to('news').send(chat(1000, i));
    for (const server of servers) {
      await until(() => server.stats.messagesOut.broadcast === 15, 3000, 'broadcasts');
      expect(server.stats.compressed).toBe(3);
    }
    // The `wscale.v1` envelope is another payload: once more per message, for all v1 sockets.
    for (const server of servers) for (let i = 0; i < 3; i++) await V1Peer.connect(server);
    await joinAll(servers, 'v1');
    await servers[1]!.to('v1').send(chat(1000));
    for (const server of servers) {
      await until(() => server.stats.messagesOut.broadcast === 23, 3000, 'broadcasts');
      expect(server.stats.compressed).toBe(5);
    }
  });

  it('sends uncompressed below the threshold and when compressing would not make a message smaller', async () => {
    const [a] = await cluster.start(1, { perMessageDeflate: { threshold: 2000, level: 9 } });
    const peer = await Peer.open(a!);
    await joinAll([a!], 'news');
    const noise = randomBytes(4000);
    await a!.to('news').send(chat(1500));
    await a!.to('news').send(noise);
    await peer.waitFor(2);
    expect(peer.messages[0]!.data.toString()).toBe(chat(1500));
    expect(peer.messages[1]!.data).toEqual(noise);
    // The short one was not tried; the noise was, and went as it was: neither counts as compressed.
    expect(a!.stats.compressed).toBe(0);
    expect(a!.stats.bytesOut.broadcast).toBe(chat(1500).length + 4 + noise.length + 4);
  });

  it('leaves compression off for a client that asks for a smaller server window, and by default', async () => {
    const [a] = await cluster.start(1, { perMessageDeflate: true });
    const narrow = await Peer.open(a!, { perMessageDeflate: { serverMaxWindowBits: 10 } });
    expect(narrow.ws.extensions).toBe('');
    const [off] = await cluster.start(1);
    expect((await Peer.open(off!)).ws.extensions).toBe('');
    await joinAll([a!], 'news');
    await a!.to('news').send(chat(3000));
    await narrow.waitFor(1);
    expect(narrow.messages[0]!.data.toString()).toBe(chat(3000));
  });

  it('accepts the next offer of a client whose first one asks for a smaller server window, however the number is written', async () => {
    const [a] = await cluster.start(1, { perMessageDeflate: true });
    const { port } = a!.address()!;
    // ws reads the value as `+value`, a quoted one without its escapes: each of these asks for a
    // window under 15 bits.
    for (const bits of ['10', '"10"', '+8', '.9e1', '"+9"', '09', '1e1', '"\\9"', '"1\\0"']) {
      const offers = `permessage-deflate; server_max_window_bits=${bits}, permessage-deflate; client_max_window_bits`;
      expect(await extensionsAnswer(port, offers)).toBe(
        'permessage-deflate; server_no_context_takeover',
      );
    }
  });

  it('takes compressed messages from clients', async () => {
    const [a] = await cluster.start(1, { perMessageDeflate: true });
    const peer = await Peer.open(a!, { perMessageDeflate: { threshold: 0 } });
    const received: string[] = [];
    for (const client of a!.clients.values()) client.on('message', (d) => received.push(String(d)));
    peer.ws.send(chat(2000));
    await until(() => received.length === 1, 3000, 'the message');
    expect(received[0]).toBe(chat(2000));
  });

  it('works with @wscale/client on Node over ws', async () => {
    const [a] = await cluster.start(1, { perMessageDeflate: true });
    const client = new WscaleClient(urlOf(a!), { WebSocket });
    opened.push(client);
    const got: string[] = [];
    client.on('message', (data) => got.push(String(data)));
    await until(() => a!.clients.size === 1, 3000, 'the client');
    await joinAll([a!], 'news');
    await a!.to('news').send(chat(2500));
    await until(() => got.length === 1, 3000, 'the message');
    expect(got[0]).toBe(chat(2500));
    expect(a!.stats.compressed).toBe(1);
  });

  it('round-trips any payload through a compressing node (fuzz)', async () => {
    const [a] = await cluster.start(1, { perMessageDeflate: { threshold: 0 } });
    const raw = await Peer.open(a!);
    const { peer: v1 } = await V1Peer.connect(a!);
    await joinAll([a!], 'fuzz');
    const payload = fc.oneof(
      fc.string({ unit: 'grapheme', maxLength: 3000 }),
      fc.uint8Array({ maxLength: 3000 }).map((bytes) => Buffer.from(bytes)),
      fc.nat(5000).map((n) => chat(n)),
    );
    let sent = 0;
    await fc.assert(
      fc.asyncProperty(payload, async (data) => {
        await a!.to('fuzz').send(data);
        sent++;
        await raw.waitFor(sent);
        await until(() => v1.all('msg').length === sent, 5000, 'v1 messages');
        const binary = typeof data !== 'string';
        expect(raw.messages[sent - 1]).toEqual({ data: Buffer.from(data), binary });
        const last = v1.received.filter((entry) => entry.message.t === 'msg')[sent - 1]!;
        if (binary) expect(Buffer.from(last.binary!)).toEqual(data);
        else expect((last.message as { d?: string }).d).toBe(data);
      }),
      { numRuns: 100 },
    );
    expect(raw.ws.extensions).toBe('permessage-deflate');
  });

  it('checks its options', async () => {
    await expect(cluster.start(1, { perMessageDeflate: { threshold: -1 } })).rejects.toThrow(
      InvalidOptionError,
    );
    await expect(cluster.start(1, { perMessageDeflate: { level: 10 } })).rejects.toThrow(/level/);
  });
});

/** What a node answers an upgrade offering `offers` in `Sec-WebSocket-Extensions`. */
function extensionsAnswer(port: number, offers: string): Promise<string | undefined> {
  return new Promise((resolve, reject) => {
    const req = request({
      host: '127.0.0.1',
      port,
      headers: {
        connection: 'Upgrade',
        upgrade: 'websocket',
        'sec-websocket-version': '13',
        'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==',
        'sec-websocket-extensions': offers,
      },
    });
    req.on('upgrade', (response, socket) => {
      socket.destroy();
      resolve(response.headers['sec-websocket-extensions']);
    });
    req.on('response', (response) => resolve(`refused ${response.statusCode}`));
    req.on('error', reject).end();
  });
}
