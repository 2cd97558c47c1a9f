// @ts-check
// How the shared stack (examples/load-balanced) runs this example's load balancer: nginx with
// ../nginx.conf, its ${WSCALE_…} placeholders filled in, from a temporary prefix directory.
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** The load balancer's name, for logs. */
export const name = 'nginx';

/** The binary; NGINX_BIN overrides it. */
export const binary = process.env.NGINX_BIN ?? 'nginx';

/**
 * Writes the configuration into `dir` and returns the command that runs nginx in the foreground
 * from there, in front of the given nodes.
 *
 * @param {{ host: string, port: number, nodes: string[], dir: string }} options
 *   `nodes` are `host:port`; `dir` is a temporary directory of this stack
 * @returns {{ args: string[], env: Record<string, string>, stopSignal: NodeJS.Signals }}
 */
export function command({ host, port, nodes, dir }) {
  if (nodes.length !== 3) throw new Error('nginx.conf names exactly three nodes');
  /** @type {Record<string, string>} */
  const values = {
    WSCALE_LB_ADDR: host.includes(':') ? `[${host}]` : host,
    WSCALE_LB_PORT: String(port),
    WSCALE_NODE1: nodes[0] ?? '',
    WSCALE_NODE2: nodes[1] ?? '',
    WSCALE_NODE3: nodes[2] ?? '',
    WSCALE_USER: workerUser(),
  };
  const template = readFileSync(new URL('../nginx.conf', import.meta.url), 'utf8');
  const config = template.replace(/\$\{(WSCALE_\w+)\}/g, (_, key) => {
    if (!(key in values)) throw new Error(`nginx.conf: unknown placeholder ${key}`);
    return /** @type {string} */ (values[key]);
  });
  mkdirSync(join(dir, 'tmp'), { recursive: true });
  writeFileSync(join(dir, 'nginx.conf'), config);
  return {
    // -p: every relative path is under dir; -c: the generated configuration.
    args: ['-p', `${dir}/`, '-c', join(dir, 'nginx.conf')],
    env: {},
    // SIGTERM is nginx's fast shutdown; SIGQUIT would wait for every WebSocket to end.
    stopSignal: 'SIGTERM',
  };
}

/**
 * nginx started as root runs its workers as `nobody` and a group of the same name, which Debian
 * does not have: name nobody's real group. As any other user the directive is not needed.
 */
function workerUser() {
  if (process.getuid?.() !== 0) return '';
  try {
    const group = execFileSync('id', ['-gn', 'nobody'], { encoding: 'utf8' }).trim();
    return `user nobody ${group};`;
  } catch {
    return '';
  }
}
