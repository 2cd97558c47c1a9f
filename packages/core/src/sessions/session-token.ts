import { Buffer } from 'node:buffer';
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { InvalidOptionError } from '../errors.js';

const PREFIX = 'v1.';
/** 16 random bytes in base64url. */
const SESSION_ID = /^[A-Za-z0-9_-]{22}$/;

/**
 * Signs and verifies session tokens: `v1.<session id>.<HMAC-SHA256 of the id>`, base64url.
 * Tokens are signed with the first secret and verified with any, so secrets can be rotated:
 * put the new one first, keep the old one until its sessions have expired.
 */
export class SessionTokens {
  readonly #secrets: Buffer[];

  constructor(secrets: string | string[]) {
    const list = (Array.isArray(secrets) ? secrets : [secrets]).map((s) => Buffer.from(s));
    if (list.length === 0 || list.some((secret) => secret.length < 16)) {
      throw new InvalidOptionError('sessionSecret must be one or more strings of 16+ bytes');
    }
    this.#secrets = list;
  }

  /** A new, unguessable session id (128 random bits). */
  static newSessionId(): string {
    return randomBytes(16).toString('base64url');
  }

  /** Whether an id has the shape of a session id (raw clients' ids never do). */
  static isSessionId(id: string): boolean {
    return SESSION_ID.test(id);
  }

  /** The token a client presents to resume the session. */
  issue(sessionId: string): string {
    return `${PREFIX}${sessionId}.${this.#sign(this.#secrets[0]!, sessionId)}`;
  }

  /** The session id of a genuine token, or `undefined` for a forged or malformed one. */
  verify(token: string): string | undefined {
    if (!token.startsWith(PREFIX)) return undefined;
    const dot = token.indexOf('.', PREFIX.length);
    if (dot === -1) return undefined;
    const sessionId = token.slice(PREFIX.length, dot);
    const given = Buffer.from(token.slice(dot + 1));
    for (const secret of this.#secrets) {
      const expected = Buffer.from(this.#sign(secret, sessionId));
      if (given.length === expected.length && timingSafeEqual(given, expected)) return sessionId;
    }
    return undefined;
  }

  #sign(secret: Buffer, sessionId: string): string {
    return createHmac('sha256', secret).update(`wscale.v1:${sessionId}`).digest('base64url');
  }
}
