/**
 * A text a raw client sent, sent on by the application (to a client on another node) exactly as it
 * came: the node reuses the bytes of the text it decoded last instead of encoding it again, and
 * must not reuse them for any other text. Here the texts come fragmented (a multi-byte character
 * split across fragments), pipelined in one TCP write and split one byte per write; each is sent
 * on at once and again after the next ones were decoded.
 */
import { delay, until } from '@wscale/core/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { TestCluster } from './helpers/nodes.js';
import { RawSocket } from './helpers/raw-socket.js';
import { encodeFrame } from './helpers/ws-frames.js';

const cluster = new TestCluster();
afterEach(async () => {
  RawSocket.destroyAll();
  await cluster.closeAll();
});

const TEXT = 0x1;
const CONTINUATION = 0x0;
const piece = (opcode: number, bytes: Buffer, fin: boolean) =>
  encodeFrame({ fin, rsv: 0, opcode, masked: true, payload: new Uint8Array(bytes) });

describe('a text a raw client sent, sent on', () => {
  it('arrives as it was sent, at once and after other texts came in', async () => {
    const [near, far] = await cluster.start(2);
    const now = await cluster.connect(far!);
    const later = await cluster.connect(far!);
    const texts = ['fragmented ✓ é', 'pipelined ✓', 'byte by byte ✓'];
    near!.on('connection', (client, request) => {
      if (request.headers['x-role'] !== 'sender') return;
      const received: (string | Buffer)[] = [];
      client.on('message', async (text) => {
        received.push(text);
        await near!.client(now.id).send(text);
        if (received.length < texts.length) return;
        // Each again, now that the node has decoded the texts that came after it.
        for (const each of received) await near!.client(later.id).send(each);
      });
    });
    const { port } = near!.address() as { port: number };
    const sender = await RawSocket.open(port, { protocol: '', headers: { 'x-role': 'sender' } });
    await until(() => near!.clients.size === 1, 2000, 'the sender');

    const fragmented = Buffer.from(texts[0]!);
    const cut = fragmented.indexOf(Buffer.from('✓')) + 1; // inside the three bytes of ✓
    // The first two in one TCP write: the first in two fragments, the second whole.
    sender.write(
      Buffer.concat([
        piece(TEXT, fragmented.subarray(0, cut), false),
        piece(CONTINUATION, fragmented.subarray(cut), true),
        piece(TEXT, Buffer.from(texts[1]!), true),
      ]),
    );
    // The third one byte per TCP write.
    for (const byte of piece(TEXT, Buffer.from(texts[2]!), true)) {
      sender.write(Buffer.from([byte]));
      await delay(1);
    }

    await now.waitFor(3);
    await later.waitFor(3);
    expect(now.texts).toEqual(texts);
    expect(later.texts).toEqual(texts);
    expect(now.messages.every((message) => !message.binary)).toBe(true);
  });
});
