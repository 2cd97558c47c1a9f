import process from 'node:process';
import { WscaleError } from '../errors.js';
import { Pending } from '../util/pending.js';
import type { NodeLog } from './logger.js';
import type { LimitCounters } from './node-stats.js';

/** Where a node's failures go: its `error` event. */
export interface ErrorSink {
  listenerCount(event: 'error'): number;
  emit(event: 'error', error: Error): boolean;
}

/**
 * How a node tells of what went wrong without stopping: errors (logged, then emitted as `error`,
 * or a process warning when nobody listens and no logger took them), and the limits clients hit.
 */
export class Reporter {
  readonly log: NodeLog;
  /** Connections closed for breaking the protocol, by the close code the node sent. */
  readonly violations: Record<string, number> = {};
  /** How often each limit was hit. */
  readonly limited: LimitCounters = {
    rooms: 0,
    inFlight: 0,
    rate: 0,
    connections: 0,
    origins: 0,
    authenticateTimeouts: 0,
    sessionData: 0,
    replay: 0,
  };
  /** Sends, joins and leaves the application asked for, which it may not await. */
  readonly sends: Sends;
  /**
   * What the application's handlers still do: the promises its event handlers returned, and the
   * `onRequest` and `authorizeJoin` calls under way. Closing waits for them.
   */
  readonly handlers = new Pending();
  readonly #sink: ErrorSink;
  /** Set while an `error` is being emitted: an `error` listener that throws is not re-emitted. */
  #reporting = false;
  readonly #lines = new LineGate();
  readonly #warnings = new LineGate();
  readonly #clientLines = new LineGate();

  constructor(log: NodeLog, sink: ErrorSink) {
    this.log = log;
    this.sends = new Sends(log);
    this.#sink = sink;
  }

  /**
   * Counts and logs a connection closed for breaking the protocol (`warn`), a line a second at
   * most for each close code (what a line says it held back was closed with its code): each costs
   * an attacker no more than a connection (bound: pass it as a callback).
   */
  readonly violation = (code: number, fields: { client?: string; reason: string }): void => {
    this.violations[code] = (this.violations[code] ?? 0) + 1;
    this.#clientLine(`violation ${code}`, `protocol violation: closed ${code}`, fields);
  };

  /** Logs a client closed with 1013 for not keeping up (`warn`), a line a second at most. */
  slowConsumer(client: string): void {
    this.#clientLine('slow', 'slow consumer closed 1013', { client });
  }

  /** A `warn` line of something clients cause, as many as they like: a line a second per kind. */
  #clientLine(kind: string, message: string, fields: object): void {
    const skipped = this.#clientLines.pass(kind);
    if (skipped === undefined) return;
    const more = skipped > 0 ? ` (and ${skipped} more since the last line)` : '';
    this.log.write('warn', `${message}${more}`, fields);
  }

  /** Reports a failure that did not stop the node (bound: pass it as a callback). */
  readonly report = (error: unknown): void => {
    const reported =
      error instanceof Error ? error : new WscaleError('HANDLER_FAILED', String(error));
    const code = reported instanceof WscaleError ? reported.code : undefined;
    // A line a second at most for each code: an outage fails every session's save at once.
    const skipped = this.#lines.pass(code ?? reported.name);
    if (skipped !== undefined) {
      const more = skipped > 0 ? ` (and ${skipped} more like it since the last line)` : '';
      this.log.write('error', `${reported.message}${more}`, { code, err: reported });
    }
    if (this.#sink.listenerCount('error') === 0 || this.#reporting) {
      // A logger given took it; else it must not go unseen.
      if (!this.log.enabled && this.#warnings.pass(code ?? reported.name) !== undefined) {
        process.emitWarning(reported);
      }
      return;
    }
    this.#reporting = true;
    try {
      this.#sink.emit('error', reported);
    } finally {
      this.#reporting = false;
    }
  };

  /** Counts a limit hit, and logs it (debug: a client over its limit is the client's business). */
  limit(limit: keyof LimitCounters, fields?: object): void {
    this.limited[limit]++;
    this.log.write('debug', `limit hit: ${limit}`, fields);
  }
}

/** How often a failed send is logged at most (each is counted). */
const LOG_EVERY_MS = 1000;

/**
 * The sends, joins and leaves an application asks for and may not await (`void
 * wss.to(room).send(text)`, a send written as a statement): each still rejects for whoever awaits
 * it, and a failure is counted and logged (`warn`, a line a second at most), but a rejection nobody handles does not end the
 * process. Those still on their way are counted too, so that closing waits for them.
 */
export class Sends extends Pending {
  /** How many failed. */
  failed = 0;
  readonly #lines = new LineGate();
  readonly #log: NodeLog;

  constructor(log: NodeLog) {
    super();
    this.#log = log;
  }

  protected override rejected(error: unknown): void {
    this.failed++;
    // One line a second at most: an outage fails every send, and each is counted.
    const skipped = this.#lines.pass('failed');
    if (skipped === undefined) return;
    const code = error instanceof WscaleError ? error.code : undefined;
    const more = skipped > 0 ? ` (and ${skipped} more since the last line)` : '';
    this.#log.write('warn', `a send, join or leave failed: ${String(error)}${more}`, {
      code,
      err: error,
    });
  }
}

/**
 * Lets one log line a second through for each kind of line: `pass` says how many were held back
 * since the last one let through, or `undefined` to hold this one back too.
 */
class LineGate {
  readonly #kinds = new Map<string, { at: number; held: number }>();

  pass(kind: string): number | undefined {
    const now = Date.now();
    const last = this.#kinds.get(kind);
    if (last !== undefined && now - last.at < LOG_EVERY_MS) {
      last.held++;
      return undefined;
    }
    // Kinds are error codes and names: a few dozen at most.
    this.#kinds.set(kind, { at: now, held: 0 });
    return last?.held ?? 0;
  }
}
