import { Buffer } from 'node:buffer';
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { InvalidOptionError } from '../errors.js';

/** Tokens of earlier versions: they name the session only. */
const V1 = 'v1.';
const V2 = 'v2.';
/** 16 random bytes in base64url. */
const SESSION_ID = /^[A-Za-z0-9_-]{22}$/;

/** What a genuine token says. */
export interface VerifiedToken {
  /** The session it names. */
  id: string;
  /**
   * Whether it was issued to the owner it was checked against: `false` for another owner's token,
   * `undefined` for a token of an earlier version (`v1.`), which does not say.
   */
  owned: boolean | undefined;
}

/**
 * Signs and verifies session tokens: `v2.<session id>.<owner tag>.<HMAC-SHA256 of both>`,
 * base64url, where the owner tag is an HMAC of the session's owner. So a token says whose it is
 * without a store read: a stolen token is refused as another owner's even while the state store
 * cannot be read. Tokens of earlier versions (`v1.<session id>.<HMAC of the id>`) still verify.
 * Tokens are signed with the first secret and verified with any, so secrets can be rotated: put
 * the new one first, keep the old one until its sessions have expired.
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

  /** The token `owner` presents to resume the session. */
  issue(sessionId: string, owner: string): string {
    const secret = this.#secrets[0]!;
    const tag = ownerTag(secret, owner);
    return `${V2}${sessionId}.${tag}.${sign(secret, `wscale.v2:${sessionId}.${tag}`)}`;
  }

  /**
   * The session of a genuine token, and whether it is `owner`'s; `undefined` for a forged or
   * malformed one.
   */
  verify(token: string, owner: string): VerifiedToken | undefined {
    const v2 = token.startsWith(V2);
    if (!v2 && !token.startsWith(V1)) return undefined;
    const parts = token.slice(V2.length).split('.');
    if (parts.length !== (v2 ? 3 : 2)) return undefined;
    const sessionId = parts[0]!;
    const tag = v2 ? parts[1]! : undefined;
    const given = Buffer.from(parts.at(-1)!);
    const signed = v2 ? `wscale.v2:${sessionId}.${tag}` : `wscale.v1:${sessionId}`;
    for (const secret of this.#secrets) {
      if (!same(given, sign(secret, signed))) continue;
      const owned = tag === undefined ? undefined : same(Buffer.from(tag), ownerTag(secret, owner));
      return { id: sessionId, owned };
    }
    return undefined;
  }
}

function sign(secret: Buffer, text: string): string {
  return createHmac('sha256', secret).update(text).digest('base64url');
}

/** Names an owner in a token: 128 bits of an HMAC of it. */
function ownerTag(secret: Buffer, owner: string): string {
  return createHmac('sha256', secret)
    .update(`wscale.owner:${owner}`)
    .digest()
    .subarray(0, 16)
    .toString('base64url');
}

function same(given: Buffer, expected: string): boolean {
  const bytes = Buffer.from(expected);
  return given.length === bytes.length && timingSafeEqual(given, bytes);
}
