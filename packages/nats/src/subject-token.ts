import { Buffer } from 'node:buffer';
/**
 * Names (topics, rooms, keys) are arbitrary strings, but NATS subjects and KV keys are not: a `.`
 * splits tokens, `*` and `>` are wildcards, whitespace is forbidden, and KV keys only allow
 * `[-/_=.A-Za-z0-9]`. Every name is therefore encoded into one token of that alphabet, so no name
 * can inject a wildcard or reach another name's subject.
 *
 * - `''` is `=`;
 * - a well-formed string is the unpadded base64url of its UTF-8 bytes (`[A-Za-z0-9_-]`, never `=`);
 * - a string with a lone surrogate (which UTF-8 cannot represent faithfully) is `=` followed by
 *   the base64url of its UTF-16LE code units.
 *
 * The three forms cannot collide, so the encoding is injective over all JavaScript strings.
 */
export function encodeToken(name: string): string {
  if (name === '') return '=';
  if (LONE_SURROGATE.test(name)) return `=${Buffer.from(name, 'utf16le').toString('base64url')}`;
  return Buffer.from(name, 'utf8').toString('base64url');
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** Whether `prefix` is usable in front of a token: literal tokens, each followed by a dot. */
export function isSubjectPrefix(prefix: string): boolean {
  return /^(?:[^\s.*>]+\.)+$/.test(prefix);
}

/**
 * Longest subject wscale sends, in bytes. NATS closes a connection whose protocol line is longer
 * than its `max_control_line` (4 KB by default); a publish or subscription that the client sends
 * again after each reconnect would close it again and again. A longer one is refused instead.
 */
export const MAX_SUBJECT_BYTES = 4000;

/** Whether NATS takes `subject` on a protocol line (see {@link MAX_SUBJECT_BYTES}). */
export function fitsControlLine(subject: string): boolean {
  // UTF-16 units count each byte of an ASCII subject once; only a prefix may be anything else.
  return subject.length <= MAX_SUBJECT_BYTES / 3 || Buffer.byteLength(subject) <= MAX_SUBJECT_BYTES;
}
