import { spawnSync } from 'node:child_process';
import { createServer, type Server } from 'node:net';

/** A free TCP port on 127.0.0.1 (free when asked: a server started on it may still race). */
export async function freePort(): Promise<number> {
  const [port] = await freePorts(1);
  return port!;
}

/**
 * `count` distinct free TCP ports on 127.0.0.1. Each is held until all are picked: ports asked for
 * one after another may come back the same once the first is let go (a server given one port twice,
 * for clients and for its cluster routes, cannot start).
 */
export async function freePorts(count: number): Promise<number[]> {
  const servers: Server[] = [];
  try {
    const ports: number[] = [];
    for (let i = 0; i < count; i++) {
      const server = createServer();
      servers.push(server);
      ports.push(await listening(server));
    }
    return ports;
  } finally {
    await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
  }
}

function listening(server: Server): Promise<number> {
  return new Promise((resolve, reject) => {
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      if (typeof address === 'object' && address) resolve(address.port);
      else reject(new Error('no port'));
    });
  });
}

/**
 * Whether a service's binaries can be run here. A missing one means its suites are skipped, unless
 * `WSCALE_REQUIRE_SERVICES=1` (CI sets it): then it throws, so a missing install fails loudly.
 */
export function serviceAvailable(...binaries: string[]): boolean {
  const missing = binaries.filter(
    (binary) => spawnSync(binary, ['--version'], { stdio: 'ignore' }).status !== 0,
  );
  if (missing.length === 0) return true;
  if (process.env.WSCALE_REQUIRE_SERVICES === '1') {
    throw new Error(`WSCALE_REQUIRE_SERVICES=1 but ${missing.join(', ')} cannot be run`);
  }
  return false;
}
