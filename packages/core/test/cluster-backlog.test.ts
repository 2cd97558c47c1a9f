import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const fixture = fileURLToPath(new URL('./fixtures/cluster-backlog-memory.mjs', import.meta.url));

interface FloodResult {
  /** Growth of the primary's heap, external and array buffer memory after GC. */
  held: number;
  rss: number;
  queuedBytes: number;
  laggedWorkers: number;
}

/** Runs a primary (its own process, to collect its garbage) that floods a stopped worker. */
async function flood(
  serialization: 'json' | 'advanced',
  maxWorkerBacklogBytes: number,
  count: number,
  payloadBytes: number,
): Promise<FloodResult> {
  const args = [serialization, maxWorkerBacklogBytes, count, payloadBytes].map(String);
  const child = spawn(process.execPath, ['--expose-gc', fixture, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk));
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  const line = output.split('\n').find((l) => l.startsWith('RESULT '));
  expect(line, `the primary exited ${code}:\n${output}`).toBeDefined();
  return JSON.parse(line!.slice('RESULT '.length)) as FloodResult;
}

describe('a node:cluster hub flooding a stopped worker with small messages', () => {
  const maxWorkerBacklogBytes = 4 * 1024 * 1024;

  // Each counted at 48 bytes plus topic and payload, 40 000 messages of 16 bytes held 3.7 ('json')
  // and 5.6 ('advanced') times this bound while counting less than it: node keeps a write request
  // of about 1 KiB for each.
  it.each(['json', 'advanced'] as const)(
    'holds about maxWorkerBacklogBytes of the primary memory, not a multiple (%s)',
    async (serialization) => {
      const result = await flood(serialization, maxWorkerBacklogBytes, 40_000, 16);
      const info = JSON.stringify(result);
      expect(result.held, info).toBeLessThanOrEqual(1.5 * maxWorkerBacklogBytes);
      expect(result.laggedWorkers, info).toBe(1);
      expect(result.queuedBytes, info).toBeLessThanOrEqual(maxWorkerBacklogBytes);
      // What the docs say a delivery counts: 1 KiB plus twice (64 + topic + payload as sent).
      // The payload as sent: 16 bytes behind the broker's 14-byte stamp, in base64 over 'json'.
      const payloadAsSent = serialization === 'json' ? 40 : 30;
      const perMessage = 1024 + 2 * (64 + 'flood'.length + payloadAsSent);
      expect(result.queuedBytes % perMessage, info).toBe(0);
      expect(result.queuedBytes, info).toBeGreaterThan(maxWorkerBacklogBytes - perMessage);
    },
    25_000,
  );
});
