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
import { describe, expect, it } from 'vitest';

// The wscale.v1 codec (docs/protocol.md) as tables a reader can check against the spec: every
// message kind both ways, text and binary, the bounds at their edge, and the malformed frames with
// the reason each is refused for. protocol-codec.property.test.ts throws random frames at it.

/** A binary frame: the 4-byte big-endian header length, the header, the payload. */
function binaryFrame(header: string | Uint8Array, payload: Uint8Array = new Uint8Array()) {
  const bytes = typeof header === 'string' ? Buffer.from(header) : header;
  const length = Buffer.alloc(4);
  length.writeUInt32BE(bytes.length);
  return new Uint8Array(Buffer.concat([length, bytes, payload]));
}

/** The message without its text payload, as a binary frame's header carries it. */
function header<M extends ClientMessage | ServerMessage>(message: M): M {
  const { d: _d, ...rest } = message as M & { d?: string };
  return rest as M;
}

/**
 * The error a malformed frame raises: a `ProtocolError`, which the server answers by closing
 * the connection with 1007 and the error's message as the close reason.
 */
function refusal(decode: () => unknown): ProtocolError {
  try {
    decode();
  } catch (error) {
    expect(error).toBeInstanceOf(ProtocolError);
    return error as ProtocolError;
  }
  throw new Error('the frame was accepted');
}

const PAYLOAD = new Uint8Array([0, 1, 2, 0xfe, 0xff]);
const long = (length: number) => 'x'.repeat(length);
const position = { o: 41, e: 'epoch-1' };

const clientMessages: Array<[string, ClientMessage]> = [
  ['hello, new session', { t: 'hello' }],
  [
    'hello, resume',
    { t: 'hello', session: 'v1.id.sig', rooms: { chat: position, news: position } },
  ],
  ['join', { t: 'join', id: 1, r: 'chat' }],
  ['leave', { t: 'leave', id: 2, r: 'chat' }],
  ['msg', { t: 'msg', d: 'hi' }],
  ['msg, numbered, sent again', { t: 'msg', d: 'hi', s: 7, p: 1 }],
  ['req', { t: 'req', id: 3, d: 'question' }],
  ['req, numbered', { t: 'req', id: 4, d: 'question', s: 8 }],
  ['ping', { t: 'ping' }],
  ['presence', { t: 'presence', id: 5, r: 'chat' }],
];

const serverMessages: Array<[string, ServerMessage]> = [
  [
    'welcome',
    {
      t: 'welcome',
      session: 'v1.id.sig',
      client: 'id',
      node: 'node-1',
      resumed: true,
      rooms: {
        chat: { recovered: true, o: 44, e: 'epoch-1' },
        news: { recovered: false, reason: 'too-old', o: 9, e: 'epoch-2' },
        lobby: { recovered: false, reason: 'no-history' },
      },
      s: 3,
    },
  ],
  [
    'welcome, not resumed',
    {
      t: 'welcome',
      session: 's',
      client: 'c',
      node: 'n',
      resumed: false,
      reason: 'expired',
      rooms: {},
    },
  ],
  ['joined', { t: 'joined', r: 'chat' }],
  ['joined, history room', { t: 'joined', r: 'chat', o: 12, e: 'epoch-1' }],
  ['left', { t: 'left', r: 'chat' }],
  ['msg, direct', { t: 'msg', d: 'hi' }],
  ['msg, history room', { t: 'msg', d: 'hi', r: 'chat', o: 13, e: 'epoch-1' }],
  ['ack', { t: 'ack', id: 1 }],
  ['ack with a reply', { t: 'ack', id: 3, d: 'answer' }],
  ['ack with an error', { t: 'ack', id: 4, error: { code: 'FORBIDDEN', message: 'no' } }],
  ['resync', { t: 'resync', r: 'chat', o: 20, e: 'epoch-1' }],
  ['error', { t: 'error', code: 'UNKNOWN_OP', message: 'unknown type "x"' }],
  ['pong', { t: 'pong' }],
  ['rcv', { t: 'rcv', s: 9 }],
  ['presence', { t: 'presence', r: 'chat', m: [{ u: 'alice', i: { n: 1 } }, { u: 'bob' }], n: 3 }],
  ['pjoin', { t: 'pjoin', r: 'chat', u: 'alice', i: { n: 1 } }],
  ['pleave', { t: 'pleave', r: 'chat', u: 'alice' }],
];

describe('wscale.v1 codec: every message kind', () => {
  describe('client → server, text', () => {
    it.each(clientMessages)('%s', (_name, message) => {
      const text = encodeText(message);
      expect(JSON.parse(text)).toEqual(message);
      expect(decodeClientFrame(text)).toEqual({ message, binary: undefined });
    });
  });

  describe('client → server, binary', () => {
    it.each(clientMessages)('%s', (_name, message) => {
      const frame = encodeBinary(header(message), PAYLOAD);
      expect(frame).toEqual(binaryFrame(JSON.stringify(header(message)), PAYLOAD));
      const decoded = decodeClientFrame(frame);
      expect(decoded.message).toEqual(header(message));
      expect(decoded.binary).toEqual(PAYLOAD);
    });
  });

  describe('server → client, text', () => {
    it.each(serverMessages)('%s', (_name, message) => {
      expect(decodeServerFrame(encodeText(message))).toEqual({ message, binary: undefined });
    });
  });

  describe('server → client, binary', () => {
    it.each(serverMessages)('%s', (_name, message) => {
      const decoded = decodeServerFrame(encodeBinary(header(message), PAYLOAD));
      expect(decoded.message).toEqual(header(message));
      expect(decoded.binary).toEqual(PAYLOAD);
    });
  });

  it('lays a binary frame out as header length, JSON header, payload', () => {
    const frame = encodeBinary({ t: 'msg', s: 1 }, new Uint8Array([7, 8]));
    const json = '{"t":"msg","s":1}';
    expect([...frame]).toEqual([0, 0, 0, json.length, ...Buffer.from(json), 7, 8]);
  });

  it('takes a binary frame with an empty payload, and one with a header of 16 KiB', () => {
    expect(decodeClientFrame(binaryFrame('{"t":"msg"}')).binary).toEqual(new Uint8Array());
    const padded = `{"t":"msg","x":"${long(LIMITS.binaryHeader - 18)}"}`;
    expect(Buffer.byteLength(padded)).toBe(LIMITS.binaryHeader);
    expect(decodeClientFrame(binaryFrame(padded, PAYLOAD)).binary).toEqual(PAYLOAD);
  });

  it('reads a binary frame that sits inside a larger buffer, as ws hands frames over', () => {
    const frame = encodeBinary({ t: 'msg', s: 2 }, PAYLOAD);
    const pool = new Uint8Array(frame.length + 16).fill(0xee);
    pool.set(frame, 8);
    const decoded = decodeClientFrame(pool.subarray(8, 8 + frame.length));
    expect(decoded).toEqual({ message: { t: 'msg', s: 2 }, binary: PAYLOAD });
  });

  it('passes a message of an unknown type on, for the server to answer with an error', () => {
    expect(decodeClientFrame('{"t":"subscribe","x":1}').message).toEqual({ t: 'subscribe', x: 1 });
  });
});

describe('wscale.v1 codec: bounds, at their edge', () => {
  const rooms = (count: number) =>
    Object.fromEntries(Array.from({ length: count }, (_, i) => [`room-${i}`, position]));
  const accepted: Array<[string, ClientMessage]> = [
    ['a room name of the longest length', { t: 'join', id: 1, r: long(LIMITS.room) }],
    ['an empty room name', { t: 'join', id: 1, r: '' }],
    ['id 0', { t: 'join', id: 0, r: 'a' }],
    ['the largest id', { t: 'req', id: LIMITS.id }],
    ['a token of the longest length', { t: 'hello', session: long(LIMITS.token) }],
    ['the most rooms in a hello', { t: 'hello', rooms: rooms(LIMITS.rooms) }],
    [
      'an epoch of the longest length',
      { t: 'hello', rooms: { a: { o: 0, e: long(LIMITS.epoch) } } },
    ],
    ['the largest offset', { t: 'hello', rooms: { a: { o: Number.MAX_SAFE_INTEGER, e: '' } } }],
    ['the largest sequence number', { t: 'msg', d: '', s: Number.MAX_SAFE_INTEGER }],
  ];
  it.each(accepted)('takes %s', (_name, message) => {
    expect(decodeClientFrame(encodeText(message)).message).toEqual(message);
  });
});

describe('wscale.v1 codec: malformed client frames are refused with a reason', () => {
  const text = (value: unknown) => JSON.stringify(value);
  const tooManyRooms = Object.fromEntries(
    Array.from({ length: LIMITS.rooms + 1 }, (_, i) => [`r${i}`, position]),
  );
  const cases: Array<[string, string | Uint8Array, RegExp]> = [
    // Any frame
    ['not JSON', '{"t":', /not JSON/],
    ['empty text', '', /not JSON/],
    ['a JSON array', '[{"t":"ping"}]', /not a JSON object/],
    ['JSON null', 'null', /not a JSON object/],
    ['a JSON string', '"ping"', /not a JSON object/],
    ['a JSON number', '42', /not a JSON object/],
    ['no type', '{}', /without a type/],
    ['a type that is not a string', '{"t":1}', /without a type/],
    // hello
    ['hello: a session that is not a string', text({ t: 'hello', session: 1 }), /session must/],
    ['hello: a session too long', text({ t: 'hello', session: long(LIMITS.token + 1) }), /session/],
    [
      'hello: rooms as an array',
      text({ t: 'hello', rooms: [position] }),
      /rooms must be an object/,
    ],
    ['hello: rooms null', text({ t: 'hello', rooms: null }), /rooms must be an object/],
    ['hello: too many rooms', text({ t: 'hello', rooms: tooManyRooms }), /too many rooms/],
    ['hello: a room name too long', text({ t: 'hello', rooms: { [long(257)]: position } }), /room/],
    ['hello: a position null', text({ t: 'hello', rooms: { a: null } }), /rooms\["a"\]/],
    ['hello: no offset', text({ t: 'hello', rooms: { a: { e: 'x' } } }), /rooms\["a"\]/],
    ['hello: a negative offset', text({ t: 'hello', rooms: { a: { o: -1, e: 'x' } } }), /rooms/],
    ['hello: a fractional offset', text({ t: 'hello', rooms: { a: { o: 1.5, e: 'x' } } }), /rooms/],
    [
      'hello: an unsafe offset',
      text({ t: 'hello', rooms: { a: { o: 2 ** 53, e: 'x' } } }),
      /rooms/,
    ],
    ['hello: an offset as text', text({ t: 'hello', rooms: { a: { o: '1', e: 'x' } } }), /rooms/],
    ['hello: no epoch', text({ t: 'hello', rooms: { a: { o: 1 } } }), /rooms\["a"\]/],
    [
      'hello: an epoch too long',
      text({ t: 'hello', rooms: { a: { o: 1, e: long(129) } } }),
      /rooms/,
    ],
    // join, leave, presence
    ['join: no id', text({ t: 'join', r: 'a' }), /id must be a whole number/],
    ['join: a negative id', text({ t: 'join', id: -1, r: 'a' }), /id must/],
    ['join: a fractional id', text({ t: 'join', id: 0.5, r: 'a' }), /id must/],
    ['join: an id too large', text({ t: 'join', id: LIMITS.id + 1, r: 'a' }), /id must/],
    ['join: an id as text', text({ t: 'join', id: '1', r: 'a' }), /id must/],
    ['join: no room', text({ t: 'join', id: 1 }), /r must be a string/],
    ['join: a room that is not a string', text({ t: 'join', id: 1, r: 7 }), /r must be a string/],
    ['join: a room name too long', text({ t: 'join', id: 1, r: long(LIMITS.room + 1) }), /r must/],
    ['leave: no id', text({ t: 'leave', r: 'a' }), /id must/],
    ['leave: no room', text({ t: 'leave', id: 1 }), /r must/],
    ['presence: no id', text({ t: 'presence', r: 'a' }), /id must/],
    ['presence: no room', text({ t: 'presence', id: 1 }), /r must/],
    // msg, req
    ['msg: a payload that is not a string', text({ t: 'msg', d: { a: 1 } }), /d must be a string/],
    ['msg: sequence number 0', text({ t: 'msg', d: '', s: 0 }), /s must be a whole number/],
    ['msg: a negative sequence number', text({ t: 'msg', s: -3 }), /s must/],
    ['msg: a fractional sequence number', text({ t: 'msg', s: 1.5 }), /s must/],
    ['msg: an unsafe sequence number', text({ t: 'msg', s: 2 ** 53 }), /s must/],
    ['msg: a sequence number as text', text({ t: 'msg', s: '1' }), /s must/],
    ['msg: p other than 1', text({ t: 'msg', s: 1, p: 2 }), /p must be 1/],
    ['msg: p true', text({ t: 'msg', s: 1, p: true }), /p must be 1/],
    ['req: no id', text({ t: 'req', d: 'x' }), /id must/],
    ['req: a payload that is not a string', text({ t: 'req', id: 1, d: 5 }), /d must be a string/],
    ['req: sequence number 0', text({ t: 'req', id: 1, s: 0 }), /s must/],
    // Binary frames
    ['binary: empty', new Uint8Array(), /shorter than its header length/],
    ['binary: 3 bytes', new Uint8Array([0, 0, 0]), /shorter than its header length/],
    [
      'binary: a header over 16 KiB',
      binaryFrame(`"${long(LIMITS.binaryHeader - 1)}"`),
      /too large/,
    ],
    [
      'binary: JSON text sent as a binary frame',
      new Uint8Array(Buffer.from('{"t":"ping"}')),
      /too large/,
    ],
    ['binary: a header length past the end', new Uint8Array([0, 0, 0, 20, 0x7b, 0x7d]), /overruns/],
    ['binary: a header not UTF-8', binaryFrame(new Uint8Array([0x7b, 0xff, 0x7d])), /not UTF-8/],
    ['binary: a header not JSON', binaryFrame('{"t":"msg"'), /not JSON/],
    ['binary: a header that is an array', binaryFrame('[]'), /not a JSON object/],
    ['binary: an empty header', binaryFrame(''), /not JSON/],
    ['binary: a header with d', binaryFrame('{"t":"msg","d":"x"}', PAYLOAD), /must not carry d/],
    ['binary: a header without a type', binaryFrame('{"s":1}', PAYLOAD), /without a type/],
    ['binary: a join with a bad id', binaryFrame('{"t":"join","id":-1,"r":"a"}'), /id must/],
  ];

  it.each(cases)('%s', (_name, frame, reason) => {
    expect(refusal(() => decodeClientFrame(frame)).message).toMatch(reason);
  });
});

describe('wscale.v1 codec: malformed server frames are refused with a reason', () => {
  const cases: Array<[string, string | Uint8Array, RegExp]> = [
    ['not JSON', 'welcome', /not JSON/],
    ['a JSON array', '[]', /not a JSON object/],
    ['no type', '{"r":"chat"}', /without a type/],
    ['a type that is not a string', '{"t":null}', /without a type/],
    ['a payload that is not a string', '{"t":"msg","d":1}', /d must be a string/],
    ['binary: too short', new Uint8Array([1]), /shorter than its header length/],
    ['binary: a header with d', binaryFrame('{"t":"msg","d":"x"}'), /must not carry d/],
    ['binary: a header without a type', binaryFrame('{}'), /without a type/],
  ];

  it.each(cases)('%s', (_name, frame, reason) => {
    expect(refusal(() => decodeServerFrame(frame)).message).toMatch(reason);
  });
});
