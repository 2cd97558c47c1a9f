import type { Duplex } from 'node:stream';
import { describe, expect, it } from 'vitest';
import type { WebSocket } from 'ws';
import { Traffic } from '../../src/ops/traffic.js';
import { type ClientHost, Connection } from '../../src/transport/client.js';

/** What the connection does to its socket, recorded (a fake: these tests are about its state). */
class FakeWs {
  readonly extensions = '';
  readonly readyState = 1;
  readonly calls: string[] = [];
  terminate(): void {
    this.calls.push('terminate');
  }
}

const host = {
  maxBufferedBytes: 1 << 20,
  maxOpsPerSecond: 100,
  traffic: new Traffic(),
  deflater: undefined,
} as unknown as ClientHost;

function connection(socket: object): { client: Connection; ws: FakeWs } {
  const ws = new FakeWs();
  // The heartbeat's ping is written to the socket: an empty ping frame.
  const write = (frame: Uint8Array) => {
    ws.calls.push(frame.length === 2 && frame[0] === 0x89 && frame[1] === 0 ? 'ping' : 'frame');
  };
  Object.assign(socket, { write });
  const client = new Connection(
    'c1',
    true,
    ws as unknown as WebSocket,
    socket as Duplex,
    host,
    false,
  );
  return { client, ws };
}

describe('what a connection keeps', () => {
  it('keeps the one room of a client as the room itself, and makes an array from the second on', () => {
    const { client } = connection({});
    expect(client.roomList).toEqual([]);
    client.addRoom('a');
    client.addRoom('a');
    expect(client.inRoom('a')).toBe(true);
    expect(client.inRoom('b')).toBe(false);
    expect(client.roomList).toEqual(['a']);
    // No array is kept for one room: each call makes its own.
    expect(client.roomList).not.toBe(client.roomList);
    client.addRoom('b');
    expect(client.roomList).toEqual(['a', 'b']);
    expect(client.roomList).toBe(client.roomList);
    expect([...client.rooms]).toEqual(['a', 'b']);
    client.removeRoom('a');
    expect(client.roomList).toEqual(['b']);
    client.removeRoom('b');
    client.removeRoom('b');
    expect(client.inRoom('b')).toBe(false);
    expect(client.rooms.size).toBe(0);
    client.addRoom('c');
    client.removeRoom('c');
    expect(client.roomList).toEqual([]);
    client.addRoom('d');
    expect(client.roomList).toEqual(['d']);
  });

  it('takes any byte a socket read since the last heartbeat as a sign of life', () => {
    const socket = { bytesRead: 200 };
    const { client, ws } = connection(socket);
    client.heartbeat();
    socket.bytesRead += 6; // a pong
    client.heartbeat();
    client.heartbeat(); // nothing read in between
    expect(ws.calls).toEqual(['ping', 'ping', 'terminate']);
    ws.calls.length = 0;
    client.markAlive(); // a frame
    client.heartbeat();
    expect(ws.calls).toEqual(['ping']);
    // Past 2^30 bytes the count wraps; a change is still a change.
    socket.bytesRead = 2 ** 30 + 5;
    client.heartbeat();
    expect(ws.calls).toEqual(['ping', 'ping']);
  });

  it('needs a pong (or a frame) each round from a socket that does not count bytes', () => {
    const socket = {};
    const { client, ws } = connection(socket);
    client.heartbeat();
    client.control();
    client.heartbeat();
    client.heartbeat();
    expect(ws.calls).toEqual(['ping', 'ping', 'terminate']);
  });

  it('makes the rate bucket at the first operation, full, not at connect', () => {
    const { client } = connection({});
    // 2 s worth at 100/s: an idle client that never sent anything has the whole burst.
    let taken = 0;
    while (client.takeOp() && taken < 1000) taken++;
    expect(taken).toBe(200);
  });

  it('reports as bufferedAmount what the send-buffer budget counts: the socket and held frames', () => {
    const slow: string[] = [];
    const budgetHost = {
      ...host,
      maxBufferedBytes: 200,
      slowConsumer: (client: Connection) => slow.push(client.id),
    } as unknown as ClientHost;
    const socket = { writableLength: 100 };
    const client = new Connection(
      'c1',
      true,
      new FakeWs() as unknown as WebSocket,
      socket as unknown as Duplex,
      budgetHost,
      true,
    );
    expect(client.bufferedAmount).toBe(100);
    // Held while its session resumes: counted as on its way.
    client.hold();
    expect(client.writeFrame(Buffer.alloc(50))).toBe(true);
    expect(client.bufferedAmount).toBe(150);
    expect(client.writeFrame(Buffer.alloc(60))).toBe(true);
    expect(client.bufferedAmount).toBe(210);
    // At the budget: the next frame makes it a slow consumer, as bufferedAmount says.
    expect(client.writeFrame(Buffer.alloc(1))).toBe(false);
    expect(slow).toEqual(['c1']);
    socket.writableLength = 0;
    expect(client.bufferedAmount).toBe(110);
  });
});
