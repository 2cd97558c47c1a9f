// The wscale chat demo. `pnpm demo` from the repository root runs it.
//
// The primary process forks WORKERS worker processes (default: the number of cores, at least 2)
// that share one port through node:cluster; each worker is a wscale node. With no broker
// configured they talk through the primary (node:cluster IPC, no external service); with
// REDIS_URL or NATS_URL set they use Redis or NATS instead. PORT picks the port (default 3000).
import cluster from 'node:cluster';
import { randomBytes } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { ClusterHub } from '@wscale/core';

const port = Number(process.env.PORT ?? 3000);
const workers = Math.max(2, Number(process.env.WORKERS ?? availableParallelism()));

if (cluster.isPrimary) {
  new ClusterHub();
  cluster.setupPrimary({ exec: new URL('./worker.js', import.meta.url).pathname });
  const env = { PORT: String(port), SESSION_SECRET: randomBytes(32).toString('hex') };
  const fork = () => cluster.fork(env);
  for (let i = 0; i < workers; i++) fork();
  let listening = 0;
  cluster.on('listening', () => {
    if (++listening === workers) {
      const broker = process.env.REDIS_URL
        ? 'Redis'
        : process.env.NATS_URL
          ? 'NATS'
          : 'node:cluster IPC';
      console.log(
        `chat demo: http://localhost:${port}  (${workers} nodes on ${broker}; Ctrl-C stops)`,
      );
    }
  });
  // The demo's "kill this node" button ends a worker; start a new one in its place.
  let shuttingDown = false;
  cluster.on('exit', () => {
    if (!shuttingDown) fork();
  });
  for (const signal of ['SIGINT', 'SIGTERM']) {
    process.once(signal, () => {
      shuttingDown = true;
      for (const worker of Object.values(cluster.workers ?? {})) worker?.kill('SIGTERM');
    });
  }
}
