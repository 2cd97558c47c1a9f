import type { HistoryPosition, StateStore, Versioned } from '../contracts.js';
import { LimitExceededError, SessionRecordError, StateStoreError } from '../errors.js';
import { LIMITS, type NotResumedReason, type ProtocolErrorCode } from '../protocol/messages.js';
import { updateState } from '../util/update-state.js';
import { SessionTokens } from './session-token.js';

/** A request's reply, kept so that the same request sent again after a reconnect gets it. */
export interface StoredReply {
  /** Upstream sequence number of the request. */
  s: number;
  /** Text reply. */
  d?: string;
  /** Binary reply, base64. */
  b?: string;
  error?: { code: ProtocolErrorCode; message: string };
}

/** What a session keeps of what its client sent (see `server/upstream.ts`). */
export interface UpstreamRecord {
  /** The highest upstream sequence number handed to the application. */
  up: number;
  /** Replies to the latest requests. */
  replies?: StoredReply[];
  /**
   * What the client sends again may have reached the application before: a connection was lost
   * without recording all it handed on, and the client has sent nothing new since.
   */
  doubt?: boolean;
}

/** What is kept of a session in the state store. */
export interface SessionRecord extends Partial<UpstreamRecord> {
  /**
   * `false` once the connection that held the session closed and recorded all it handed on;
   * `true` (or absent) while one holds it, so a resume cannot tell what a dead node did last.
   */
  live?: boolean;
  /**
   * With `live: false`: requests of the closed connection were still running, and their replies are
   * written once they are kept; a resume meanwhile waits a moment for them, as for a live holder.
   */
  answering?: boolean;
  /** The node of the connection that holds the session. */
  node?: string;
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
  /**
   * Where history rooms the server joined it to between two connections start: its resume
   * replays what was sent there since the join, though the client has no position there yet.
   */
  at?: Record<string, { o: number; e: string }>;
  /** A close the server made while no connection held the session: made on the next resume. */
  close?: [code: number, reason: string];
  /**
   * How many resumes claimed the session: the connection of the last claim holds it, and the
   * takeover of an earlier one closes none claimed after it.
   */
  claim?: number;
}

/**
 * What a connection that handed nothing on writes into its record when it ends (see
 * `Sessions.markClosed`): what it knows of what the client sent, a close still to make (or
 * `undefined`, made).
 */
export type KeptOnClose = Partial<UpstreamRecord> & {
  close?: [code: number, reason: string] | undefined;
};

/**
 * How a save went: `written`; `refused`, the record names another connection (the session moved
 * on, or the store went back to an older record); `failed`, the store failed (reported).
 */
export type SaveResult = 'written' | 'refused' | 'failed';

/**
 * What a connection saves of its session: `data` is the application's data as JSON (the saver
 * measured it); without it, the data saved before is kept. `unavailable`, not saved, marks a
 * connection welcomed while the store could not be read: it writes only over a record (a store
 * that lost it, or a session that expired meanwhile, refuses it: its client resumes, and is told).
 */
export type SessionSnapshot = Omit<SessionRecord, 'conn' | 'data'> & {
  data: string | undefined;
  unavailable?: boolean;
};

/** A resume's read of its session (see {@link Sessions.lookup}). */
export interface SessionLookup {
  readonly token: string;
  /** The session the token names (verified). */
  readonly id: string;
  /** Whether the token is the owner's (`undefined`: a token of an earlier version, which does not say). */
  readonly owned: boolean | undefined;
  /** What the store held, when it answered. */
  readonly read?: { current: Versioned<string> | undefined };
  /** Why it did not answer, when it did not. */
  readonly failed?: unknown;
  /** The session and the node holding it, while a connection holds it. */
  readonly holder?: { id: string; node: string; owner: string; claim: number | undefined };
}

/** A join, leave or close the server makes for a session (`wss.client(id).join(room)`). */
export type SessionChange =
  | { o: 'join' | 'leave'; a: string }
  | { o: 'close'; a: [code: number, reason: string] };

/**
 * Where {@link changeSession} put a change: in the record (`stored`), and also for the node
 * that holds the session (`holder`); or nowhere (`unknown`).
 */
export type ChangePlace = 'stored' | 'unknown' | { holder: string };

/** The outcome of a `hello`. */
export interface OpenedSession {
  id: string;
  /** Who may resume it: `sessionOwner` of the identity that opened it. */
  owner: string;
  token: string;
  conn: string;
  resumed: boolean;
  /**
   * Why it was not resumed. `unavailable`: it is still the session the token named, kept for a
   * later resume because the store could not be read.
   */
  reason?: NotResumedReason;
  /** The stored record of a resumed session. */
  record?: SessionRecord;
  /**
   * Which claim of the session its connection holds it by (a takeover closes only those of earlier
   * claims): 0 for a session created now, a resume's own; none when the store could not be read.
   */
  claim?: number | undefined;
  /** Whether the session's previous connection closed and recorded everything it handed on. */
  cleanlyClosed?: boolean;
  /** A close the server made while no connection held the session: made after the welcome. */
  closeWith?: [code: number, reason: string] | undefined;
}

/**
 * Sessions in a {@link StateStore}: opening (new or resumed, with the checks that keep one client
 * out of another's session), and saving every change, so a node that is killed loses nothing.
 */
export class Sessions {
  readonly #store: StateStore;
  readonly #tokens: SessionTokens;
  readonly #prefix: string;
  /** Saves in flight, by session id and connection. */
  readonly #saving = new Map<
    string,
    { done: Promise<SaveResult>; again: boolean; snapshot: () => SessionSnapshot }
  >();
  readonly #onError: (error: unknown) => void;
  /** This node's id, kept in the records of the sessions it holds. */
  readonly #node: string;

  constructor(
    store: StateStore,
    tokens: SessionTokens,
    prefix: string,
    onError: (error: unknown) => void,
    node: string,
  ) {
    this.#node = node;
    this.#store = store;
    this.#tokens = tokens;
    this.#prefix = prefix;
    this.#onError = onError;
  }

  /** How long a session outlives its connection. */
  get ttlMs(): number {
    return this.#store.ttlMs;
  }

  /**
   * Reads the session of `token` for a resume: the node holding it, while a connection holds it
   * (it has not recorded a close). Hand the lookup to {@link open}, which starts from this read:
   * a resume reads the store once, and when the store did not answer (its own timeout), the resume
   * is not made to wait a second time for it.
   */
  async lookup(token: string, owner: string): Promise<SessionLookup | undefined> {
    const verified = this.#tokens.verify(token, owner);
    // Another owner's token: `open` refuses it without a read.
    if (verified === undefined || verified.owned === false) return undefined;
    const { id, owned } = verified;
    let stored: Versioned<string> | undefined;
    try {
      stored = await this.#store.get(this.#key(id));
    } catch (error) {
      return { token, id, owned, failed: error };
    }
    const parsed = stored === undefined ? undefined : parseRecord(stored.value);
    // A damaged record is reported by the `open` that follows.
    const record = parsed instanceof SessionRecordError ? undefined : parsed;
    const settled = record?.live === false && record.answering !== true;
    const holder =
      settled || record?.node === undefined
        ? undefined
        : { id, node: record.node, owner: record.owner, claim: record.claim };
    return { token, id, owned, read: { current: stored }, holder };
  }

  /** Resumes the session of `token` if it is genuine, alive and `owner`'s; else opens a new one. */
  async open(
    token: string | undefined,
    owner: string,
    lookup?: SessionLookup,
  ): Promise<OpenedSession> {
    const conn = SessionTokens.newSessionId();
    if (token === undefined) return this.#create(owner, conn, 'new');
    // A lookup of this token verified it already.
    const known = lookup?.token === token ? lookup : undefined;
    const verified = known ?? this.#tokens.verify(token, owner);
    if (verified === undefined) return this.#create(owner, conn, 'invalid-token');
    if (verified.owned === false) return this.#create(owner, conn, 'forbidden');
    const { id, owned } = verified;
    if (known?.failed !== undefined) return this.#unavailable(id, owner, owned, conn, known.failed);
    let refusal: NotResumedReason | undefined;
    let claimed: SessionRecord | undefined;
    let cleanlyClosed = false;
    let closeWith: [number, string] | undefined;
    let damage: SessionRecordError | undefined;
    let tries = 0;
    try {
      await updateState(
        this.#store,
        this.#key(id),
        (current) => {
          tries++;
          claimed = undefined;
          refusal = undefined;
          damage = undefined;
          closeWith = undefined;
          if (current === undefined) {
            refusal = 'expired';
            return undefined;
          }
          const record = parseRecord(current, id);
          if (record instanceof SessionRecordError) {
            // Unreadable: as good as gone; the client starts afresh, and the damage is reported.
            damage = record;
            return undefined;
          }
          if (record.owner !== owner) {
            refusal = 'forbidden';
            return undefined;
          }
          cleanlyClosed = record.live === false;
          claimed = {
            ...record,
            conn,
            live: true,
            answering: undefined,
            node: this.#node,
            close: undefined,
            // (A stored number too large to count on stays a number the next resume reads.)
            claim: Math.min(record.claim ?? 0, Number.MAX_SAFE_INTEGER - 1) + 1,
          };
          closeWith = record.close;
          return JSON.stringify(claimed);
        },
        // Resumes of one token at once (tabs sharing it, a client retrying) race here: each round
        // one of them wins, and losing is no reason to welcome the others `unavailable`.
        CLAIM_ATTEMPTS,
        known?.read,
      );
    } catch (error) {
      // Every try found the record claimed by another resume meanwhile: the store is fine.
      if (tries === CLAIM_ATTEMPTS && claimed !== undefined) throw new SessionContendedError();
      return this.#unavailable(id, owner, owned, conn, error);
    }
    if (damage !== undefined) this.#onError(damage);
    if (claimed === undefined) return this.#create(owner, conn, refusal ?? 'expired');
    return {
      id,
      owner,
      token: this.#tokens.issue(id, owner),
      conn,
      resumed: true,
      record: claimed,
      claim: claimed.claim,
      cleanlyClosed,
      closeWith,
    };
  }

  /**
   * The same session, not saved by this connection: the client may resume it later. Only for a
   * token that says it is `owner`'s: the store, which could say it of a token of an earlier
   * version, cannot be read, and this connection will hold the session (its direct messages, and
   * the close of an older connection of it).
   */
  #unavailable(
    id: string,
    owner: string,
    owned: boolean | undefined,
    conn: string,
    error: unknown,
  ): OpenedSession {
    this.#onError(error);
    if (owned !== true) throw new SessionStoreUnavailableError(error);
    const token = this.#tokens.issue(id, owner);
    return { id, owner, token, conn, resumed: false, reason: 'unavailable' };
  }

  /**
   * Writes a session's record, if `conn` still holds it. Saves of one connection never overlap and
   * a burst of changes costs at most one extra write. Those of two connections of one session (a
   * resume on this node, while the old connection's last save is out) are kept apart: a snapshot
   * is written only with the connection it was taken from: a record naming another connection is
   * left as it is (`refused`). Resolves with how the last write went (`failed`: the store failed,
   * which is reported).
   */
  save(id: string, conn: string, snapshot: () => SessionSnapshot): Promise<SaveResult> {
    const key = `${id} ${conn}`;
    const pending = this.#saving.get(key);
    if (pending !== undefined) {
      // The newest snapshot is the one written next (a closing connection's has its last rooms).
      pending.again = true;
      pending.snapshot = snapshot;
      return pending.done;
    }
    const entry = { done: Promise.resolve<SaveResult>('written'), again: false, snapshot };
    // In the map before the loop starts: a snapshot that throws ends the loop at once.
    this.#saving.set(key, entry);
    entry.done = (async () => {
      let result: SaveResult;
      do {
        entry.again = false;
        try {
          // Taking the snapshot may throw too (data JSON cannot encode): reported, saving goes on.
          result = (await this.#write(id, conn, entry.snapshot())) ? 'written' : 'refused';
        } catch (error) {
          result = 'failed';
          this.#onError(error);
        }
      } while (entry.again);
      this.#saving.delete(key);
      return result;
    })();
    return entry.done;
  }

  /**
   * Marks the record closed (`live: false`) as it is, with `kept` (what the connection knows of
   * what the client sent, a close still to make), if `conn` still holds it: for a connection that
   * changed nothing else of it. Resolves when written, or failed (reported).
   */
  async markClosed(id: string, conn: string, kept?: KeptOnClose): Promise<void> {
    try {
      await updateState(this.#store, this.#key(id), (current) => {
        const stored = current === undefined ? undefined : parseRecord(current, id);
        if (stored === undefined || stored instanceof SessionRecordError) return undefined;
        if (stored.conn !== conn) return undefined;
        return JSON.stringify({ ...stored, ...kept, live: false });
      });
    } catch (error) {
      this.#onError(error);
    }
  }

  /** Writes the record unless it names another connection; resolves whether it wrote. */
  async #write(id: string, conn: string, snapshot: SessionSnapshot): Promise<boolean> {
    let refused = false;
    await updateState(this.#store, this.#key(id), (current) => {
      const parsed = current === undefined ? undefined : parseRecord(current);
      // A damaged record no connection can hold: this one's snapshot replaces it.
      const stored = parsed instanceof SessionRecordError ? undefined : parsed;
      // A connection welcomed while the store could not be read holds the session the store
      // keeps: when the store lost it, its snapshot is no session to begin (what it is not in
      // would be lost without a word); its client resumes, and is told the session expired.
      refused = stored === undefined ? snapshot.unavailable === true : stored.conn !== conn;
      if (refused) return undefined;
      const { data, unavailable: _, ...rest } = snapshot;
      const json = data ?? JSON.stringify(stored?.data ?? {});
      const record = {
        ...rest,
        conn,
        node: this.#node,
        // Never back: a store that lost the record (restarted empty) gets the connection's claim
        // again, or the next resume's would count as older than this connection's.
        claim: laterClaim(stored?.claim, rest.claim),
      } satisfies Omit<SessionRecord, 'data'>;
      // The data is JSON already: put in as it is, not encoded a second time.
      return `{"data":${json},${JSON.stringify(record).slice(1)}`;
    });
    return !refused;
  }

  async #create(owner: string, conn: string, reason: NotResumedReason): Promise<OpenedSession> {
    const id = SessionTokens.newSessionId();
    const record: SessionRecord = { owner, conn, data: {}, rooms: [], node: this.#node, claim: 0 };
    await this.#store
      .set(this.#key(id), JSON.stringify(record), { ifVersion: null })
      .catch(this.#onError);
    const token = this.#tokens.issue(id, owner);
    return { id, owner, token, conn, resumed: false, reason, claim: 0 };
  }

  #key(id: string): string {
    return sessionKey(this.#prefix, id);
  }
}

function laterClaim(a: number | undefined, b: number | undefined): number | undefined {
  return a === undefined ? b : b === undefined ? a : Math.max(a, b);
}

/**
 * Refuses a room a `wscale.v1` client cannot be in: a name longer than the protocol carries (its
 * resume lists its rooms, and a `hello` with such a name is refused with 1007).
 */
export function checkSessionRoom(room: string): void {
  if (room.length > LIMITS.room) {
    throw new LimitExceededError(
      `a wscale.v1 client's room name is at most ${LIMITS.room} characters, got ${room.length}`,
    );
  }
}

/** How often a resume tries its claim while other resumes of the session write the record. */
const CLAIM_ATTEMPTS = 64;

/** The key of session `id`'s record. */
function sessionKey(prefix: string, id: string): string {
  return `${prefix}session:${id}`;
}

/**
 * A server's join, leave or close for session `id` (`wss.client(id).join(room)`, a `Publisher`'s),
 * made where no connection of it is at hand: written into the session's record, so the resume
 * that brings the client back, on any node, gives it the room (or leaves it out), or closes its
 * connection right after the welcome, as a close of a connected client would. Resolves `stored`; or
 * the node the record says holds the session, which must apply it to the connection too (it then
 * saves the record itself; written here as well, the change outlives that node if it died); or
 * `unknown`: the store has no such session (it ended, or never opened).
 */
export async function changeSession(
  store: StateStore,
  prefix: string,
  id: string,
  change: SessionChange,
  at?: HistoryPosition,
): Promise<ChangePlace> {
  let place: ChangePlace | undefined;
  await updateState(store, sessionKey(prefix, id), (current) => {
    place = 'unknown';
    const record = current === undefined ? undefined : parseRecord(current, id);
    if (record === undefined || record instanceof SessionRecordError) return undefined;
    const held = (record.live !== false || record.answering === true) && record.node !== undefined;
    place = held ? { holder: record.node! } : 'stored';
    return changed(record, change, at);
  });
  return place ?? 'unknown';
}

/** The record with a change made, as JSON; `undefined` when it has it already. */
function changed(
  record: SessionRecord,
  change: SessionChange,
  at: HistoryPosition | undefined,
): string | undefined {
  if (change.o === 'close') return JSON.stringify({ ...record, close: change.a });
  const { o: op, a: room } = change;
  const has = record.rooms.includes(room);
  if (op === 'join') {
    if (has) return undefined;
    const joined: SessionRecord = { ...record, rooms: [...record.rooms, room] };
    if (at !== undefined) joined.at = { ...record.at, [room]: { o: at.offset, e: at.epoch } };
    return JSON.stringify(joined);
  }
  if (!has) return undefined;
  const left: SessionRecord = {
    ...record,
    rooms: record.rooms.filter((name) => name !== room),
    own: record.own?.filter((name) => name !== room),
  };
  if (record.at?.[room] !== undefined) {
    const { [room]: _gone, ...rest } = record.at;
    left.at = rest;
  }
  return JSON.stringify(left);
}

/**
 * A stored record as wscale wrote it, or what is wrong with it: every field a resume reads is
 * checked, so no stored value, however damaged, reaches the resume as something it cannot use.
 */
function parseRecord(text: string, id = ''): SessionRecord | SessionRecordError {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return new SessionRecordError(`session ${id}: the stored record is not JSON`);
  }
  const wrong = recordProblem(value);
  if (wrong === undefined) return value as SessionRecord;
  return new SessionRecordError(`session ${id}: the stored record's ${wrong}`);
}

/** What makes a parsed value no session record (`undefined`: nothing). */
function recordProblem(value: unknown): string | undefined {
  if (!isObject(value)) return 'value is not an object';
  const record = value as Record<keyof SessionRecord, unknown>;
  if (typeof record.owner !== 'string') return '"owner" is not a string';
  if (typeof record.conn !== 'string') return '"conn" is not a string';
  if (!isObject(record.data)) return '"data" is not an object';
  if (!isStrings(record.rooms)) return '"rooms" is not a list of room names';
  if (record.own !== undefined && !isStrings(record.own)) {
    return '"own" is not a list of room names';
  }
  if (record.live !== undefined && typeof record.live !== 'boolean')
    return '"live" is not a boolean';
  if (record.answering !== undefined && typeof record.answering !== 'boolean') {
    return '"answering" is not a boolean';
  }
  if (record.node !== undefined && typeof record.node !== 'string') return '"node" is not a string';
  if (record.at !== undefined && !isPositions(record.at)) return '"at" is not a map of positions';
  if (record.close !== undefined && !isClose(record.close)) return '"close" is not a close';
  if (record.up !== undefined && !Number.isSafeInteger(record.up)) return '"up" is not an integer';
  if (record.claim !== undefined && !Number.isSafeInteger(record.claim)) {
    return '"claim" is not an integer';
  }
  if (record.doubt !== undefined && typeof record.doubt !== 'boolean') {
    return '"doubt" is not a boolean';
  }
  if (
    record.replies !== undefined &&
    !(Array.isArray(record.replies) && record.replies.every(isReply))
  ) {
    return '"replies" is not a list of replies';
  }
  return undefined;
}

function isObject(value: unknown): value is object {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isStrings(value: unknown): value is string[] {
  return Array.isArray(value) && value.every((item) => typeof item === 'string');
}

function isPositions(value: unknown): value is NonNullable<SessionRecord['at']> {
  if (!isObject(value)) return false;
  return Object.values(value).every((position: unknown) => {
    if (!isObject(position)) return false;
    const { o, e } = position as { o?: unknown; e?: unknown };
    return Number.isSafeInteger(o) && typeof e === 'string';
  });
}

function isClose(value: unknown): value is [number, string] {
  return (
    Array.isArray(value) &&
    value.length === 2 &&
    Number.isSafeInteger(value[0]) &&
    typeof value[1] === 'string'
  );
}

function isReply(value: unknown): value is StoredReply {
  if (!isObject(value)) return false;
  const reply = value as Record<keyof StoredReply, unknown>;
  if (!Number.isSafeInteger(reply.s)) return false;
  if (reply.d !== undefined && typeof reply.d !== 'string') return false;
  if (reply.b !== undefined && typeof reply.b !== 'string') return false;
  if (reply.error === undefined) return true;
  const error = reply.error as { code?: unknown; message?: unknown } | null;
  return isObject(error) && typeof error.code === 'string' && typeof error.message === 'string';
}

/**
 * A resume that lost its claim of the session to other resumes of it at every try (many at once,
 * as one client can make): the client is asked to come back later (1013); nothing failed.
 */
export class SessionContendedError extends StateStoreError {
  constructor() {
    super(`other resumes of the session claimed it at each of ${CLAIM_ATTEMPTS} tries`);
  }
}

/**
 * A resume of a token of an earlier version, which does not say whose it is, while the store that
 * would say it cannot be read: the client is asked to come back later (1013).
 */
export class SessionStoreUnavailableError extends StateStoreError {
  constructor(cause: unknown) {
    super('the session store cannot be read to check whose this session is', { cause });
  }
}
