/**
 * `batchTick` on a stand-in connection whose socket counts its writes: the first command of a
 * tick goes out at once, the rest of the tick's reach the socket as one write at its end, in
 * order, and a command in a later tick is again written at once. A Cluster is left alone.
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
  it('sends the first command of a tick at once and the rest together, in order', async () => {
    const { writes, send } = recordingClient();
    for (let i = 0; i < 100; i++) send(`publish ${i}`);
    expect(writes).toEqual([['publish 0']]);
    await nextTick();
    expect(writes).toEqual([
      ['publish 0'],
      Array.from({ length: 99 }, (_, i) => `publish ${i + 1}`),
    ]);
  });

  it('starts again with each tick', async () => {
    const { writes, send } = recordingClient();
    send('first');
    await nextTick();
    send('second');
    send('third');
    await nextTick();
    send('fourth');
    await nextTick();
    expect(writes).toEqual([['first'], ['second'], ['third'], ['fourth']]);
    send('fifth');
    send('sixth');
    send('seventh');
    await nextTick();
    expect(writes.slice(4)).toEqual([['fifth'], ['sixth', 'seventh']]);
  });

  it('batches each connection on its own when several send in one tick', async () => {
    const broker = recordingClient();
    const store = recordingClient();
    for (let i = 0; i < 3; i++) {
      broker.send(`publish ${i}`);
      store.send(`script ${i}`);
    }
    await nextTick();
    expect(broker.writes).toEqual([['publish 0'], ['publish 1', 'publish 2']]);
    expect(store.writes).toEqual([['script 0'], ['script 1', 'script 2']]);
  });

  it('leaves a Cluster and a client without a socket alone', () => {
    expect(() => batchTick({ isCluster: true } as unknown as Cluster)).not.toThrow();
    expect(() => batchTick({} as unknown as Redis)).not.toThrow();
  });
});
