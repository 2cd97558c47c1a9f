/**
 * The node:cluster primary of the `wscale-cluster` implementation: runs the `ClusterHub` (the
 * broker) and forks one worker per node, each a node process ({@link ./node-main.ts}) on a port of
 * its own. Relays the orchestrator's requests to the worker they name, and answers the ones for
 * itself (its CPU time is the broker's).
 */
import cluster, { type Worker } from 'node:cluster';
import { fileURLToPath } from 'node:url';
import { ClusterHub } from '@wscale/core';
import { isReady, isReply, send, serveRequests } from '../ipc.js';
import { CONFIG_ENV, readConfig } from './config.js';
import { ProcessStats } from './process-stats.js';

const config = readConfig();
const stats = new ProcessStats();
const hub = new ClusterHub();

cluster.setupPrimary({
  exec: fileURLToPath(new URL('./node-main.js', import.meta.url)),
  execArgv: process.execArgv,
});
const workers: Worker[] = [];
for (let node = 0; node < config.nodes; node++) {
  const worker = cluster.fork({ [CONFIG_ENV]: JSON.stringify({ ...config, node }) });
  worker.on('message', (message: unknown) => {
    if (isReady(message) || isReply(message)) send(message);
  });
  workers.push(worker);
}

// The workers' own channels close with ours, and they exit then; make sure they do.
process.on('disconnect', () => {
  for (const worker of workers) worker.process.kill('SIGKILL');
});
serveRequests(
  {
    sample: () => stats.sample(),
    settle: () => stats.settle(),
    stop: async () => {
      await Promise.all(
        workers.map(
          (worker) =>
            new Promise<void>((resolve) => {
              if (worker.isDead()) return resolve();
              const timer = setTimeout(() => {
                worker.process.kill('SIGKILL');
                resolve();
              }, 8000);
              worker.once('exit', () => {
                clearTimeout(timer);
                resolve();
              });
              worker.send({ bench: 1, id: 0, op: 'stop' });
            }),
        ),
      );
      await hub.close();
      setTimeout(() => process.exit(0), 10).unref();
      return true;
    },
  },
  (request) => {
    if (request.node === undefined) return false;
    workers[request.node]?.send(request);
    return true;
  },
);
