import { Buffer } from 'node:buffer';
import type { HistoryEntry } from '../contracts.js';
import type { FrameDeflater } from './deflate.js';
import { isInbox } from './messages.js';
import { dataFrame, deflatedDataFrame } from './v1-writer.js';
import { wsFrame } from './ws-frame.js';

/** What a frame written to a client is, for the counters (`ops/traffic.ts` indexes by it). */
export const OutKind = { Broadcast: 0, Direct: 1, Replay: 2, Control: 3 } as const;
export type OutKind = (typeof OutKind)[keyof typeof OutKind];

/** Flag bits of a message: the node bus carries them as they are. */
export const MessageFlag = {
  /** The payload is binary (a WebSocket binary frame), not UTF-8 text. */
  Binary: 1,
  /** The payload may be dropped for a slow consumer. */
  Volatile: 2,
} as const;

/**
 * One application message on its way to local clients. It is built once per node and every
 * recipient gets the same bytes: raw clients the payload as it was sent, `wscale.v1` clients the
 * `msg` envelope, encoded the first time one of them needs it; sockets that negotiated
 * permessage-deflate get the same frames compressed, once.
 */
export class Outgoing {
  #rawFrame: Buffer | undefined;
  #envelopeFrame: Buffer | undefined;
  #rawDeflated: Buffer | undefined;
  #envelopeDeflated: Buffer | undefined;
  /** How the counters see it: a message of a session's direct-message stream is a direct one. */
  readonly kind: OutKind;

  constructor(
    /** The application's payload. */
    readonly bytes: Buffer,
    /** Whether the payload is binary (else UTF-8 text). */
    readonly binary: boolean,
    /** Whether it may be dropped for a slow consumer. */
    readonly volatile: boolean,
    /** The one room it was sent to, if it was sent to one room. */
    readonly room?: string,
    /** Its offset in the room's history, for rooms that keep history. */
    readonly offset?: number,
    readonly epoch?: string,
    /** Ids of clients it must not be written to (`except`). */
    readonly skip?: ReadonlySet<string>,
  ) {
    this.kind = room !== undefined && isInbox(room) ? OutKind.Direct : OutKind.Broadcast;
  }

  /** Its {@link MessageFlag}s. */
  get flags(): number {
    return (this.binary ? MessageFlag.Binary : 0) | (this.volatile ? MessageFlag.Volatile : 0);
  }

  /**
   * The WebSocket frame a raw client is written: built once, shared by every recipient. With a
   * deflater, for a socket that negotiated permessage-deflate: compressed once, if worth it.
   */
  rawFrame(deflater?: FrameDeflater): Buffer {
    if (deflater !== undefined) {
      this.#rawDeflated ??= deflater.frame(this.bytes, this.binary) ?? this.rawFrame();
      return this.#rawDeflated;
    }
    this.#rawFrame ??= wsFrame(this.bytes, this.binary);
    return this.#rawFrame;
  }

  /** The WebSocket frame a `wscale.v1` client is written: as {@link Outgoing.rawFrame}. */
  envelopeFrame(deflater?: FrameDeflater): Buffer {
    const { bytes, binary, room, offset, epoch } = this;
    if (deflater !== undefined) {
      this.#envelopeDeflated ??=
        deflatedDataFrame(deflater, bytes, binary, room, offset, epoch) ?? this.envelopeFrame();
      return this.#envelopeDeflated;
    }
    this.#envelopeFrame ??= dataFrame(bytes, binary, room, offset, epoch);
    return this.#envelopeFrame;
  }

  /** What is kept in a room's history: a flags byte, then the payload. */
  historyPayload(): Buffer {
    const entry = Buffer.allocUnsafe(1 + this.bytes.length);
    entry[0] = this.binary ? 1 : 0;
    this.bytes.copy(entry, 1);
    return entry;
  }

  /** Rebuilds a message from a history entry of a room. */
  static fromHistory(room: string, entry: HistoryEntry, epoch: string): Outgoing {
    const view = Buffer.from(entry.payload.buffer, entry.payload.byteOffset, entry.payload.length);
    return new Outgoing(view.subarray(1), view[0] === 1, false, room, entry.offset, epoch);
  }

  /** The same message, placed at a position of a room's history. */
  at(room: string, offset: number, epoch: string): Outgoing {
    return new Outgoing(this.bytes, this.binary, this.volatile, room, offset, epoch, this.skip);
  }
}
