import { Buffer } from 'node:buffer';
import { Command } from 'ioredis';

/**
 * A channel published to, with the part of a `PUBLISH` on the wire that is the same for every
 * message on it: `*3 $7 publish $<bytes> <channel> $` (each line ended by CRLF but the last).
 */
export class PublishChannel {
  readonly #head: Buffer;

  constructor(readonly name: string) {
    this.#head = Buffer.from(`*3\r\n$7\r\npublish\r\n$${Buffer.byteLength(name)}\r\n${name}\r\n$`);
  }

  /** A `PUBLISH` of `message` to this channel. */
  command(message: Buffer): PublishCommand {
    return new PublishCommand(this.name, message, this.#wire(message));
  }

  /** The whole command as Redis reads it: the head, the message's length, CRLF, it, CRLF. */
  #wire(message: Buffer): Buffer {
    const head = this.#head;
    const length = message.length;
    let digits = 1;
    for (let rest = length; rest >= 10; rest = Math.floor(rest / 10)) digits++;
    const at = head.length + digits;
    const wire = Buffer.allocUnsafe(at + 2 + length + 2);
    wire.set(head, 0);
    for (let i = at - 1, rest = length; i >= head.length; i--, rest = Math.floor(rest / 10)) {
      wire[i] = 0x30 + (rest % 10);
    }
    wire[at] = 0x0d;
    wire[at + 1] = 0x0a;
    wire.set(message, at + 2);
    wire[wire.length - 2] = 0x0d;
    wire[wire.length - 1] = 0x0a;
    return wire;
  }
}

/**
 * A `PUBLISH` that brings its bytes on the wire, written in one piece by {@link PublishChannel}.
 * ioredis builds them again for every command (a string of the command's head, a list of parts,
 * each measured twice, then copied into one buffer), which costs a publish more than the rest of
 * the broker's work on it. Everything else (its promise, its place in the line of commands out,
 * its name and arguments for ioredis's checks) is ioredis's own `Command`.
 */
export class PublishCommand extends Command {
  readonly #wire: Buffer;

  constructor(channel: string, message: Buffer, wire: Buffer) {
    super('publish', [channel, message]);
    this.#wire = wire;
  }

  override toWritable(): Buffer {
    return this.#wire;
  }
}
