import fc from 'fast-check';

/**
 * Runs of a property or fuzz test: `base` by default, so CI stays within seconds, or
 * `WSCALE_FUZZ_RUNS` when set (`WSCALE_FUZZ_RUNS=5000 npx vitest run …` for a long run).
 */
function fuzzRuns(base: number): number {
  const runs = Number(process.env.WSCALE_FUZZ_RUNS);
  return Number.isInteger(runs) && runs > 0 ? runs : base;
}

/**
 * fast-check parameters: {@link fuzzRuns} runs, and the seed and path of a failure to replay when
 * `WSCALE_FUZZ_SEED` (and `WSCALE_FUZZ_PATH`) are set, as fast-check printed them.
 */
export function fuzzParameters(base: number): { numRuns: number; seed?: number; path?: string } {
  const seed = process.env.WSCALE_FUZZ_SEED;
  if (seed === undefined) return { numRuns: fuzzRuns(base) };
  return { numRuns: fuzzRuns(base), seed: Number(seed), path: process.env.WSCALE_FUZZ_PATH };
}

const messageTypes = [
  'hello',
  'join',
  'leave',
  'req',
  'msg',
  'ping',
  'welcome',
  'joined',
  'left',
  'ack',
  'resync',
  'error',
  'pong',
  '',
  'HELLO',
  '__proto__',
];

/** Any JSON value, with the odd values that break careless checks. */
const oddValue = fc.oneof(
  fc.jsonValue({ maxDepth: 2 }),
  fc.constantFrom(-1, 1.5, 2 ** 31, 2 ** 53, -0, 1e308, '', '\u0000', '\ud800', 'é'.repeat(300)),
  fc.string({ unit: 'binary', minLength: 250, maxLength: 600 }),
);

/** JSON objects shaped like `wscale.v1` messages, with fields of any type. */
export const messageLikeObject = fc.record(
  {
    t: fc.oneof(fc.constantFrom(...messageTypes), oddValue),
    id: oddValue,
    r: oddValue,
    d: oddValue,
    session: oddValue,
    rooms: fc.oneof(
      oddValue,
      fc.dictionary(fc.string({ unit: 'binary' }), oddValue, { maxKeys: 4 }),
    ),
    o: oddValue,
    e: oddValue,
    s: fc.oneof(oddValue, fc.constantFrom(0, 1, 2 ** 53)),
    p: fc.oneof(oddValue, fc.constantFrom(0, 1, 2, true)),
    u: fc.oneof(oddValue, fc.constantFrom(0, 1, 2, true)),
  },
  { requiredKeys: [] },
);

/** Text a peer might send: random strings, JSON of any shape, message-like objects. */
export const garbageText = fc.oneof(
  fc.string({ unit: 'binary' }),
  fc.json({ maxDepth: 3 }),
  messageLikeObject.map((object) => JSON.stringify(object)),
);

/** A binary frame whose 4-byte header length and header are generated separately. */
const framedBytes = fc
  .tuple(
    fc.oneof(fc.nat(64), fc.constantFrom(0xffffffff, 16 * 1024, 16 * 1024 + 1)),
    fc.oneof(
      messageLikeObject.map((object) => Buffer.from(JSON.stringify(object))),
      fc.uint8Array({ maxLength: 64 }),
    ),
    fc.uint8Array({ maxLength: 32 }),
  )
  .map(([declared, header, payload]) => {
    const frame = Buffer.alloc(4 + header.length + payload.length);
    frame.writeUInt32BE(declared === 64 ? header.length : declared);
    frame.set(header, 4);
    frame.set(payload, 4 + header.length);
    return new Uint8Array(frame);
  });

/** Bytes a peer might send: random bytes, framed headers of any length and content. */
export const garbageBytes = fc.oneof(fc.uint8Array({ maxLength: 128 }), framedBytes);

/** Valid encodings damaged the way a broken or hostile peer would: flipped, cut, spliced. */
export function mutatedBytes(valid: fc.Arbitrary<Uint8Array>): fc.Arbitrary<Uint8Array> {
  return fc
    .tuple(
      valid,
      fc.array(
        fc.record({
          kind: fc.constantFrom('flip', 'cut', 'insert'),
          at: fc.nat(),
          byte: fc.nat(255),
        }),
        { minLength: 1, maxLength: 4 },
      ),
    )
    .map(([bytes, edits]) => {
      let out = Array.from(bytes);
      for (const { kind, at, byte } of edits) {
        const i = out.length === 0 ? 0 : at % out.length;
        if (kind === 'flip' && out.length > 0) out[i] = byte;
        else if (kind === 'cut') out = out.slice(0, i);
        else out.splice(i, 0, byte);
      }
      return Uint8Array.from(out);
    });
}
