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

/** A payload encoded once, ready to be written to any number of sockets. */
export interface PreparedPayload {
  bytes: Buffer;
  binary: boolean;
}

/** Encodes a payload once per node: every recipient's socket is written the same bytes. */
export function preparePayload(data: Sendable): PreparedPayload {
  if (typeof data === 'string') return { bytes: Buffer.from(data, 'utf8'), binary: false };
  if (Buffer.isBuffer(data)) return { bytes: data, binary: true };
  if (ArrayBuffer.isView(data)) {
    return { bytes: Buffer.from(data.buffer, data.byteOffset, data.byteLength), binary: true };
  }
  if (data instanceof ArrayBuffer) return { bytes: Buffer.from(data), binary: true };
  throw new TypeError('send() takes a string, a Buffer, an ArrayBuffer or a typed array');
}
