/**
 * What nodes say to each other about presence, on the broker. Each node publishes its numbered
 * deltas and a periodic tick on `<prefix>presence`, which every node subscribes to; a node asks
 * another one for a snapshot on that node's `<prefix>presence:<id>` topic and gets the answer on
 * its own. One JSON message per frame.
 */

/** A connection in a room: room, connection id, user key, and the member's info when it has one. */
export type EntryWire = [room: string, conn: string, user: string, info?: unknown];

/** One change of a node's entries. */
export type Delta =
  /** A join; `b`: a resume put the connection back in a room its session was in (no news). */
  | { j: EntryWire; b?: 1 }
  /** A leave; `p`: on purpose (a `leave`, a close with 1000), so the same connection kept elsewhere for its grace period leaves too. */
  | { l: [room: string, conn: string]; p?: 1 };

/** The messages, one variant per kind. `n` is the sending node, `x` its incarnation, `s` its sequence number. */
export type PresenceWire =
  /** A delta, numbered. */
  | { k: 'd'; n: string; x: string; s: number; d: Delta }
  /** The sender's sequence number now, so a node that missed the last deltas notices. */
  | { k: 't'; n: string; x: string; s: number }
  /** Asks the receiving node for its snapshot. */
  | { k: 'q'; n: string }
  /** Part `p` of `m` of the sender's snapshot at sequence number `s`. */
  | { k: 's'; n: string; x: string; s: number; p: number; m: number; e: EntryWire[] };

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export function encodePresence(message: PresenceWire): Uint8Array {
  return encoder.encode(JSON.stringify(message));
}

/** Decodes a message, or `undefined` when it is not one (a foreign or broken publisher). */
export function decodePresence(bytes: Uint8Array): PresenceWire | undefined {
  let value: unknown;
  try {
    value = JSON.parse(decoder.decode(bytes));
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null) return undefined;
  const m = value as Record<string, unknown>;
  if (typeof m.n !== 'string') return undefined;
  if (m.k === 'q') return m as PresenceWire;
  if (typeof m.x !== 'string' || !Number.isSafeInteger(m.s)) return undefined;
  if (m.k === 't') return m as PresenceWire;
  if (m.k === 'd' && isDelta(m.d)) return m as PresenceWire;
  // A part number outside its count would make a snapshot look whole with a part missing.
  const { p, m: count } = m;
  if (m.k === 's' && isCount(count) && count >= 1 && isCount(p) && p < count) {
    if (Array.isArray(m.e) && m.e.every(isEntry)) return m as PresenceWire;
  }
  return undefined;
}

function isDelta(value: unknown): value is Delta {
  if (typeof value !== 'object' || value === null) return false;
  const d = value as Record<string, unknown>;
  if (d.j !== undefined) return isEntry(d.j);
  return (
    Array.isArray(d.l) &&
    typeof d.l[0] === 'string' &&
    typeof d.l[1] === 'string' &&
    (d.p === undefined || d.p === 1)
  );
}

function isEntry(value: unknown): value is EntryWire {
  return (
    Array.isArray(value) &&
    typeof value[0] === 'string' &&
    typeof value[1] === 'string' &&
    typeof value[2] === 'string'
  );
}

function isCount(value: unknown): value is number {
  return Number.isSafeInteger(value) && (value as number) >= 0;
}
