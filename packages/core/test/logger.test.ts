import { type Logger, type LogLevel, ScaledWebSocketServer } from '@wscale/core';
import { delay, until } from '@wscale/core/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { TestClient, urlOf } from './helpers/nodes.js';
import { frame, json, RawSocket } from './helpers/raw-socket.js';
import { V1Peer } from './helpers/v1-client.js';

interface Line {
  level: LogLevel;
  fields: Record<string, unknown>;
  message: string;
}

/** A logger with pino's call shape that keeps every line. */
function recorder(): Logger & { lines: Line[] } {
  const lines: Line[] = [];
  const at = (level: LogLevel) => (fields: object, message: string) =>
    void lines.push({ level, fields: fields as Record<string, unknown>, message });
  return { lines, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

const servers: ScaledWebSocketServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((server) => server.close()));
});

describe('logger', () => {
  it('gets structured fields naming the node and client, and never a payload', async () => {
    const logger = recorder();
    const wss = new ScaledWebSocketServer({
      port: 0,
      host: '127.0.0.1',
      nodeId: 'node-a',
      logger,
      maxOpsPerSecond: 1,
    });
    servers.push(wss);
    wss.on('connection', (client) => {
      client.on('message', () => {
        throw new Error('handler broke');
      });
    });
    await wss.ready();
    const { peer, welcome } = await V1Peer.connect(wss);
    peer.ws.close();
    await until(() => wss.stats.connections === 0, 3000, 'the v1 client gone');
    const back = await V1Peer.connect(wss, { session: welcome.session });
    expect(back.welcome.resumed).toBe(true);

    const raw = new TestClient(urlOf(wss));
    await raw.opened;
    for (let i = 0; i < 4; i++) raw.ws.send('secret-payload-4711');
    expect((await raw.closed).code).toBe(1008); // over its rate: a limit hit
    back.peer.ws.terminate();
    await wss.close();

    const lines = logger.lines;
    for (const line of lines) {
      expect(line.fields.node).toBe('node-a');
      expect(JSON.stringify(line.fields)).not.toContain('secret-payload');
      expect(line.message).not.toContain('secret-payload');
    }
    const find = (message: string) => lines.find((line) => line.message.startsWith(message));
    expect(find('node started')?.level).toBe('info');
    expect(find('resume recovered')).toMatchObject({
      level: 'debug',
      fields: { client: welcome.client },
    });
    expect(find('limit hit: rate')).toMatchObject({ level: 'debug', fields: { node: 'node-a' } });
    expect(find('limit hit: rate')?.fields.client).toEqual(expect.any(String));
    const failure = lines.find((line) => line.level === 'error');
    expect(failure?.fields).toMatchObject({ code: 'HANDLER_FAILED' });
    expect(find('node stopped')?.level).toBe('info');
  });

  it("warns of every protocol violation with the code it closed with, those ws refuses as well as the protocol's own, and of a ping flood before the hello", async () => {
    const ping = frame(0x9, Buffer.alloc(0));
    const compressed = (bytes: Buffer) => {
      bytes[0]! |= 0x40; // RSV1: a compressed message
      return bytes;
    };
    const cases: Array<{ bytes: Buffer[]; protocol?: string; code: number }> = [
      { bytes: [frame(0x1, Buffer.from([0xff, 0xfe]))], protocol: '', code: 1007 },
      { bytes: [frame(0x1, Buffer.from('x'), { mask: false })], protocol: '', code: 1002 },
      {
        bytes: [compressed(frame(0x1, Buffer.from('not deflate data')))],
        protocol: '',
        code: 1007,
      },
      { bytes: [json({ t: 'msg', d: 'no hello' })], code: 1008 },
      { bytes: Array.from({ length: 9 }, () => ping), code: 1008 },
    ];
    for (const { bytes, protocol, code } of cases) {
      const logger = recorder();
      const wss = new ScaledWebSocketServer({
        port: 0,
        host: '127.0.0.1',
        logger,
        perMessageDeflate: true,
      });
      servers.push(wss);
      await wss.ready();
      const raw = await RawSocket.open(wss.address()!.port, {
        ...(protocol === undefined ? {} : { protocol }),
        headers: { 'Sec-WebSocket-Extensions': 'permessage-deflate' },
      });
      for (const chunk of bytes) raw.write(chunk);
      expect((await raw.closeFrame()).code).toBe(code);
      raw.destroy();
      const warned = logger.lines.filter((line) => line.level === 'warn');
      expect(warned.map((line) => line.message)).toEqual([`protocol violation: closed ${code}`]);
    }
  });

  it('logs protocol violations a line a second at most, saying how many it held back', async () => {
    const logger = recorder();
    const wss = new ScaledWebSocketServer({ port: 0, host: '127.0.0.1', logger });
    servers.push(wss);
    await wss.ready();
    const violate = async () => {
      const raw = await RawSocket.open(wss.address()!.port, { protocol: '' });
      raw.write(frame(0x1, Buffer.from('x'), { mask: false }));
      await raw.closeFrame();
      raw.destroy();
    };
    for (let i = 0; i < 5; i++) await violate();
    await delay(1100);
    await violate();
    const warned = logger.lines.filter((line) => line.level === 'warn').map((line) => line.message);
    expect(warned).toEqual([
      'protocol violation: closed 1002',
      'protocol violation: closed 1002 (and 4 more since the last line)',
    ]);
  });

  it('logs slow consumers closed 1013 a line a second at most, saying how many it held back', async () => {
    const logger = recorder();
    const wss = new ScaledWebSocketServer({
      port: 0,
      host: '127.0.0.1',
      logger,
      maxBufferedBytes: 64 * 1024,
    });
    servers.push(wss);
    await wss.ready();
    const stalled = async (count: number) => {
      const clients = await Promise.all(
        Array.from({ length: count }, async () => {
          const client = new TestClient(urlOf(wss));
          await client.opened;
          client.ws.pause(); // reads nothing
          return client;
        }),
      );
      const closed = wss.stats.slowConsumersClosed + count;
      // Until the kernel's buffers are full and theirs pass maxBufferedBytes.
      const chunk = 'x'.repeat(64 * 1024);
      for (let sent = 0; wss.stats.slowConsumersClosed < closed && sent < 2000; sent++) {
        await wss.broadcast(chunk);
        await new Promise((resolve) => setImmediate(resolve));
      }
      expect(wss.stats.slowConsumersClosed).toBe(closed);
      for (const client of clients) client.ws.terminate();
    };
    await stalled(5);
    await delay(1100);
    await stalled(1);
    const warned = logger.lines.filter((line) => line.level === 'warn').map((line) => line.message);
    expect(warned).toEqual([
      'slow consumer closed 1013',
      'slow consumer closed 1013 (and 4 more since the last line)',
    ]);
  });

  it('answers a few pings before the hello as ever', async () => {
    const logger = recorder();
    const wss = new ScaledWebSocketServer({ port: 0, host: '127.0.0.1', logger });
    servers.push(wss);
    await wss.ready();
    const polite = await RawSocket.open(wss.address()!.port);
    for (let i = 0; i < 8; i++) polite.write(frame(0x9, Buffer.alloc(0)));
    polite.write(json({ t: 'hello' }));
    await polite.next('welcome');
    expect(polite.frames.filter((f) => f.opcode === 0xa)).toHaveLength(8);
    polite.destroy();
    expect(logger.lines.filter((line) => line.level === 'warn')).toEqual([]);
  });

  it('a logger that throws does not break the node', async () => {
    const broken: Logger = {
      debug: () => undefined,
      info: () => {
        throw new Error('disk full');
      },
      warn: () => undefined,
      error: () => undefined,
    };
    const wss = new ScaledWebSocketServer({ port: 0, host: '127.0.0.1', logger: broken });
    servers.push(wss);
    await wss.ready();
    const client = new TestClient(urlOf(wss));
    await client.opened;
    expect(wss.stats.connections).toBe(1);
    client.ws.terminate();
  });
});
