import { spawnSync } from 'node:child_process';
import { createServer } from 'node:net';

/** A free TCP port on 127.0.0.1 (free when asked: a server started on it may still race). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
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
