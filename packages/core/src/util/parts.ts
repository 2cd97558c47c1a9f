import { Buffer } from 'node:buffer';

/** Bytes a part of a list leaves free under a broker's limit, for the frame around its items. */
const PART_RESERVE = 1024;

/**
 * The most bytes of JSON items one part of a list may hold under what a broker carries (`limit`,
 * see `Broker.maxPayloadBytes`; none: no bound).
 */
export function partBytes(limit: number | undefined): number {
  return limit === undefined ? Number.POSITIVE_INFINITY : Math.max(limit - PART_RESERVE, limit / 2);
}

/**
 * `items` cut, in order, into parts of at most `count` items and `bytes` bytes of JSON (an item
 * larger alone still goes alone); one empty part when there is none.
 */
export function inParts<T>(items: Iterable<T>, count: number, bytes: number): T[][] {
  const measured = bytes !== Number.POSITIVE_INFINITY;
  const parts: T[][] = [];
  let part: T[] = [];
  let size = 0;
  for (const item of items) {
    const itemBytes = measured ? Buffer.byteLength(JSON.stringify(item)) + 1 : 0;
    if (part.length > 0 && (part.length === count || size + itemBytes > bytes)) {
      parts.push(part);
      part = [];
      size = 0;
    }
    part.push(item);
    size += itemBytes;
  }
  parts.push(part);
  return parts;
}
