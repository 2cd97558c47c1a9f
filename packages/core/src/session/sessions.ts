import type { StateStore } from '../contracts.js';
import type { NotResumedReason } from '../protocol/messages.js';
import { updateState } from '../state/update-state.js';
import { SessionTokens } from './session-token.js';

/** What is kept of a session in the state store. */
export interface SessionRecord {
  /** Who may resume it (derived from the authenticated identity). */
  owner: string;
  /** The connection that holds the session now; only it may write the record. */
  conn: string;
  /** The application's `client.data`. */
  data: object;
  /** Rooms the client is in. */
  rooms: string[];
  /** Those of `rooms` it joined by its own `join` (authorized again when it resumes). */
  own?: string[];
}

/** What a connection saves of its session; without `data`, the data saved before is kept. */
export type SessionSnapshot = Omit<SessionRecord, 'conn' | 'data'> & { data: object | undefined };

/** The outcome of a `hello`. */
export interface OpenedSession {
  id: string;
  token: string;
  conn: string;
  resumed: boolean;
  /**
   * Whether the session is the one the token named: resumed, or kept for a later resume because
   * the store could not be read (then `resumed` is false and `reason` is `unavailable`).
   */
  claimed: boolean;
  reason?: NotResumedReason;
  /** The stored record of a resumed session. */
  record?: SessionRecord;
}

/**
 * Sessions in a {@link StateStore}: opening (new or resumed, with the checks that keep one client
 * out of another's session), and saving every change, so a node that is killed loses nothing.
 */
export class Sessions {
  readonly #store: StateStore;
  readonly #tokens: SessionTokens;
  readonly #prefix: string;
  readonly #saving = new Map<string, { done: Promise<void>; again: boolean }>();
  readonly #onError: (error: unknown) => void;

  constructor(
    store: StateStore,
    tokens: SessionTokens,
    prefix: string,
    onError: (error: unknown) => void,
  ) {
    this.#store = store;
    this.#tokens = tokens;
    this.#prefix = prefix;
    this.#onError = onError;
  }

  /** How long a session outlives its connection. */
  get ttlMs(): number {
    return this.#store.ttlMs;
  }

  /** Resumes the session of `token` if it is genuine, alive and `owner`'s; else opens a new one. */
  async open(token: string | undefined, owner: string): Promise<OpenedSession> {
    const conn = SessionTokens.newSessionId();
    if (token === undefined) return this.#create(owner, conn, 'new');
    const id = this.#tokens.verify(token);
    if (id === undefined) return this.#create(owner, conn, 'invalid-token');
    let refusal: NotResumedReason | undefined;
    let claimed: SessionRecord | undefined;
    try {
      await updateState(this.#store, this.#key(id), (current) => {
        claimed = undefined;
        refusal = undefined;
        if (current === undefined) {
          refusal = 'expired';
          return undefined;
        }
        const record = parseRecord(current);
        if (record === undefined) refusal = 'expired';
        else if (record.owner !== owner) refusal = 'forbidden';
        if (refusal !== undefined || record === undefined) return undefined;
        claimed = { ...record, conn };
        return JSON.stringify(claimed);
      });
    } catch (error) {
      this.#onError(error);
      // The same session, not saved by this connection: the client may resume it later.
      return { id, token, conn, resumed: false, claimed: true, reason: 'unavailable' };
    }
    if (claimed === undefined) return this.#create(owner, conn, refusal ?? 'expired');
    return { id, token, conn, resumed: true, claimed: true, record: claimed };
  }

  /**
   * Writes a session's record, if `conn` still holds it. Saves of one session never overlap and
   * a burst of changes costs at most one extra write.
   */
  save(id: string, conn: string, snapshot: () => SessionSnapshot): Promise<void> {
    const pending = this.#saving.get(id);
    if (pending !== undefined) {
      pending.again = true;
      return pending.done;
    }
    const entry = { done: Promise.resolve(), again: false };
    entry.done = (async () => {
      do {
        entry.again = false;
        await this.#write(id, conn, snapshot()).catch(this.#onError);
      } while (entry.again);
      this.#saving.delete(id);
    })();
    this.#saving.set(id, entry);
    return entry.done;
  }

  async #write(id: string, conn: string, snapshot: SessionSnapshot): Promise<void> {
    await updateState(this.#store, this.#key(id), (current) => {
      const stored = current === undefined ? undefined : parseRecord(current);
      if (stored !== undefined && stored.conn !== conn) return undefined;
      const data = snapshot.data ?? stored?.data ?? {};
      return JSON.stringify({ ...snapshot, data, conn } satisfies SessionRecord);
    });
  }

  async #create(owner: string, conn: string, reason: NotResumedReason): Promise<OpenedSession> {
    const id = SessionTokens.newSessionId();
    const record: SessionRecord = { owner, conn, data: {}, rooms: [] };
    await this.#store
      .set(this.#key(id), JSON.stringify(record), { ifVersion: null })
      .catch(this.#onError);
    return { id, token: this.#tokens.issue(id), conn, resumed: false, claimed: false, reason };
  }

  #key(id: string): string {
    return `${this.#prefix}session:${id}`;
  }
}

function parseRecord(text: string): SessionRecord | undefined {
  try {
    const value = JSON.parse(text) as Partial<SessionRecord>;
    if (
      typeof value.owner === 'string' &&
      typeof value.conn === 'string' &&
      typeof value.data === 'object' &&
      value.data !== null &&
      Array.isArray(value.rooms)
    ) {
      return value as SessionRecord;
    }
  } catch {
    // A record we cannot read is treated as gone.
  }
  return undefined;
}
