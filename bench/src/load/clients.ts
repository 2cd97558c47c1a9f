import { io as connectSocketIo } from 'socket.io-client';
import { WebSocket } from 'ws';
import { Kind, kindOf, SIO_EVENT } from '../wire.js';

/** Which client library the load generator uses for an implementation. */
export type ClientKind = 'ws' | 'socketio';

/** Where a client's messages (other than its hello) go: its index and the message. */
export type OnData = (index: number, data: Buffer | string) => void;

/** One connected client of the load generator. */
export interface BenchClient {
  readonly index: number;
  /** The id its server gave it. */
  readonly id: string;
  /** The node that holds it (from its hello). */
  readonly node: number;
  send(text: string): void;
  close(): void;
}

/**
 * Connects a client; resolves once it is a member of the room (its hello arrived) or, for the
 * publisher, once it is open.
 */
export function connectClient(
  kind: ClientKind,
  url: string,
  index: number,
  publisher: boolean,
  onData: OnData,
  timeoutMs: number,
): Promise<BenchClient> {
  return kind === 'ws'
    ? connectWs(url, index, publisher, onData, timeoutMs)
    : connectSio(url, index, publisher, onData, timeoutMs);
}

function parseHello(text: string): { id: string; node: number } {
  const bar = text.indexOf('|');
  return { id: text.slice(1, bar), node: Number(text.slice(bar + 1)) };
}

function connectWs(
  url: string,
  index: number,
  publisher: boolean,
  onData: OnData,
  timeoutMs: number,
): Promise<BenchClient> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(publisher ? `${url}/?role=pub` : url, { perMessageDeflate: false });
    const timer = setTimeout(() => {
      ws.terminate();
      reject(new Error(`client ${index} not ready in ${timeoutMs} ms`));
    }, timeoutMs);
    const done = (id: string, node: number) => {
      clearTimeout(timer);
      resolve({
        index,
        id,
        node,
        send: (text) => ws.send(text),
        close: () => ws.terminate(),
      });
    };
    ws.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    ws.on('message', (data: Buffer) => {
      if (kindOf(data) !== Kind.Hello) {
        onData(index, data);
        return;
      }
      const { id, node } = parseHello(data.toString());
      done(id, node);
    });
    if (publisher) ws.once('open', () => done('publisher', -1));
  });
}

function connectSio(
  url: string,
  index: number,
  publisher: boolean,
  onData: OnData,
  timeoutMs: number,
): Promise<BenchClient> {
  return new Promise((resolve, reject) => {
    const socket = connectSocketIo(url, {
      transports: ['websocket'],
      reconnection: false,
      forceNew: true,
      timeout: timeoutMs,
      query: publisher ? { role: 'pub' } : {},
    });
    const timer = setTimeout(() => {
      socket.disconnect();
      reject(new Error(`client ${index} not ready in ${timeoutMs} ms`));
    }, timeoutMs);
    const done = (id: string, node: number) => {
      clearTimeout(timer);
      resolve({
        index,
        id,
        node,
        send: (text) => void socket.emit(SIO_EVENT, text),
        close: () => void socket.disconnect(),
      });
    };
    socket.on('connect_error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    socket.on(SIO_EVENT, (text: string) => {
      if (kindOf(text) !== Kind.Hello) {
        onData(index, text);
        return;
      }
      const { id, node } = parseHello(text);
      done(id, node);
    });
    if (publisher) socket.once('connect', () => done('publisher', -1));
  });
}
