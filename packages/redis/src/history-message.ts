import { Buffer } from 'node:buffer';
import { ProtocolError } from '@wscale/core';

/** A message as {@link RedisHistory.appendAndPublish} publishes it: its position and payload. */
export interface HistoryMessage {
  /** The offset the message was given in its room's history. */
  offset: number;
  /** The epoch of that history. */
  epoch: string;
  /** The payload, exactly as appended. */
  payload: Uint8Array;
}

/** The version byte that opens every history message. */
export const HISTORY_MESSAGE_VERSION = 1;

const HEADER = 10; // version (1) + offset (8) + epoch length (1)

/**
 * Frames a message the way the `appendAndPublish` Lua script does (format version 1):
 *
 * | bytes          | holds                                                     |
 * |----------------|-----------------------------------------------------------|
 * | 0              | format version, `1`                                       |
 * | 1 – 8          | offset, unsigned 64-bit big-endian integer (≤ 2^53 − 1)   |
 * | 9              | `L`, the epoch's length in bytes (1 – 255)                |
 * | 10 – 10+L−1    | epoch, ASCII                                              |
 * | 10+L – end     | payload, untouched                                        |
 */
export function encodeHistoryMessage(message: HistoryMessage): Uint8Array {
  const epoch = Buffer.from(message.epoch, 'latin1');
  if (epoch.length < 1 || epoch.length > 255) throw new ProtocolError('epoch must be 1-255 bytes');
  const bytes = Buffer.allocUnsafe(HEADER + epoch.length + message.payload.byteLength);
  bytes[0] = HISTORY_MESSAGE_VERSION;
  bytes.writeUInt32BE(Math.floor(message.offset / 2 ** 32), 1);
  bytes.writeUInt32BE(message.offset % 2 ** 32, 5);
  bytes[9] = epoch.length;
  epoch.copy(bytes, HEADER);
  bytes.set(message.payload, HEADER + epoch.length);
  return bytes;
}

/**
 * Reads a message framed by {@link encodeHistoryMessage} or by the `appendAndPublish` script. The
 * payload is a view into `bytes`, not a copy.
 * @throws {@link @wscale/core!ProtocolError | ProtocolError} when the bytes are not a version-1
 *   history message.
 */
export function decodeHistoryMessage(bytes: Uint8Array): HistoryMessage {
  if (bytes.byteLength < HEADER + 1 || bytes[0] !== HISTORY_MESSAGE_VERSION) {
    throw new ProtocolError('not a version-1 wscale history message');
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const offset = view.getUint32(1) * 2 ** 32 + view.getUint32(5);
  const length = bytes[9]!;
  if (length === 0 || bytes.byteLength < HEADER + length) {
    throw new ProtocolError('history message is truncated');
  }
  const epoch = String.fromCharCode(...bytes.subarray(HEADER, HEADER + length));
  return { offset, epoch, payload: bytes.subarray(HEADER + length) };
}
