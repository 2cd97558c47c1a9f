import { connect, type Socket } from 'node:net';
import fc from 'fast-check';
import { within } from './live-node.js';
import { type Chunk, helloChunk, rawChunk, v1Chunk } from './ws-frames.js';

/** How long a run waits for the node to close the connection before counting it as kept open. */
const answerWindowMs = 250;

/** A generated run: who connects, what they send, and where the TCP writes are cut. */
export interface Run {
  v1: boolean;
  /** Frames sent in the same write as the upgrade request, before its response. */
  pipelined: boolean;
  chunks: Chunk[];
  cuts: number[];
}

export const runArbitrary: fc.Arbitrary<Run> = fc.oneof(
  fc.record({
    v1: fc.constant(false),
    pipelined: fc.boolean(),
    chunks: fc.array(rawChunk, { minLength: 1, maxLength: 8 }),
    cuts: fc.array(fc.nat(), { maxLength: 6 }),
  }),
  fc.record({
    v1: fc.constant(true),
    pipelined: fc.boolean(),
    chunks: fc
      .tuple(fc.option(helloChunk, { freq: 5 }), fc.array(v1Chunk, { minLength: 1, maxLength: 8 }))
      .map(([hello, rest]) => (hello === null ? rest : [hello, ...rest])),
    cuts: fc.array(fc.nat(), { maxLength: 6 }),
  }),
);

function upgradeRequest(port: number, v1: boolean): Buffer {
  const lines = [
    'GET /?fuzz=1 HTTP/1.1',
    `Host: 127.0.0.1:${port}`,
    'Upgrade: websocket',
    'Connection: Upgrade',
    'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==',
    'Sec-WebSocket-Version: 13',
  ];
  if (v1) lines.push('Sec-WebSocket-Protocol: wscale.v1');
  return Buffer.from(`${lines.join('\r\n')}\r\n\r\n`);
}

/** The byte stream cut at the generated offsets, in order. */
function cut(stream: Buffer, cuts: number[]): Buffer[] {
  const at = [...new Set(cuts.map((c) => c % (stream.length + 1)))].sort((a, b) => a - b);
  const pieces: Buffer[] = [];
  let from = 0;
  for (const to of [...at, stream.length]) {
    if (to > from) pieces.push(stream.subarray(from, to));
    from = Math.max(from, to);
  }
  return pieces;
}

/** Plays a run against the node; resolves with what the node wrote back. */
export async function play(
  port: number,
  run: Run,
): Promise<{ received: Buffer; closedByNode: boolean }> {
  const socket: Socket = connect({ host: '127.0.0.1', port });
  const received: Buffer[] = [];
  let closedByNode = false;
  socket.on('data', (data: Buffer) => received.push(data));
  socket.on('error', () => undefined);
  const ended = new Promise<void>((resolve) =>
    socket.once('close', () => {
      closedByNode = true;
      resolve();
    }),
  );
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve).once('error', reject);
  });
  const frames = Buffer.concat(run.chunks.map((chunk) => chunk.bytes));
  const request = upgradeRequest(port, run.v1);
  let stream = frames;
  if (run.pipelined) {
    stream = Buffer.concat([request, frames]);
  } else {
    socket.write(request);
    await within(
      new Promise<void>((resolve) => {
        const check = () => {
          if (Buffer.concat(received).includes('\r\n\r\n')) resolve();
          else socket.once('data', check);
        };
        check();
      }),
      'the upgrade response',
    );
  }
  for (const piece of cut(stream, run.cuts)) {
    if (socket.destroyed) break;
    socket.write(piece);
    // A separate write per piece: let the node read each one on its own.
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
  await Promise.race([ended, new Promise((resolve) => setTimeout(resolve, answerWindowMs))]);
  const wasClosed = closedByNode;
  socket.destroy();
  return { received: Buffer.concat(received), closedByNode: wasClosed };
}
