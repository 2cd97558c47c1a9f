import { type Socket, connect as tcpConnect } from 'node:net';
import { performance } from 'node:perf_hooks';
import { createClient, type WelcomeInfo } from '@wscale/client';
import { WebSocket } from 'ws';
import { ROOM } from '../wire.js';

/**
 * The churn soak's clients: thousands of short lives against one node, well-behaved and not. Each
 * cycle is one client's whole life; every wait is bounded, and a client that misbehaves on purpose
 * is torn down by us if the node has not closed it within the bound.
 */

export interface SoakArgs {
  url: string;
  cycles: number;
  /** Cycles run at once. */
  concurrency: number;
  /** The extra rooms clients join and leave (`soak:0` … `soak:N-1`). */
  rooms: number;
  /** Bound of one cycle's waits, ms. */
  stepMs: number;
  /** Bound of the whole soak, ms. */
  timeoutMs: number;
}

/** Kinds of cycle, in the proportions of {@link MIX}. */
export type SoakKind =
  /** `@wscale/client`: connect, join the room and a soak room, leave it, close. */
  | 'v1'
  /** `@wscale/client`: connect, join, lose the connection, resume, close. */
  | 'resume'
  /** A raw `ws` client: connect, get put in the room, close. */
  | 'raw'
  /** Upgrade, then a frame that breaks RFC 6455 (invalid UTF-8, unmasked, reserved bits…). */
  | 'malformed'
  /** `wscale.v1` hello and join, then a stream of operations while never reading a byte. */
  | 'silent'
  /** Upgrade as `wscale.v1`, half a hello, then gone without a close. */
  | 'vanish';

/** One cycle in ten of each bad kind; the well-behaved kinds take the rest. */
const MIX: SoakKind[] = [
  'v1',
  'v1',
  'v1',
  'resume',
  'resume',
  'raw',
  'raw',
  'malformed',
  'silent',
  'vanish',
];

export interface SoakResult {
  /** Cycles run, per kind. */
  cycles: Record<SoakKind, number>;
  /** Cycles that did not end as they should (a join not acknowledged, no resume, …). */
  failures: number;
  /** The first few failures, for the log. */
  failureSamples: string[];
  ms: number;
}

export async function soak(args: SoakArgs): Promise<SoakResult> {
  const started = performance.now();
  const deadline = started + args.timeoutMs;
  const cycles = Object.fromEntries(MIX.map((kind) => [kind, 0])) as Record<SoakKind, number>;
  const failureSamples: string[] = [];
  let failures = 0;
  let next = 0;
  const worker = async () => {
    while (next < args.cycles && performance.now() < deadline) {
      const index = next++;
      const kind = MIX[index % MIX.length]!;
      cycles[kind]++;
      try {
        await CYCLES[kind](args, index);
      } catch (error) {
        failures++;
        if (failureSamples.length < 5) failureSamples.push(`${kind} #${index}: ${String(error)}`);
      }
    }
  };
  await Promise.all(Array.from({ length: args.concurrency }, worker));
  if (next < args.cycles) {
    throw new Error(`soak: ${next} of ${args.cycles} cycles in ${args.timeoutMs} ms`);
  }
  return { cycles, failures, failureSamples, ms: performance.now() - started };
}

const CYCLES: Record<SoakKind, (args: SoakArgs, index: number) => Promise<void>> = {
  v1: async (args, index) => {
    const { client } = v1Client(args);
    try {
      const room = `soak:${index % args.rooms}`;
      await client.join(ROOM);
      await client.join(room);
      await client.leave(room);
    } finally {
      await client.close();
    }
  },
  resume: async (args, index) => {
    const { client, socket } = v1Client(args);
    try {
      await client.join(`soak:${index % args.rooms}`);
      const resumed = new Promise<WelcomeInfo>((resolve) => {
        client.on('welcome', (info) => resolve(info));
      });
      socket()?.terminate();
      const info = await bounded(resumed, args.stepMs, 'resume');
      if (!info.resumed) throw new Error(`not resumed: ${info.reason}`);
    } finally {
      await client.close();
    }
  },
  raw: async (args) => {
    const ws = new WebSocket(args.url, { perMessageDeflate: false });
    try {
      // The bench server greets a raw client once it is in the room.
      await bounded(
        new Promise((resolve, reject) => ws.once('message', resolve).once('error', reject)),
        args.stepMs,
        'greeting',
      );
    } finally {
      ws.terminate();
    }
  },
  malformed: async (args, index) => {
    const socket = await upgraded(args, false);
    const bad = BAD_FRAMES[index % BAD_FRAMES.length]!;
    socket.write(bad);
    // The node must close it by itself.
    await bounded(closed(socket), args.stepMs, 'the node to close a malformed connection');
  },
  silent: async (args) => {
    const socket = await upgraded(args, true);
    socket.pause();
    socket.write(maskedText('{"t":"hello"}'));
    socket.write(maskedText(`{"t":"join","id":1,"r":"${ROOM}"}`));
    const ping = maskedText('{"t":"ping"}');
    // A few hundred KB of operations whose answers are never read.
    socket.write(Buffer.concat(Array.from({ length: 20_000 }, () => ping)));
    // A paused socket never reports the node's FIN: give the node a moment to act, then go.
    await bounded(closed(socket), Math.min(args.stepMs, 2000), 'close').catch(() => undefined);
    socket.destroy();
  },
  vanish: async (args) => {
    const socket = await upgraded(args, true);
    socket.write(maskedText('{"t":"hello","rooms":{}}').subarray(0, 9));
    socket.destroy();
  },
};

function v1Client(args: SoakArgs) {
  let current: WebSocket | undefined;
  // The client's socket, so the cycle can cut it the way a network would.
  class Tracked extends WebSocket {
    constructor(url: string | URL, protocols?: string | string[]) {
      super(url, protocols, { perMessageDeflate: false });
      current = this;
    }
  }
  const client = createClient(args.url, {
    WebSocket: Tracked as unknown as typeof globalThis.WebSocket,
    pingIntervalMs: 0,
    network: false,
    backoffBaseMs: 10,
    backoffCapMs: 100,
    connectTimeoutMs: args.stepMs,
    requestTimeoutMs: args.stepMs,
  });
  return { client, socket: () => current };
}

/** A TCP connection upgraded to WebSocket by hand, as `wscale.v1` or raw. */
async function upgraded(args: SoakArgs, v1: boolean): Promise<Socket> {
  const { hostname, port } = new URL(args.url);
  const socket = tcpConnect({ host: hostname, port: Number(port) });
  socket.on('error', () => undefined);
  const request = [
    'GET / HTTP/1.1',
    `Host: ${hostname}:${port}`,
    'Upgrade: websocket',
    'Connection: Upgrade',
    'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==',
    'Sec-WebSocket-Version: 13',
    ...(v1 ? ['Sec-WebSocket-Protocol: wscale.v1'] : []),
  ];
  socket.write(`${request.join('\r\n')}\r\n\r\n`);
  await bounded(
    new Promise<void>((resolve, reject) => {
      socket.once('data', () => resolve()).once('error', reject);
    }),
    args.stepMs,
    'the upgrade response',
  );
  return socket;
}

const MASK = [0x11, 0x22, 0x33, 0x44] as const;

function maskedText(text: string): Buffer {
  const payload = Buffer.from(text);
  // Only short frames: a 7-bit length.
  const frame = Buffer.alloc(6 + payload.length);
  frame[0] = 0x81;
  frame[1] = 0x80 | payload.length;
  frame.set(MASK, 2);
  for (let i = 0; i < payload.length; i++) frame[6 + i] = payload[i]! ^ MASK[i % 4]!;
  return frame;
}

/** Frames a node must refuse: invalid UTF-8, unmasked, reserved bit, reserved opcode, too long. */
const BAD_FRAMES = [
  Buffer.from([0x81, 0x82, ...MASK, 0xc3 ^ MASK[0], 0x28 ^ MASK[1]]),
  Buffer.from([0x81, 0x02, 0x68, 0x69]),
  Buffer.from([0xc1, 0x80, ...MASK]),
  Buffer.from([0x83, 0x80, ...MASK]),
  Buffer.from([0x82, 0xff, 0, 0, 0, 1, 0, 0, 0, 0, ...MASK]),
];

function closed(socket: Socket): Promise<void> {
  return new Promise((resolve) => {
    if (socket.destroyed) resolve();
    else socket.once('close', () => resolve());
  });
}

function bounded<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no ${what} within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}
