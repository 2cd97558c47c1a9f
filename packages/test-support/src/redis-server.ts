import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe } from 'vitest';
import { freePort, serviceAvailable } from './free-port.js';

const run = promisify(execFile);

/** Whether `redis-server` and `redis-cli` can be run here (see {@link serviceAvailable}). */
export function redisAvailable(): boolean {
  return serviceAvailable('redis-server', 'redis-cli');
}

/** `describe`, skipped when Redis is not installed (and CI did not require it). */
export function describeRedis(name: string, body: () => void): void {
  describe.skipIf(!redisAvailable())(name, body);
}

/**
 * One `redis-server` process of our own on 127.0.0.1: no persistence, its own temporary
 * directory. `stop()` kills it by pid (like a crash); `start()` brings it back on the same port.
 */
export class RedisServer {
  readonly port: number;
  readonly dir: string;
  readonly #args: string[];
  #process: ChildProcess | undefined;

  private constructor(port: number, dir: string, args: string[]) {
    this.port = port;
    this.dir = dir;
    this.#args = args;
  }

  /** Starts a server on a free port, trying other ports if one was taken meanwhile. */
  static async launch(args: (port: number) => Promise<string[]> | string[] = () => []) {
    let lastError: unknown;
    for (let attempt = 0; attempt < 3; attempt++) {
      const port = await freePort();
      const dir = mkdtempSync(join(tmpdir(), 'wscale-redis-'));
      const server = new RedisServer(port, dir, await args(port));
      try {
        await server.start();
        return server;
      } catch (error) {
        lastError = error;
        rmSync(dir, { recursive: true, force: true });
      }
    }
    throw lastError;
  }

  get pid(): number | undefined {
    return this.#process?.pid;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  /** Starts the process (again) and resolves once it accepts connections. */
  async start(timeoutMs = 10_000): Promise<void> {
    if (this.#process) return;
    const child = spawn(
      'redis-server',
      [
        '--port',
        String(this.port),
        '--bind',
        '127.0.0.1',
        '--save',
        '',
        '--appendonly',
        'no',
        '--dir',
        this.dir,
        ...this.#args,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    this.#process = child;
    let output = '';
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => fail(new Error(`redis-server not ready in ${timeoutMs} ms`)),
        timeoutMs,
      );
      const onData = (chunk: Buffer) => {
        output += chunk.toString();
        if (output.includes('Ready to accept connections')) {
          clearTimeout(timer);
          child.stdout?.off('data', onData);
          child.off('exit', onExit);
          resolve();
        }
      };
      const onExit = () => fail(new Error(`redis-server exited: ${output.slice(-500)}`));
      const fail = (error: Error) => {
        clearTimeout(timer);
        child.stdout?.off('data', onData);
        child.off('exit', onExit);
        if (this.#process === child) this.#process = undefined;
        child.kill('SIGKILL');
        reject(error);
      };
      child.stdout?.on('data', onData);
      child.once('exit', onExit);
    });
    child.stdout?.resume();
    child.stderr?.resume();
  }

  /** Kills the process by its pid and waits until it is gone. */
  async stop(): Promise<void> {
    const child = this.#process;
    if (!child) return;
    this.#process = undefined;
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGKILL');
    await exited;
  }

  /** Stops the process and removes its directory. */
  async destroy(): Promise<void> {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** Runs `redis-cli` against this server. */
  async cli(...args: string[]): Promise<string> {
    const { stdout } = await run('redis-cli', [
      '-h',
      '127.0.0.1',
      '-p',
      String(this.port),
      ...args,
    ]);
    return stdout.trim();
  }
}

/** How {@link RedisClusterFixture.launch} shapes a cluster. */
export interface ClusterShape {
  /** @default 3 */
  masters?: number;
  /** Replicas per master. @default 0 */
  replicas?: number;
  /** `cluster-node-timeout`: how long a silent node takes to be failed over. @default 3000 */
  nodeTimeoutMs?: number;
}

/**
 * A Redis Cluster of our own: `redis-server --cluster-enabled yes` processes joined with
 * `redis-cli --cluster create`, ready once every node says `cluster_state:ok` and every replica has
 * synced with its master.
 */
export class RedisClusterFixture {
  readonly servers: RedisServer[];

  private constructor(servers: RedisServer[]) {
    this.servers = servers;
  }

  static async launch(shape: ClusterShape = {}, timeoutMs = 30_000): Promise<RedisClusterFixture> {
    const { masters = 3, replicas = 0, nodeTimeoutMs = 3000 } = shape;
    const servers: RedisServer[] = [];
    try {
      for (let i = 0; i < masters * (1 + replicas); i++) {
        servers.push(
          await RedisServer.launch(async () => [
            '--cluster-enabled',
            'yes',
            '--cluster-config-file',
            'nodes.conf',
            '--cluster-port',
            String(await freePort()),
            '--cluster-node-timeout',
            String(nodeTimeoutMs),
            // A replica that never finished its first sync cannot take over: sync at once.
            '--repl-diskless-sync-delay',
            '0',
          ]),
        );
      }
      const cluster = new RedisClusterFixture(servers);
      await run('redis-cli', [
        '--cluster',
        'create',
        ...servers.map((server) => `127.0.0.1:${server.port}`),
        '--cluster-replicas',
        String(replicas),
        '--cluster-yes',
      ]);
      await cluster.#waitUntilOk(timeoutMs);
      return cluster;
    } catch (error) {
      await Promise.all(servers.map((server) => server.destroy()));
      throw error;
    }
  }

  /** The startup nodes to give `new Cluster(...)`. */
  get nodes(): Array<{ host: string; port: number }> {
    return this.servers.map((server) => ({ host: '127.0.0.1', port: server.port }));
  }

  async destroy(): Promise<void> {
    await Promise.all(this.servers.map((server) => server.destroy()));
  }

  /** Resolves once every running node says `cluster_state:ok` and every replica is in sync. */
  async waitUntilOk(timeoutMs: number): Promise<void> {
    await this.#waitUntilOk(
      timeoutMs,
      this.servers.filter((server) => server.pid !== undefined),
    );
  }

  async #waitUntilOk(timeoutMs: number, servers = this.servers): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const infos = await Promise.all(
        servers.map(async (server) => {
          const [cluster, replication] = await Promise.all([
            server.cli('cluster', 'info'),
            server.cli('info', 'replication'),
          ]).catch(() => ['', '']);
          return { cluster, replication };
        }),
      );
      const ok = infos.every(
        ({ cluster, replication }) =>
          cluster.includes('cluster_state:ok') &&
          (replication.includes('role:master') || replication.includes('master_link_status:up')),
      );
      if (ok) return;
      if (Date.now() > deadline) throw new Error(`cluster not ok after ${timeoutMs} ms`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}
