import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { CloseCode } from '@wscale/core';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fuzzParameters } from './helpers/arbitraries.js';
import { play, runArbitrary } from './helpers/fuzz-run.js';
import { checkServes, FuzzedNode, stepTimeoutMs } from './helpers/live-node.js';
import { readAnswer } from './helpers/ws-frames.js';

/**
 * Drives a live node process over raw TCP with generated sequences of valid and invalid WebSocket
 * frames and `wscale.v1` messages, split and merged across TCP writes at generated boundaries.
 * After every run the node must be alive, must still serve a well-behaved client, and must have
 * answered with a documented close code or kept the connection open.
 *
 * Longer: `WSCALE_FUZZ_RUNS=5000 npx vitest run packages/core/test/live-fuzz.test.ts`. A failure
 * prints fast-check's seed and path; `WSCALE_FUZZ_SEED=… WSCALE_FUZZ_PATH=…` replays it.
 */

const built = fileURLToPath(new URL('../dist/index.js', import.meta.url));
const parameters = fuzzParameters(30);
// A run takes a fraction of a second; the limit also bounds shrinking a failure, which restarts a
// crashed node for every attempt.
const timeLimitMs = 60_000 + parameters.numRuns * 2000;

/** What a node may answer a client with: RFC 6455's protocol codes and wscale's own. */
const documentedCloseCodes = new Set<number>([
  CloseCode.Normal,
  CloseCode.ProtocolError, // a frame that breaks the framing rules (`ws`) or upstream numbering
  CloseCode.InvalidPayload,
  CloseCode.PolicyViolation,
  CloseCode.MessageTooBig,
  CloseCode.TryAgainLater,
]);

const node = new FuzzedNode();

beforeAll(async () => {
  if (!existsSync(built)) throw new Error(`${built} is missing: run pnpm build first`);
  await node.start();
});

afterAll(() => node.stop());

describe('a live node under fuzzed WebSocket and wscale.v1 input', () => {
  it(
    'stays up, keeps serving, and answers with a documented close code or keeps the connection',
    async () => {
      let probe = 0;
      await fc.assert(
        fc.asyncProperty(runArbitrary, async (run) => {
          if (!node.alive) await node.start();
          try {
            const { received, closedByNode } = await play(node.port, run);
            // A crash right after the answer must not pass for a live node.
            await new Promise((resolve) => setTimeout(resolve, 20));
            expect(node.alive, 'the node process exited').toBe(true);
            const answer = readAnswer(received);
            expect(answer.status, 'the upgrade was not answered with 101').toBe(101);
            if (answer.closeCode !== undefined) {
              const echoed = run.chunks.some((chunk) => chunk.closeCode === answer.closeCode);
              expect(
                documentedCloseCodes.has(answer.closeCode) || echoed,
                `undocumented close code ${answer.closeCode}`,
              ).toBe(true);
            } else {
              expect(closedByNode, 'the node dropped the connection with no close frame').toBe(
                false,
              );
            }
            await checkServes(node, probe++);
          } catch (error) {
            throw new Error(`${(error as Error).message}\n--- node output ---\n${node.output}`, {
              cause: error,
            });
          }
        }),
        {
          ...parameters,
          timeout: 4 * stepTimeoutMs,
          interruptAfterTimeLimit: timeLimitMs,
          markInterruptAsFailure: true,
        },
      );
      // Every connection is gone: nothing the fuzzer did may be left behind on the node.
      const deadline = Date.now() + 5000;
      let stats = await node.stats();
      while ((stats.connections > 0 || stats.rooms > 0) && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 100));
        stats = await node.stats();
      }
      expect(stats).toMatchObject({ connections: 0, rooms: 0 });
    },
    timeLimitMs + 60_000,
  );
});
