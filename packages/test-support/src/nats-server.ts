import { type ChildProcess, spawn } from 'node:child_process';
import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { get } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePorts, serviceAvailable } from './free-port.js';

/**
 * Starts and stops real `nats-server` processes for the tests: loopback only, free ports, a
 * temporary JetStream store directory, stopped by the pid we started (never by name).
 */

const BINARY = process.env.NATS_SERVER_BIN ?? 'nats-server';

/**
 * Whether the NATS suites must be skipped: only when the binary is missing and
 * `WSCALE_REQUIRE_SERVICES` is not set (CI sets it, and then a missing binary fails loudly).
 */
export function skipWithoutNats(): boolean {
  return !serviceAvailable(BINARY);
}

interface ServerSpec {
  name: string;
  port: number;
  monitorPort: number;
  storeDir: string;
  cluster?: { name: string; port: number; routes: number[] };
  /** The text of a configuration file (`-c`), e.g. users and their permissions. */
  config?: string;
}

/** One `nats-server -js` process that can be killed and started again on the same port and store. */
export class NatsServer {
  readonly #spec: ServerSpec;
  #child: ChildProcess | undefined;
  #log = '';
  /** Characters logged since the start (`#log` keeps the last ones). */
  #logged = 0;

  constructor(spec: ServerSpec) {
    this.#spec = spec;
  }

  get name(): string {
    return this.#spec.name;
  }

  /** `nats://127.0.0.1:PORT` */
  get url(): string {
    return `nats://127.0.0.1:${this.#spec.port}`;
  }

  get port(): number {
    return this.#spec.port;
  }

  /** The process id while it runs (to SIGSTOP it: a server that hangs, keeping its data). */
  get pid(): number | undefined {
    return this.#child?.pid;
  }

  get running(): boolean {
    return this.#child !== undefined;
  }

  /** Starts the process (no-op when it runs) and waits until it reports healthy. */
  async start(timeoutMs = 20_000): Promise<void> {
    if (this.#child === undefined) this.#spawn();
    await this.waitHealthy(timeoutMs);
  }

  /** Starts the process without waiting (for clusters, whose nodes are only healthy together). */
  spawnOnly(): void {
    if (this.#child === undefined) this.#spawn();
  }

  /** Waits for `/healthz` (JetStream included) to answer 200. */
  async waitHealthy(timeoutMs = 20_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (this.#child === undefined) throw new Error(`${this.name} exited:\n${this.#log}`);
      if ((await this.#health()) === 200) return;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    throw new Error(`${this.name} not healthy after ${timeoutMs} ms:\n${this.#log.slice(-4000)}`);
  }

  /**
   * Replaces the configuration file's text (users, permissions) and has the running server reload
   * it (SIGHUP), as an operator would; resolves once the server says it did.
   */
  async reload(config: string, timeoutMs = 5000): Promise<void> {
    const pid = this.#child?.pid;
    if (this.#spec.config === undefined || pid === undefined) {
      throw new Error(`${this.name}: only a running server started with a config reloads`);
    }
    this.#spec.config = config;
    this.#writeConfig(config);
    const mark = this.#logged;
    process.kill(pid, 'SIGHUP');
    const deadline = Date.now() + timeoutMs;
    const since = () => (this.#logged > mark ? this.#log.slice(mark - this.#logged) : '');
    while (!since().includes('Reloaded server configuration')) {
      if (Date.now() > deadline) throw new Error(`${this.name} did not reload:\n${this.#log}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  /** Kills the process at once (SIGKILL), as a crash would, and waits for it to exit. */
  async kill(): Promise<void> {
    await this.#stop('SIGKILL');
  }

  /** Stops the process gracefully (SIGTERM, then SIGKILL after 5 s). */
  async stop(): Promise<void> {
    await this.#stop('SIGTERM');
  }

  /**
   * Deletes the JetStream storage of a stopped server, as a lost disk would: started again, it has
   * no stream, bucket or consumer (its configuration file is kept).
   */
  wipeStorage(): void {
    this.#stopped('wiping its storage');
    rmSync(join(this.#spec.storeDir, 'jetstream'), { recursive: true, force: true });
  }

  /**
   * Copies the JetStream storage of a stopped server, as a backup would; {@link restoreStorage}
   * puts it back. The caller removes the copy's directory.
   */
  copyStorage(): string {
    this.#stopped('copying its storage');
    const copy = mkdtempSync(join(tmpdir(), 'wscale-nats-copy-'));
    cpSync(join(this.#spec.storeDir, 'jetstream'), join(copy, 'jetstream'), { recursive: true });
    return copy;
  }

  /** Puts a stopped server's storage back to a {@link copyStorage} copy. */
  restoreStorage(copy: string): void {
    this.wipeStorage();
    cpSync(join(copy, 'jetstream'), join(this.#spec.storeDir, 'jetstream'), { recursive: true });
  }

  #stopped(what: string): void {
    if (this.#child !== undefined) throw new Error(`${this.name}: stop it before ${what}`);
  }

  #spawn(): void {
    const { name, port, monitorPort, storeDir, cluster, config } = this.#spec;
    const args = ['-js', '-a', '127.0.0.1', '-p', String(port), '-m', String(monitorPort)];
    args.push('-sd', storeDir, '-n', name);
    if (config !== undefined) args.push('-c', this.#writeConfig(config));
    if (cluster !== undefined) {
      const routes = cluster.routes.map((p) => `nats://127.0.0.1:${p}`).join(',');
      args.push('--cluster_name', cluster.name, '--cluster', `nats://127.0.0.1:${cluster.port}`);
      args.push('--routes', routes);
    }
    const child = spawn(BINARY, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.#log = '';
    const keep = (chunk: Buffer) => {
      const text = chunk.toString();
      this.#logged += text.length;
      this.#log = (this.#log + text).slice(-20_000);
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    child.on('exit', () => {
      if (this.#child === child) this.#child = undefined;
    });
    this.#child = child;
  }

  /** Writes the configuration file; it names the server as its command line does (a reload checks). */
  #writeConfig(config: string): string {
    const file = join(this.#spec.storeDir, 'server.conf');
    writeFileSync(file, `server_name: ${JSON.stringify(this.#spec.name)}\n${config}`);
    return file;
  }

  async #stop(signal: NodeJS.Signals): Promise<void> {
    const child = this.#child;
    if (child === undefined || child.pid === undefined) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    process.kill(child.pid, signal);
    const timer = setTimeout(() => {
      if (child.exitCode === null && child.pid !== undefined) process.kill(child.pid, 'SIGKILL');
    }, 5000);
    await exited;
    clearTimeout(timer);
    if (this.#child === child) this.#child = undefined;
  }

  #health(): Promise<number> {
    return new Promise((resolve) => {
      const request = get(
        { host: '127.0.0.1', port: this.#spec.monitorPort, path: '/healthz', timeout: 1000 },
        (response) => {
          response.resume();
          resolve(response.statusCode ?? 0);
        },
      );
      request.on('error', () => resolve(0));
      request.on('timeout', () => {
        request.destroy();
        resolve(0);
      });
    });
  }
}

/** A single JetStream server with its own store directory. */
export interface SingleNats {
  server: NatsServer;
  /** Stops the server and removes its store. */
  close(): Promise<void>;
}

/**
 * Starts one `nats-server -js` on free loopback ports with a temporary store directory; `config`
 * is the text of a configuration file for it (its command line sets the ports and the store).
 */
export async function startNatsServer(options: { config?: string } = {}): Promise<SingleNats> {
  const storeDir = mkdtempSync(join(tmpdir(), 'wscale-nats-'));
  const [port, monitorPort] = (await freePorts(2)) as [number, number];
  const server = new NatsServer({
    name: 'wscale-single',
    port,
    monitorPort,
    storeDir,
    config: options.config,
  });
  await server.start();
  return {
    server,
    close: async () => {
      await server.stop();
      rmSync(storeDir, { recursive: true, force: true });
    },
  };
}

/** A cluster of JetStream servers connected by routes. */
export interface NatsCluster {
  servers: NatsServer[];
  /** Every server's client URL. */
  urls: string[];
  /** Stops every server and removes their stores. */
  close(): Promise<void>;
}

/** Starts `size` routed `nats-server -js` nodes (own store dirs, one cluster name). */
export async function startNatsCluster(size = 3): Promise<NatsCluster> {
  const root = mkdtempSync(join(tmpdir(), 'wscale-nats-cluster-'));
  // Client, monitor and route ports of every server, all distinct.
  const ports = await freePorts(size * 3);
  const clusterPorts = ports.slice(2 * size);
  const servers: NatsServer[] = [];
  for (let i = 0; i < size; i++) {
    servers.push(
      new NatsServer({
        name: `wscale-n${i + 1}`,
        port: ports[i]!,
        monitorPort: ports[size + i]!,
        storeDir: join(root, `n${i + 1}`),
        cluster: {
          name: 'wscale-test',
          port: clusterPorts[i]!,
          routes: clusterPorts.filter((_, j) => j !== i),
        },
      }),
    );
  }
  for (const server of servers) server.spawnOnly();
  await Promise.all(servers.map((server) => server.waitHealthy(30_000)));
  return {
    servers,
    urls: servers.map((server) => server.url),
    close: async () => {
      await Promise.all(servers.map((server) => server.stop()));
      rmSync(root, { recursive: true, force: true });
    },
  };
}
