import { LimitExceededError } from '../errors.js';
import type { Reporter } from '../ops/reporter.js';
import type { SessionSnapshot, Sessions, UpstreamRecord } from './sessions.js';

/** A connection as its session is saved: what the record keeps of it. */
export interface SavedClient {
  readonly id: string;
  readonly v1: boolean;
  readonly identity: unknown;
  /** The connection that holds the session (`undefined` for a raw client). */
  readonly conn: string | undefined;
  readonly data: object;
  readonly roomList: readonly string[];
  readonly ownRooms: readonly string[];
}

/** What the session record keeps of what a client sent (the `wscale.v1` endpoint knows). */
export interface UpstreamSource<Client> {
  upstreamRecord(client: Client): UpstreamRecord | undefined;
  /** Whether it changed since the session was last saved. */
  upstreamDirty(client: Client): boolean;
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
  /** Last saves of closed connections, which a drain waits for. */
  readonly #finalSaves = new Set<Promise<void>>();

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
    // A client that is gone was saved for the last time when it closed.
    if (conn === undefined || this.#clients.get(client.id) !== client) return Promise.resolve();
    return this.#sessions.save(client.id, conn, () => this.#record(client, [...client.roomList]));
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
   * The last save of a connection that closed while this node lives: its rooms as they were, and
   * `live: false`, which tells a resume that everything handed on was recorded.
   */
  saveClosed(client: Client): void {
    const conn = client.conn;
    if (conn === undefined) return;
    // The record as it is at the close (its own rooms are cleared right after)...
    const closed = { ...this.#record(client, [...client.roomList]), live: false };
    // ...with the replies of the requests still running, once they are kept: a resume gets them.
    const saved = this.#upstream.answered(client).then(() =>
      this.#sessions.save(client.id, conn, () => ({
        ...closed,
        ...this.#upstream.upstreamRecord(client),
      })),
    );
    this.#finalSaves.add(saved);
    void saved.finally(() => this.#finalSaves.delete(saved));
  }

  /** Resolves when the last saves of the connections closed so far are done. */
  async closedSaved(): Promise<void> {
    await Promise.all(this.#finalSaves);
  }

  #record(client: Client, rooms: string[]): SessionSnapshot {
    return {
      owner: this.#settings.sessionOwner(client.identity),
      data: this.#data(client),
      rooms,
      own: [...client.ownRooms],
      ...this.#upstream.upstreamRecord(client),
    };
  }

  /** The client's `data` to save, or `undefined` to keep what was saved: it is over its limit. */
  #data(client: Client): object | undefined {
    const bytes = Buffer.byteLength(JSON.stringify(client.data));
    const max = this.#settings.maxSessionDataBytes;
    if (bytes <= max) return client.data;
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
