import type { Buffer } from 'node:buffer';
import { constants, deflateRawSync } from 'node:zlib';
import { wsFrame } from './ws-frame.js';

/**
 * The server side of permessage-deflate (RFC 7692) with no context takeover: each message is
 * compressed on its own, so one compressed payload is valid on every socket that negotiated the
 * extension, and a node compresses a broadcast once, not once per recipient.
 */
export class FrameDeflater {
  /** Messages compressed, once each whatever the number of sockets they are written to. */
  compressed = 0;
  readonly #options: { level: number; finishFlush: number };

  constructor(
    /** Payloads shorter than this many bytes are sent as they are. */
    readonly threshold: number,
    level: number,
  ) {
    // A sync flush ends the output with an empty stored block, whose 4 bytes RFC 7692 drops.
    this.#options = { level, finishFlush: constants.Z_SYNC_FLUSH };
  }

  /**
   * The compressed frame of a payload (RSV1 set), or `undefined` when it is sent as it is: shorter
   * than the threshold, or no smaller compressed. Synchronous, so frames keep their order.
   */
  frame(payload: Uint8Array, binary: boolean): Buffer | undefined {
    if (payload.length < this.threshold) return undefined;
    const deflated = deflateRawSync(payload, this.#options);
    const length = deflated.length - 4;
    if (length >= payload.length) return undefined;
    this.compressed++;
    return wsFrame(deflated.subarray(0, length), binary, true);
  }
}

/** The window the node compresses with, in bits (zlib's largest, and a client's default). */
const WINDOW_BITS = 15;

/**
 * An upgrade's `Sec-WebSocket-Extensions` without the permessage-deflate offers that ask for a
 * server window smaller than {@link WINDOW_BITS} (messages are compressed once for every socket,
 * with one window), or `undefined` when no offer is left. Such a client, rare, gets no compression.
 */
export function offersForSharedWindow(header: string): string | undefined {
  const offers = header
    .split(',')
    .map((offer) => offer.trim())
    .filter((offer) => {
      // Read as `ws` reads it (`+value`: "+8", ".9e1" and "9" are numbers too; a quoted value
      // without its quotes and escapes: "\9" is 9).
      const value = /server_max_window_bits\s*=\s*("[^"]*"|[^;,\s]*)/i.exec(offer)?.[1];
      const bits = value === undefined ? undefined : Number(value.replace(/["\\]/g, ''));
      return bits === undefined || !(bits < WINDOW_BITS);
    });
  return offers.length === 0 ? undefined : offers.join(', ');
}
