import cluster, { type Worker } from 'node:cluster';
import { deserialize, serialize } from 'node:v8';
import { ClusterHub, isClusterMessage } from '@wscale/core';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import {
  CLUSTER_TAG,
  fromWire,
  type HubMessage,
  isBinaryChannel,
  PROBE,
  toWire,
  type WorkerMessage,
} from '../src/adapters/node-cluster/ipc-protocol.js';
import { fuzzParameters, messageLikeObject } from './helpers/arbitraries.js';

/** What node's IPC does to a message with each `serialization` option. */
const channels = {
  json: (message: unknown) => JSON.parse(JSON.stringify(message)) as unknown,
  advanced: (message: unknown) => deserialize(serialize(message)) as unknown,
};

const text = fc.string({ unit: 'binary' });
const bytes = fc.uint8Array({ maxLength: 256 });
const limits = {
  maxEntries: fc.integer({ min: 1, max: 1000 }),
  maxAgeMs: fc.integer({ min: 1, max: 2 ** 30 }),
};

/** A message that carries payload bytes, built for a channel of either mode. */
const carrying = (binary: boolean) =>
  fc.oneof(
    fc.record({ topic: text, payload: bytes }).map(({ topic, payload }) => ({
      sent: payload,
      message: {
        wscale: CLUSTER_TAG,
        kind: 'pub',
        topic,
        payload: toWire(payload, binary),
      } as WorkerMessage,
    })),
    fc.record({ topic: text, payload: bytes }).map(({ topic, payload }) => ({
      sent: payload,
      message: {
        wscale: CLUSTER_TAG,
        kind: 'msg',
        topic,
        payload: toWire(payload, binary),
      } as HubMessage,
    })),
    fc
      .record({ id: fc.nat(), room: text, payload: bytes, ...limits })
      .map(({ payload, ...rest }) => ({
        sent: payload,
        message: {
          wscale: CLUSTER_TAG,
          kind: 'history.append',
          ...rest,
          payload: toWire(payload, binary),
        } as WorkerMessage,
      })),
  );

/** Messages the hub may receive from a worker: well-formed or not, always tagged as wscale's. */
const taggedGarbage = fc
  .oneof(
    messageLikeObject,
    fc.record(
      {
        kind: fc.oneof(
          fc.constantFrom('attach', 'sub', 'unsub', 'state.get', 'state.set', 'state.delete'),
          fc.constantFrom(
            'history.append',
            'history.read',
            'history.position',
            'pub',
            'reply',
            'nope',
          ),
        ),
        id: fc.oneof(fc.nat(), fc.jsonValue({ maxDepth: 1 })),
        topic: fc.jsonValue({ maxDepth: 1 }),
        topics: fc.oneof(fc.array(text, { maxLength: 3 }), fc.jsonValue({ maxDepth: 1 })),
        probe: fc.jsonValue({ maxDepth: 1 }),
        key: fc.jsonValue({ maxDepth: 1 }),
        value: fc.jsonValue({ maxDepth: 1 }),
        ttlMs: fc.jsonValue({ maxDepth: 1 }),
        room: fc.jsonValue({ maxDepth: 1 }),
        payload: fc.oneof(bytes, fc.jsonValue({ maxDepth: 1 })),
        after: fc.jsonValue({ maxDepth: 2 }),
        limit: fc.jsonValue({ maxDepth: 1 }),
        maxEntries: fc.jsonValue({ maxDepth: 1 }),
        maxAgeMs: fc.jsonValue({ maxDepth: 1 }),
      },
      { requiredKeys: ['kind'] },
    ),
  )
  .map((message): TaggedMessage => ({ ...(message as object), wscale: CLUSTER_TAG }));

interface TaggedMessage {
  wscale: number;
  kind?: unknown;
  id?: unknown;
}

let hub: ClusterHub | undefined;
afterEach(async () => {
  await hub?.close();
  hub = undefined;
});

describe('node:cluster IPC protocol (property)', () => {
  it('tells the channel mode from the probe, as each mode delivers it', () => {
    expect(isBinaryChannel(channels.advanced(PROBE))).toBe(true);
    expect(isBinaryChannel(channels.json(PROBE))).toBe(false);
  });

  for (const [mode, channel] of Object.entries(channels)) {
    const binary = isBinaryChannel(channel(PROBE));
    it(`carries every message and its payload bytes unchanged over a '${mode}' channel`, () => {
      fc.assert(
        fc.property(carrying(binary), ({ sent, message }) => {
          const received = channel(message) as { payload: string | Uint8Array };
          expect(isClusterMessage(received)).toBe(true);
          expect({ ...received, payload: undefined }).toEqual({ ...message, payload: undefined });
          expect(Buffer.from(fromWire(received.payload)).equals(sent)).toBe(true);
        }),
        fuzzParameters(300),
      );
    });
  }

  it('recognises its own messages among anything an application sends, without throwing', () => {
    fc.assert(
      fc.property(fc.oneof(fc.anything(), messageLikeObject), (message) => {
        const tagged =
          typeof message === 'object' &&
          message !== null &&
          (message as { wscale?: unknown }).wscale === 1;
        expect(isClusterMessage(message)).toBe(tagged);
      }),
      fuzzParameters(500),
    );
  });

  it('reads any string as base64 bytes without throwing', () => {
    fc.assert(
      fc.property(text, (wire) => {
        expect(fromWire(wire)).toBeInstanceOf(Uint8Array);
      }),
      fuzzParameters(500),
    );
  });

  it('hub: answers every malformed request with a reply and never throws out of its listener', async () => {
    expect(cluster.isPrimary).toBe(true);
    hub = new ClusterHub();
    const replies: { id?: unknown; ok?: boolean }[] = [];
    const worker = {
      isConnected: () => true,
      send: (message: HubMessage) => {
        if (message.kind === 'reply') replies.push(message);
        return true;
      },
    } as unknown as Worker;
    await fc.assert(
      fc.asyncProperty(taggedGarbage, async (message) => {
        replies.length = 0;
        // A throw here would be an uncaught exception in the primary's `message` event.
        cluster.emit('message', worker, message);
        const expectsReply = message.kind !== 'pub';
        for (let tick = 0; tick < 20 && replies.length === 0 && expectsReply; tick++) {
          await new Promise((resolve) => setImmediate(resolve));
        }
        expect(replies.length).toBe(expectsReply ? 1 : 0);
        if (expectsReply) expect(replies[0]!.id).toEqual(message.id);
      }),
      fuzzParameters(500),
    );
  });
});
