import { ProtocolError } from '@wscale/core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  BusKind,
  type BusMessage,
  decodeBusFrame,
  encodeBusFrame,
  isSentBy,
  messageFrameSize,
  senderField,
} from '../src/mesh/bus-codec.js';
import {
  fuzzParameters,
  garbageBytes,
  messageLikeObject,
  mutatedBytes,
} from './helpers/arbitraries.js';

/** Any JavaScript string: of any code point, or of any UTF-16 unit (lone surrogates too). */
const text = fc.oneof(
  fc.string({ unit: 'binary' }),
  fc.string({ unit: fc.nat(0xffff).map((unit) => String.fromCharCode(unit)) }),
);
const texts = fc.array(text, { maxLength: 5 });
const count = fc.maxSafeNat();
const closing = fc.tuple(fc.integer({ min: 1000, max: 4999 }), text);
const position = fc.option(fc.record({ s: count, e: text }), { nil: undefined });
/** Optional keys are left out, not set to `undefined`: a decoded header has no `undefined` key. */
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
    // A part of a list answer with more to come.
    fc.option(fc.constant(1 as const), { nil: undefined }),
  )
  .map(
    ([n, i, answer, m]) =>
      ({ kind: BusKind.Response, header: { ...answer, n, i, ...(m && { m }) } }) as const,
  );
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

  it('sizes a broadcast or direct frame as it is encoded, before encoding it', () => {
    fc.assert(
      fc.property(
        fc.oneof(broadcast, direct),
        fc.uint8Array({ maxLength: 64 }),
        (sent, payload) => {
          const size = messageFrameSize(sent, payload.length);
          expect(size).toBe(encodeBusFrame(sent, payload).length);
        },
      ),
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

  it('tells a frame of its own node from a frame of any other node', () => {
    fc.assert(
      fc.property(frame, text, (sent, other) => {
        const bytes = encodeBusFrame(sent.message, sent.payload, sent.flags);
        expect(isSentBy(bytes, senderField(sent.message.header.n))).toBe(true);
        expect(isSentBy(bytes, senderField(other))).toBe(other === sent.message.header.n);
      }),
      fuzzParameters(300),
    );
  });

  it('answers any bytes, and any damaged valid frame, with a frame or a ProtocolError', () => {
    /** A header as a frame has it: a node id, then JSON or binary fields of any kind. */
    const prefixed = fc
      .tuple(
        fc.nat(10),
        fc.nat(255),
        text,
        fc.oneof(
          messageLikeObject.map((object) => Buffer.from(JSON.stringify(object))),
          fc.uint8Array({ maxLength: 48 }),
          fc
            .tuple(fc.nat(3), fc.nat(255), fc.array(fc.oneof(text, fc.double()), { maxLength: 6 }))
            .map(([first, second, fields]) =>
              Buffer.concat([
                Buffer.from([first, second]),
                ...fields.map((field) =>
                  typeof field === 'string' ? senderField(field) : double(field),
                ),
              ]),
            ),
        ),
        fc.uint8Array({ maxLength: 16 }),
      )
      .map(([kind, flags, node, header, payload]) => {
        const field = senderField(node);
        const prefix = Buffer.from([kind, flags, 0, 0, 0, 0]);
        prefix.writeUInt32BE(field.length + header.length, 2);
        return Buffer.concat([prefix, field, header, payload]);
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

/** A double as binary headers write it. */
function double(value: number): Buffer {
  const bytes = Buffer.alloc(8);
  bytes.writeDoubleBE(value);
  return bytes;
}
