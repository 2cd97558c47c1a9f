// @ts-check
// How the shared stack (examples/load-balanced) runs this example's load balancer: HAProxy with
// ../haproxy.cfg as it is, its addresses given through the environment.
import { fileURLToPath } from 'node:url';

/** The load balancer's name, for logs. */
export const name = 'haproxy';

/** The binary; HAPROXY_BIN overrides it. */
export const binary = process.env.HAPROXY_BIN ?? 'haproxy';

/**
 * The command that runs HAProxy in the foreground in front of the given nodes.
 *
 * @param {{ host: string, port: number, nodes: string[], dir: string }} options
 *   `nodes` are `host:port`; `dir` is a temporary directory of this stack (HAProxy needs none)
 * @returns {{ args: string[], env: Record<string, string>, stopSignal: NodeJS.Signals }}
 */
export function command({ host, port, nodes }) {
  if (nodes.length !== 3) throw new Error('haproxy.cfg names exactly three nodes');
  const config = fileURLToPath(new URL('../haproxy.cfg', import.meta.url));
  return {
    // -db: stay in the foreground, logs to stderr; no daemon, no pid file, no master process.
    args: ['-f', config, '-db'],
    env: {
      WSCALE_LB_ADDR: host,
      WSCALE_LB_PORT: String(port),
      WSCALE_NODE1: nodes[0] ?? '',
      WSCALE_NODE2: nodes[1] ?? '',
      WSCALE_NODE3: nodes[2] ?? '',
    },
    // SIGTERM stops at once; SIGUSR1 would wait for every tunnel to end (an hour, for WebSockets).
    stopSignal: 'SIGTERM',
  };
}
