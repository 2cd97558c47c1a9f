import { Buffer } from 'node:buffer';
import { randomBytes } from 'node:crypto';

/**
 * Bytes in front of every payload a {@link BaseBroker} publishes: the mark `F5 01`, its
 * publisher's id (6 bytes) and the publish's number (6 bytes, big-endian).
 *
 * A publish whose confirmation is lost with the connection may or may not have reached the
 * broker, so it is sent again after the reconnect; subscribers recognise the second copy by its
 * id and number and drop it. Numbers of one publisher grow by one per publish. Bytes another
 * producer puts on the topic (a history's append-and-publish, a raw `PUBLISH`) carry no stamp and
 * are handed on as they are: the mark opens no text (`F5` is never a UTF-8 byte) and no history
 * message.
 */
export const STAMP_BYTES = 14;
const MARK = [0xf5, 0x01] as const;

/** Gives each publish of one broker its stamp. */
export class PublishStamper {
  readonly #id = randomBytes(6);
  #sequence = 0;

  /** The number of the latest stamp. */
  get sequence(): number {
    return this.#sequence;
  }

  /** The payload with the stamp of the next number in front. */
  stamp(payload: Uint8Array): Uint8Array {
    const stamped = Buffer.allocUnsafe(STAMP_BYTES + payload.length);
    stamped.set(payload, STAMP_BYTES);
    this.stampFront(stamped);
    return stamped;
  }

  /** Writes the stamp of the next number over the first {@link STAMP_BYTES} bytes of `bytes`. */
  stampFront(bytes: Uint8Array): void {
    const sequence = ++this.#sequence;
    bytes[0] = MARK[0];
    bytes[1] = MARK[1];
    bytes.set(this.#id, 2);
    writeUint48(bytes, 8, sequence);
  }
}

/**
 * How many of one publisher's latest numbers a subscriber remembers. A copy sent again arrives
 * right after the publishes that were in flight with it, so this reaches far past any real
 * reconnect; a number older than that is handed on (a repeat then goes through, nothing is lost).
 */
const WINDOW = 8192;
/** Publishers remembered at most; the one heard from least recently is forgotten first. */
const MAX_PUBLISHERS = 1024;

/** What a subscriber remembers of one publisher: its highest number and which below it came. */
interface Seen {
  highest: number;
  /** Bit `n % WINDOW` is set if number `n` (within the window below `highest`) arrived. */
  bits: Uint32Array;
  /** When it was last heard from, on the filter's own count of messages. */
  heard: number;
}

/** Drops the copies of a publish that were sent again, for every topic of one broker. */
export class RepeatFilter {
  readonly #publishers = new Map<number, Seen>();
  #messages = 0;

  /**
   * The payload behind the stamp (bytes without one as they are), or `undefined` if this publish
   * already arrived.
   */
  open(data: Uint8Array): Uint8Array | undefined {
    if (data.length < STAMP_BYTES || data[0] !== MARK[0] || data[1] !== MARK[1]) return data;
    const publisher = readUint48(data, 2);
    const sequence = readUint48(data, 8);
    let seen = this.#publishers.get(publisher);
    if (seen === undefined) {
      if (this.#publishers.size >= MAX_PUBLISHERS) this.#forgetOldest();
      seen = { highest: sequence, bits: new Uint32Array(WINDOW / 32), heard: 0 };
      this.#publishers.set(publisher, seen);
      mark(seen.bits, sequence);
    } else if (sequence > seen.highest) {
      // Numbers between the old highest and this one have not arrived (yet): clear their bits.
      unmarkRange(seen.bits, Math.max(seen.highest + 1, sequence - WINDOW + 1), sequence);
      seen.highest = sequence;
      mark(seen.bits, sequence);
    } else if (sequence > seen.highest - WINDOW) {
      if (isMarked(seen.bits, sequence)) return undefined;
      mark(seen.bits, sequence);
    }
    seen.heard = ++this.#messages;
    return data.subarray(STAMP_BYTES);
  }

  /** Past {@link MAX_PUBLISHERS} (short-lived publishers come and go): a scan, and rare. */
  #forgetOldest(): void {
    let oldest: number | undefined;
    let heard = Number.POSITIVE_INFINITY;
    for (const [publisher, seen] of this.#publishers) {
      if (seen.heard < heard) [oldest, heard] = [publisher, seen.heard];
    }
    if (oldest !== undefined) this.#publishers.delete(oldest);
  }
}

function readUint48(data: Uint8Array, at: number): number {
  const high = (data[at]! << 8) | data[at + 1]!;
  const low =
    ((data[at + 2]! << 24) | (data[at + 3]! << 16) | (data[at + 4]! << 8) | data[at + 5]!) >>> 0;
  return high * 2 ** 32 + low;
}

function writeUint48(data: Uint8Array, at: number, value: number): void {
  const high = Math.floor(value / 2 ** 32);
  data[at] = high >>> 8;
  data[at + 1] = high;
  const low = value >>> 0;
  data[at + 2] = low >>> 24;
  data[at + 3] = low >>> 16;
  data[at + 4] = low >>> 8;
  data[at + 5] = low;
}

function mark(bits: Uint32Array, n: number): void {
  bits[(n % WINDOW) >>> 5]! |= 1 << (n & 31);
}

/** Clears the bits of numbers `from` to `to - 1`, a word at a time (`to - from` < WINDOW). */
function unmarkRange(bits: Uint32Array, from: number, to: number): void {
  for (let n = from; n < to; ) {
    const shift = n & 31;
    const count = Math.min(32 - shift, to - n);
    const mask = count === 32 ? -1 : ((1 << count) - 1) << shift;
    bits[(n % WINDOW) >>> 5]! &= ~mask;
    n += count;
  }
}

function isMarked(bits: Uint32Array, n: number): boolean {
  return (bits[(n % WINDOW) >>> 5]! & (1 << (n & 31))) !== 0;
}
