/**
 * `batchTick` on a stand-in connection whose socket counts its writes: the commands sent in one
 * tick reach the socket as one write, in order, and a command in a later tick as a write of its
 * own. A Cluster is left alone.
 */
import { Writable } from 'node:stream';
import type { Cluster, Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { batchTick } from '../src/connection.js';

/** A client whose socket records each write it makes, as the commands it carried. */
function recordingClient(): { client: Redis; writes: string[][]; send(command: string): void } {
  const writes: string[][] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      writes.push([String(chunk)]);
      done();
    },
    writev(chunks, done) {
      writes.push(chunks.map(({ chunk }) => String(chunk)));
      done();
    },
  });
  const client = { stream } as unknown as Redis;
  return {
    client,
    writes,
    send(command) {
      batchTick(client);
      stream.write(command);
    },
  };
}

const nextTick = () => new Promise<void>((resolve) => process.nextTick(resolve));

describe('batchTick', () => {
  it('sends the commands of one tick in one write, in order', async () => {
    const { writes, send } = recordingClient();
    for (let i = 0; i < 100; i++) send(`publish ${i}`);
    expect(writes).toEqual([]);
    await nextTick();
    expect(writes).toEqual([Array.from({ length: 100 }, (_, i) => `publish ${i}`)]);
  });

  it('writes each tick on its own', async () => {
    const { writes, send } = recordingClient();
    send('first');
    await nextTick();
    send('second');
    send('third');
    await nextTick();
    send('fourth');
    await nextTick();
    expect(writes).toEqual([['first'], ['second', 'third'], ['fourth']]);
  });

  it('leaves a Cluster and a client without a socket alone', () => {
    expect(() => batchTick({ isCluster: true } as unknown as Cluster)).not.toThrow();
    expect(() => batchTick({} as unknown as Redis)).not.toThrow();
  });
});
