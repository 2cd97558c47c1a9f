/**
 * `batchWrites` on a stand-in connection whose socket counts its writes: of the commands sent in one
 * go the first goes out at once and the rest reach the socket as one write once the code that sent
 * them returned, in order; a command sent later is again written at once. A Cluster is left alone.
 */
import { Writable } from 'node:stream';
import type { Cluster, Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { batchWrites } from '../src/connection.js';

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
      batchWrites(client);
      stream.write(command);
    },
  };
}

/** Resolves after the code that sent returned and the batch it made was written. */
const afterBurst = () => new Promise<void>((resolve) => setImmediate(resolve));

describe('batchWrites', () => {
  it('sends the first command at once and the rest of the burst together, in order', async () => {
    const { writes, send } = recordingClient();
    for (let i = 0; i < 100; i++) send(`publish ${i}`);
    expect(writes).toEqual([['publish 0']]);
    await afterBurst();
    expect(writes).toEqual([
      ['publish 0'],
      Array.from({ length: 99 }, (_, i) => `publish ${i + 1}`),
    ]);
  });

  it('starts again with each burst', async () => {
    const { writes, send } = recordingClient();
    send('first');
    await afterBurst();
    send('second');
    send('third');
    await afterBurst();
    send('fourth');
    await afterBurst();
    expect(writes).toEqual([['first'], ['second'], ['third'], ['fourth']]);
    send('fifth');
    send('sixth');
    send('seventh');
    await afterBurst();
    expect(writes.slice(4)).toEqual([['fifth'], ['sixth', 'seventh']]);
  });

  it('batches each connection on its own when several are sent to in one burst', async () => {
    const broker = recordingClient();
    const store = recordingClient();
    for (let i = 0; i < 3; i++) {
      broker.send(`publish ${i}`);
      store.send(`script ${i}`);
    }
    await afterBurst();
    expect(broker.writes).toEqual([['publish 0'], ['publish 1', 'publish 2']]);
    expect(store.writes).toEqual([['script 0'], ['script 1', 'script 2']]);
  });

  it('leaves a Cluster and a client without a socket alone', () => {
    expect(() => batchWrites({ isCluster: true } as unknown as Cluster)).not.toThrow();
    expect(() => batchWrites({} as unknown as Redis)).not.toThrow();
  });
});
