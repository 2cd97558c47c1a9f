// @ts-check
// Starts the whole stack of examples/haproxy and examples/nginx: a redis-server of its own (or
// REDIS_URL's), three wscale nodes (src/node.js) and the load balancer the caller names in front.
// Every process is started by this file and stopped by the pid it got, never by name.
// src/run.js is the examples' command line; the tests call startStack() directly.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { get } from 'node:http';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Child } from './child.js';

const NODE_SCRIPT = fileURLToPath(new URL('./node.js', import.meta.url));
const NODE_COUNT = 3;

/**
 * How the stack runs a load balancer: each example's `src/balancer.js` exports these.
 *
 * @typedef {object} Balancer
 * @property {string} name its name, for logs and the temporary directory
 * @property {string} binary the executable to run
 * @property {(options: BalancerOptions) => BalancerCommand} command the arguments that run it in
 *   the foreground in front of the given nodes
 */

/**
 * @typedef {object} BalancerOptions
 * @property {string} host where the balancer listens
 * @property {number} port where the balancer listens
 * @property {string[]} nodes `host:port` of each node
 * @property {string} dir a temporary directory of this stack, removed when it stops
 */

/**
 * @typedef {object} BalancerCommand
 * @property {string[]} args
 * @property {Record<string, string>} env added to the environment
 * @property {NodeJS.Signals} stopSignal the signal that stops it at once
 */

/**
 * @typedef {object} StackOptions
 * @property {Balancer} balancer the load balancer in front of the nodes
 * @property {number} [port] the load balancer's port (default: a free port)
 * @property {string} [host] the load balancer's address (default: '127.0.0.1')
 * @property {string | undefined} [redisUrl] use this Redis instead of starting one
 * @property {number | undefined} [redisPort] port of the redis-server the stack starts (default: a free port)
 * @property {string} [sessionSecret] the nodes' shared secret (default: a random one)
 * @property {(line: string) => void} [log] every output line of every process (default: none)
 * @property {number} [startTimeoutMs] how long each process may take to be ready (default: 20000)
 */

/**
 * @typedef {object} NodeHandle
 * @property {string} id the node's id (`node-1`…), as its welcome messages name it
 * @property {number} port where it listens, on 127.0.0.1
 * @property {number} pid its process id
 * @property {() => Promise<void>} kill SIGKILLs it, as a crash would, and waits until it is gone
 */

/**
 * @typedef {object} Stack
 * @property {string} url `http://host:port` of the load balancer
 * @property {string} wsUrl `ws://host:port/ws` through the load balancer
 * @property {string} redisUrl the Redis the nodes use
 * @property {NodeHandle[]} nodes
 * @property {() => Promise<void>} stop drains the nodes, then stops the balancer and Redis
 */

/**
 * Starts Redis (unless `redisUrl` is given), three nodes and the load balancer, and resolves once
 * a health check through the balancer succeeds. On failure, whatever was started is stopped.
 *
 * @param {StackOptions} options
 * @returns {Promise<Stack>}
 */
export async function startStack(options) {
  const { balancer } = options;
  const host = options.host ?? '127.0.0.1';
  const log = options.log ?? (() => {});
  const timeoutMs = options.startTimeoutMs ?? 20_000;
  const dir = mkdtempSync(join(tmpdir(), `wscale-${balancer.name}-`));
  /** @type {Child[]} */
  const children = [];
  const killAll = () => {
    for (const child of children) child.killNow();
  };
  process.on('exit', killAll);
  /** @type {Promise<void> | undefined} */
  let stopping;
  const stop = () => {
    stopping ??= (async () => {
      const [lb, redis, ...nodes] = [
        children.find((c) => c.role === 'lb'),
        children.find((c) => c.role === 'redis'),
        ...children.filter((c) => c.role === 'node'),
      ];
      // SIGINT: the whole stack stops, so the nodes drain at once (SIGTERM would first wait for
      // the load balancer to take each node out, as in a rolling deploy).
      await Promise.all(nodes.map((node) => node.stop('SIGINT', 10_000)));
      await lb?.stop(lb.stopSignal, 5000);
      await redis?.stop('SIGTERM', 5000);
      process.off('exit', killAll);
      rmSync(dir, { recursive: true, force: true });
    })();
    return stopping;
  };

  try {
    let redisUrl = options.redisUrl;
    if (redisUrl === undefined) {
      const port = options.redisPort ?? (await freePort());
      const redis = new Child('redis', 'redis', 'redis-server', log, {
        args: ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
        cwd: dir,
      });
      children.push(redis);
      await redis.waitForLine(/Ready to accept connections/, timeoutMs);
      redisUrl = `redis://127.0.0.1:${port}`;
    }

    const sessionSecret = options.sessionSecret ?? randomBytes(32).toString('hex');
    const starting = [];
    for (let i = 1; i <= NODE_COUNT; i++) {
      const id = `node-${i}`;
      const child = new Child(id, 'node', process.execPath, log, {
        args: [NODE_SCRIPT],
        // PORT=0: the node picks a free port and reports it in its "ready" line.
        env: {
          NODE_ID: id,
          PORT: '0',
          HOST: '127.0.0.1',
          REDIS_URL: redisUrl,
          SESSION_SECRET: sessionSecret,
        },
      });
      children.push(child);
      starting.push(
        child.waitForLine(/^ready (\S+) (\d+)$/, timeoutMs).then((match) => ({
          id,
          port: Number(match[2]),
          pid: /** @type {number} */ (child.pid),
          kill: () => child.stop('SIGKILL', 0),
        })),
      );
    }
    const nodes = await Promise.all(starting);

    const port = options.port ?? (await freePort());
    const lbCommand = balancer.command({
      host,
      port,
      nodes: nodes.map((node) => `127.0.0.1:${node.port}`),
      dir,
    });
    const lb = new Child(balancer.name, 'lb', balancer.binary, log, {
      args: lbCommand.args,
      env: lbCommand.env,
      stopSignal: lbCommand.stopSignal,
    });
    children.push(lb);
    const url = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
    await lb.until(() => healthy(`${url}/health`), timeoutMs);

    return { url, wsUrl: `${url.replace(/^http/, 'ws')}/ws`, redisUrl, nodes, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

/** @param {string} url */
function healthy(url) {
  return new Promise((resolve) => {
    const request = get(url, { timeout: 1000 }, (response) => {
      response.resume();
      resolve(response.statusCode === 200);
    });
    request.on('error', () => resolve(false));
    request.on('timeout', () => request.destroy());
  });
}

/** @returns {Promise<number>} a TCP port free on 127.0.0.1 right now */
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() =>
        typeof address === 'object' && address
          ? resolve(address.port)
          : reject(new Error('no port')),
      );
    });
  });
}
