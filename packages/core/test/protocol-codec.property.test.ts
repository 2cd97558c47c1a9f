import {
  type ClientMessage,
  decodeClientFrame,
  decodeServerFrame,
  encodeBinary,
  encodeText,
  LIMITS,
  ProtocolError,
  type ServerMessage,
} from '@wscale/core/protocol';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { fuzzParameters, garbageBytes, garbageText, mutatedBytes } from './helpers/arbitraries.js';

// Strings of any code point, lone surrogates included, short enough for the codec's limits
// (an astral code point takes two UTF-16 units, so `max / 2` code points always fit).
const anyText = (max: number) => fc.string({ unit: 'binary', maxLength: Math.floor(max / 2) });
const id = fc.integer({ min: 0, max: LIMITS.id });
const offset = fc.maxSafeNat();
const position = fc.record({ o: offset, e: anyText(LIMITS.epoch) });

const hello = fc.record(
  {
    t: fc.constant('hello' as const),
    session: anyText(LIMITS.token),
    rooms: fc.dictionary(anyText(LIMITS.room), position, { maxKeys: 20 }),
    u: fc.constant(1 as const),
  },
  { requiredKeys: ['t'] },
);
const membership = fc.record({
  t: fc.constantFrom('join' as const, 'leave' as const),
  id,
  r: anyText(LIMITS.room),
});
// Upstream numbering of `msg` and `req`: a sequence number from 1, and a mark for a frame sent again.
const sequence = fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER });
const again = fc.constant(1 as const);
const request = fc.record(
  { t: fc.constant('req' as const), id, d: fc.string(), s: sequence, p: again },
  { requiredKeys: ['t', 'id'] },
);
const data = fc.record(
  {
    t: fc.constant('msg' as const),
    d: fc.string(),
    s: sequence,
    p: again,
    r: anyText(LIMITS.room),
    o: offset,
    e: anyText(64),
  },
  { requiredKeys: ['t'] },
);
const ping = fc.constant({ t: 'ping' as const });
const clientMessage: fc.Arbitrary<ClientMessage> = fc.oneof(hello, membership, request, data, ping);

const errorBody = fc.record({
  code: fc.constantFrom(
    'UNKNOWN_OP',
    'BAD_REQUEST',
    'FORBIDDEN',
    'NOT_FOUND',
    'HANDLER_FAILED',
    'UNAVAILABLE',
    'REPLY_LOST',
    'LIMIT',
    'BUSY' as const,
  ),
  message: fc.string(),
});
const serverMessage: fc.Arbitrary<ServerMessage> = fc.oneof(
  fc.record(
    {
      t: fc.constant('welcome' as const),
      session: fc.string(),
      client: fc.string(),
      node: fc.string(),
      resumed: fc.boolean(),
      reason: fc.constantFrom(
        'new',
        'invalid-token',
        'expired',
        'forbidden',
        'unavailable' as const,
      ),
      rooms: fc.dictionary(
        fc.string(),
        fc.record(
          {
            recovered: fc.boolean(),
            reason: fc.constantFrom(
              'no-history',
              'too-old',
              'epoch-changed',
              'unavailable',
              'no-position' as const,
            ),
            o: offset,
            e: fc.string(),
          },
          { requiredKeys: ['recovered'] },
        ),
        { maxKeys: 5 },
      ),
      s: sequence,
    },
    { requiredKeys: ['t', 'session', 'client', 'node', 'resumed', 'rooms'] },
  ),
  fc.record(
    { t: fc.constant('joined' as const), r: fc.string(), o: offset, e: fc.string() },
    { requiredKeys: ['t', 'r'] },
  ),
  fc.record({ t: fc.constant('left' as const), r: fc.string() }),
  fc.record(
    { t: fc.constant('ack' as const), id, d: fc.string(), error: errorBody },
    { requiredKeys: ['t', 'id'] },
  ),
  fc.record({ t: fc.constant('resync' as const), r: fc.string(), o: offset, e: fc.string() }),
  fc.record({
    t: fc.constant('error' as const),
    code: errorBody.map((e) => e.code),
    message: fc.string(),
  }),
  fc.constant({ t: 'pong' as const }),
  fc.record({ t: fc.constant('rcv' as const), s: sequence }),
  data,
);

/** The message without its text payload, as a binary frame's header carries it. */
function withoutD<M extends ClientMessage | ServerMessage>(message: M): M {
  const { d: _d, ...rest } = message as M & { d?: string };
  return rest as M;
}

/** Runs a decoder; passes when it returns a message or throws ProtocolError, fails on anything else. */
function decodesOrViolates(decode: () => { message: { t?: unknown } }): void {
  let decoded: { message: { t?: unknown } };
  try {
    decoded = decode();
  } catch (error) {
    if (error instanceof ProtocolError) return;
    throw new Error(`decoder threw ${String(error)}, not a ProtocolError`, { cause: error });
  }
  expect(typeof decoded.message.t).toBe('string');
}

/** Valid frames of every kind, to mutate. */
const validFrame = fc.oneof(
  clientMessage.map((m) => Buffer.from(encodeText(m))),
  fc
    .tuple(clientMessage, fc.uint8Array({ maxLength: 64 }))
    .map(([m, p]) => encodeBinary(withoutD(m), p)),
);

describe('wscale.v1 codec (property)', () => {
  it('decodes every client message it encodes as text, unchanged', () => {
    fc.assert(
      fc.property(clientMessage, (message) => {
        const decoded = decodeClientFrame(encodeText(message));
        expect(decoded.message).toEqual(message);
        expect(decoded.binary).toBeUndefined();
      }),
      fuzzParameters(500),
    );
  });

  it('decodes every client message it encodes as binary, with the payload bytes intact', () => {
    fc.assert(
      fc.property(clientMessage, fc.uint8Array({ maxLength: 256 }), (message, payload) => {
        const header = withoutD(message);
        const decoded = decodeClientFrame(encodeBinary(header, payload));
        expect(decoded.message).toEqual(header);
        expect(Buffer.from(decoded.binary!).equals(payload)).toBe(true);
      }),
      fuzzParameters(500),
    );
  });

  it('decodes every server message it encodes, text and binary', () => {
    fc.assert(
      fc.property(serverMessage, fc.uint8Array({ maxLength: 64 }), (message, payload) => {
        expect(decodeServerFrame(encodeText(message)).message).toEqual(message);
        const header = withoutD(message);
        const decoded = decodeServerFrame(encodeBinary(header, payload));
        expect(decoded.message).toEqual(header);
        expect(Buffer.from(decoded.binary!).equals(payload)).toBe(true);
      }),
      fuzzParameters(500),
    );
  });

  it('answers any text with a message or a ProtocolError, for both directions', () => {
    fc.assert(
      fc.property(garbageText, (text) => {
        decodesOrViolates(() => decodeClientFrame(text));
        decodesOrViolates(() => decodeServerFrame(text));
      }),
      fuzzParameters(1000),
    );
  });

  it('answers any bytes, and any damaged valid frame, with a message or a ProtocolError', () => {
    fc.assert(
      fc.property(fc.oneof(garbageBytes, mutatedBytes(validFrame)), (bytes) => {
        decodesOrViolates(() => decodeClientFrame(bytes));
        decodesOrViolates(() => decodeServerFrame(bytes));
      }),
      fuzzParameters(1000),
    );
  });

  it('gives back, for anything it accepts, a message that encodes and decodes to itself', () => {
    fc.assert(
      fc.property(garbageText, (text) => {
        let message: ClientMessage;
        try {
          message = decodeClientFrame(text).message;
        } catch {
          return;
        }
        expect(decodeClientFrame(encodeText(message)).message).toEqual(message);
      }),
      fuzzParameters(1000),
    );
  });
});
