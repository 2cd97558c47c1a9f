import { spawnSync } from 'node:child_process';
import { createServer, type Server } from 'node:net';

/**
 * Test servers take ports below the range the OS hands out by itself (32768 and up on Linux, for
 * `listen(0)` and outgoing sockets), in a slice of their own per test worker. A server stopped for
 * an outage test keeps its port free for its restart: no other worker's server, and no client
 * socket, is given it meanwhile.
 */
const FIRST_PORT = 10_000;
const SLICE = 500;
const SLICES = 44; // up to 32 000
const slice = (Number(process.env.VITEST_POOL_ID ?? process.pid) % SLICES) * SLICE + FIRST_PORT;
/** The next port of this worker's slice to try (a file's servers never take one port twice). */
let next = 0;

/** A free TCP port on 127.0.0.1 (free when asked: a server started on it may still race). */
export async function freePort(): Promise<number> {
  const [port] = await freePorts(1);
  return port!;
}

/**
 * `count` distinct free TCP ports on 127.0.0.1, from this worker's slice. Each is held until all
 * are picked, and the slice is walked forward: ports asked for one after another never come back
 * the same (a server given one port twice, for clients and for its cluster routes, cannot start).
 */
export async function freePorts(count: number): Promise<number[]> {
  const servers: Server[] = [];
  try {
    const ports: number[] = [];
    for (let tried = 0; ports.length < count; tried++) {
      if (tried === SLICE) throw new Error(`no ${count} free ports from ${slice}`);
      const port = slice + (next++ % SLICE);
      const server = createServer();
      if (await listening(server, port)) {
        servers.push(server);
        ports.push(port);
      }
    }
    return ports;
  } finally {
    await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
  }
}

/** Whether `server` could listen on `port` (it is left listening if so). */
function listening(server: Server, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    server.unref();
    server.once('error', () => resolve(false));
    server.listen({ port, host: '127.0.0.1', exclusive: true }, () => resolve(true));
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
