/**
 * `CommandDeadlines` on its own, with a stand-in for the connection that answers when told to and
 * a fake clock: the line of commands out is compacted once its front has moved far in, and after
 * that every command still fails exactly `timeoutMs` (within one sweep) after it was sent, no
 * sooner, and an answered one never does.
 */
import { Command, type Redis } from 'ioredis';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { CommandDeadlines } from '../src/command-deadlines.js';

const TIMEOUT_MS = 1000;
const connection = { sendCommand: (command: Command) => command.promise } as unknown as Redis;

/** Sends `count` publishes, each with how it ended: `answered`, `timed out`, or still out. */
function sendMany(deadlines: CommandDeadlines, count: number) {
  return Array.from({ length: count }, (_, i) => {
    const command = new Command('publish', ['channel', `message ${i}`]);
    const sent = { command, outcome: 'out' };
    deadlines.send(connection, command).then(
      () => {
        sent.outcome = 'answered';
      },
      (error: Error) => {
        sent.outcome = error.message;
      },
    );
    return sent;
  });
}

const outcomes = (sent: { outcome: string }[]) => [...new Set(sent.map((each) => each.outcome))];

describe('CommandDeadlines', () => {
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('fails each command out on its own deadline, also once the line was compacted', async () => {
    const deadlines = new CommandDeadlines(TIMEOUT_MS);
    const first = sendMany(deadlines, 1100);
    await vi.advanceTimersByTimeAsync(300);
    const second = sendMany(deadlines, 400);
    // Redis answers the first 1100: the front of the line moves past where it is compacted.
    for (const { command } of first) command.resolve(1);
    await vi.advanceTimersByTimeAsync(200);
    // This send compacts the line: the second batch moves to its start, with its own send times.
    const third = sendMany(deadlines, 10);
    await vi.advanceTimersByTimeAsync(TIMEOUT_MS - 500 + TIMEOUT_MS / 10);
    expect(outcomes(first)).toEqual(['answered']);
    expect(outcomes([...second, ...third])).toEqual(['out']);
    await vi.advanceTimersByTimeAsync(300);
    expect(outcomes(second)).toEqual(['Command timed out']);
    expect(outcomes(third)).toEqual(['out']);
    // Answered in time: never failed afterwards.
    third[0]!.command.resolve(1);
    await vi.advanceTimersByTimeAsync(200);
    expect(outcomes(third.slice(0, 1))).toEqual(['answered']);
    expect(outcomes(third.slice(1))).toEqual(['Command timed out']);
    deadlines.stop();
  });

  it('stops sweeping when nothing is out, and starts again with the next command', async () => {
    const deadlines = new CommandDeadlines(TIMEOUT_MS);
    const first = sendMany(deadlines, 3);
    for (const { command } of first) command.resolve(1);
    await vi.advanceTimersByTimeAsync(TIMEOUT_MS);
    expect(vi.getTimerCount()).toBe(0);
    const next = sendMany(deadlines, 1);
    expect(vi.getTimerCount()).toBe(1);
    await vi.advanceTimersByTimeAsync(TIMEOUT_MS + TIMEOUT_MS / 10);
    expect(outcomes([...first, ...next])).toEqual(['answered', 'Command timed out']);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('never fails a command sooner than its timeout, on a real clock with the event loop blocked', async () => {
    vi.useRealTimers();
    const timeoutMs = 100;
    const deadlines = new CommandDeadlines(timeoutMs);
    const failedAfter: number[] = [];
    const send = () => {
      const sentAt = performance.now();
      const command = new Command('publish', ['channel', 'message']);
      return deadlines.send(connection, command).catch(() => {
        failedAfter.push(performance.now() - sentAt);
      });
    };
    const sends = [send()];
    // The loop is blocked past a few sweeps: they come late, and a command sent meanwhile must
    // not be failed by the sweeps that were due while it could not run.
    for (let blocked = 1; blocked <= 3; blocked++) {
      const until = performance.now() + 45 * blocked;
      while (performance.now() < until) {
        // busy: nothing else runs
      }
      sends.push(send());
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    await Promise.all(sends);
    expect(failedAfter).toHaveLength(4);
    for (const after of failedAfter) expect(after).toBeGreaterThanOrEqual(timeoutMs - 1);
    // Within a few sweeps more than the timeout (a loaded machine runs them late).
    for (const after of failedAfter) expect(after).toBeLessThan(timeoutMs * 5);
    deadlines.stop();
  });
});
