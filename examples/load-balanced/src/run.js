// @ts-check
// The command line of examples/haproxy and examples/nginx: their src/start.js is runStack() with
// their balancer.
import { startStack } from './stack.js';

/**
 * Starts the stack with the load balancer's address from the environment, prints where everything
 * is, and on SIGINT (Ctrl-C) or SIGTERM drains the nodes, stops every process and exits.
 * Environment: PORT (default 8080) and HOST (default 127.0.0.1) of the load balancer; REDIS_URL to
 * use a Redis you run, else a redis-server is started on REDIS_PORT (default: a free port).
 *
 * @param {{ balancer: import('./stack.js').Balancer }} options
 * @returns {Promise<import('./stack.js').Stack>}
 */
export async function runStack({ balancer }) {
  const stack = await startStack({
    balancer,
    port: Number(process.env.PORT ?? 8080),
    host: process.env.HOST ?? '127.0.0.1',
    redisUrl: process.env.REDIS_URL,
    redisPort: process.env.REDIS_PORT === undefined ? undefined : Number(process.env.REDIS_PORT),
    log: (line) => console.log(line),
  });

  console.log(`
  open ${stack.url} in a few tabs: each goes to the node holding the fewest connections
  redis: ${stack.redisUrl}
${stack.nodes.map((node) => `  ${node.id}: 127.0.0.1:${node.port}  pid ${node.pid}  (kill ${node.pid} to drain it, kill -9 ${node.pid} to crash it)`).join('\n')}
  Ctrl-C stops everything
`);

  for (const signal of /** @type {const} */ (['SIGINT', 'SIGTERM'])) {
    process.once(signal, async () => {
      console.log('stopping…');
      await stack.stop();
      process.exit(0);
    });
  }
  return stack;
}
