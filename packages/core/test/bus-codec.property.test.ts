import { ProtocolError } from '@wscale/core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type BusHeader, BusKind, decodeBusFrame, encodeBusFrame } from '../src/mesh/bus-codec.js';
import {
  fuzzParameters,
  garbageBytes,
  messageLikeObject,
  mutatedBytes,
} from './helpers/arbitraries.js';

const text = fc.string({ unit: 'binary' });
// JSON has no -0: what a node sends in `a` is what JSON can carry.
const jsonValue = fc
  .jsonValue({ maxDepth: 3 })
  .map((v) => JSON.parse(JSON.stringify(v)) as unknown);
const kind = fc.constantFrom(
  BusKind.Broadcast,
  BusKind.Direct,
  BusKind.Heartbeat,
  BusKind.Bye,
  BusKind.Request,
  BusKind.Response,
);
const header: fc.Arbitrary<BusHeader> = fc.record(
  {
    n: text,
    r: fc.array(text, { maxLength: 5 }),
    x: fc.array(text, { maxLength: 5 }),
    c: text,
    o: fc.constantFrom('send', 'join', 'leave', 'close' as const),
    a: jsonValue,
    i: fc.nat(),
    q: text,
    s: fc.maxSafeNat(),
    e: text,
  },
  { requiredKeys: ['n'] },
);
const frame = fc.record({
  kind,
  header,
  payload: fc.uint8Array({ maxLength: 256 }),
  flags: fc.nat(255),
});

describe('node bus codec (property)', () => {
  it('decodes every frame it encodes, unchanged', () => {
    fc.assert(
      fc.property(frame, (sent) => {
        const received = decodeBusFrame(
          encodeBusFrame(sent.kind, sent.header, sent.payload, sent.flags),
        );
        expect(received.kind).toBe(sent.kind);
        expect(received.flags).toBe(sent.flags);
        expect(received.header).toEqual(sent.header);
        expect(Buffer.from(received.payload).equals(sent.payload)).toBe(true);
      }),
      fuzzParameters(500),
    );
  });

  it('decodes a frame that sits inside a larger buffer, as a broker hands it over', () => {
    fc.assert(
      fc.property(frame, fc.uint8Array({ maxLength: 16 }), (sent, before) => {
        const bytes = encodeBusFrame(sent.kind, sent.header, sent.payload, sent.flags);
        const backing = Buffer.concat([before, bytes, Buffer.from([0xff])]);
        const view = backing.subarray(before.length, before.length + bytes.length);
        const received = decodeBusFrame(view);
        expect(received.header).toEqual(sent.header);
        expect(Buffer.from(received.payload).equals(sent.payload)).toBe(true);
      }),
      fuzzParameters(200),
    );
  });

  it('answers any bytes, and any damaged valid frame, with a frame or a ProtocolError', () => {
    const prefixed = fc
      .tuple(fc.nat(8), fc.nat(255), messageLikeObject, fc.uint8Array({ maxLength: 16 }))
      .map(([k, flags, object, payload]) =>
        encodeBusFrame(k as BusKind, object as BusHeader, payload, flags),
      );
    const valid = frame.map(
      (f) => new Uint8Array(encodeBusFrame(f.kind, f.header, f.payload, f.flags)),
    );
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
