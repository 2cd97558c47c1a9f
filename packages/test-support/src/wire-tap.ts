import { type DataMessage, decodeServerFrame, type ServerMessage } from '@wscale/core/protocol';
import { delay, until } from '@wscale/core/testing';
import { WebSocket } from 'ws';

/**
 * A tap on the wire of a `wscale.v1` client: every frame its sockets received, decoded, before the
 * client saw it. `@wscale/client` drops an offset it has already seen, so a duplicate the server
 * sends is invisible in what the client hands the application; here it shows.
 *
 * Give `tap.WebSocket` to the client as its `WebSocket` option: every socket it opens (one per
 * connection, across resumes) records into this tap, in arrival order.
 */
export class WireTap {
  readonly frames: ServerMessage[] = [];
  readonly WebSocket: new (
    url: string,
    protocols: string[],
  ) => WebSocket;

  constructor() {
    const frames = this.frames;
    this.WebSocket = class TappedWebSocket extends WebSocket {
      constructor(url: string, protocols: string[]) {
        super(url, protocols);
        this.on('message', (data: Buffer, isBinary: boolean) => {
          frames.push(decodeServerFrame(isBinary ? new Uint8Array(data) : data.toString()).message);
        });
      }
    };
  }

  /** The room messages of `room` that arrived, in arrival order. */
  messages(room: string): DataMessage[] {
    return this.frames.filter(
      (frame): frame is DataMessage => frame.t === 'msg' && frame.r === room,
    );
  }

  /** The offsets of `room`'s messages, in arrival order (a duplicate appears twice). */
  offsets(room: string): number[] {
    return this.messages(room).map((message) => message.o ?? 0);
  }
}

/**
 * Waits for `reached`, then a settle window, so that a late duplicate (or any message that should
 * not come) has had time to arrive before the test compares: asserting the moment the count is
 * reached lets late ones escape.
 */
export async function settle(
  reached: () => boolean,
  timeoutMs: number,
  what: string,
  settleMs = 300,
): Promise<void> {
  await until(reached, timeoutMs, what);
  await delay(settleMs);
}
