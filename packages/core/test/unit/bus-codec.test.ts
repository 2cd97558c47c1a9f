import { ProtocolError, ScaledWebSocketServer } from '@wscale/core';
import { describe, expect, it } from 'vitest';
import {
  BusFlag,
  BusKind,
  type BusMessage,
  decodeBusFrame,
  encodeBusFrame,
  isSentBy,
  senderField,
} from '../../src/mesh/bus-codec.js';

/** A real node's answer to `stats`, from a node with nothing to listen on. */
const node = new ScaledWebSocketServer({ noServer: true });
await node.ready();
const stats = (await node.fetchStats()).nodes[0]!;
await node.close();

/** One frame of every kind, and every shape a kind's header takes. */
const frames: [name: string, message: BusMessage][] = [
  ['broadcast to everyone', { kind: BusKind.Broadcast, header: { n: 'a' } }],
  [
    'broadcast to rooms, minus clients',
    { kind: BusKind.Broadcast, header: { n: 'a', r: ['x', 'y'], x: ['c1'] } },
  ],
  [
    'broadcast in a history room',
    { kind: BusKind.Broadcast, header: { n: 'a', r: ['x'], s: 7, e: 'ep' } },
  ],
  ['direct send', { kind: BusKind.Direct, header: { n: 'a', c: 'c1', o: 'send' } }],
  [
    'direct send kept in the session stream, routed',
    {
      kind: BusKind.Direct,
      header: { n: 'a', c: 'c1', o: 'send', r: ['~c1'], s: 3, e: 'ep', d: 'b', h: 1, w: 'z' },
    },
  ],
  ['direct join', { kind: BusKind.Direct, header: { n: 'a', c: 'c1', o: 'join', a: 'x', l: 1 } }],
  ['direct leave', { kind: BusKind.Direct, header: { n: 'a', c: 'c1', o: 'leave', a: 'x' } }],
  [
    'direct close',
    { kind: BusKind.Direct, header: { n: 'a', c: 'c1', o: 'close', a: [4000, 'bye'] } },
  ],
  ['moved', { kind: BusKind.Moved, header: { n: 'a', c: 'c1', a: [4001, 'taken over'] } }],
  [
    'moved, asking the holder to answer',
    { kind: BusKind.Moved, header: { n: 'a', c: 'c1', a: [4409, 'taken over'], d: 'b' } },
  ],
  ['released', { kind: BusKind.Released, header: { n: 'b', c: 'c1' } }],
  ['located at a node', { kind: BusKind.Located, header: { n: 'a', c: 'c1', a: 'b' } }],
  ['located nowhere', { kind: BusKind.Located, header: { n: 'a', c: 'c1' } }],
  ['announce', { kind: BusKind.Announce, header: { n: 'a' } }],
  ['beat', { kind: BusKind.Beat, header: { n: 'a' } }],
  ['bye', { kind: BusKind.Bye, header: { n: 'a' } }],
  ['request rooms', { kind: BusKind.Request, header: { n: 'a', i: 1, q: 'rooms' } }],
  [
    'request clients of a room',
    { kind: BusKind.Request, header: { n: 'a', i: 2, q: 'clients', a: 'x' } },
  ],
  ['request every client', { kind: BusKind.Request, header: { n: 'a', i: 3, q: 'clients' } }],
  ['request stats', { kind: BusKind.Request, header: { n: 'a', i: 4, q: 'stats' } }],
  ['answer rooms', { kind: BusKind.Response, header: { n: 'b', i: 1, q: 'rooms', a: ['x'] } }],
  [
    'answer clients',
    {
      kind: BusKind.Response,
      header: { n: 'b', i: 2, q: 'clients', a: [{ id: 'c1', nodeId: 'b', rooms: ['x'] }] },
    },
  ],
  ['answer stats', { kind: BusKind.Response, header: { n: 'b', i: 4, q: 'stats', a: stats } }],
];

/** A node id field as frames start their header with: its length, then its ASCII bytes. */
function nodeField(node: string): Buffer {
  const field = Buffer.alloc(4 + node.length);
  field.writeUInt32BE(node.length);
  field.write(node, 4, 'latin1');
  return field;
}

/** A frame with any kind byte and any header bytes, as a broken or foreign sender could write it. */
function raw(kind: number, ...header: (Buffer | string)[]): Buffer {
  const bytes = Buffer.concat(header.map((part) => Buffer.from(part)));
  const prefix = Buffer.from([kind, 0, 0, 0, 0, 0]);
  prefix.writeUInt32BE(bytes.length, 2);
  return Buffer.concat([prefix, bytes]);
}

/** A frame of a kind whose header is JSON after the node id. */
function json(kind: number, header: unknown, node = 'a'): Buffer {
  return raw(kind, nodeField(node), JSON.stringify(header));
}

/** A valid frame with one byte of its header changed. */
function changed(message: BusMessage, at: number, value: number): Buffer {
  const bytes = encodeBusFrame(message);
  bytes[6 + at] = value;
  return bytes;
}

/** A valid frame with the last `bytes` of its header cut off. */
function cut(message: BusMessage, bytes: number): Buffer {
  const whole = encodeBusFrame(message);
  return raw(whole[0]!, whole.subarray(6, whole.length - bytes));
}

/** A valid frame with bytes added after its header. */
function padded(message: BusMessage): Buffer {
  const whole = encodeBusFrame(message);
  return raw(whole[0]!, whole.subarray(6), Buffer.from([0]));
}

/** A double, as binary headers write offsets, hops and close codes. */
function double(value: number): Buffer {
  const bytes = Buffer.alloc(8);
  bytes.writeDoubleBE(value);
  return bytes;
}

const send: BusMessage = { kind: BusKind.Direct, header: { n: 'a', c: 'c', o: 'send' } };
const join: BusMessage = { kind: BusKind.Direct, header: { n: 'a', c: 'c', o: 'join', a: 'x' } };
const kept: BusMessage = {
  kind: BusKind.Broadcast,
  header: { n: 'a', r: ['x'], s: 7, e: 'ep' },
};
/** Where a `Direct` header of node `a` has its operation byte and its field bits (after `n`). */
const OPERATION = 5;
const FIELDS = 6;
/** Broadcast field bits, as written (`Broadcast` header of node `a`: after `n`). */
const BROADCAST_FIELDS = 5;

const malformed: [name: string, bytes: Uint8Array, error: RegExp][] = [
  ['empty', new Uint8Array(0), /shorter than its prefix/],
  ['a prefix only, cut', Buffer.from([1, 0, 0, 0]), /shorter than its prefix/],
  ['a header longer than the frame', Buffer.from([1, 0, 0, 0, 0, 9, 123]), /overruns/],
  ['no node id', raw(BusKind.Beat, Buffer.from([0, 0])), /cut short before its node id/],
  [
    'a node id longer than the header',
    raw(BusKind.Beat, Buffer.from([0, 0, 0, 9, 97])),
    /malformed node id/,
  ],
  [
    'a UTF-16 node id of an odd length',
    raw(BusKind.Beat, Buffer.from([0x80, 0, 0, 3, 97, 0, 98])),
    /malformed node id/,
  ],
  ['a node id only, for a broadcast', raw(BusKind.Broadcast, nodeField('a')), /cut short/],
  ['a beat with bytes after its node id', raw(BusKind.Beat, nodeField('a'), 'x'), /Beat/],
  ['a JSON header that is not JSON', raw(BusKind.Moved, nodeField('a'), '{'), /not JSON/],
  ['a JSON header that is an array', json(BusKind.Moved, ['a']), /not an object/],
  ['a JSON header that is null', json(BusKind.Request, null), /not an object/],
  ['kind 0', json(0, {}), /unknown bus frame kind 0/],
  ['kind 200', json(200, {}), /unknown bus frame kind 200/],
  [
    'broadcast with unknown fields',
    changed({ kind: BusKind.Broadcast, header: { n: 'a' } }, BROADCAST_FIELDS, 8),
    /Broadcast/,
  ],
  [
    'broadcast rooms, more than the header holds',
    raw(BusKind.Broadcast, nodeField('a'), Buffer.from([1, 0, 0, 1, 0])),
    /list overruns/,
  ],
  [
    'broadcast offset without epoch',
    raw(BusKind.Broadcast, nodeField('a'), Buffer.from([4]), double(1)),
    /cut short before its epoch/,
  ],
  [
    'broadcast negative offset',
    raw(BusKind.Broadcast, nodeField('a'), Buffer.from([4]), double(-1), nodeField('e')),
    /Broadcast/,
  ],
  [
    'broadcast offset not an integer',
    raw(BusKind.Broadcast, nodeField('a'), Buffer.from([4]), double(1.5), nodeField('e')),
    /Broadcast/,
  ],
  ['broadcast epoch cut short', cut(kept, 1), /malformed epoch/],
  ['broadcast with bytes after its header', padded(kept), /Broadcast/],
  ['direct without client', cut(send, 5), /cut short before its client id/],
  ['direct unknown op', changed(send, OPERATION, 4), /Direct/],
  ['direct with unknown fields', changed(send, FIELDS, 64), /Direct/],
  ['direct join without room', cut(join, 5), /cut short before its room/],
  [
    'direct close without its code',
    raw(BusKind.Direct, nodeField('a'), Buffer.from([3, 0]), nodeField('c'), Buffer.from([1])),
    /Direct/,
  ],
  [
    'direct hops not a count',
    raw(BusKind.Direct, nodeField('a'), Buffer.from([0, 8]), nodeField('c'), double(Number.NaN)),
    /Direct/,
  ],
  ['direct with bytes after its header', padded(send), /Direct/],
  ['moved without close', json(BusKind.Moved, { c: 'c' }), /Moved/],
  ['moved holder not a string', json(BusKind.Moved, { c: 'c', a: [1, ''], d: 2 }), /Moved/],
  ['released without client', json(BusKind.Released, {}), /Released/],
  ['located at a number', json(BusKind.Located, { c: 'c', a: 2 }), /Located/],
  ['request of unknown question', json(BusKind.Request, { i: 1, q: 'secrets' }), /Request/],
  ['request without id', json(BusKind.Request, { q: 'rooms' }), /Request/],
  ['request rooms with argument', json(BusKind.Request, { i: 1, q: 'rooms', a: 1 }), /Request/],
  ['answer rooms not strings', json(BusKind.Response, { i: 1, q: 'rooms', a: [1] }), /Response/],
  ['answer stats not an object', json(BusKind.Response, { i: 1, q: 'stats', a: 2 }), /Response/],
  ['answer without question', json(BusKind.Response, { i: 1, a: [] }), /Response/],
];

describe('node bus codec', () => {
  it.each(frames)('round-trips a %s frame', (_name, message) => {
    const payload = Buffer.from('payload ✓');
    const flags = BusFlag.Binary | BusFlag.Volatile;
    const decoded = decodeBusFrame(encodeBusFrame(message, payload, flags));
    expect(decoded.kind).toBe(message.kind);
    expect(decoded.header).toStrictEqual(message.header);
    expect(decoded.flags).toBe(flags);
    expect(decoded.payload.equals(payload)).toBe(true);
  });

  it('covers every kind', () => {
    const kinds = new Set(frames.map(([, message]) => message.kind));
    const all = Object.values(BusKind).filter((kind) => typeof kind === 'number');
    expect([...kinds].sort()).toEqual(all.sort());
  });

  it.each(malformed)('refuses %s with a ProtocolError', (_name, bytes, error) => {
    expect(() => decodeBusFrame(bytes)).toThrow(ProtocolError);
    expect(() => decodeBusFrame(bytes)).toThrow(error);
  });

  it('keeps any string as it was: non-ASCII, lone surrogates, empty', () => {
    const odd = ['', 'é', '日本', '\ud800', 'a\udc00b', '\u0000', 'x'.repeat(70_000)];
    for (const text of odd) {
      const header = { n: text, c: text, o: 'join', a: text, d: text, w: text } as const;
      const decoded = decodeBusFrame(encodeBusFrame({ kind: BusKind.Direct, header }));
      expect(decoded.header).toStrictEqual(header);
      const rooms = { n: text, r: [text, text], x: [text], s: 0, e: text };
      const broadcast = decodeBusFrame(encodeBusFrame({ kind: BusKind.Broadcast, header: rooms }));
      expect(broadcast.header).toStrictEqual(rooms);
    }
  });

  it('keeps node ids of every length around the longest whose bytes it keeps, ASCII or not', () => {
    for (const length of [1, 63, 64, 65, 127, 128, 129, 300]) {
      for (const text of [
        'x'.repeat(length),
        `${'x'.repeat(length - 1)}é`,
        `é${'x'.repeat(length - 1)}`,
      ]) {
        const header = { n: text, c: text, o: 'send', d: text, w: text } as const;
        const decoded = decodeBusFrame(encodeBusFrame({ kind: BusKind.Direct, header }));
        expect(decoded.header).toStrictEqual(header);
      }
    }
  });

  it('decodes every node id as its own, past the few it keeps and when ids differ in one byte', () => {
    // 40 ids of one length that differ only in their last characters, seen twice each, out of order.
    const ids = Array.from({ length: 40 }, (_, i) => `node-${String(i).padStart(3, '0')}`);
    const seen = [...ids, ...[...ids].reverse(), ...ids.filter((_, i) => i % 3 === 0)];
    for (const n of seen) {
      const d = ids[(ids.indexOf(n) + 1) % ids.length]!;
      const header = { n, c: 'c1', o: 'send', d, w: n } as const;
      expect(decodeBusFrame(encodeBusFrame({ kind: BusKind.Direct, header })).header).toStrictEqual(
        header,
      );
      const beat = decodeBusFrame(encodeBusFrame({ kind: BusKind.Beat, header: { n } }));
      expect(beat.header).toStrictEqual({ n });
    }
  });

  it('decodes a node id sent in another encoding than the one kept for it as what it says', () => {
    /** A `Beat` frame whose node id field is `bytes`, with the length word `length`. */
    const beat = (length: number, bytes: Buffer) => {
      const header = Buffer.alloc(4 + bytes.length);
      header.writeUInt32BE(length, 0);
      bytes.copy(header, 4);
      const prefix = Buffer.from([BusKind.Beat, 0, 0, 0, 0, 0]);
      prefix.writeUInt32BE(header.length, 2);
      return Buffer.concat([prefix, header]);
    };
    // Both ids are kept once encoded: 'node-1' as ASCII, 'nodé' as UTF-16LE.
    for (const n of ['node-1', 'nodé']) encodeBusFrame({ kind: BusKind.Beat, header: { n } });
    const wide = Buffer.from('node-1', 'utf16le');
    expect(decodeBusFrame(beat(0x8000_0000 + wide.length, wide)).header).toEqual({ n: 'node-1' });
    // A byte per character, one of them not ASCII: Latin-1, not the kept UTF-16LE 'nodé'.
    const narrow = Buffer.from('nodé', 'latin1');
    expect(decodeBusFrame(beat(narrow.length, narrow)).header).toEqual({ n: 'nodé' });
    // Bytes that differ from a kept id's in one place are not that id.
    expect(decodeBusFrame(beat(6, Buffer.from('node-2'))).header).toEqual({ n: 'node-2' });
  });

  it('tells a node its own frames, of every kind, by their first header bytes', () => {
    const own = senderField('a');
    for (const [, message] of frames) {
      const bytes = encodeBusFrame(message, Buffer.from('payload'));
      expect(isSentBy(bytes, own)).toBe(message.header.n === 'a');
      expect(isSentBy(bytes, senderField(message.header.n))).toBe(true);
    }
    const longer = encodeBusFrame({ kind: BusKind.Beat, header: { n: 'ab' } });
    expect(isSentBy(longer, own)).toBe(false);
    expect(isSentBy(longer.subarray(0, 8), senderField('ab'))).toBe(false);
    expect(isSentBy(new Uint8Array(0), own)).toBe(false);
  });

  it('gives the payload as a view of the bytes it decoded, not a copy', () => {
    const bytes = encodeBusFrame({ kind: BusKind.Beat, header: { n: 'a' } }, Buffer.from('xy'));
    const decoded = decodeBusFrame(bytes);
    expect(decoded.payload.buffer).toBe(bytes.buffer);
  });
});
