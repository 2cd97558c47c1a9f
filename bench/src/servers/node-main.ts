/**
 * A node process: runs one implementation's server, says `ready` with its port, and answers the
 * orchestrator's samples (its own CPU time and memory, so the load generator's work is never
 * counted as the server's). Exits when told to stop or when its parent goes away.
 */
import { writeHeapSnapshot } from 'node:v8';
import { send, serveRequests } from '../ipc.js';
import { startBareWs } from './bare-ws-server.js';
import { type NodeConfig, type RunningServer, readConfig } from './config.js';
import { ProcessStats } from './process-stats.js';
import { Profiler } from './profiler.js';
import { startSocketIo } from './socketio-server.js';
import { startWsRedis } from './ws-redis-server.js';
import { startWscale } from './wscale-server.js';

function start(config: NodeConfig): Promise<RunningServer> {
  if (config.impl.startsWith('wscale-')) return startWscale(config);
  if (config.impl.startsWith('socketio-')) return startSocketIo(config);
  if (config.impl === 'ws-redis') return startWsRedis(config);
  if (config.impl === 'ws-redis-preframed') return startWsRedis(config, { preframed: true });
  if (config.impl === 'bare-ws') return startBareWs(config);
  throw new Error(`unknown implementation ${config.impl}`);
}

const config = readConfig();
const stats = new ProcessStats();
const profiler = new Profiler();
let server: RunningServer | undefined;

serveRequests({
  sample: () => stats.sample(),
  settle: () => stats.settle(),
  dropClients: (limit) => server?.dropClients?.(Number(limit)) ?? 0,
  counts: () => server?.counts?.(),
  heapSnapshot: (file) => writeHeapSnapshot(String(file)),
  profileStart: () => profiler.start(),
  profileStop: (file) => profiler.stop(String(file)),
  stop: async () => {
    await server?.close();
    setTimeout(() => process.exit(0), 10).unref();
    return true;
  },
});

start(config).then(
  (running) => {
    server = running;
    send({ bench: 1, ready: true, node: config.node, port: running.port, pid: process.pid });
  },
  (error: unknown) => {
    console.error(`[node ${config.node}] failed to start:`, error);
    process.exit(1);
  },
);
