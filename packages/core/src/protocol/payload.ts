import { Outgoing } from './outgoing.js';

/** What `send` accepts: text goes as a text frame, everything else as a binary frame. */
export type Sendable = string | Buffer | ArrayBuffer | ArrayBufferView;

/** Options of a send. */
export interface SendOptions {
  /**
   * A volatile message may be dropped for a client whose send buffer is full (a cursor position,
   * a typing indicator); other messages follow the `slowConsumer` policy.
   * @default false
   */
  volatile?: boolean;
}

/** Encodes a payload once per node: every recipient's socket is written the same bytes. */
export function prepareMessage(
  data: Sendable,
  options?: SendOptions,
  room?: string,
  skip?: ReadonlySet<string>,
): Outgoing {
  const volatile = options?.volatile === true;
  const make = (bytes: Buffer, binary: boolean) =>
    new Outgoing(bytes, binary, volatile, room, undefined, undefined, skip);
  if (typeof data === 'string') return make(Buffer.from(data, 'utf8'), false);
  if (Buffer.isBuffer(data)) return make(data, true);
  if (ArrayBuffer.isView(data)) {
    return make(Buffer.from(data.buffer, data.byteOffset, data.byteLength), true);
  }
  if (data instanceof ArrayBuffer) return make(Buffer.from(data), true);
  throw new TypeError('send() takes a string, a Buffer, an ArrayBuffer or a typed array');
}
