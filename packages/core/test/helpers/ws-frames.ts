import { encodeBinary, LIMITS } from '@wscale/core/protocol';
import fc from 'fast-check';
import { garbageBytes, garbageText, messageLikeObject } from './arbitraries.js';

/**
 * WebSocket frames written by hand (RFC 6455 §5.2), valid or not, for fuzzing a live node over raw
 * TCP, and a reader for what the node answers.
 */

/** One frame, every header field free, so invalid frames can be built as easily as valid ones. */
export interface FrameSpec {
  fin: boolean;
  /** RSV1–3 as a 3-bit number; anything but 0 is a protocol error without an extension. */
  rsv: number;
  opcode: number;
  masked: boolean;
  payload: Uint8Array;
  /** A payload length to declare instead of the real one (the bytes sent stay `payload`). */
  declaredLength?: bigint;
}

/** Bytes for the node, and the close code they ask for when they hold a valid close frame. */
export interface Chunk {
  bytes: Buffer;
  closeCode?: number;
}

const MASK = Buffer.from([0x37, 0xfa, 0x21, 0x3d]);

export function encodeFrame(spec: FrameSpec): Buffer {
  const length = spec.declaredLength ?? BigInt(spec.payload.length);
  let header: Buffer;
  if (length < 126n) {
    header = Buffer.from([0, Number(length)]);
  } else if (length < 65536n) {
    header = Buffer.alloc(4);
    header[1] = 126;
    header.writeUInt16BE(Number(length), 2);
  } else {
    header = Buffer.alloc(10);
    header[1] = 127;
    header.writeBigUInt64BE(length, 2);
  }
  header[0] = (spec.fin ? 0x80 : 0) | ((spec.rsv & 7) << 4) | (spec.opcode & 0x0f);
  if (!spec.masked) return Buffer.concat([header, spec.payload]);
  header[1] = header[1]! | 0x80;
  const payload = Buffer.from(spec.payload);
  for (let i = 0; i < payload.length; i++) payload[i] = payload[i]! ^ MASK[i % 4]!;
  return Buffer.concat([header, MASK, payload]);
}

const utf8 = (text: string) => new Uint8Array(Buffer.from(text));
const data = (opcode: number, payload: Uint8Array, fin = true) =>
  encodeFrame({ fin, rsv: 0, opcode, masked: true, payload });

/** Close codes a client may send (RFC 6455 §7.4), which the node echoes. */
const validCloseCodes = [
  1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 4000, 4999,
];
/** Close codes no endpoint may send. */
const invalidCloseCodes = [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535];

const closeFrame: fc.Arbitrary<Chunk> = fc.oneof(
  fc
    .tuple(fc.constantFrom(...validCloseCodes), fc.string({ maxLength: 40 }))
    .map(([code, reason]) => ({
      bytes: data(8, closePayload(code, utf8(reason))),
      closeCode: code,
    })),
  // Bad codes, reasons too long for a control frame, reasons that are not UTF-8, a 1-byte body.
  fc
    .tuple(
      fc.oneof(fc.constantFrom(...invalidCloseCodes), fc.constantFrom(...validCloseCodes)),
      fc.oneof(
        fc.string({ minLength: 124, maxLength: 200 }).map(utf8),
        fc.constant(Uint8Array.of(0xc3, 0x28)),
      ),
    )
    .map(([code, reason]) => ({ bytes: data(8, closePayload(code, reason)) })),
  fc.constant({ bytes: data(8, Uint8Array.of(3)) }),
  fc.constant({ bytes: data(8, new Uint8Array(0)), closeCode: 1005 }),
);

function closePayload(code: number, reason: Uint8Array): Uint8Array {
  const body = Buffer.alloc(2 + reason.length);
  body.writeUInt16BE(code);
  body.set(reason, 2);
  return body;
}

/** Frames that break RFC 6455 one way each. */
const brokenFrame: fc.Arbitrary<Buffer> = fc.oneof(
  // Reserved opcodes.
  fc
    .tuple(fc.constantFrom(3, 4, 5, 6, 7, 11, 12, 13, 14, 15), fc.uint8Array({ maxLength: 16 }))
    .map(([opcode, payload]) => data(opcode, payload)),
  // Unmasked client frames.
  fc
    .tuple(fc.constantFrom(1, 2, 9), fc.string({ maxLength: 16 }))
    .map(([opcode, text]) =>
      encodeFrame({ fin: true, rsv: 0, opcode, masked: false, payload: utf8(text) }),
    ),
  // Reserved bits with no extension negotiated.
  fc
    .tuple(fc.integer({ min: 1, max: 7 }), fc.string({ maxLength: 16 }))
    .map(([rsv, text]) =>
      encodeFrame({ fin: true, rsv, opcode: 1, masked: true, payload: utf8(text) }),
    ),
  // Text that is not UTF-8.
  fc
    .constantFrom([0xc3, 0x28], [0xed, 0xa0, 0x80], [0xff], [0xf4, 0x90, 0x80, 0x80])
    .map((bad) => data(1, Uint8Array.from(bad))),
  // Lengths past maxPayload or past what a frame may declare, with no or few bytes behind them.
  fc
    .tuple(
      fc.constantFrom(65_537n, 1_048_577n, 2n ** 32n, 2n ** 53n, 2n ** 63n),
      fc.constantFrom(1, 2),
      fc.uint8Array({ maxLength: 8 }),
    )
    .map(([declaredLength, opcode, payload]) =>
      encodeFrame({ fin: true, rsv: 0, opcode, masked: true, payload, declaredLength }),
    ),
  // Control frames that are fragmented or longer than 125 bytes.
  fc.constantFrom(9, 10).map((opcode) => data(opcode, utf8('x'), false)),
  fc.constantFrom(9, 10).map((opcode) => data(opcode, new Uint8Array(126))),
  // A continuation with nothing to continue.
  fc.string({ maxLength: 16 }).map((text) => data(0, utf8(text))),
);

/** A message in fragments, sometimes with a ping in between (valid) or a new message (invalid). */
function fragmented(message: fc.Arbitrary<Uint8Array>): fc.Arbitrary<Buffer> {
  return fc
    .tuple(message, fc.integer({ min: 2, max: 4 }), fc.constantFrom('plain', 'ping', 'interleaved'))
    .map(([payload, parts, twist]) => {
      const size = Math.ceil(payload.length / parts) || 1;
      const frames: Buffer[] = [];
      for (let i = 0; i < parts; i++) {
        const part = payload.subarray(i * size, (i + 1) * size);
        frames.push(data(i === 0 ? 1 : 0, part, i === parts - 1));
        if (i === 0 && twist === 'ping') frames.push(data(9, utf8('mid')));
        if (i === 0 && twist === 'interleaved') frames.push(data(1, utf8('new')));
      }
      return Buffer.concat(frames);
    });
}

const pingPong = fc
  .tuple(fc.constantFrom(9, 10), fc.uint8Array({ maxLength: 125 }))
  .map(([opcode, payload]) => data(opcode, payload));

const asChunk = (bytes: Buffer): Chunk => ({ bytes });

/** Frames of any kind for a raw client. */
export const rawChunk: fc.Arbitrary<Chunk> = fc.oneof(
  {
    weight: 3,
    arbitrary: fc
      .string({ unit: 'binary', maxLength: 64 })
      .map((text) => asChunk(data(1, utf8(text)))),
  },
  {
    weight: 2,
    arbitrary: fc.uint8Array({ maxLength: 64 }).map((bytes) => asChunk(data(2, bytes))),
  },
  { weight: 2, arbitrary: pingPong.map(asChunk) },
  { weight: 2, arbitrary: fragmented(fc.string({ maxLength: 40 }).map(utf8)).map(asChunk) },
  { weight: 2, arbitrary: brokenFrame.map(asChunk) },
  { weight: 1, arbitrary: closeFrame },
  // More frames than the rate limit's bucket holds.
  {
    weight: 1,
    arbitrary: fc
      .integer({ min: 1500, max: 2500 })
      .map((count) =>
        asChunk(Buffer.concat(Array.from({ length: count }, () => data(1, utf8('x'))))),
      ),
  },
);

const room = fc.oneof(
  fc.constantFrom('lobby', 'h:feed', 'probe', 'deny:x', 'h:ünïcödé', '房间', '\u0000', ''),
  // The server's own names: a session's direct-message stream and the reserved prefix.
  fc.constantFrom('~direct:fuzzed', '~direct:', '~', '~h:feed'),
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.string({ unit: 'binary', minLength: LIMITS.room - 2, maxLength: LIMITS.room + 2 }),
);
const requestId = fc.oneof(fc.nat(10), fc.constantFrom(LIMITS.id, LIMITS.id + 1, -1, 1.5, 2 ** 53));
/** What the fixture's `onRequest` turns into a hostile handler result (see fuzz-node.mjs). */
const requestData = fc.oneof(
  fc.constantFrom('echo', 'null', 'number', 'object', 'throw', 'reject', 'slow', 'big'),
  fc.string({ maxLength: 32 }),
);
const position = fc.record({
  o: fc.oneof(fc.maxSafeNat(), fc.constant(-1)),
  e: fc.string({ maxLength: 8 }),
});

/** Upstream numbers: in order, repeated, out of order, or far ahead. */
const upstreamNumber = fc.oneof(
  fc.integer({ min: 1, max: 5 }),
  fc.constant(Number.MAX_SAFE_INTEGER),
);

/** `wscale.v1` messages: valid, nearly valid, or just shaped like one. */
const v1Message: fc.Arbitrary<unknown> = fc.oneof(
  fc.record({ t: fc.constant('join'), id: requestId, r: room }),
  fc.record({ t: fc.constant('leave'), id: requestId, r: room }),
  fc.record(
    { t: fc.constant('req'), id: requestId, d: requestData, s: upstreamNumber, p: fc.constant(1) },
    { requiredKeys: ['t', 'id'] },
  ),
  fc.record(
    { t: fc.constant('msg'), d: fc.string({ maxLength: 32 }), r: room, s: upstreamNumber },
    { requiredKeys: ['t'] },
  ),
  fc.constant({ t: 'ping' }),
  fc.record({ t: fc.constant('hello'), rooms: fc.dictionary(room, position, { maxKeys: 3 }) }),
  messageLikeObject,
);

export const helloChunk: fc.Arbitrary<Chunk> = fc
  .oneof(
    fc.constant({ t: 'hello' }),
    fc.record(
      {
        t: fc.constant('hello'),
        session: fc.oneof(fc.string({ maxLength: 40 }), fc.constant('x'.repeat(LIMITS.token + 1))),
        rooms: fc.oneof(
          fc.dictionary(room, position, { maxKeys: 4 }),
          fc.jsonValue({ maxDepth: 1 }),
        ),
      },
      { requiredKeys: ['t'] },
    ),
  )
  .map((hello) => asChunk(data(1, utf8(JSON.stringify(hello)))));

/**
 * Hundreds of operations at once, past the per-client limits: joins of distinct rooms (rooms per
 * client, in flight), slow or large requests (in flight, send budget), pings (operations per
 * second).
 */
const burst: fc.Arbitrary<Chunk> = fc
  .oneof(
    // Past maxRoomsPerClient, maxInFlightPerClient, maxOpsPerSecond's two-second bucket.
    fc.tuple(fc.constantFrom('join', 'slow', 'ping'), fc.integer({ min: 100, max: 2500 })),
    // 200 KB replies: a few dozen pass the send budget without costing the test machine much.
    fc.tuple(fc.constant('big'), fc.integer({ min: 5, max: 40 })),
  )
  .map(([kind, count]) => {
    const message = (id: number) =>
      kind === 'join'
        ? { t: 'join', id, r: `burst:${id}` }
        : kind === 'ping'
          ? { t: 'ping' }
          : { t: 'req', id, d: kind };
    const frames = Array.from({ length: count }, (_, id) =>
      data(1, utf8(JSON.stringify(message(id)))),
    );
    return asChunk(Buffer.concat(frames));
  });

/** Frames of any kind for a `wscale.v1` client. */
export const v1Chunk: fc.Arbitrary<Chunk> = fc.oneof(
  {
    weight: 6,
    arbitrary: v1Message.map((message) => asChunk(data(1, utf8(JSON.stringify(message))))),
  },
  {
    weight: 2,
    arbitrary: fc
      .tuple(v1Message, fc.uint8Array({ maxLength: 32 }))
      .map(([message, payload]) => asChunk(data(2, encodeBinary(message as never, payload)))),
  },
  { weight: 1, arbitrary: garbageText.map((text) => asChunk(data(1, utf8(text)))) },
  { weight: 1, arbitrary: garbageBytes.map((bytes) => asChunk(data(2, bytes))) },
  { weight: 1, arbitrary: fragmented(v1Message.map((m) => utf8(JSON.stringify(m)))).map(asChunk) },
  { weight: 1, arbitrary: pingPong.map(asChunk) },
  { weight: 2, arbitrary: brokenFrame.map(asChunk) },
  { weight: 1, arbitrary: closeFrame },
  { weight: 1, arbitrary: burst },
);

/** What a node wrote back: the HTTP status of the upgrade and the close code of its close frame. */
export interface Answer {
  status: number | undefined;
  /** 1005 for a close frame without a code; undefined when no close frame came. */
  closeCode: number | undefined;
}

/** Reads the upgrade response and the server's (unmasked) frames up to its close frame. */
export function readAnswer(bytes: Buffer): Answer {
  const end = bytes.indexOf('\r\n\r\n');
  if (end < 0) return { status: undefined, closeCode: undefined };
  const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(bytes.subarray(0, end).toString('latin1'))?.[1]);
  let at = end + 4;
  while (at + 2 <= bytes.length) {
    const opcode = bytes[at]! & 0x0f;
    let length = bytes[at + 1]! & 0x7f;
    let start = at + 2;
    if (length === 126) {
      if (start + 2 > bytes.length) break;
      length = bytes.readUInt16BE(start);
      start += 2;
    } else if (length === 127) {
      if (start + 8 > bytes.length) break;
      length = Number(bytes.readBigUInt64BE(start));
      start += 8;
    }
    if (start + length > bytes.length) break;
    if (opcode === 8) {
      return { status, closeCode: length >= 2 ? bytes.readUInt16BE(start) : 1005 };
    }
    at = start + length;
  }
  return { status, closeCode: undefined };
}
