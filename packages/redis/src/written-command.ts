import { Buffer } from 'node:buffer';
import { Command } from 'ioredis';

/**
 * An argument of a command: text (UTF-8 on the wire), bytes, or a number (its decimal text). Any
 * other value is written as ioredis writes it: `null` and `undefined` as empty, the rest as
 * `String(value)`.
 */
export type Argument = string | Buffer | number;

/** `bytes` as a Buffer over the same memory (a publish's payload, a history entry). */
export function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes)
    ? bytes
    : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/**
 * A command that brings its bytes on the wire, written in one piece by {@link writeCommand} or
 * {@link PublishChannel}. ioredis builds them again for every command (a string of the command's
 * head, a list of parts, each measured twice, then copied into one buffer), which costs a publish
 * or a history append more than the rest of the adapter's work on it. Everything else (its
 * promise, its place in the line of commands out, its name and arguments for ioredis's checks, its
 * reply) is ioredis's own `Command`.
 */
export class WrittenCommand extends Command {
  readonly #wire: Buffer;

  /** `replyEncoding`: bulk replies as strings in it, or as Buffers for `null`. */
  constructor(name: string, args: Argument[], wire: Buffer, replyEncoding: BufferEncoding | null) {
    super(name, args, replyEncoding === null ? {} : { replyEncoding });
    this.#wire = wire;
  }

  override toWritable(): Buffer {
    return this.#wire;
  }
}

/** A command as Redis reads it: an array of bulk strings, the name first. */
export function writeCommand(name: string, args: readonly Argument[]): Buffer {
  const texts: (string | Buffer)[] = [name];
  const sizes: number[] = [Buffer.byteLength(name)];
  let size = 3 + decimalDigits(args.length + 1);
  for (const arg of args) {
    const text = typeof arg === 'string' || arg instanceof Buffer ? arg : String(arg ?? '');
    const bytes = typeof text === 'string' ? Buffer.byteLength(text) : text.length;
    texts.push(text);
    sizes.push(bytes);
  }
  for (const bytes of sizes) size += 5 + decimalDigits(bytes) + bytes;
  const wire = Buffer.allocUnsafe(size);
  wire[0] = 0x2a; // *
  let at = endLine(wire, writeDecimal(wire, 1, texts.length));
  for (let i = 0; i < texts.length; i++) {
    const text = texts[i]!;
    wire[at] = 0x24; // $
    at = endLine(wire, writeDecimal(wire, at + 1, sizes[i]!));
    if (typeof text === 'string') wire.write(text, at);
    else wire.set(text, at);
    at = endLine(wire, at + sizes[i]!);
  }
  return wire;
}

/**
 * A channel published to, with the part of a `PUBLISH` (on a Cluster `SPUBLISH`) on the wire that is
 * the same for every message on it: `*3 $7 publish $<bytes> <channel> $` (each line ended by CRLF
 * but the last).
 */
export class PublishChannel {
  readonly #command: 'publish' | 'spublish';
  readonly #head: Buffer;

  /** `sharded`: published with `SPUBLISH`, to the shard that owns the channel's slot. */
  constructor(
    readonly name: string,
    sharded = false,
  ) {
    const command = sharded ? 'spublish' : 'publish';
    this.#command = command;
    this.#head = ownBytes(
      `*3\r\n$${command.length}\r\n${command}\r\n$${Buffer.byteLength(name)}\r\n${name}\r\n$`,
    );
  }

  /** A `PUBLISH` (or `SPUBLISH`) of `message` to this channel. */
  command(message: Buffer): WrittenCommand {
    const head = this.#head;
    const length = message.length;
    const digits = decimalDigits(length);
    const wire = Buffer.allocUnsafe(head.length + digits + 4 + length);
    wire.set(head, 0);
    const at = endLine(wire, writeDecimal(wire, head.length, length, digits));
    wire.set(message, at);
    endLine(wire, at + length);
    // The reply is a count: nothing to decode. A Cluster routes it by its arguments' key.
    return new WrittenCommand(this.#command, [this.name, message], wire, null);
  }
}

/**
 * Bytes in a buffer of their own, for one kept long: a small `Buffer.from` is a slice of Node's
 * shared 8 KiB pool, and one kept slice keeps the whole block (a broker's thousands of cached
 * channels held 8 KiB each, where their bytes are some 60).
 */
export function ownBytes(source: string | Uint8Array): Buffer {
  if (typeof source !== 'string') {
    const bytes = Buffer.allocUnsafeSlow(source.length);
    bytes.set(source);
    return bytes;
  }
  const bytes = Buffer.allocUnsafeSlow(Buffer.byteLength(source));
  bytes.write(source);
  return bytes;
}

function decimalDigits(value: number): number {
  let digits = 1;
  for (let rest = value; rest >= 10; rest = Math.floor(rest / 10)) digits++;
  return digits;
}

/** Writes a whole number ≥ 0 in decimal (`digits` long) at `at`; returns where it ends. */
function writeDecimal(
  wire: Buffer,
  at: number,
  value: number,
  digits = decimalDigits(value),
): number {
  const end = at + digits;
  for (let i = end - 1, rest = value; i >= at; i--, rest = Math.floor(rest / 10)) {
    wire[i] = 0x30 + (rest % 10);
  }
  return end;
}

/** Writes CRLF at `at`; returns where it ends. */
function endLine(wire: Buffer, at: number): number {
  wire[at] = 0x0d;
  wire[at + 1] = 0x0a;
  return at + 2;
}
