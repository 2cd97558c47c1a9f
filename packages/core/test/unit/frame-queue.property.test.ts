import { Buffer } from 'node:buffer';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { FrameQueue } from '../../src/transport/frame-queue.js';

describe('FrameQueue', () => {
  it('gives back every byte in order, and keeps no small frame, nor the pool slab it was cut from', () => {
    fc.assert(
      fc.property(
        fc.array(fc.oneof(fc.nat(40), fc.integer({ min: 3000, max: 20_000 })), { maxLength: 200 }),
        fc.nat(3),
        (sizes, rounds) => {
          const queue = new FrameQueue();
          for (let round = 0; round <= rounds; round++) {
            // Cut from the pool as a node's frames are: small ones share 8 KiB slabs.
            const frames = sizes.map((size, i) => Buffer.allocUnsafe(size).fill(i + round));
            for (const frame of frames) queue.add(frame);
            expect(queue.bytes).toBe(frames.reduce((sum, frame) => sum + frame.length, 0));
            const chunks = queue.take();
            expect(queue.bytes).toBe(0);
            expect(Buffer.concat(chunks).equals(Buffer.concat(frames))).toBe(true);
            const slabs = new Set(
              frames.filter((f) => f.length < Buffer.poolSize >>> 1).map((f) => f.buffer),
            );
            for (const chunk of chunks) expect(slabs.has(chunk.buffer as ArrayBuffer)).toBe(false);
          }
        },
      ),
      { numRuns: 200 },
    );
  });
});
