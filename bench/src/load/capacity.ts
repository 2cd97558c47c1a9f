/**
 * The load side of "most connections across nodes": one of several load-generator processes, each
 * holding its share of the clients (a process can hold only as many sockets as its open-files
 * limit allows). It connects clients in bounded steps, counting failures instead of failing, and
 * records when each broadcast reached its clients, in wall-clock time (`performance.timeOrigin`
 * + `now()`), so that the orchestrator can merge what several processes saw.
 */
import { performance } from 'node:perf_hooks';
import { Kind, kindOf, payload, readSeq } from '../wire.js';
import { type BenchClient, connectClient } from './clients.js';

export interface CapacityConnectArgs {
  /** One URL per node; client `i` (a global index) goes to node `i % urls.length`. */
  urls: string[];
  /** Global index of the first client of this step, and how many this process opens. */
  from: number;
  count: number;
  /** How many connections are opened at once. */
  concurrency: number;
  /** Bound for each connection, ms. */
  timeoutMs: number;
}

export interface CapacityConnectResult {
  connected: number;
  failed: number;
  /** The first failure's message, if any. */
  error?: string;
  /** Clients this process holds per node (all steps so far). */
  perNode: number[];
  ms: number;
}

export interface CapacityCollectArgs {
  /** Stop waiting once nothing arrived for this long, or after `timeoutMs` in any case. */
  quietMs: number;
  timeoutMs: number;
}

/** What one process saw of the broadcasts: counts, and first and last arrival per message. */
export interface CapacityCollectResult {
  clients: number;
  expected: number;
  delivered: number;
  duplicated: number;
  /** Wall-clock ms (epoch) of each message's first and last copy here; 0 if none arrived. */
  firstAt: number[];
  lastAt: number[];
}

const held: BenchClient[] = [];
/** The next client's index here (failed connections leave their index unused). */
let nextIndex = 0;
let publisher: BenchClient | undefined;
let seen = new Uint8Array(0);
let messages = 0;
let delivered = 0;
let duplicated = 0;
let firstAt = new Float64Array(0);
let lastAt = new Float64Array(0);
let lastArrival = 0;

/** Wall-clock time with sub-millisecond resolution, comparable between processes. */
export function wallNow(): number {
  return performance.timeOrigin + performance.now();
}

function onData(index: number, data: Buffer | string): void {
  if (messages === 0 || kindOf(data) !== Kind.Broadcast) return;
  const seq = readSeq(data, 1);
  if (seq < 0 || seq >= messages || index < 0) return;
  const now = wallNow();
  const slot = index * messages + seq;
  if (seen[slot] === 1) {
    duplicated++;
    return;
  }
  seen[slot] = 1;
  delivered++;
  lastArrival = now;
  if (firstAt[seq] === 0) firstAt[seq] = now;
  lastAt[seq] = now;
}

/** Opens `count` more clients, `concurrency` at a time; a failed connection is counted. */
export async function capacityConnect(args: CapacityConnectArgs): Promise<CapacityConnectResult> {
  const started = performance.now();
  let connected = 0;
  let failed = 0;
  let error: string | undefined;
  const base = nextIndex;
  nextIndex += args.count;
  for (let offset = 0; offset < args.count; offset += args.concurrency) {
    const batch: Promise<void>[] = [];
    for (let i = offset; i < Math.min(args.count, offset + args.concurrency); i++) {
      const global = args.from + i;
      const url = args.urls[global % args.urls.length]!;
      batch.push(
        connectClient('ws', url, base + i, false, onData, args.timeoutMs).then(
          (client) => {
            held.push(client);
            connected++;
          },
          (reason: unknown) => {
            failed++;
            error ??= reason instanceof Error ? reason.message : String(reason);
          },
        ),
      );
    }
    await Promise.all(batch);
    // A step that fails is the last: what failed tells the orchestrator to stop.
    if (failed > 0) break;
  }
  const perNode = args.urls.map(() => 0);
  for (const client of held) perNode[client.node] = (perNode[client.node] ?? 0) + 1;
  return {
    connected,
    failed,
    ...(error === undefined ? {} : { error }),
    perNode,
    ms: performance.now() - started,
  };
}

/** Starts counting `count` broadcasts to every client this process holds. */
export function capacityArm(count: number): boolean {
  messages = count;
  seen = new Uint8Array(nextIndex * count);
  firstAt = new Float64Array(count);
  lastAt = new Float64Array(count);
  delivered = 0;
  duplicated = 0;
  lastArrival = 0;
  return true;
}

/**
 * Connects a publisher to `url` and sends `count` broadcasts at `rate` per second; resolves with
 * the wall-clock time each was sent.
 */
export async function capacityPublish(args: {
  url: string;
  count: number;
  rate: number;
  size: number;
  timeoutMs: number;
}): Promise<number[]> {
  publisher ??= await connectClient('ws', args.url, -1, true, () => undefined, args.timeoutMs);
  const sentAt: number[] = [];
  const period = 1000 / args.rate;
  const started = performance.now();
  for (let seq = 0; seq < args.count; seq++) {
    const wait = started + seq * period - performance.now();
    if (wait > 1) await sleep(wait);
    sentAt.push(wallNow());
    publisher.send(payload('B', seq, args.size));
  }
  return sentAt;
}

/** Waits (bounded) until every held client had every broadcast, or nothing arrived for a while. */
export async function capacityCollect(args: CapacityCollectArgs): Promise<CapacityCollectResult> {
  const expected = held.length * messages;
  const deadline = performance.now() + args.timeoutMs;
  const waitStarted = wallNow();
  while (delivered < expected && performance.now() < deadline) {
    if (wallNow() - Math.max(lastArrival, waitStarted) > args.quietMs) break;
    await sleep(20);
  }
  const result: CapacityCollectResult = {
    clients: held.length,
    expected,
    delivered,
    duplicated,
    firstAt: [...firstAt],
    lastAt: [...lastAt],
  };
  messages = 0;
  return result;
}

/** Closes every client this process holds. */
export function capacityClose(): void {
  for (const client of held) client.close();
  held.length = 0;
  nextIndex = 0;
  publisher?.close();
  publisher = undefined;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
