// Throughput of ClusterBroker over node:cluster IPC, 'json' vs 'advanced' serialization.
// One worker publishes, another receives; the primary runs the hub and times each run.
// Run after `pnpm build`: node bench/tools/cluster-serialization.mjs
import cluster from 'node:cluster';
import { ClusterBroker, ClusterHub } from '@wscale/core';

const cases = [
  { size: 64, count: 50_000 },
  { size: 1024, count: 50_000 },
  { size: 16 * 1024, count: 10_000 },
];

if (cluster.isPrimary) {
  new ClusterHub();
  for (const serialization of ['json', 'advanced']) {
    for (const { size, count } of cases) {
      cluster.setupPrimary({ serialization, env: { ...process.env } });
      const receiver = cluster.fork({ ROLE: 'receive', SIZE: size, COUNT: count });
      await message(receiver, 'subscribed');
      const sender = cluster.fork({ ROLE: 'send', SIZE: size, COUNT: count });
      const started = process.hrtime.bigint();
      await message(receiver, 'received');
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      const perSecond = Math.round((count / ms) * 1000);
      console.log(
        `${serialization.padEnd(8)} ${String(size).padStart(6)} B  ${String(perSecond).padStart(7)} msg/s  ${((perSecond * size) / 2 ** 20).toFixed(1).padStart(6)} MiB/s`,
      );
      sender.kill();
      receiver.kill();
      await Promise.all([exit(sender), exit(receiver)]);
    }
  }
  process.exit(0);
} else {
  const broker = new ClusterBroker({ maxQueuedPublishes: Number.MAX_SAFE_INTEGER });
  const count = Number(process.env.COUNT);
  if (process.env.ROLE === 'receive') {
    let received = 0;
    await broker.subscribe('bench', () => {
      if (++received === count) process.send({ bench: 'received' });
    });
    process.send({ bench: 'subscribed' });
  } else {
    const payload = new Uint8Array(Number(process.env.SIZE)).fill(7);
    // Keep a window of publishes in flight: each resolves when written to the channel.
    const window = [];
    for (let i = 0; i < count; i++) {
      window.push(broker.publish('bench', payload));
      if (window.length === 256) await Promise.all(window.splice(0));
    }
    await Promise.all(window);
  }
}

function message(worker, kind) {
  return new Promise((resolve) => {
    const onMessage = (m) => {
      if (m?.bench !== kind) return;
      worker.off('message', onMessage);
      resolve();
    };
    worker.on('message', onMessage);
  });
}

function exit(worker) {
  return new Promise((resolve) => (worker.isDead() ? resolve() : worker.once('exit', resolve)));
}
