import { createHmac, randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { MemoryStateStore } from '../../src/adapters/memory/memory-state-store.js';
import type { Version, Versioned } from '../../src/contracts.js';
import { InvalidOptionError, StateStoreError } from '../../src/errors.js';
import { SessionTokens } from '../../src/sessions/session-token.js';
import {
  SessionContendedError,
  type SessionSnapshot,
  SessionStoreUnavailableError,
  Sessions,
} from '../../src/sessions/sessions.js';
import { Gate } from './gate.js';

// Unit tests of session tokens (an HMAC-signed session id, docs/guarantees.md "Sessions") and of
// session records in a state store, as the wscale.v1 endpoint uses them: `open` on every hello,
// `save` on every change, `holder` before a resume takes a session over.
// test/secret-rotation.test.ts runs the rotation through real nodes.

const SECRET = 'a-secret-of-enough-bytes-0001';
const OLD = 'the-old-secret-of-enough-bytes';
const NEW = 'the-new-secret-of-enough-bytes';

describe('SessionTokens', () => {
  it('verifies the tokens it issues, back to their session id and owner', () => {
    const tokens = new SessionTokens(SECRET);
    const id = SessionTokens.newSessionId();
    const token = tokens.issue(id, 'alice');
    expect(token.startsWith('v2.')).toBe(true);
    expect(tokens.verify(token, 'alice')).toEqual({ id, owned: true });
    // Another instance with the same secret (another node) agrees.
    expect(new SessionTokens(SECRET).verify(token, 'alice')).toEqual({ id, owned: true });
  });

  it('says a genuine token is another owner’s without any store: a stolen token proves nothing', () => {
    const tokens = new SessionTokens(SECRET);
    const id = SessionTokens.newSessionId();
    const token = tokens.issue(id, 'alice');
    expect(tokens.verify(token, 'mallory')).toEqual({ id, owned: false });
    // Owners that only look alike are told apart.
    expect(tokens.verify(token, 'alice ')).toEqual({ id, owned: false });
    expect(tokens.verify(token, '')).toEqual({ id, owned: false });
    // Another owner's tag moved onto the token breaks its signature.
    const [, , , signature] = token.split('.');
    const mallorys = tokens.issue(id, 'mallory').split('.')[2];
    expect(tokens.verify(`v2.${id}.${mallorys}.${signature}`, 'mallory')).toBeUndefined();
  });

  it('verifies a token of an earlier version (v1: the id only), which does not say whose it is', () => {
    const id = SessionTokens.newSessionId();
    const signature = createHmac('sha256', SECRET).update(`wscale.v1:${id}`).digest('base64url');
    const tokens = new SessionTokens(SECRET);
    expect(tokens.verify(`v1.${id}.${signature}`, 'alice')).toEqual({ id, owned: undefined });
    expect(tokens.verify(`v1.${SessionTokens.newSessionId()}.${signature}`, 'alice')).toBe(
      undefined,
    );
  });

  it('refuses a token signed with another secret', () => {
    const token = new SessionTokens('another-secret-of-enough-bytes').issue(
      SessionTokens.newSessionId(),
      'alice',
    );
    expect(new SessionTokens(SECRET).verify(token, 'alice')).toBeUndefined();
  });

  it('refuses a token whose id, owner tag or signature was changed in any one character', () => {
    const tokens = new SessionTokens(SECRET);
    const token = tokens.issue(SessionTokens.newSessionId(), 'alice');
    for (let i = 'v2.'.length; i < token.length; i++) {
      if (token[i] === '.') continue;
      const other = token[i] === 'A' ? 'B' : 'A';
      const tampered = token.slice(0, i) + other + token.slice(i + 1);
      expect(tokens.verify(tampered, 'alice'), `character ${i} changed`).toBeUndefined();
    }
  });

  it('refuses a genuine signature moved onto another session id', () => {
    const tokens = new SessionTokens(SECRET);
    const [, , tag, signature] = tokens.issue(SessionTokens.newSessionId(), 'alice').split('.');
    const moved = `v2.${SessionTokens.newSessionId()}.${tag}.${signature}`;
    expect(tokens.verify(moved, 'alice')).toBeUndefined();
  });

  describe('rotation: signs with the first secret, verifies with any', () => {
    it('accepts tokens of the old secret while it is listed', () => {
      const id = SessionTokens.newSessionId();
      const before = new SessionTokens(OLD).issue(id, 'alice');
      expect(new SessionTokens([NEW, OLD]).verify(before, 'alice')).toEqual({ id, owned: true });
      expect(new SessionTokens([NEW, OLD]).verify(before, 'bob')).toEqual({ id, owned: false });
    });

    it('issues tokens that the new secret alone accepts, and the old alone refuses', () => {
      const id = SessionTokens.newSessionId();
      const during = new SessionTokens([NEW, OLD]).issue(id, 'alice');
      expect(new SessionTokens(NEW).verify(during, 'alice')?.id).toBe(id);
      expect(new SessionTokens(OLD).verify(during, 'alice')).toBeUndefined();
    });

    it('refuses tokens of the old secret once it is dropped', () => {
      const before = new SessionTokens(OLD).issue(SessionTokens.newSessionId(), 'alice');
      expect(new SessionTokens(NEW).verify(before, 'alice')).toBeUndefined();
    });
  });

  describe('refuses malformed tokens by returning undefined, never throwing', () => {
    const tokens = new SessionTokens(SECRET);
    const id = SessionTokens.newSessionId();
    const genuine = tokens.issue(id, 'alice');
    const [, , tag, signature] = genuine.split('.') as [string, string, string, string];
    const cases: Array<[string, string]> = [
      ['empty', ''],
      ['prefix only', 'v2.'],
      ['no prefix', genuine.slice('v2.'.length)],
      ['another version', `v3.${id}.${tag}.${signature}`],
      ['a v2 token as v1', `v1.${id}.${tag}.${signature}`],
      ['a v1 shape as v2', `v2.${id}.${signature}`],
      ['no signature part', `v2.${id}.${tag}`],
      ['empty signature', `v2.${id}.${tag}.`],
      ['empty session id', `v2..${tag}.${signature}`],
      ['empty owner tag', `v2.${id}..${signature}`],
      ['an extra part', `${genuine}.extra`],
      ['the parts swapped', `v2.${signature}.${tag}.${id}`],
      ['signature as padded base64', `${genuine}=`],
      ['signature not base64url', `v2.${id}.${tag}.${'!'.repeat(signature.length)}`],
      ['signature of multi-byte characters', `v2.${id}.${tag}.${'é'.repeat(signature.length / 2)}`],
      ['whitespace around it', ` ${genuine} `],
      ['a lone surrogate', `v2.${id}.${tag}.\ud800${signature.slice(1)}`],
      ['very long', `v2.${'A'.repeat(100_000)}.${tag}.${signature}`],
      ['dots only', '.'.repeat(64)],
    ];
    it.each(cases)('%s', (_name, token) => {
      expect(tokens.verify(token, 'alice')).toBeUndefined();
    });
  });

  it('refuses secrets shorter than 16 bytes, or none, with a typed error', () => {
    for (const secrets of ['short', 'x'.repeat(15), [], [SECRET, 'short']]) {
      expect(() => new SessionTokens(secrets)).toThrow(InvalidOptionError);
      expect(() => new SessionTokens(secrets)).toThrow(
        expect.objectContaining({ code: 'INVALID_OPTION' }),
      );
    }
    // Bytes are counted, not characters: 8 two-byte characters are enough.
    expect(() => new SessionTokens('é'.repeat(8))).not.toThrow();
  });

  it('makes session ids of 128 random bits, which raw clients’ ids never look like', () => {
    const ids = new Set(Array.from({ length: 1000 }, () => SessionTokens.newSessionId()));
    expect(ids.size).toBe(1000);
    for (const id of ids) expect(SessionTokens.isSessionId(id)).toBe(true);
    // A raw client's id: 12 random bytes, base64url.
    expect(SessionTokens.isSessionId(randomBytes(12).toString('base64url'))).toBe(false);
    for (const id of [
      '',
      'A'.repeat(21),
      'A'.repeat(23),
      `${'A'.repeat(21)}.`,
      `${'A'.repeat(21)}+`,
    ]) {
      expect(SessionTokens.isSessionId(id), id).toBe(false);
    }
  });
});

/** A memory state store that counts writes, knows the keys written, and can fail or hold reads. */
class TestStore extends MemoryStateStore {
  writes = 0;
  reads = 0;
  readonly keys = new Set<string>();
  failing = false;
  /** Holds reads in flight, so that a save stays out. */
  readonly gate = new Gate();

  override async get(key: string): Promise<Versioned<string> | undefined> {
    this.reads++;
    await this.gate.pass();
    if (this.failing) throw new StateStoreError('store down');
    return super.get(key);
  }

  override async set(
    key: string,
    value: string,
    options?: { ifVersion?: Version | null },
  ): Promise<Version | undefined> {
    if (this.failing) throw new StateStoreError('store down');
    this.writes++;
    this.keys.add(key);
    return super.set(key, value, options);
  }

  /** The one session record written so far, parsed. */
  async record(): Promise<Record<string, unknown> | undefined> {
    expect(this.keys.size).toBe(1);
    const stored = await super.get([...this.keys][0]!);
    return stored && (JSON.parse(stored.value) as Record<string, unknown>);
  }
}

const stores: TestStore[] = [];
afterEach(async () => {
  await Promise.all(stores.splice(0).map((store) => store.close()));
});

function sessionsOn(node = 'node-1', secrets: string | string[] = SECRET) {
  const store = new TestStore();
  stores.push(store);
  const errors: unknown[] = [];
  const sessions = new Sessions(
    store,
    new SessionTokens(secrets),
    'app:',
    (error) => errors.push(error),
    node,
  );
  return { store, sessions, errors };
}

/** Another node on the same store (and the same secret). */
function otherNode(store: TestStore, node: string, secrets: string | string[] = SECRET) {
  return new Sessions(store, new SessionTokens(secrets), 'app:', () => {}, node);
}

const snapshot =
  (rooms: string[], data?: object, extra: Partial<SessionSnapshot> = {}) =>
  (): SessionSnapshot => ({ owner: 'alice', data: data && JSON.stringify(data), rooms, ...extra });

describe('Sessions', () => {
  it('opens a new session without a token, stored for its owner, with a token that names it', async () => {
    const { store, sessions } = sessionsOn();
    const opened = await sessions.open(undefined, 'alice');
    expect(opened).toMatchObject({ resumed: false, reason: 'new' });
    expect(SessionTokens.isSessionId(opened.id)).toBe(true);
    expect(new SessionTokens(SECRET).verify(opened.token, 'alice')?.id).toBe(opened.id);
    expect(await store.record()).toEqual({
      owner: 'alice',
      conn: opened.conn,
      data: {},
      rooms: [],
      node: 'node-1',
      // Its connection holds it by the first claim: a resume's takeover claims after it.
      claim: 0,
    });
    expect(opened.claim).toBe(0);
  });

  it('resumes a session with its rooms and data, on another node, with a new connection', async () => {
    const { store, sessions } = sessionsOn();
    const first = await sessions.open(undefined, 'alice');
    await sessions.save(first.id, first.conn, snapshot(['chat', 'news'], { name: 'Alice' }));
    const second = await otherNode(store, 'node-2').open(first.token, 'alice');
    expect(second).toMatchObject({
      id: first.id,
      resumed: true,
      cleanlyClosed: false,
      record: { owner: 'alice', rooms: ['chat', 'news'], data: { name: 'Alice' }, node: 'node-2' },
    });
    expect(second.reason).toBeUndefined();
    expect(second.conn).not.toBe(first.conn);
    expect(second.record?.conn).toBe(second.conn);
    expect(new SessionTokens(SECRET).verify(second.token, 'alice')?.id).toBe(first.id);
  });

  it('resumes with what the session recorded of its client’s messages and own rooms', async () => {
    const { sessions } = sessionsOn();
    const first = await sessions.open(undefined, 'alice');
    const replies = [{ s: 4, d: 'four' }];
    await sessions.save(
      first.id,
      first.conn,
      snapshot(['chat'], {}, { own: ['chat'], up: 5, replies }),
    );
    const second = await sessions.open(first.token, 'alice');
    expect(second.record).toMatchObject({ rooms: ['chat'], own: ['chat'], up: 5, replies });
  });

  it('refuses another owner’s session (forbidden) and leaves it to its owner', async () => {
    const { sessions } = sessionsOn();
    const alice = await sessions.open(undefined, 'alice');
    const mallory = await sessions.open(alice.token, 'mallory');
    expect(mallory).toMatchObject({ resumed: false, reason: 'forbidden' });
    expect(mallory.id).not.toBe(alice.id);
    expect(await sessions.open(alice.token, 'alice')).toMatchObject({
      id: alice.id,
      resumed: true,
    });
  });

  it('opens a new session for a forged token (invalid-token)', async () => {
    const { sessions } = sessionsOn();
    const alice = await sessions.open(undefined, 'alice');
    const forged = new SessionTokens('not-the-secret-of-the-nodes').issue(alice.id, 'alice');
    for (const token of [forged, 'garbage', '']) {
      const opened = await sessions.open(token, 'alice');
      expect(opened).toMatchObject({ resumed: false, reason: 'invalid-token' });
      expect(opened.id).not.toBe(alice.id);
    }
  });

  it('opens a new session when the record is gone (expired) or cannot be read', async () => {
    const { store, sessions } = sessionsOn();
    const never = new SessionTokens(SECRET).issue(SessionTokens.newSessionId(), 'alice');
    expect(await sessions.open(never, 'alice')).toMatchObject({
      resumed: false,
      reason: 'expired',
    });

    const garbled = sessionsOn();
    const alice = await garbled.sessions.open(undefined, 'alice');
    const [key] = garbled.store.keys;
    for (const value of ['not json', '{}', '{"owner":"alice","conn":"c","data":null,"rooms":[]}']) {
      await garbled.store.set(key!, value);
      const opened = await garbled.sessions.open(alice.token, 'alice');
      expect(opened, value).toMatchObject({ resumed: false, reason: 'expired' });
    }
    expect(store.keys.size).toBe(1);
  });

  it('resumes a token of the old secret during a rotation and hands out one of the new', async () => {
    const { store, sessions } = sessionsOn('node-1', OLD);
    const before = await sessions.open(undefined, 'alice');
    const during = await otherNode(store, 'node-2', [NEW, OLD]).open(before.token, 'alice');
    expect(during).toMatchObject({ id: before.id, resumed: true });
    expect(new SessionTokens(NEW).verify(during.token, 'alice')?.id).toBe(before.id);
  });

  it('keeps the session it could not read when the store is down, so it resumes later', async () => {
    const { store, sessions, errors } = sessionsOn();
    const alice = await sessions.open(undefined, 'alice');
    store.failing = true;
    const down = await sessions.open(alice.token, 'alice');
    expect(down).toEqual({
      id: alice.id,
      owner: 'alice',
      token: alice.token,
      conn: expect.any(String),
      resumed: false,
      reason: 'unavailable',
    });
    expect(errors).toEqual([expect.any(StateStoreError)]);
    // A new session still opens (unsaved) while the store is down.
    const fresh = await sessions.open(undefined, 'bob');
    expect(fresh).toMatchObject({ resumed: false, reason: 'new' });
    expect(errors).toHaveLength(2);
    store.failing = false;
    expect(await sessions.open(alice.token, 'alice')).toMatchObject({
      id: alice.id,
      resumed: true,
    });
  });

  it('refuses another owner’s token while the store is down: no read can say whose it is, the token does', async () => {
    const { store, sessions } = sessionsOn();
    const alice = await sessions.open(undefined, 'alice');
    store.failing = true;
    const reads = store.reads;
    const lookup = await sessions.lookup(alice.token, 'mallory');
    expect(lookup).toBeUndefined();
    const mallory = await sessions.open(alice.token, 'mallory', lookup);
    expect(mallory).toMatchObject({ resumed: false, reason: 'forbidden' });
    expect(mallory.id).not.toBe(alice.id);
    expect(store.reads).toBe(reads);
    store.failing = false;
    expect(await sessions.open(alice.token, 'alice')).toMatchObject({
      id: alice.id,
      resumed: true,
    });
  });

  it('asks a token of an earlier version to come back later while the store is down', async () => {
    const { store, sessions, errors } = sessionsOn();
    const alice = await sessions.open(undefined, 'alice');
    const signature = createHmac('sha256', SECRET)
      .update(`wscale.v1:${alice.id}`)
      .digest('base64url');
    const old = `v1.${alice.id}.${signature}`;
    store.failing = true;
    for (const owner of ['alice', 'mallory']) {
      await expect(sessions.open(old, owner)).rejects.toThrow(SessionStoreUnavailableError);
      const lookup = await sessions.lookup(old, owner);
      await expect(sessions.open(old, owner, lookup)).rejects.toThrow(SessionStoreUnavailableError);
    }
    expect(errors.length).toBeGreaterThan(0);
    store.failing = false;
    // Once the store answers, the store says whose it is, and the new token says it too.
    expect(await sessions.open(old, 'mallory')).toMatchObject({
      resumed: false,
      reason: 'forbidden',
    });
    const back = await sessions.open(old, 'alice');
    expect(back).toMatchObject({ id: alice.id, resumed: true });
    expect(back.token.startsWith('v2.')).toBe(true);
  });

  it('saves only for the connection that holds the session', async () => {
    const { store, sessions } = sessionsOn();
    const first = await sessions.open(undefined, 'alice');
    const second = await sessions.open(first.token, 'alice');
    // The first connection's last save arrives after the session moved: it must not win.
    await sessions.save(first.id, first.conn, snapshot(['stale']));
    expect(await store.record()).toMatchObject({ conn: second.conn, rooms: [] });
    await sessions.save(second.id, second.conn, snapshot(['chat']));
    expect(await store.record()).toMatchObject({ conn: second.conn, rooms: ['chat'] });
  });

  // A client resumed on the node that held it: the old connection's last save and the new one's
  // saves meet in flight (the old one closes late when its peer is gone, after a close timeout).
  it('does not lose a save of the new connection queued behind the old connection’s last save', async () => {
    const { store, sessions } = sessionsOn();
    const first = await sessions.open(undefined, 'alice');
    const second = await sessions.open(first.token, 'alice');
    const release = store.gate.hold();
    const closing = sessions.save(
      first.id,
      first.conn,
      snapshot(['a'], undefined, { live: false }),
    );
    const joined = sessions.save(second.id, second.conn, snapshot(['a', 'b']));
    release();
    await Promise.all([closing, joined]);
    expect(await store.record()).toMatchObject({ conn: second.conn, rooms: ['a', 'b'] });
  });

  it('does not let the old connection’s last save overwrite the new connection’s record', async () => {
    const { store, sessions } = sessionsOn();
    const first = await sessions.open(undefined, 'alice');
    const second = await sessions.open(first.token, 'alice');
    const release = store.gate.hold();
    const joined = sessions.save(second.id, second.conn, snapshot(['a', 'b']));
    const closing = sessions.save(
      first.id,
      first.conn,
      snapshot(['a'], undefined, { live: false }),
    );
    release();
    await Promise.all([closing, joined]);
    const record = await store.record();
    expect(record).toMatchObject({ conn: second.conn, rooms: ['a', 'b'] });
    expect(record?.live).not.toBe(false);
  });

  it('keeps the data saved before when a snapshot has none', async () => {
    const { store, sessions } = sessionsOn();
    const opened = await sessions.open(undefined, 'alice');
    await sessions.save(opened.id, opened.conn, snapshot(['a'], { score: 1 }));
    await sessions.save(opened.id, opened.conn, snapshot(['a', 'b'], undefined));
    expect(await store.record()).toMatchObject({ rooms: ['a', 'b'], data: { score: 1 } });
  });

  it('writes a burst of saves as at most one extra write, the newest snapshot last', async () => {
    const { store, sessions } = sessionsOn();
    const opened = await sessions.open(undefined, 'alice');
    const before = store.writes;
    const taken: number[] = [];
    const saves = Array.from({ length: 20 }, (_, i) =>
      sessions.save(opened.id, opened.conn, () => {
        taken.push(i);
        return snapshot([`room-${i}`])();
      }),
    );
    await Promise.all(saves);
    expect(store.writes - before).toBe(2);
    expect(taken).toEqual([0, 19]);
    expect(await store.record()).toMatchObject({ rooms: ['room-19'] });
  });

  it('reports a failed save and saves again on the next change', async () => {
    const { store, sessions, errors } = sessionsOn();
    const opened = await sessions.open(undefined, 'alice');
    store.failing = true;
    await sessions.save(opened.id, opened.conn, snapshot(['lost']));
    expect(errors).toEqual([expect.any(StateStoreError)]);
    store.failing = false;
    await sessions.save(opened.id, opened.conn, snapshot(['kept']));
    expect(await store.record()).toMatchObject({ rooms: ['kept'] });
  });

  it('reports a snapshot that throws and saves again on the next change', async () => {
    const { store, sessions, errors } = sessionsOn();
    const opened = await sessions.open(undefined, 'alice');
    const broken = new TypeError('Do not know how to serialize a BigInt');
    await sessions.save(opened.id, opened.conn, () => {
      throw broken;
    });
    expect(errors).toEqual([broken]);
    await sessions.save(opened.id, opened.conn, snapshot(['kept']));
    expect(await store.record()).toMatchObject({ rooms: ['kept'] });
  });

  it('names the node holding a live session, and none once its connection closed cleanly', async () => {
    const { store, sessions } = sessionsOn();
    const opened = await sessions.open(undefined, 'alice');
    expect((await sessions.lookup(opened.token, 'alice'))?.holder).toEqual({
      id: opened.id,
      node: 'node-1',
      owner: 'alice',
      claim: 0,
    });
    await sessions.save(opened.id, opened.conn, snapshot([], undefined, { live: false }));
    expect((await sessions.lookup(opened.token, 'alice'))?.holder).toBeUndefined();
    // The resume that follows knows everything handed on was recorded.
    const resumed = await otherNode(store, 'node-2').open(opened.token, 'alice');
    expect(resumed).toMatchObject({ resumed: true, cleanlyClosed: true, record: { live: true } });
    expect((await sessions.lookup(resumed.token, 'alice'))?.holder).toMatchObject({
      node: 'node-2',
    });
  });

  it('names no holder for a forged token, a missing session or a store that is down', async () => {
    const { store, sessions } = sessionsOn();
    const opened = await sessions.open(undefined, 'alice');
    expect(await sessions.lookup('v1.forged.token', 'alice')).toBeUndefined();
    const never = new SessionTokens(SECRET).issue(SessionTokens.newSessionId(), 'alice');
    expect((await sessions.lookup(never, 'alice'))?.holder).toBeUndefined();
    store.failing = true;
    const down = await sessions.lookup(opened.token, 'alice');
    expect(down?.holder).toBeUndefined();
    expect(down?.failed).toBeInstanceOf(StateStoreError);
  });

  it('resumes from the read of its lookup: one store read, not two', async () => {
    const { store, sessions } = sessionsOn();
    const opened = await sessions.open(undefined, 'alice');
    await sessions.save(opened.id, opened.conn, snapshot(['a'], undefined, { live: false }));
    const reads = store.reads;
    const lookup = await sessions.lookup(opened.token, 'alice');
    const resumed = await otherNode(store, 'node-2').open(opened.token, 'alice', lookup);
    expect(resumed).toMatchObject({ resumed: true, record: { rooms: ['a'], node: 'node-2' } });
    expect(store.reads - reads).toBe(1);
  });

  it('resumes from a stale lookup safely: the write of a record changed since is retried', async () => {
    const { store, sessions } = sessionsOn();
    const opened = await sessions.open(undefined, 'alice');
    const lookup = await sessions.lookup(opened.token, 'alice');
    await sessions.save(opened.id, opened.conn, snapshot(['late'], undefined, { live: false }));
    const resumed = await otherNode(store, 'node-2').open(opened.token, 'alice', lookup);
    expect(resumed).toMatchObject({
      resumed: true,
      cleanlyClosed: true,
      record: { rooms: ['late'] },
    });
  });

  it('lets one of many resumes of a session at once claim it, and asks the rest that lose every try to come back: none is told the store is down', async () => {
    const { store, sessions, errors } = sessionsOn();
    const first = await sessions.open(undefined, 'alice');
    const resumes = await Promise.allSettled(
      Array.from({ length: 100 }, (_, i) =>
        otherNode(store, `node-${i + 2}`).open(first.token, 'alice'),
      ),
    );
    const claims = resumes.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
    const refused = resumes.flatMap((r) => (r.status === 'rejected' ? [r.reason] : []));
    expect(claims.every((claim) => claim.resumed && claim.id === first.id)).toBe(true);
    // Each try one resume wins, so past the tries some lose every one.
    expect(refused.length).toBeGreaterThan(0);
    expect(refused.every((error) => error instanceof SessionContendedError)).toBe(true);
    expect(errors).toEqual([]);
    // The record names the last claim made.
    const record = await store.record();
    expect(record?.claim).toBe(Math.max(...claims.map((claim) => claim.claim ?? 0)));
    expect(record?.conn).toBe(claims.find((claim) => claim.claim === record?.claim)?.conn);
  });

  it('answers unavailable at once when the lookup found the store down: no second wait', async () => {
    const { store, sessions, errors } = sessionsOn();
    const opened = await sessions.open(undefined, 'alice');
    store.failing = true;
    const lookup = await sessions.lookup(opened.token, 'alice');
    store.failing = false;
    const reads = store.reads;
    const back = await sessions.open(opened.token, 'alice', lookup);
    expect(back).toMatchObject({ id: opened.id, resumed: false, reason: 'unavailable' });
    expect(store.reads).toBe(reads);
    expect(errors).toEqual([expect.any(StateStoreError)]);
    // The session is kept: the next resume finds it.
    expect(await sessions.open(opened.token, 'alice')).toMatchObject({ resumed: true });
  });
});
