import { ProtocolError, ScaledWebSocketServer } from '@wscale/core';
import { describe, expect, it } from 'vitest';
import {
  BusFlag,
  BusKind,
  type BusMessage,
  decodeBusFrame,
  encodeBusFrame,
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

/** A frame with any kind byte and any header, as a broken or foreign sender could write it. */
function raw(kind: number, header: unknown, payload = Buffer.alloc(0)): Buffer {
  const json = Buffer.from(JSON.stringify(header));
  const prefix = Buffer.from([kind, 0, 0, 0, 0, 0]);
  prefix.writeUInt32BE(json.length, 2);
  return Buffer.concat([prefix, json, payload]);
}

const malformed: [name: string, bytes: Uint8Array, error: RegExp][] = [
  ['empty', new Uint8Array(0), /shorter than its prefix/],
  ['a prefix only, cut', Buffer.from([1, 0, 0, 0]), /shorter than its prefix/],
  ['a header longer than the frame', Buffer.from([1, 0, 0, 0, 0, 9, 123]), /overruns/],
  ['a header that is not JSON', Buffer.from([1, 0, 0, 0, 0, 1, 123]), /not JSON/],
  ['a header that is an array', raw(BusKind.Broadcast, ['a']), /not an object/],
  ['a header that is null', raw(BusKind.Beat, null), /not an object/],
  ['no node id', raw(BusKind.Beat, {}), /without a node id/],
  ['a node id that is a number', raw(BusKind.Broadcast, { n: 1 }), /without a node id/],
  ['kind 0', raw(0, { n: 'a' }), /unknown bus frame kind 0/],
  ['kind 200', raw(200, { n: 'a' }), /unknown bus frame kind 200/],
  ['broadcast rooms not a list', raw(BusKind.Broadcast, { n: 'a', r: 'x' }), /Broadcast/],
  ['broadcast offset without epoch', raw(BusKind.Broadcast, { n: 'a', s: 1 }), /Broadcast/],
  ['broadcast negative offset', raw(BusKind.Broadcast, { n: 'a', s: -1, e: 'e' }), /Broadcast/],
  ['direct without client', raw(BusKind.Direct, { n: 'a', o: 'send' }), /Direct/],
  ['direct unknown op', raw(BusKind.Direct, { n: 'a', c: 'c', o: 'kick' }), /Direct/],
  ['direct join without room', raw(BusKind.Direct, { n: 'a', c: 'c', o: 'join' }), /Direct/],
  ['direct close bad args', raw(BusKind.Direct, { n: 'a', c: 'c', o: 'close', a: [1] }), /Direct/],
  ['direct hops not a count', raw(BusKind.Direct, { n: 'a', c: 'c', o: 'send', h: 'x' }), /Direct/],
  ['moved without close', raw(BusKind.Moved, { n: 'a', c: 'c' }), /Moved/],
  ['moved holder not a string', raw(BusKind.Moved, { n: 'a', c: 'c', a: [1, ''], d: 2 }), /Moved/],
  ['released without client', raw(BusKind.Released, { n: 'a' }), /Released/],
  ['located at a number', raw(BusKind.Located, { n: 'a', c: 'c', a: 2 }), /Located/],
  ['request of unknown question', raw(BusKind.Request, { n: 'a', i: 1, q: 'secrets' }), /Request/],
  ['request without id', raw(BusKind.Request, { n: 'a', q: 'rooms' }), /Request/],
  [
    'request rooms with argument',
    raw(BusKind.Request, { n: 'a', i: 1, q: 'rooms', a: 1 }),
    /Request/,
  ],
  [
    'answer rooms not strings',
    raw(BusKind.Response, { n: 'a', i: 1, q: 'rooms', a: [1] }),
    /Response/,
  ],
  [
    'answer stats not an object',
    raw(BusKind.Response, { n: 'a', i: 1, q: 'stats', a: 2 }),
    /Response/,
  ],
  ['answer without question', raw(BusKind.Response, { n: 'a', i: 1, a: [] }), /Response/],
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

  it('gives the payload as a view of the bytes it decoded, not a copy', () => {
    const bytes = encodeBusFrame({ kind: BusKind.Beat, header: { n: 'a' } }, Buffer.from('xy'));
    const decoded = decodeBusFrame(bytes);
    expect(decoded.payload.buffer).toBe(bytes.buffer);
  });
});
