import { Buffer } from 'node:buffer';

/** Most bytes a close frame's reason may hold (RFC 6455 §5.5: 125 of payload, 2 for the code). */
const MAX_REASON_BYTES = 123;

/**
 * A close reason that fits a close frame: cut to 123 UTF-8 bytes without splitting a character.
 * `ws` throws on a longer one, and a reason often quotes what a client sent.
 */
export function closeReason(reason: string): string {
  if (reason.length <= MAX_REASON_BYTES / 3 || Buffer.byteLength(reason) <= MAX_REASON_BYTES) {
    return reason;
  }
  const bytes = Buffer.from(reason).subarray(0, MAX_REASON_BYTES + 1);
  let end = MAX_REASON_BYTES;
  // Back up to the start of the character the cut falls in (continuation bytes are 10xxxxxx).
  while (end > 0 && (bytes[end]! & 0xc0) === 0x80) end--;
  return bytes.subarray(0, end).toString('utf8');
}
