import { CloseCode as CoreCloseCode, WscaleError } from '@wscale/core';
import {
  CloseCode,
  decodeClientFrame,
  decodeServerFrame,
  ProtocolError,
  type ServerMessage,
} from '@wscale/core/protocol';
import { describe, expect, it } from 'vitest';
import {
  dataFrame,
  presenceJoin,
  presenceLeave,
  presenceSnapshot,
  resyncFrame,
  serverFrame,
  type V1Sink,
  writeAck,
  writeError,
  writeJoined,
  writeLeft,
  writePong,
  writePresence,
  writeReceived,
  writeRefusal,
  writeResync,
  writeWelcome,
} from '../src/protocol/v1-writer.js';

/** A connection that keeps what it is written (a fake: the writer is pure framing). */
class Sink implements V1Sink {
  readonly frames: Buffer[] = [];
  released?: { welcome: Buffer; replay: Buffer[] };
  constructor(
    readonly v1 = true,
    readonly open = true,
  ) {}
  writeFrame(frame: Buffer): boolean {
    this.frames.push(frame);
    return true;
  }
  release(welcome: Buffer, replay: Buffer[]): void {
    this.released = { welcome, replay };
  }
}

/** Reads one unmasked server frame: its opcode, then the `wscale.v1` message it carries. */
function read(frame: Buffer): { binary: boolean; message: ServerMessage; payload?: Uint8Array } {
  expect(frame[0]! & 0x80).toBe(0x80); // FIN: never fragmented
  const opcode = frame[0]! & 0x0f;
  const short = frame[1]! & 0x7f;
  const start = short < 126 ? 2 : short === 126 ? 4 : 10;
  const length =
    short < 126 ? short : short === 126 ? frame.readUInt16BE(2) : Number(frame.readBigUInt64BE(2));
  expect(frame.length).toBe(start + length);
  const body = frame.subarray(start);
  const decoded = decodeServerFrame(opcode === 2 ? new Uint8Array(body) : body.toString('utf8'));
  return { binary: opcode === 2, message: decoded.message, payload: decoded.binary };
}

function written(sink: Sink): ServerMessage[] {
  return sink.frames.map((frame) => read(frame).message);
}

const position = { offset: 7, epoch: 'e1' };

describe('the wscale.v1 writer', () => {
  const cases: Array<[string, (sink: Sink) => void, ServerMessage]> = [
    ['joined', (s) => writeJoined(s, 'r'), { t: 'joined', r: 'r' }],
    [
      'joined at a position',
      (s) => writeJoined(s, 'r', position),
      { t: 'joined', r: 'r', o: 7, e: 'e1' },
    ],
    ['left', (s) => writeLeft(s, 'r'), { t: 'left', r: 'r' }],
    ['resync', (s) => writeResync([s], 'r', position), { t: 'resync', r: 'r', o: 7, e: 'e1' }],
    ['ack', (s) => writeAck(s, 3), { t: 'ack', id: 3 }],
    ['ack with a reply', (s) => writeAck(s, 3, { d: 'ok' }), { t: 'ack', id: 3, d: 'ok' }],
    [
      'refusal',
      (s) => writeRefusal(s, 4, 'FORBIDDEN', 'no'),
      { t: 'ack', id: 4, error: { code: 'FORBIDDEN', message: 'no' } },
    ],
    [
      'error',
      (s) => writeError(s, 'UNKNOWN_OP', 'what'),
      { t: 'error', code: 'UNKNOWN_OP', message: 'what' },
    ],
    ['pong', (s) => writePong(s), { t: 'pong' }],
    ['rcv', (s) => writeReceived(s, 12), { t: 'rcv', s: 12 }],
    [
      'presence snapshot',
      (s) => writePresence([s], presenceSnapshot('r', [{ u: 'ann', i: { n: 1 } }, { u: 'bo' }], 2)),
      { t: 'presence', r: 'r', m: [{ u: 'ann', i: { n: 1 } }, { u: 'bo' }], n: 2 },
    ],
    [
      'pjoin',
      (s) => writePresence([s], presenceJoin('r', 'ann', { n: 1 })),
      { t: 'pjoin', r: 'r', u: 'ann', i: { n: 1 } },
    ],
    [
      'pjoin without info',
      (s) => writePresence([s], presenceJoin('r', 'ann', undefined)),
      { t: 'pjoin', r: 'r', u: 'ann' },
    ],
    [
      'pleave',
      (s) => writePresence([s], presenceLeave('r', 'ann')),
      { t: 'pleave', r: 'r', u: 'ann' },
    ],
  ];

  it.each(cases)(
    'writes %s as one text frame of exactly that message',
    (_name, write, expected) => {
      const sink = new Sink();
      write(sink);
      expect(sink.frames).toHaveLength(1);
      const { binary, message } = read(sink.frames[0]!);
      expect(binary).toBe(false);
      expect(message).toEqual(expected);
    },
  );

  it('writes a binary reply as a binary frame whose header is the ack', () => {
    const sink = new Sink();
    writeAck(sink, 9, {}, Buffer.from([1, 2, 3]));
    const { binary, message, payload } = read(sink.frames[0]!);
    expect(binary).toBe(true);
    expect(message).toEqual({ t: 'ack', id: 9 });
    expect([...payload!]).toEqual([1, 2, 3]);
  });

  it('tells joined, left and resync to wscale.v1 clients only', () => {
    const raw = new Sink(false);
    writeJoined(raw, 'r');
    writeLeft(raw, 'r');
    writeResync([raw], 'r', position);
    expect(raw.frames).toHaveLength(0);
  });

  it('writes presence and receipts only to open connections', () => {
    const closed = new Sink(true, false);
    writePresence([closed], presenceLeave('r', 'u'));
    writeReceived(closed, 1);
    expect(closed.frames).toHaveLength(0);
  });

  it('encodes a frame for many members once: every member gets the same bytes', () => {
    const [one, two] = [new Sink(), new Sink()];
    writeResync([one, two], 'r', position);
    writePresence([one, two], presenceLeave('r', 'u'));
    expect(one.frames[0]).toBe(two.frames[0]);
    expect(one.frames[1]).toBe(two.frames[1]);
  });

  it('releases the welcome with the replay behind it', () => {
    const sink = new Sink();
    const replay = [dataFrame(Buffer.from('m'), false, 'r', 1, 'e')];
    const welcome = {
      t: 'welcome',
      session: 's',
      client: 'c',
      node: 'n',
      resumed: false,
      rooms: {},
    } as const;
    writeWelcome(sink, welcome, replay);
    expect(read(sink.released!.welcome).message).toEqual(welcome);
    expect(sink.released!.replay).toBe(replay);
    expect(written(sink)).toEqual([]);
  });

  const data: Array<
    [string, Buffer, boolean, string | undefined, number | undefined, ServerMessage]
  > = [
    ['text to everyone', Buffer.from('hi'), false, undefined, undefined, { t: 'msg', d: 'hi' }],
    ['text to a room', Buffer.from('hi'), false, 'r', undefined, { t: 'msg', r: 'r', d: 'hi' }],
    [
      'text at an offset',
      Buffer.from('hi'),
      false,
      'r',
      5,
      { t: 'msg', r: 'r', o: 5, e: 'e', d: 'hi' },
    ],
    ['bytes at an offset', Buffer.from([0, 255]), true, 'r', 5, { t: 'msg', r: 'r', o: 5, e: 'e' }],
  ];

  it.each(data)(
    'frames the msg envelope of %s',
    (_name, payload, binary, room, offset, expected) => {
      const frame = read(
        dataFrame(payload, binary, room, offset, offset === undefined ? undefined : 'e'),
      );
      expect(frame.binary).toBe(binary);
      expect(frame.message).toEqual(expected);
      if (binary) expect([...frame.payload!]).toEqual([...payload]);
    },
  );

  it('frames a long message with the 16- and 64-bit lengths', () => {
    for (const size of [200, 70_000]) {
      const text = 'x'.repeat(size);
      expect(read(serverFrame({ t: 'msg', d: text })).message).toEqual({ t: 'msg', d: text });
    }
    expect(read(resyncFrame('r', position)).message).toEqual({
      t: 'resync',
      r: 'r',
      o: 7,
      e: 'e1',
    });
  });
});

describe('the wscale.v1 codec errors and close codes', () => {
  const malformed: Array<[string, string | Uint8Array]> = [
    ['not JSON', '{'],
    ['not an object', '[1]'],
    ['no type', '{}'],
    ['a join without id', '{"t":"join","r":"x"}'],
    ['a room name too long', JSON.stringify({ t: 'join', id: 1, r: 'x'.repeat(300) })],
    ['a binary frame shorter than its header length', new Uint8Array([0, 0])],
    ['a binary header that overruns', new Uint8Array([0, 0, 0, 9, 123])],
  ];

  it.each(malformed)('refuses %s with a ProtocolError (PROTOCOL_ERROR)', (_name, frame) => {
    let thrown: unknown;
    try {
      decodeClientFrame(frame);
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(ProtocolError);
    expect(thrown).toBeInstanceOf(WscaleError);
    expect(thrown).toMatchObject({ name: 'ProtocolError', code: 'PROTOCOL_ERROR' });
  });

  it('exports the same close codes from @wscale/core and @wscale/core/protocol', () => {
    expect(CloseCode).toBe(CoreCloseCode);
    expect(CloseCode.SessionTakenOver).toBe(4409);
    expect(CloseCode.ProtocolError).toBe(1002);
  });
});
