/**
 * What a connection holds back and when it lets it go: while its session resumes (until the
 * welcome) and while a join or leave is saved (until the pause ends, or after its time), in the
 * order written, the welcome and its replay always first.
 */
import type { Duplex } from 'node:stream';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { WebSocket } from 'ws';
import { Traffic } from '../../src/ops/traffic.js';
import { type ClientHost, Connection } from '../../src/transport/client.js';

/** A connection whose socket records the frames written to it, as text. */
function recording(): { client: Connection; written: string[] } {
  const written: string[] = [];
  const socket = {
    writableLength: 0,
    write: (frame: Buffer) => written.push(String(frame)),
  };
  const host = {
    maxBufferedBytes: 1 << 20,
    traffic: new Traffic(),
    cork: () => undefined,
  } as unknown as ClientHost;
  const ws = { readyState: 1, extensions: '' } as unknown as WebSocket;
  const client = new Connection('c1', true, ws, socket as unknown as Duplex, host, true);
  return { client, written };
}

const frame = (text: string) => Buffer.from(text);

describe('held frames', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('a pause holds every frame until it ends, and several end with the last', () => {
    const { client, written } = recording();
    const first = client.pause(1000);
    const second = client.pause(1000);
    client.writeFrame(frame('a'));
    client.writeFrame(frame('b'));
    first();
    first(); // ending it twice counts once
    expect(written).toEqual([]);
    second();
    expect(written).toEqual(['a', 'b']);
    client.writeFrame(frame('c'));
    expect(written).toEqual(['a', 'b', 'c']);
  });

  it('a pause ends by itself after its time', () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const { client, written } = recording();
    client.pause(1000);
    client.writeFrame(frame('a'));
    vi.advanceTimersByTime(999);
    expect(written).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(written).toEqual(['a']);
  });

  it('a pause while the session resumes: the welcome and its replay first, the rest after both', () => {
    const { client, written } = recording();
    client.hold();
    client.writeFrame(frame('a'));
    const resume = client.pause(1000);
    client.writeFrame(frame('b'));
    client.release(frame('welcome'), [frame('replay')]);
    expect(written).toEqual(['welcome', 'replay']);
    client.writeFrame(frame('c'));
    resume();
    expect(written).toEqual(['welcome', 'replay', 'a', 'b', 'c']);
  });

  it('a pause that ends before the welcome: everything still waits for the welcome', () => {
    const { client, written } = recording();
    client.hold();
    const resume = client.pause(1000);
    client.writeFrame(frame('a'));
    resume();
    expect(written).toEqual([]);
    client.release(frame('welcome'), []);
    expect(written).toEqual(['welcome', 'a']);
  });
});
