/**
 * How long `NatsHistory.read` takes when many readers want the same recent entries at once, as
 * in a resume storm: a room of `--entries` entries interleaved with another room's, then
 * `--readers` reads of its last `--gap` entries from a fresh instance, one started per millisecond
 * (with `--spread`, reader `i` reads from `i % gap` entries further on: nearby positions, as
 * clients that left at slightly different moments). Reports the reads' times and the CPU they
 * cost the reading process and nats-server. Starts its own nats-server (JetStream, temporary
 * store) and stops it by pid.
 *
 *   node bench/dist/tools/nats-history-reads.js [--entries 300] [--gap 20] [--readers 1,50,500]
 *     [--spread]
 */
import { parseArgs } from 'node:util';
import { NatsHistory } from '@wscale/nats';
import { Processes } from '../harness/processes.js';
import { cpuMicrosOf, startNats } from '../harness/services.js';
import { percentiles } from '../load/percentiles.js';

const { values } = parseArgs({
  options: {
    entries: { type: 'string', default: '300' },
    gap: { type: 'string', default: '20' },
    readers: { type: 'string', default: '1,50,500' },
    spread: { type: 'boolean', default: false },
  },
});
const entries = Number(values.entries);
const gap = Number(values.gap);
const readerCounts = values.readers.split(',').map(Number);

const processes = new Processes(false);
const nats = await startNats(processes);
try {
  const writer = new NatsHistory({ servers: nats.url, timeoutMs: 30_000 });
  let last = await writer.position('room');
  for (let i = 0; i < entries; i++) {
    await writer.append('other', Buffer.from('o'));
    last = await writer.append('room', Buffer.from(`m${i}`));
  }
  await writer.close();
  for (const readers of readerCounts) {
    const reader = new NatsHistory({ servers: nats.url, timeoutMs: 30_000 });
    await reader.position('room');
    const took = new Float64Array(readers);
    let done = 0;
    const started = performance.now();
    const ownCpu = process.cpuUsage();
    const serverCpu = cpuMicrosOf(nats.pid) ?? 0;
    await Promise.all(
      Array.from({ length: readers }, async (_, i) => {
        await new Promise((resolve) => setTimeout(resolve, i));
        const start = performance.now();
        const want = values.spread ? gap - (i % gap) : gap;
        const read = await reader.read('room', { offset: last.offset - want, epoch: last.epoch });
        if (!read.ok || read.entries.length !== want) throw new Error('a read came back short');
        took[done++] = performance.now() - start;
      }),
    );
    const all = performance.now() - started;
    const { user, system } = process.cpuUsage(ownCpu);
    const server = (cpuMicrosOf(nats.pid) ?? 0) - serverCpu;
    const { p50, p99 } = percentiles(took, done);
    console.log(
      `${readers} reads of ${values.spread ? `up to ${gap}` : gap}: all done in ${all.toFixed(0)} ms, ` +
        `p50 ${p50.toFixed(1)} ms, p99 ${p99.toFixed(1)} ms, CPU µs per read: ` +
        `reader ${((user + system) / readers).toFixed(0)}, nats-server ${(server / readers).toFixed(0)}`,
    );
    await reader.close();
  }
} finally {
  await nats.stop();
  await processes.stopAll();
}
