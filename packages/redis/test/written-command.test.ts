/**
 * The adapters write their hot commands themselves (`PublishChannel` for the broker's `PUBLISH`,
 * `writeCommand` for the history's scripts), not through ioredis's serialiser: the bytes must be
 * the ones ioredis would have written, for every name and argument, and a real Redis must deliver
 * every message whole, on the right channel.
 */
import { Buffer } from 'node:buffer';
import process from 'node:process';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { HistoryError } from '@wscale/core';
import { until } from '@wscale/core/testing';
import { RedisBroker, RedisHistory } from '@wscale/redis';
import { describeRedis, RedisServer } from '@wscale/test-support';
import fc from 'fast-check';
import { Command, Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { channelName } from '../src/naming.js';
import { type Argument, PublishChannel, writeCommand } from '../src/written-command.js';
import { standalone } from './helpers/clients.js';

setFlagsFromString('--expose-gc');

/** What ioredis itself writes for `PUBLISH channel message` (or `SPUBLISH`). */
function ioredisBytes(channel: string, message: Buffer, name = 'publish'): Buffer {
  return Buffer.from(new Command(name, [channel, message]).toWritable({}) as Buffer);
}

/** Command names; not one `Object.prototype` has (ioredis looks names up in plain objects). */
const commandName = fc.string({ minLength: 1, maxLength: 12 }).filter((name) => !(name in {}));

describe('writeCommand', () => {
  it('writes what ioredis writes, for any name and text, byte and number arguments', () => {
    const argument = fc.oneof(
      fc.string({ unit: 'grapheme', maxLength: 30 }),
      fc.uint8Array({ maxLength: 100 }).map((bytes) => Buffer.from(bytes)),
      fc.integer(),
      // Wrong-typed values from a caller that slipped past the types: written as ioredis does.
      fc.constantFrom(null, undefined, true, 1.5) as fc.Arbitrary<Argument>,
    );
    fc.assert(
      fc.property(commandName, fc.array(argument, { maxLength: 12 }), (name, args) => {
        const ioredis = new Command(name, [...args]).toWritable({});
        expect(writeCommand(name, args)).toEqual(Buffer.from(ioredis));
      }),
      { numRuns: 500 },
    );
  });
});

describe('PublishChannel', () => {
  it('writes what ioredis writes, for any channel name and message, sharded or not', () => {
    fc.assert(
      fc.property(
        fc.string({ unit: 'grapheme', maxLength: 40 }),
        fc.uint8Array({ maxLength: 300 }),
        fc.boolean(),
        (name, bytes, sharded) => {
          const message = Buffer.from(bytes);
          const command = new PublishChannel(name, sharded).command(message);
          const commandName = sharded ? 'spublish' : 'publish';
          expect(command.toWritable()).toEqual(ioredisBytes(name, message, commandName));
          // ioredis's own checks and logs see a plain PUBLISH, and a Cluster the channel's slot.
          expect(command.name).toBe(commandName);
          expect(command.args).toEqual([name, message]);
          expect(command.getSlot()).toBe(new Command(commandName, [name, message]).getSlot());
        },
      ),
      { numRuns: 500 },
    );
  });

  it('keeps only its own bytes: thousands cached hold some 60 bytes each, not a pool block each', () => {
    const gc = runInNewContext('gc') as () => void;
    const kept: PublishChannel[] = [];
    const garbage: Buffer[] = [];
    gc();
    const before = process.memoryUsage().arrayBuffers;
    for (let i = 0; i < 2000; i++) {
      kept.push(new PublishChannel(`wscale:{room-${i}}`));
      // Other small buffers made meanwhile, as a busy node makes them, and dropped.
      garbage.push(Buffer.from('x'.repeat(4000)));
      if (garbage.length > 4) garbage.shift();
    }
    garbage.length = 0;
    gc();
    gc();
    const grown = process.memoryUsage().arrayBuffers - before;
    // Sharing the pool, each kept its own 8 KiB block: some 16 MB.
    expect(grown).toBeLessThan(2 * 1024 * 1024);
    expect(kept).toHaveLength(2000);
  });

  it('writes the length of messages around every change in its number of digits', () => {
    const channel = new PublishChannel('wscale:{room}');
    for (const length of [0, 1, 9, 10, 11, 99, 100, 999, 1000, 65_535, 65_536, 1_000_000]) {
      const message = Buffer.alloc(length, 0x61);
      const same = channel
        .command(message)
        .toWritable()
        .equals(ioredisBytes('wscale:{room}', message));
      expect(same, `length ${length}`).toBe(true);
    }
  });
});

describeRedis('RedisBroker publishes through PublishChannel', () => {
  let server: RedisServer;
  beforeAll(async () => {
    server = await RedisServer.launch();
  });
  afterAll(() => server?.destroy());

  it('delivers every message whole, on its channel, to a plain subscriber and to brokers', async () => {
    const broker = new RedisBroker({ redis: standalone(server) });
    const listener = new RedisBroker({ redis: standalone(server) });
    const plain = new Redis(standalone(server));
    const topics = ['room', 'zimmer-ä', 'комната', '🚀 rocket', 'percent % and } brace'];
    const sizes = [0, 1, 9, 10, 99, 100, 4095, 4096, 65_536, 1_000_000];
    const heard: string[] = [];
    const plainHeard: string[] = [];
    try {
      await until(() => broker.status === 'ready' && listener.status === 'ready', 5000, 'ready');
      for (const topic of topics) {
        await listener.subscribe(topic, (payload, t) => heard.push(`${t}:${digest(payload)}`));
      }
      plain.on('pmessageBuffer', (_pattern: Buffer, channel: Buffer, message: Buffer) => {
        plainHeard.push(`${channel.toString()}:${message.length}`);
      });
      await plain.psubscribe('wscale:*');
      const sent: string[] = [];
      for (const topic of topics) {
        for (const size of sizes) {
          const payload = patterned(size, sent.length);
          sent.push(`${topic}:${digest(payload)}`);
          // A plain Uint8Array as well as a Buffer: the broker takes either.
          await broker.publish(topic, sent.length % 2 === 0 ? payload : new Uint8Array(payload));
        }
      }
      await until(() => heard.length >= sent.length, 10_000, 'every message');
      await until(() => plainHeard.length >= sent.length, 10_000, 'every message, plainly');
      expect(heard).toEqual(sent);
      // On the wire each message is the stamp (14 bytes) and the payload, on its topic's channel.
      expect(plainHeard).toEqual(
        topics.flatMap((topic) =>
          sizes.map((size) => `${channelName('wscale:', topic)}:${size + 14}`),
        ),
      );
    } finally {
      plain.disconnect();
      await Promise.all([broker.close(), listener.close()]);
    }
  });

  it('leaves scripts on a client with ioredis keyPrefix to ioredis, which prefixes their keys', async () => {
    const client = new Redis({ ...standalone(server), keyPrefix: 'app:' });
    const plain = new Redis(standalone(server));
    const history = new RedisHistory({ redis: client });
    try {
      const first = await history.append('prefixed', Buffer.from('one'));
      await history.append('prefixed', Buffer.from('two'));
      const read = await history.read('prefixed', first);
      expect(read.ok && read.entries.map((entry) => Buffer.from(entry.payload).toString())).toEqual(
        ['two'],
      );
      expect(await plain.exists('app:wscale:history:{prefixed}:meta')).toBe(1);
    } finally {
      plain.disconnect();
      client.disconnect();
    }
  });

  it('rejects a payload that is not bytes with a HistoryError, and answers a wrong-typed epoch as ioredis did', async () => {
    const history = new RedisHistory({ redis: standalone(server) });
    try {
      const first = await history.append('typed', Buffer.from('one'));
      // A promise that rejects, not a throw out of the call: the check runs inside it.
      const append = history.append('typed', 'not bytes' as unknown as Uint8Array);
      await expect(append).rejects.toBeInstanceOf(HistoryError);
      // An epoch that is no string is sent as ioredis sends it (empty): not this room's epoch.
      const read = await history.read('typed', {
        offset: first.offset,
        epoch: undefined as unknown as string,
      });
      expect(read).toMatchObject({ ok: false, reason: 'epoch-changed', position: first });
    } finally {
      await history.close();
    }
  });

  it('publishes the same way on a client passed in', async () => {
    const client = new Redis(standalone(server));
    const broker = new RedisBroker({ redis: client });
    const listener = new RedisBroker({ redis: standalone(server) });
    const heard: string[] = [];
    try {
      await until(() => broker.status === 'ready' && listener.status === 'ready', 5000, 'ready');
      await listener.subscribe('passed', (payload) => heard.push(Buffer.from(payload).toString()));
      for (let i = 0; i < 100; i++) await broker.publish('passed', Buffer.from(`message ${i}`));
      await until(() => heard.length >= 100, 5000, 'every message');
      expect(heard).toEqual(Array.from({ length: 100 }, (_, i) => `message ${i}`));
    } finally {
      await Promise.all([broker.close(), listener.close()]);
      client.disconnect();
    }
  });
});

/** `size` bytes that differ from one message to the next and along the message. */
function patterned(size: number, seed: number): Buffer {
  const bytes = Buffer.allocUnsafe(size);
  for (let i = 0; i < size; i++) bytes[i] = (i * 31 + seed * 7) & 0xff;
  return bytes;
}

/** The length and a checksum of a payload: enough to tell a message cut, shifted or mixed up. */
function digest(payload: Uint8Array): string {
  let sum = 0;
  for (let i = 0; i < payload.length; i++) sum = (sum * 33 + payload[i]!) >>> 0;
  return `${payload.length}/${sum}`;
}
