import { Buffer } from 'node:buffer';
import { InvalidArgumentError } from '../errors.js';
import { typeName } from '../util/arguments.js';
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

/**
 * The text frame a client sent last, as its `message` event has it and as it came (UTF-8 that
 * `ws` checked). A server that sends on what it got (a chat, a relay, a direct message) sends those
 * bytes instead of encoding the text again: one buffer less per message. One slot, for the process.
 */
let lastText: string | undefined;
let lastTextBytes: Buffer | undefined;

/** A client's text frame as a string, remembered with its bytes for {@link prepareMessage}. */
export function receivedText(frame: Buffer): string {
  const text = frame.toString('utf8');
  lastText = text;
  lastTextBytes = frame;
  return text;
}

/** The UTF-8 bytes of `text`: those it came as, when it is the text a client sent last. */
function textBytes(text: string): Buffer {
  return text === lastText ? lastTextBytes! : Buffer.from(text, 'utf8');
}

/** Encodes a payload once per node: every recipient's socket is written the same bytes. */
export function prepareMessage(
  data: Sendable,
  options?: SendOptions,
  room?: string,
  skip?: ReadonlySet<string>,
): Outgoing {
  const volatile = options?.volatile === true;
  // No closure to build the message: this runs for every send.
  let bytes: Buffer;
  if (typeof data === 'string') {
    return new Outgoing(textBytes(data), false, volatile, room, undefined, undefined, skip);
  }
  if (Buffer.isBuffer(data)) bytes = data;
  else if (ArrayBuffer.isView(data))
    bytes = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  else if (data instanceof ArrayBuffer) bytes = Buffer.from(data);
  else {
    throw new InvalidArgumentError(
      `send() takes a string, a Buffer, an ArrayBuffer or a typed array, not ${typeName(data)}`,
    );
  }
  return new Outgoing(bytes, true, volatile, room, undefined, undefined, skip);
}
