import type { ChildProcess } from 'node:child_process';

/** A request from the orchestrator to a child process; answered by a {@link Reply} of the same id. */
export interface Request {
  bench: 1;
  id: number;
  op: string;
  /** For a node:cluster primary: the worker it is for (absent: the primary itself). */
  node?: number;
  args?: unknown;
}

/** The answer to a {@link Request}. */
export interface Reply {
  bench: 1;
  id: number;
  ok: boolean;
  value?: unknown;
  error?: string;
}

/** What a node process says once it listens. */
export interface ReadyMessage {
  bench: 1;
  ready: true;
  node: number;
  port: number;
  pid: number;
}

function isBench(message: unknown): message is Record<string, unknown> {
  return (
    typeof message === 'object' && message !== null && (message as { bench?: unknown }).bench === 1
  );
}

export function isRequest(message: unknown): message is Request {
  return isBench(message) && 'op' in message;
}

export function isReply(message: unknown): message is Reply {
  return isBench(message) && 'ok' in message;
}

export function isReady(message: unknown): message is ReadyMessage {
  return isBench(message) && 'ready' in message;
}

type Handler = (args: unknown) => unknown;

/**
 * Answers the orchestrator's requests in a child process. The child exits when the orchestrator's
 * channel closes, so nothing outlives a crashed run.
 */
export function serveRequests(
  handlers: Record<string, Handler>,
  fallback?: (request: Request) => boolean,
): void {
  process.on('message', (message: unknown) => {
    if (!isRequest(message)) return;
    if (fallback?.(message)) return;
    const handler = handlers[message.op];
    if (handler === undefined) {
      send({ bench: 1, id: message.id, ok: false, error: `unknown op ${message.op}` });
      return;
    }
    Promise.resolve()
      .then(() => handler(message.args))
      .then(
        (value) => send({ bench: 1, id: message.id, ok: true, value }),
        (error: unknown) =>
          send({
            bench: 1,
            id: message.id,
            ok: false,
            error: error instanceof Error ? (error.stack ?? error.message) : String(error),
          }),
      );
  });
  process.on('disconnect', () => process.exit(0));
}

/** Sends a message to the parent process (dropped when the channel is gone). */
export function send(message: Reply | ReadyMessage): void {
  if (process.connected) process.send?.(message);
}

/** The orchestrator's side of a child's IPC channel: numbered requests with timeouts. */
export class Peer {
  readonly #child: ChildProcess;
  readonly #pending = new Map<
    number,
    { resolve: (value: unknown) => void; reject: (error: Error) => void; timer: NodeJS.Timeout }
  >();
  #next = 1;

  constructor(child: ChildProcess) {
    this.#child = child;
    child.on('message', (message: unknown) => {
      if (!isReply(message)) return;
      const pending = this.#pending.get(message.id);
      if (pending === undefined) return;
      this.#pending.delete(message.id);
      clearTimeout(pending.timer);
      if (message.ok) pending.resolve(message.value);
      else pending.reject(new Error(message.error));
    });
    child.on('exit', (code, signal) => {
      for (const [id, pending] of this.#pending) {
        this.#pending.delete(id);
        clearTimeout(pending.timer);
        pending.reject(new Error(`process ${child.pid} exited (${signal ?? code})`));
      }
    });
  }

  /** Sends a request and waits at most `timeoutMs` for its answer. */
  request<T>(op: string, args?: unknown, timeoutMs = 30_000, node?: number): Promise<T> {
    const id = this.#next++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new Error(`${op} got no answer from pid ${this.#child.pid} in ${timeoutMs} ms`));
      }, timeoutMs);
      this.#pending.set(id, { resolve: resolve as (value: unknown) => void, reject, timer });
      const request: Request = { bench: 1, id, op, args };
      if (node !== undefined) request.node = node;
      if (!this.#child.connected) {
        clearTimeout(timer);
        this.#pending.delete(id);
        reject(new Error(`process ${this.#child.pid} is not connected`));
        return;
      }
      this.#child.send(request);
    });
  }
}
