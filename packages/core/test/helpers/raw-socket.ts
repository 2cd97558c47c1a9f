import { randomBytes } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { connect, type Socket } from 'node:net';
import { PROTOCOL } from '@wscale/core/protocol';
import { until } from '@wscale/core/testing';

/** One frame the server sent. */
export interface ServerFrame {
  opcode: number;
  payload: Buffer;
}

/** Frame options a well-behaved client never varies. */
export interface FrameOptions {
  /** @default true (RFC 6455 requires every client frame to be masked) */
  mask?: boolean;
  /** Claimed payload length, when it must differ from the real one. */
  length?: number;
}

/** Builds one client-to-server frame, byte by byte, so a test can also build a broken one. */
export function frame(opcode: number, payload: Uint8Array, options: FrameOptions = {}): Buffer {
  const mask = options.mask ?? true;
  const length = options.length ?? payload.length;
  const head =
    length < 126 ? Buffer.alloc(2) : length < 0x10000 ? Buffer.alloc(4) : Buffer.alloc(10);
  head[0] = 0x80 | opcode;
  if (length < 126) head[1] = length;
  else if (length < 0x10000) {
    head[1] = 126;
    head.writeUInt16BE(length, 2);
  } else {
    head[1] = 127;
    head.writeBigUInt64BE(BigInt(length), 2);
  }
  if (!mask) return Buffer.concat([head, payload]);
  head[1]! |= 0x80;
  const key = randomBytes(4);
  const body = Buffer.from(payload);
  for (let i = 0; i < body.length; i++) body[i]! ^= key[i % 4]!;
  return Buffer.concat([head, key, body]);
}

/** A masked text frame of a JSON message. */
export function json(message: object): Buffer {
  return frame(0x1, Buffer.from(JSON.stringify(message)));
}

/**
 * A WebSocket client on a bare TCP socket: it writes exactly the bytes a test gives it (pipelined,
 * split, unmasked, invalid UTF-8: what the `ws` client will not send) and parses what comes back.
 */
export class RawSocket {
  static readonly #open = new Set<RawSocket>();
  readonly frames: ServerFrame[] = [];
  /** Set once the socket ended or was destroyed. */
  ended = false;
  #buffer = Buffer.alloc(0);

  /** Destroys every socket a test opened and did not destroy itself (for `afterEach`). */
  static destroyAll(): void {
    for (const raw of RawSocket.#open) raw.destroy();
  }

  private constructor(readonly socket: Socket) {
    RawSocket.#open.add(this);
    socket.on('data', (chunk: Buffer) => this.#parse(chunk));
    socket.on('close', () => {
      this.ended = true;
      RawSocket.#open.delete(this);
    });
    socket.on('error', () => undefined);
  }

  /** Opens a TCP connection and completes a WebSocket upgrade (as `wscale.v1` unless told not to). */
  static async open(
    port: number,
    {
      protocol = PROTOCOL,
      headers = {},
    }: { protocol?: string; headers?: Record<string, string> } = {},
  ): Promise<RawSocket> {
    const socket = connect(port, '127.0.0.1');
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve).once('error', reject);
    });
    const lines = [
      'GET / HTTP/1.1',
      `Host: 127.0.0.1:${port}`,
      'Connection: Upgrade',
      'Upgrade: websocket',
      'Sec-WebSocket-Version: 13',
      `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}`,
      ...(protocol === '' ? [] : [`Sec-WebSocket-Protocol: ${protocol}`]),
      ...Object.entries(headers).map(([name, value]) => `${name}: ${value}`),
    ];
    socket.write(`${lines.join('\r\n')}\r\n\r\n`);
    const head = await new Promise<{ status: number; rest: Buffer }>((resolve, reject) => {
      let received = Buffer.alloc(0);
      const onData = (chunk: Buffer) => {
        received = Buffer.concat([received, chunk]);
        const end = received.indexOf('\r\n\r\n');
        if (end === -1) return;
        socket.off('data', onData).off('error', reject);
        const status = Number(received.subarray(9, 12).toString());
        resolve({ status, rest: received.subarray(end + 4) });
      };
      socket.on('data', onData).once('error', reject);
    });
    if (head.status !== 101) {
      socket.destroy();
      throw new Error(`upgrade answered ${head.status}`);
    }
    const raw = new RawSocket(socket);
    raw.#parse(head.rest);
    return raw;
  }

  write(bytes: Uint8Array): void {
    this.socket.write(bytes);
  }

  /** The JSON messages of the text frames received so far. */
  messages(): Array<Record<string, unknown>> {
    return this.frames
      .filter((f) => f.opcode === 0x1)
      .map((f) => JSON.parse(f.payload.toString()) as Record<string, unknown>);
  }

  /** Waits for a text message of a type (and, with `id`, of that id). */
  async next(type: string, id?: number, timeoutMs = 3000): Promise<Record<string, unknown>> {
    const find = () =>
      this.messages().find((m) => m.t === type && (id === undefined || m.id === id));
    await until(() => find() !== undefined, timeoutMs, `a "${type}" message`);
    return find()!;
  }

  /** Waits for the server's close frame; resolves with its code and reason. */
  async closeFrame(timeoutMs = 3000): Promise<{ code: number; reason: Buffer }> {
    const find = () => this.frames.find((f) => f.opcode === 0x8);
    await until(() => find() !== undefined, timeoutMs, 'a close frame');
    const { payload } = find()!;
    return { code: payload.readUInt16BE(0), reason: payload.subarray(2) };
  }

  destroy(): void {
    this.socket.destroy();
  }

  #parse(chunk: Buffer): void {
    this.#buffer = Buffer.concat([this.#buffer, chunk]);
    for (;;) {
      const b = this.#buffer;
      if (b.length < 2) return;
      let length = b[1]! & 0x7f;
      let offset = 2;
      if (length === 126) {
        if (b.length < 4) return;
        length = b.readUInt16BE(2);
        offset = 4;
      } else if (length === 127) {
        if (b.length < 10) return;
        length = Number(b.readBigUInt64BE(2));
        offset = 10;
      }
      if (b.length < offset + length) return;
      this.frames.push({ opcode: b[0]! & 0x0f, payload: b.subarray(offset, offset + length) });
      this.#buffer = b.subarray(offset + length);
    }
  }
}

/** Sends an upgrade request and returns the HTTP status of the answer (0: the socket just ended). */
export function upgradeStatus(port: number, headers: Record<string, string> = {}) {
  return new Promise<number>((resolve) => {
    const req = httpRequest({
      host: '127.0.0.1',
      port,
      path: '/',
      headers: {
        connection: 'Upgrade',
        upgrade: 'websocket',
        'sec-websocket-version': '13',
        'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==',
        ...headers,
      },
    });
    req.on('response', (response) => resolve(response.statusCode ?? 0));
    req.on('upgrade', (response, socket) => {
      socket.destroy();
      resolve(response.statusCode ?? 0);
    });
    req.on('error', () => resolve(0));
    req.end();
  });
}
