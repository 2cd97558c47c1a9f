import { type ChildProcess, fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';
import { WebSocket } from 'ws';

const fixture = fileURLToPath(new URL('../fixtures/fuzz-node.mjs', import.meta.url));
/**
 * Bound of every step a test waits for (connect, welcome, ack, broadcast, IPC answer): wide, as CI
 * machines are busy; it only matters when something hangs.
 */
export const stepTimeoutMs = 10_000;

/** The node of `fixtures/fuzz-node.mjs` in a process of its own (the built package). */
export class FuzzedNode {
  output = '';
  port = 0;
  #child!: ChildProcess;

  /** Starts the node (again, after a crash: shrinking a failure replays runs on a fresh node). */
  async start(): Promise<void> {
    this.output = '';
    this.#child = fork(fixture, [], { stdio: ['ignore', 'pipe', 'pipe', 'ipc'] });
    const keep = (chunk: Buffer) => {
      // The last few KB are enough to name a crash; a long run must not hold everything.
      this.output = (this.output + chunk.toString()).slice(-8192);
    };
    this.#child.stdout!.on('data', keep);
    this.#child.stderr!.on('data', keep);
    this.port = (await this.ask({}, (m) => m.ready === true)).port as number;
  }

  get alive(): boolean {
    return this.#child.exitCode === null && this.#child.signalCode === null;
  }

  broadcast(room: string, text: string) {
    return this.ask({ broadcast: { room, text } }, (m) => m.done === true);
  }

  async stats(): Promise<{ connections: number; rooms: number; rss: number }> {
    return (await this.ask({ stats: true }, (m) => m.stats !== undefined)).stats as never;
  }

  stop(): void {
    if (this.alive) this.#child.kill('SIGKILL');
  }

  ask(message: object, match: (m: Record<string, unknown>) => boolean) {
    return new Promise<Record<string, unknown>>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#child.off('message', onMessage);
        reject(new Error(`the node did not answer ${JSON.stringify(message)}:\n${this.output}`));
      }, stepTimeoutMs * 3);
      const onMessage = (m: Record<string, unknown>) => {
        if (!match(m)) return;
        clearTimeout(timer);
        this.#child.off('message', onMessage);
        resolve(m);
      };
      this.#child.on('message', onMessage);
      if (Object.keys(message).length > 0) this.#child.send(message);
    });
  }
}

/** A well-behaved `wscale.v1` client: connects, says hello, joins a room, gets a broadcast. */
export async function checkServes(node: FuzzedNode, probe: number): Promise<void> {
  const ws = new WebSocket(`ws://127.0.0.1:${node.port}/`, 'wscale.v1');
  const inbox: Record<string, unknown>[] = [];
  let wake: () => void = () => undefined;
  ws.on('message', (data) => {
    inbox.push(JSON.parse(String(data)) as Record<string, unknown>);
    wake();
  });
  ws.on('error', () => undefined);
  const next = (what: string, match: (m: Record<string, unknown>) => boolean) =>
    within(
      new Promise<Record<string, unknown>>((resolve) => {
        const look = () => {
          const found = inbox.find(match);
          if (found) resolve(found);
          else wake = look;
        };
        look();
      }),
      what,
    );
  try {
    await within(
      new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject)),
      'open',
    );
    ws.send(JSON.stringify({ t: 'hello' }));
    await next('welcome', (m) => m.t === 'welcome');
    ws.send(JSON.stringify({ t: 'join', id: 1, r: 'probe' }));
    expect(await next('join ack', (m) => m.t === 'ack' && m.id === 1)).not.toHaveProperty('error');
    const text = `probe-${probe}`;
    await node.broadcast('probe', text);
    await next('the broadcast', (m) => m.t === 'msg' && m.d === text);
  } finally {
    ws.terminate();
  }
}

/** `promise`, or a rejection naming `what` once {@link stepTimeoutMs} passed. */
export function within<T>(promise: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`no ${what} within ${stepTimeoutMs} ms`)),
      stepTimeoutMs,
    );
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
