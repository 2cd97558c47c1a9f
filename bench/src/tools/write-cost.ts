// What a write to a socket costs the writing process, by how writes are gathered: the fan-out's
// floor, with nothing of wscale or `ws` around it. One process writes a 66-byte frame to each of
// many loopback TCP sockets; a child process reads them. Each tick writes `burst` frames to every
// socket, then yields; the writer's CPU (user + system) per frame is reported for
//
//   corked         every socket is corked on its first write of a tick, uncorked at the tick's end
//                  (wscale's `Connections.cork`, and the framed-once experiment's)
//   first at once  the first write of a tick goes out at once, the socket is corked for the rest
//   plain          every write goes out at once
//   to the handle  every write goes out at once, straight to the socket's libuv handle
//                  (`writeBuffer`, with a `WriteWrap` of the deprecated `process.binding`): Node's
//                  stream layer skipped, as no library should (see "Writing to the handle")
//
// Rounds interleaved, medians. It is how "first at once" was judged and left out (bench/ANALYSIS.md).
//
//   node dist/tools/write-cost.js [--smoke] [--sockets N] [--ticks T] [--rounds R] [--bursts 1,2,4,16]
import { fork } from 'node:child_process';
import { type AddressInfo, connect, createServer, type Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { median } from '../report/aggregate.js';

const { values } = parseArgs({
  options: {
    smoke: { type: 'boolean', default: false },
    sockets: { type: 'string' },
    ticks: { type: 'string' },
    rounds: { type: 'string' },
    bursts: { type: 'string', default: '1,2,4,16' },
    sink: { type: 'boolean', default: false },
  },
});

if (values.sink) {
  // The reading side, in a process of its own: its CPU is not the writer's.
  const server = createServer((socket) => socket.resume());
  server.listen(0, '127.0.0.1', () => process.send!((server.address() as AddressInfo).port));
  process.on('disconnect', () => process.exit(0));
} else {
  await main();
}

async function main(): Promise<void> {
  const SOCKETS = Number(values.sockets ?? (values.smoke ? 50 : 500));
  const TICKS = Number(values.ticks ?? (values.smoke ? 20 : 200));
  const ROUNDS = Number(values.rounds ?? (values.smoke ? 1 : 5));
  const BURSTS = values.bursts.split(',').map(Number);
  const FRAME = Buffer.alloc(66, 0x78);

  const sink = fork(fileURLToPath(import.meta.url), ['--sink']);
  try {
    const port = await new Promise<number>((resolve, reject) => {
      sink.once('message', (message) => resolve(message as number));
      sink.once('error', reject);
    });
    const sockets: Socket[] = [];
    for (let i = 0; i < SOCKETS; i++) {
      const socket = connect({ port, host: '127.0.0.1', noDelay: true });
      await new Promise((resolve, reject) => socket.once('connect', resolve).once('error', reject));
      sockets.push(socket);
    }

    /** Sockets corked in this tick, uncorked at its end; which tick it is; when each last wrote. */
    const corked: Socket[] = [];
    let tick = 0;
    let ending = false;
    const wroteIn = new Array<number>(SOCKETS).fill(-1);
    const endTick = () => {
      ending = false;
      tick++;
      for (const socket of corked) socket.uncork();
      corked.length = 0;
    };
    const endDue = () => {
      if (ending) return;
      ending = true;
      process.nextTick(endTick);
    };
    const cork = (socket: Socket) => {
      if (socket.writableCorked > 0) return;
      socket.cork();
      corked.push(socket);
      endDue();
    };
    const { WriteWrap, streamBaseState, kLastWriteWasAsync } = streamWrap();
    /** Writes to a handle that the kernel did not take at once, still going. */
    let handleWrites = 0;
    const strategies = {
      corked(burst: number) {
        for (let b = 0; b < burst; b++) {
          for (const socket of sockets) {
            cork(socket);
            socket.write(FRAME);
          }
        }
      },
      'first at once'(burst: number) {
        for (let b = 0; b < burst; b++) {
          for (let i = 0; i < SOCKETS; i++) {
            const socket = sockets[i]!;
            if (wroteIn[i] === tick) cork(socket);
            else {
              wroteIn[i] = tick;
              endDue();
            }
            socket.write(FRAME);
          }
        }
      },
      plain(burst: number) {
        for (let b = 0; b < burst; b++) for (const socket of sockets) socket.write(FRAME);
      },
      'to the handle'(burst: number) {
        for (let b = 0; b < burst; b++) {
          for (const socket of sockets) {
            const handle = (socket as unknown as { _handle: Handle })._handle;
            const request = new WriteWrap();
            request.handle = handle;
            request.oncomplete = () => void handleWrites--;
            request.async = false;
            const error = handle.writeBuffer(request, FRAME);
            if (error !== 0) throw new Error(`writeBuffer failed: ${error}`);
            if (streamBaseState[kLastWriteWasAsync] !== 0) handleWrites++;
          }
        }
      },
    };
    type Strategy = keyof typeof strategies;
    const names = Object.keys(strategies) as Strategy[];

    /** CPU µs of this process per frame written, over `TICKS` ticks of `burst` frames a socket. */
    const measure = async (strategy: Strategy, burst: number): Promise<number> => {
      const write = strategies[strategy];
      const start = process.cpuUsage();
      for (let t = 0; t < TICKS; t++) {
        write(burst);
        await new Promise((resolve) => setImmediate(resolve));
        // A socket that still holds bytes would make the next tick's writes cheaper: wait for it.
        while (handleWrites > 0 || sockets.some((socket) => socket.writableLength > 0)) {
          await new Promise((resolve) => setImmediate(resolve));
        }
      }
      const used = process.cpuUsage(start);
      return (used.user + used.system) / (TICKS * burst * SOCKETS);
    };

    console.log(
      `${SOCKETS} sockets, ${TICKS} ticks a round, ${ROUNDS} rounds interleaved (after one unmeasured)`,
    );
    console.log(
      `| frames a socket per tick | ${names.join(' µs | ')} µs | first at once × corked | to the handle × plain |`,
    );
    console.log(`| ---: | ${names.map(() => '---:').join(' | ')} | ---: | ---: |`);
    for (const burst of BURSTS) {
      const costs = new Map<Strategy, number[]>(names.map((name) => [name, []]));
      for (const name of names) await measure(name, burst);
      for (let r = 0; r < ROUNDS; r++) {
        const order = r % 2 === 0 ? names : [...names].reverse();
        for (const name of order) costs.get(name)!.push(await measure(name, burst));
      }
      const medians = names.map((name) => median(costs.get(name)!));
      const of = (name: Strategy) => medians[names.indexOf(name)]!;
      const ratios = [of('first at once') / of('corked'), of('to the handle') / of('plain')];
      console.log(
        `| ${burst} | ${[...medians, ...ratios].map((cost) => cost.toFixed(2)).join(' | ')} |`,
      );
    }
    for (const socket of sockets) socket.destroy();
  } finally {
    sink.kill();
  }
}

/** A libuv stream handle, as Node's `net.Socket` keeps it. */
interface Handle {
  writeBuffer(request: object, data: Buffer): number;
}

/** Node's internal write requests (the deprecated `process.binding`, for this measure only). */
function streamWrap(): {
  WriteWrap: new () => { handle: Handle; oncomplete: () => void; async: boolean };
  streamBaseState: Int32Array;
  kLastWriteWasAsync: number;
} {
  const node = process as unknown as { binding(name: string): unknown };
  return node.binding('stream_wrap') as ReturnType<typeof streamWrap>;
}
