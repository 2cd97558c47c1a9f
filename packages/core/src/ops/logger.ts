/**
 * Where a node writes its log: the call shape pino, `console` and (through a one-line adapter)
 * winston share, fields first. Fields are plain values (node, client, room, code, status…), never
 * message payloads.
 *
 * @example
 * ```ts
 * import pino from 'pino';
 * const wss = new ScaledWebSocketServer({ port: 8080, logger: pino() });
 * ```
 */
export interface Logger {
  /** Limits hit, protocol violations, resumes: one line per client event. */
  debug(fields: object, message: string): void;
  /** Start, drain and stop, other nodes up, the broker ready. */
  info(fields: object, message: string): void;
  /** The broker not ready, a node down, a slow consumer closed, a partial query answer. */
  warn(fields: object, message: string): void;
  /** What is also emitted as `error`, with its `code`. */
  error(fields: object, message: string): void;
}

/** The log levels of a {@link Logger}. */
export type LogLevel = keyof Logger;

/**
 * A node's log: adds the node id to every line, and keeps a throwing logger from reaching the code
 * that logs. Without a logger every call is a no-op, so a call site is one line and costs nothing.
 */
export class NodeLog {
  readonly #logger: Logger | undefined;
  readonly #node: string;

  constructor(logger: Logger | undefined, node: string) {
    this.#logger = logger;
    this.#node = node;
  }

  /** Whether a logger was given (errors then go to it instead of a process warning). */
  get enabled(): boolean {
    return this.#logger !== undefined;
  }

  write(level: LogLevel, message: string, fields?: object): void {
    const logger = this.#logger;
    if (logger === undefined) return;
    try {
      logger[level]({ node: this.#node, ...fields }, message);
    } catch {
      // A broken logger must not break the node; there is nowhere left to say so.
    }
  }
}
