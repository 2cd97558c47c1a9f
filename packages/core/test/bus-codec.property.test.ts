import { ProtocolError } from '@wscale/core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BusKind, type BusMessage, decodeBusFrame, encodeBusFrame } from '../src/mesh/bus-codec.js';
import {
  fuzzParameters,
  garbageBytes,
  messageLikeObject,
  mutatedBytes,
} from './helpers/arbitraries.js';

const text = fc.string({ unit: 'binary' });
const texts = fc.array(text, { maxLength: 5 });
const count = fc.maxSafeNat();
const closing = fc.tuple(fc.integer({ min: 1000, max: 4999 }), text);
const position = fc.option(fc.record({ s: count, e: text }), { nil: undefined });
/** Optional keys are left out, not set to `undefined`: what a node sends is JSON. */
const some = <T extends object>(fields: { [K in keyof T]: fc.Arbitrary<T[K]> }) =>
  fc.record(fields, { requiredKeys: [] });

const broadcast = fc
  .tuple(text, some({ r: texts, x: texts }), position)
  .map(([n, rest, at]) => ({ kind: BusKind.Broadcast, header: { n, ...rest, ...at } }) as const);
const operation = fc.oneof(
  fc.constant({ o: 'send' } as const),
  fc.record({ o: fc.constantFrom('join' as const, 'leave' as const), a: text }),
  fc.record({ o: fc.constant('close' as const), a: closing }),
);
const direct = fc
  .tuple(
    operation,
    text,
    text,
    some({ d: text, h: fc.nat(5), w: text, l: fc.constant(1 as const) }),
    fc.option(fc.record({ r: fc.tuple(text), s: count, e: text }), { nil: undefined }),
  )
  .map(
    ([op, n, c, routing, kept]) =>
      ({
        kind: BusKind.Direct,
        header: { ...op, n, c, ...routing, ...kept },
      }) as const,
  );
const moved = fc
  .tuple(fc.record({ n: text, c: text, a: closing }), some({ d: text }))
  .map(([header, d]) => ({ kind: BusKind.Moved, header: { ...header, ...d } }) as const);
const released = fc
  .record({ n: text, c: text })
  .map((header) => ({ kind: BusKind.Released, header }) as const);
const located = fc
  .tuple(fc.record({ n: text, c: text }), some({ a: text }))
  .map(([header, a]) => ({ kind: BusKind.Located, header: { ...header, ...a } }) as const);
const liveness = fc
  .tuple(fc.constantFrom(BusKind.Announce, BusKind.Beat, BusKind.Bye), text)
  .map(([kind, n]) => ({ kind, header: { n } }) as const);
const request = fc
  .tuple(
    text,
    fc.nat(),
    fc.oneof(
      fc.constant({ q: 'rooms' } as const),
      fc.constant({ q: 'stats' } as const),
      fc.tuple(some({ a: text })).map(([a]) => ({ q: 'clients' as const, ...a })),
    ),
  )
  .map(([n, i, query]) => ({ kind: BusKind.Request, header: { ...query, n, i } }) as const);
const response = fc
  .tuple(
    text,
    fc.nat(),
    fc.oneof(
      texts.map((a) => ({ q: 'rooms', a }) as const),
      fc
        .array(fc.record({ id: text, nodeId: text, rooms: texts }), { maxLength: 3 })
        .map((a) => ({ q: 'clients', a }) as const),
    ),
  )
  .map(([n, i, answer]) => ({ kind: BusKind.Response, header: { ...answer, n, i } }) as const);
const message: fc.Arbitrary<BusMessage> = fc.oneof(
  broadcast,
  direct,
  moved,
  released,
  located,
  liveness,
  request,
  response,
);
const frame = fc.record({
  message,
  payload: fc.uint8Array({ maxLength: 256 }),
  flags: fc.nat(255),
});

describe('node bus codec (property)', () => {
  it('decodes every frame it encodes, unchanged', () => {
    fc.assert(
      fc.property(frame, (sent) => {
        const received = decodeBusFrame(encodeBusFrame(sent.message, sent.payload, sent.flags));
        expect(received.kind).toBe(sent.message.kind);
        expect(received.flags).toBe(sent.flags);
        expect(received.header).toEqual(sent.message.header);
        expect(Buffer.from(received.payload).equals(sent.payload)).toBe(true);
      }),
      fuzzParameters(500),
    );
  });

  it('decodes a frame that sits inside a larger buffer, as a broker hands it over', () => {
    fc.assert(
      fc.property(frame, fc.uint8Array({ maxLength: 16 }), (sent, before) => {
        const bytes = encodeBusFrame(sent.message, sent.payload, sent.flags);
        const backing = Buffer.concat([before, bytes, Buffer.from([0xff])]);
        const view = backing.subarray(before.length, before.length + bytes.length);
        const received = decodeBusFrame(view);
        expect(received.header).toEqual(sent.message.header);
        expect(Buffer.from(received.payload).equals(sent.payload)).toBe(true);
      }),
      fuzzParameters(200),
    );
  });

  it('answers any bytes, and any damaged valid frame, with a frame or a ProtocolError', () => {
    const prefixed = fc
      .tuple(fc.nat(10), fc.nat(255), messageLikeObject, fc.uint8Array({ maxLength: 16 }))
      .map(([kind, flags, object, payload]) => {
        const json = Buffer.from(JSON.stringify(object));
        const prefix = Buffer.from([kind, flags, 0, 0, 0, 0]);
        prefix.writeUInt32BE(json.length, 2);
        return Buffer.concat([prefix, json, payload]);
      });
    const valid = frame.map((f) => new Uint8Array(encodeBusFrame(f.message, f.payload, f.flags)));
    fc.assert(
      fc.property(fc.oneof(garbageBytes, prefixed, mutatedBytes(valid)), (bytes) => {
        let decoded: ReturnType<typeof decodeBusFrame>;
        try {
          decoded = decodeBusFrame(bytes);
        } catch (error) {
          if (error instanceof ProtocolError) return;
          throw new Error(`decoder threw ${String(error)}, not a ProtocolError`, { cause: error });
        }
        expect(decoded.kind in BusKind).toBe(true);
        expect(typeof decoded.header.n).toBe('string');
      }),
      fuzzParameters(1000),
    );
  });
});
