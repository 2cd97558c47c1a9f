/**
 * The tiny text protocol every benchmarked server speaks, so each implementation does the same
 * work per message. Client to server: a message starting with `D` is a direct message
 * (`D<targetId>|<seq>|…`), anything else is broadcast to {@link ROOM} as is. Server to client:
 * `H<clientId>|<nodeIndex>` once the client is in the room, then the messages as they were sent.
 * Socket.IO carries the same strings as the argument of the {@link SIO_EVENT} event.
 */

/** The one room every client joins. */
export const ROOM = 'bench';
/** The Socket.IO event that carries the strings both ways. */
export const SIO_EVENT = 'x';

/** First characters of the message kinds. */
export const Kind = {
  Hello: 'H'.charCodeAt(0),
  Broadcast: 'B'.charCodeAt(0),
  Warmup: 'W'.charCodeAt(0),
  Direct: 'D'.charCodeAt(0),
} as const;

/** Whether an upgrade URL is the publisher's (it does not join the room). */
export function isPublisher(url: string | undefined): boolean {
  return url?.includes('role=pub') === true;
}

/** The hello a server sends a client once it is a member of the room. */
export function hello(clientId: string, node: number): string {
  return `H${clientId}|${node}`;
}

/** The target client id of a direct message (`D<targetId>|…`). */
export function directTarget(text: string): string {
  return text.slice(1, text.indexOf('|'));
}

/** A payload of `size` bytes (at least its header): `<kind><seq>|` then padding. */
export function payload(kind: string, seq: number, size: number, prefix = ''): string {
  const head = `${kind}${prefix}${seq}|`;
  return head.length >= size ? head : head + PADDING.slice(0, size - head.length);
}

const PADDING = 'x'.repeat(64 * 1024);

/** The number after position `from` of a message, read from its bytes (no string is made). */
export function readSeq(data: Buffer | string, from: number): number {
  let value = 0;
  if (typeof data === 'string') {
    for (let i = from; i < data.length; i++) {
      const c = data.charCodeAt(i) - 48;
      if (c < 0 || c > 9) break;
      value = value * 10 + c;
    }
  } else {
    for (let i = from; i < data.length; i++) {
      const c = data[i]! - 48;
      if (c < 0 || c > 9) break;
      value = value * 10 + c;
    }
  }
  return value;
}

/** The first byte of a message. */
export function kindOf(data: Buffer | string): number {
  return typeof data === 'string' ? data.charCodeAt(0) : (data[0] ?? 0);
}

/** Where the sequence number of a direct message starts (after `D<target>|`). */
export function directSeqStart(data: Buffer | string): number {
  return typeof data === 'string' ? data.indexOf('|') + 1 : data.indexOf(124) + 1;
}
