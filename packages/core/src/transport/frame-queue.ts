import { Buffer } from 'node:buffer';

/**
 * Frames waiting for a socket that is backed up, the small ones copied into shared chunks. A small
 * frame queued on its own costs far more than its bytes: the socket's entry for it, and the 8 KiB
 * pool slab it was cut from (`Buffer.allocUnsafe`), which also keeps whatever else was cut from
 * it (the message's payload, the broker's copy). A client that reads nothing while a node sends
 * it small frames would hold many times the bytes its `maxBufferedBytes` counts.
 */
export class FrameQueue {
  /** Bytes queued. */
  bytes = 0;
  readonly #chunks: Buffer[] = [];
  /** The chunk small frames are copied into, and how much of it they fill. */
  #tail: Buffer | undefined;
  #used = 0;

  add(frame: Buffer): void {
    this.bytes += frame.length;
    // A frame this large is never cut from the pool: it holds only its own bytes.
    if (frame.length >= POOLED_BELOW) {
      this.#seal();
      this.#chunks.push(frame);
      return;
    }
    if (this.#tail === undefined || this.#used + frame.length > CHUNK_BYTES) {
      this.#seal();
      this.#tail = Buffer.allocUnsafeSlow(CHUNK_BYTES);
      this.#used = 0;
    }
    this.#tail.set(frame, this.#used);
    this.#used += frame.length;
  }

  /** Everything queued, in order; the queue is empty after. */
  take(): Buffer[] {
    this.#seal();
    this.bytes = 0;
    return this.#chunks.splice(0);
  }

  #seal(): void {
    if (this.#tail === undefined) return;
    this.#chunks.push(this.#tail.subarray(0, this.#used));
    this.#tail = undefined;
  }
}

/** Node cuts buffers shorter than half its pool (8 KiB) from the pool. */
const POOLED_BELOW = Buffer.poolSize >>> 1;

/** The size of the chunks small frames are copied into. */
const CHUNK_BYTES = 16 * 1024;
