import { Buffer } from 'node:buffer';
import { HandlerError, InvalidArgumentError, LimitExceededError } from '../errors.js';
import type { Reporter } from '../ops/reporter.js';
import { CloseCode } from '../protocol/close-codes.js';
import type {
  KeptOnClose,
  SessionRecord,
  SessionSnapshot,
  Sessions,
  UpstreamRecord,
} from './sessions.js';

/** A connection as its session is saved: what the record keeps of it. */
export interface SavedClient {
  readonly id: string;
  readonly v1: boolean;
  readonly identity: unknown;
  /**
   * The connection that holds the session (`undefined` for a raw client, and once the last save
   * of the connection has started).
   */
  conn: string | undefined;
  /** The session's owner, asked of `sessionOwner` once, when the session opened. */
  readonly owner: string | undefined;
  /** Its resume's claim of the session's record (see `SessionRecord.claim`). */
  readonly claim: number | undefined;
  readonly data: object;
  readonly roomList: readonly string[];
  readonly ownRooms: readonly string[];
  /** Whether its session is still opening (a resume rejoining its rooms, not yet welcomed). */
  readonly opening: boolean;
  /** Whether it was welcomed while the state store could not be read (`unavailable`). */
  readonly sessionUnavailable: boolean;
  /** Closes it for the server's own reason (see `Connection.shut`). */
  shut(code: number, reason: string): void;
  /** The application's close of it that its client did not answer (see `Connection.unansweredClose`). */
  unansweredClose(answer?: number): [code: number, reason: string] | undefined;
}

/** What the session record keeps of what a client sent (the `wscale.v1` endpoint knows). */
export interface UpstreamSource<Client> {
  upstreamRecord(client: Client): UpstreamRecord | undefined;
  /** Whether it changed since the session was last saved. */
  upstreamDirty(client: Client): boolean;
  /** A save of it failed: it counts as changed again, for the next periodic save. */
  upstreamUnsaved(client: Client): void;
  /** Whether requests of the client are still being answered. */
  answering(client: Client): boolean;
  /** Resolves once the client's running requests have their replies kept (bounded in time). */
  answered(client: Client): Promise<void>;
}

/** Settings of the saver (the server's options of the same names). */
export interface SaverSettings<Identity> {
  readonly maxSessionDataBytes: number;
  sessionOwner(identity: Identity): string;
}

/**
 * Saves the sessions of a node's `wscale.v1` connections: on every change, again well within their
 * time to live, and a last time when a connection closes (which a drain waits for).
 */
export class SessionSaver<Client extends SavedClient> {
  readonly #sessions: Sessions;
  /** The node's connected clients: one that is no longer among them was saved for the last time. */
  readonly #clients: ReadonlyMap<string, Client>;
  readonly #upstream: UpstreamSource<Client>;
  readonly #settings: SaverSettings<Client['identity']>;
  readonly #reporter: Reporter;
  /** Connections found superseded, to be closed unless taken over first. */
  readonly #bouncing = new WeakSet<Client>();
  /** Last saves of closed connections under way, by session id: a drain waits for them. */
  readonly #finalSaves = new Map<string, Promise<void>>();
  /** Last records the store failed to take, tried again until it does (see `#retryLast`). */
  readonly #retries = new Set<NodeJS.Timeout>();
  #stopped = false;

  constructor(
    sessions: Sessions,
    clients: ReadonlyMap<string, Client>,
    upstream: UpstreamSource<Client>,
    settings: SaverSettings<Client['identity']>,
    reporter: Reporter,
  ) {
    this.#sessions = sessions;
    this.#clients = clients;
    this.#upstream = upstream;
    this.#settings = settings;
    this.#reporter = reporter;
  }

  /** Saves a connected client's session; resolves once the store has it (or failed, reported). */
  save(client: Client): Promise<void> {
    const conn = client.conn;
    // A client that is gone was saved for the last time when it closed; one whose resume is still
    // rejoining its rooms is saved once it is welcomed (its record has them all till then).
    if (conn === undefined || this.#clients.get(client.id) !== client || client.opening) {
      return Promise.resolve();
    }
    const snapshot = () => this.#record(client, [...client.roomList]);
    return this.#sessions.save(client.id, conn, snapshot).then((result) => {
      if (result === 'failed') this.#upstream.upstreamUnsaved(client);
      else if (result === 'refused') this.#superseded(client, conn);
    });
  }

  /**
   * An open connection whose record names another one: the session moved on without it (a resume
   * elsewhere, whose takeover closes it with 4409 in a moment), or the store holds an older record
   * (restored from a copy, failed over, or kept from before an outage this connection was welcomed
   * `unavailable` in). Unless it is taken over meanwhile, it is closed with 1012, which a client
   * answers with a resume: the record is read again and the client gets back what it says, instead
   * of this connection going on unrecorded, or its snapshot replacing a session kept for it.
   */
  #superseded(client: Client, conn: string): void {
    if (this.#bouncing.has(client)) return;
    this.#bouncing.add(client);
    setTimeout(() => {
      if (this.#clients.get(client.id) !== client || client.conn !== conn) return;
      this.#reporter.log.write(
        'warn',
        'the session record is gone or names another connection: closed 1012',
        {
          client: client.id,
        },
      );
      client.shut(CloseCode.ServiceRestart, 'session record changed: resume');
    }, SUPERSEDED_WAIT_MS).unref();
  }

  /** Saves every connected `wscale.v1` client (`dirty`: only those whose upstream changed). */
  saveAll(dirty = false): Promise<void>[] {
    const saves: Promise<void>[] = [];
    for (const client of this.#clients.values()) {
      if (client.v1 && (!dirty || this.#upstream.upstreamDirty(client))) {
        saves.push(this.save(client));
      }
    }
    return saves;
  }

  /**
   * The last save of a connection that closed (or was released to a resume elsewhere) while this
   * node lives: its rooms as they were, and `live: false`, which tells a resume that everything
   * handed on was recorded. Once per connection. Written at once, and again with the replies of the
   * requests still running once they are kept (`answering` until then): a resume that does not
   * get them in time repeats nothing, and answers such a request `REPLY_LOST`. An application's
   * close the client did not answer (`answer`: the code its close frame came back with; none
   * yet, when it is released to a resume elsewhere) stays in the record, made on the next resume.
   */
  saveClosed(client: Client, answer?: number): void {
    // Closed (or taken over) while its resume rejoined its rooms: those not back yet are still
    // the session's, as its record has them.
    if (client.opening) {
      this.saveUnopened(client);
      return;
    }
    const conn = client.conn;
    if (conn === undefined) return;
    client.conn = undefined;
    const id = client.id;
    // The rooms as they are at the close (its own rooms are cleared right after)...
    const rooms = [...client.roomList];
    const own = [...client.ownRooms];
    const data = client.data;
    const close = client.unansweredClose(answer);
    const record = () => ({ ...this.#record(client, rooms, own, data), live: false, close });
    if (!this.#upstream.answering(client)) {
      this.#finalSave(id, this.#last(id, conn, record));
      return;
    }
    // ...and with the replies of the requests still running, once they are kept: a resume waits a
    // moment for them (unless it took the session over first: then this write is refused).
    const closed = this.#sessions.save(id, conn, () => ({ ...record(), answering: true }));
    const answered = this.#upstream.answered(client);
    this.#finalSave(
      id,
      Promise.all([closed, answered]).then(() => this.#last(id, conn, record)),
    );
  }

  /**
   * Writes a closed connection's last record; when the store fails, tries again in the background
   * until it takes it (or a resume took the session over: refused), within the session's time to
   * live. Without it, the record would say the connection is live, and the next resume would count
   * what the connection handed on since its last save as in doubt: repeated, marked `redelivered`,
   * though this node did not die.
   */
  async #last(id: string, conn: string, record: () => SessionSnapshot): Promise<void> {
    if ((await this.#sessions.save(id, conn, record)) === 'failed') {
      this.#retryLast(id, conn, record, Date.now() + this.#sessions.ttlMs, RETRY_FIRST_MS);
    }
  }

  #retryLast(
    id: string,
    conn: string,
    record: () => SessionSnapshot,
    until: number,
    wait: number,
  ): void {
    if (this.#stopped || Date.now() + wait > until) return;
    const timer = setTimeout(async () => {
      this.#retries.delete(timer);
      if ((await this.#sessions.save(id, conn, record)) !== 'failed') return;
      this.#retryLast(id, conn, record, until, Math.min(2 * wait, RETRY_MOST_MS));
    }, wait);
    timer.unref();
    this.#retries.add(timer);
  }

  /** Stops trying last records again (the node is closed). */
  stop(): void {
    this.#stopped = true;
    for (const timer of this.#retries) clearTimeout(timer);
    this.#retries.clear();
  }

  /**
   * The last save of a connection that handed nothing on and has no rooms to record: one closed
   * right after its welcome (a close the server made while the client was away), or before it (a
   * resume that ended while it rejoined its rooms). Its record stays as its resume found it (with
   * the changes made since), marked closed, with what it knows of what the client sent (whether
   * what came before is in doubt); and then, once `unanswered` says so, a close the client did
   * not answer (it was gone), back in the record for the next resume.
   */
  saveUnopened(client: Client, unanswered?: Promise<SessionRecord['close']>): void {
    const conn = client.conn;
    if (conn === undefined) return;
    client.conn = undefined;
    const id = client.id;
    const saved = this.#sessions.markClosed(id, conn, this.#upstream.upstreamRecord(client));
    const after = saved.then(async () => {
      const close = await unanswered;
      if (close !== undefined) await this.#sessions.markClosed(id, conn, { close });
    });
    this.#finalSave(id, after);
  }

  /** Marks a session's record closed as it is (see `Sessions.markClosed`); a drain waits for it. */
  markClosed(id: string, conn: string, kept: KeptOnClose): void {
    this.#finalSave(id, this.#sessions.markClosed(id, conn, kept));
  }

  /** Keeps a last save under way until it is done, for {@link SessionSaver.closing}. */
  #finalSave(id: string, saved: Promise<void>): void {
    const earlier = this.#finalSaves.get(id);
    const all = earlier === undefined ? saved : Promise.all([earlier, saved]).then(() => undefined);
    this.#finalSaves.set(id, all);
    void all.finally(() => {
      if (this.#finalSaves.get(id) === all) this.#finalSaves.delete(id);
    });
  }

  /** The last save of the session's connection that closed here, while it is under way. */
  closing(id: string): Promise<void> | undefined {
    return this.#finalSaves.get(id);
  }

  /** Resolves when the last saves of the connections closed so far are done. */
  async closedSaved(): Promise<void> {
    await Promise.all(this.#finalSaves.values());
  }

  #record(
    client: Client,
    rooms: string[],
    own = [...client.ownRooms],
    data = client.data,
  ): SessionSnapshot {
    return {
      // Known since the open: `sessionOwner` is asked once per connection, not on every save.
      owner: client.owner ?? sessionOwnerOf(this.#settings, client.identity),
      data: this.#data(client, data),
      rooms,
      own,
      ...this.#upstream.upstreamRecord(client),
      // An application's close not answered yet: made on the resume if this node dies first.
      close: client.unansweredClose(),
      claim: client.claim,
      ...(client.sessionUnavailable ? { unavailable: true } : {}),
    };
  }

  /**
   * The client's `data` as the JSON to save (encoded once: the record carries it), or `undefined`
   * to keep what was saved: it is over its limit, or JSON cannot encode it.
   */
  #data(client: Client, data: object): string | undefined {
    let json: string;
    try {
      json = JSON.stringify(data);
    } catch (error) {
      const why = error instanceof Error ? error.message : String(error);
      this.#reporter.report(
        new InvalidArgumentError(
          `client ${client.id}: data cannot be saved as JSON (${why}); its session keeps the data saved before`,
        ),
      );
      return undefined;
    }
    const bytes = Buffer.byteLength(json);
    const max = this.#settings.maxSessionDataBytes;
    if (bytes <= max) return json;
    this.#reporter.limit('sessionData', { client: client.id });
    this.#reporter.report(
      new LimitExceededError(
        `client ${client.id}: data is ${bytes} bytes, over maxSessionDataBytes ` +
          `(${max}); its session keeps the data saved before`,
      ),
    );
    return undefined;
  }
}

/**
 * The session owner of an identity: `sessionOwner` called as a plain function, as every hook; its
 * throw is a handler's failure.
 */
export function sessionOwnerOf<Identity>(
  settings: { sessionOwner(identity: Identity): string },
  identity: Identity,
): string {
  const { sessionOwner } = settings;
  try {
    return sessionOwner(identity);
  } catch (error) {
    throw new HandlerError('sessionOwner', error);
  }
}

/** How long a superseded connection is left to a takeover before it is closed to resume. */
const SUPERSEDED_WAIT_MS = 1000;

/** How soon a last record the store failed to take is tried again, and at most how seldom. */
const RETRY_FIRST_MS = 250;
const RETRY_MOST_MS = 4000;
