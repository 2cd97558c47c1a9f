import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Processes, Started } from './processes.js';

/** Whether a program can be run here (`<name> --version` exits 0). */
export function hasBinary(name: string): boolean {
  return spawnSync(name, ['--version'], { stdio: 'ignore' }).status === 0;
}

/** The first line `<name> --version` prints. */
export function versionOf(name: string): string | undefined {
  const result = spawnSync(name, ['--version'], { encoding: 'utf8' });
  return result.status === 0 ? `${result.stdout}${result.stderr}`.trim().split('\n')[0] : undefined;
}

/** A free TCP port on 127.0.0.1 (free when asked; a server started on it may still race). */
export function freePort(): Promise<number> {
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

const TICKS_PER_SECOND = 100;

/** CPU time (user + system) a process used so far, in microseconds, from /proc (Linux). */
export function cpuMicrosOf(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // Fields 14 and 15 of stat (utime, stime), counted from the state field (3).
    const ticks = Number(fields[11]) + Number(fields[12]);
    return (ticks * 1_000_000) / TICKS_PER_SECOND;
  } catch {
    return undefined;
  }
}

/** A broker server process of our own, on a free loopback port with a temporary directory. */
export interface Service {
  name: string;
  url: string;
  pid: number;
  version: string | undefined;
  /** nats-server's monitoring endpoint (`/varz`), where it counts the messages it received. */
  monitorUrl?: string;
  stop(): Promise<void>;
}

function waitForOutput(started: Started, text: string, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const { child } = started;
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`${started.name} not ready in ${timeoutMs} ms: ${started.output()}`));
    }, timeoutMs);
    const check = () => {
      if (started.output().includes(text)) {
        cleanup();
        resolve();
      }
    };
    const onExit = () => {
      cleanup();
      reject(new Error(`${started.name} exited: ${started.output()}`));
    };
    const cleanup = () => {
      clearTimeout(timer);
      child.stdout?.off('data', check);
      child.stderr?.off('data', check);
      child.off('exit', onExit);
    };
    child.stdout?.on('data', check);
    child.stderr?.on('data', check);
    child.once('exit', onExit);
    check();
  });
}

async function launch(
  processes: Processes,
  name: string,
  command: string,
  args: (port: number, dir: string) => string[],
  readyText: string,
  url: (port: number) => string,
): Promise<Service> {
  let lastError: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    const dir = mkdtempSync(join(tmpdir(), `wscale-bench-${name}-`));
    const started = processes.spawn(name, command, args(port, dir));
    try {
      await waitForOutput(started, readyText, 10_000);
      return {
        name,
        url: url(port),
        pid: started.child.pid!,
        version: versionOf(command),
        async stop() {
          await processes.stop(started, 3000);
          rmSync(dir, { recursive: true, force: true });
        },
      };
    } catch (error) {
      lastError = error;
      await processes.stop(started, 0, 'SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    }
  }
  throw lastError;
}

/** Starts `redis-server` with no persistence. */
export function startRedis(processes: Processes): Promise<Service> {
  return launch(
    processes,
    'redis',
    'redis-server',
    (port, dir) => [
      '--port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--save',
      '',
      '--appendonly',
      'no',
      '--dir',
      dir,
      '--loglevel',
      'notice',
    ],
    'Ready to accept connections',
    (port) => `redis://127.0.0.1:${port}`,
  );
}

/**
 * Starts `nats-server` with JetStream (the churn scenario's state store and history use it) and
 * its monitoring endpoint.
 */
export async function startNats(processes: Processes): Promise<Service> {
  const monitor = await freePort();
  const service = await launch(
    processes,
    'nats',
    'nats-server',
    (port, dir) => [
      '-a',
      '127.0.0.1',
      '-p',
      String(port),
      '-m',
      String(monitor),
      '-js',
      '-sd',
      dir,
    ],
    'Server is ready',
    (port) => `nats://127.0.0.1:${port}`,
  );
  return { ...service, monitorUrl: `http://127.0.0.1:${monitor}` };
}

/** Messages nats-server received so far (its `/varz` `in_msgs`), or undefined. */
export async function natsMessagesIn(service: Service): Promise<number | undefined> {
  if (service.monitorUrl === undefined) return undefined;
  try {
    const response = await fetch(`${service.monitorUrl}/varz`, {
      signal: AbortSignal.timeout(5000),
    });
    const varz = (await response.json()) as { in_msgs?: number };
    return varz.in_msgs;
  } catch {
    return undefined;
  }
}
