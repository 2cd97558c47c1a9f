import { Buffer } from 'node:buffer';
/**
 * Builds a complete server-to-client WebSocket frame (RFC 6455 §5.2): FIN set, unmasked, opcode
 * text (1) or binary (2), RSV1 set for a permessage-deflate payload. A message is framed once per
 * node and the same bytes are written to every recipient's socket; `ws` itself would build a
 * header per recipient.
 *
 * Writing frames straight to the socket beside `ws` is sound because wscale never sends data
 * through `ws` (which would compress it asynchronously) and never fragments: `ws` then writes
 * each of its own frames (ping, close) synchronously and whole, so frames never interleave.
 */
export function wsFrame(payload: Uint8Array, binary: boolean, deflated = false): Buffer {
  const length = payload.length;
  const headerLength = length < 126 ? 2 : length < 0x10000 ? 4 : 10;
  const frame = Buffer.allocUnsafe(headerLength + length);
  frame[0] = 0x80 | (deflated ? 0x40 : 0) | (binary ? 0x2 : 0x1);
  if (length < 126) {
    frame[1] = length;
  } else if (length < 0x10000) {
    frame[1] = 126;
    frame.writeUInt16BE(length, 2);
  } else {
    frame[1] = 127;
    frame.writeUInt32BE(Math.floor(length / 0x100000000), 2);
    frame.writeUInt32BE(length >>> 0, 6);
  }
  frame.set(payload, headerLength);
  return frame;
}
