import { InvalidArgumentError } from '../errors.js';

/**
 * Refuses a room name or client id that is no string, and an empty room name, which no
 * `wscale.v1` client can join (`what` names it in the message).
 */
export function checkName(value: unknown, what: 'room' | 'client id'): asserts value is string {
  if (typeof value !== 'string') {
    throw new InvalidArgumentError(`a ${what} is a string, not ${typeName(value)}`);
  }
  if (value === '' && what === 'room')
    throw new InvalidArgumentError('a room name must not be empty');
}

/** Refuses a list with a room name or client id that is no string. */
export function checkNames(values: readonly unknown[], what: 'room' | 'client id'): void {
  for (const value of values) checkName(value, what);
}

/**
 * Refuses a close a connection cannot be closed with: a code other than 1000 to 1014 (but not 1004
 * to 1006, which no close frame carries) or 3000 to 4999, or a reason that is no string.
 */
export function checkClose(code: unknown, reason: unknown): void {
  if (!(typeof code === 'number' && Number.isInteger(code) && isCloseCode(code))) {
    throw new InvalidArgumentError(
      `a close code is 1000–1014 (not 1004–1006) or 3000–4999, not ${String(code)}`,
    );
  }
  if (typeof reason !== 'string') {
    throw new InvalidArgumentError(`a close reason is a string, not ${typeName(reason)}`);
  }
}

function isCloseCode(code: number): boolean {
  return (
    (code >= 1000 && code <= 1014 && code !== 1004 && code !== 1005 && code !== 1006) ||
    (code >= 3000 && code <= 4999)
  );
}

/** How a value is named in an error message. */
export function typeName(value: unknown): string {
  if (value === null) return 'null';
  if (typeof value === 'object') return value.constructor?.name ?? 'an object';
  return typeof value;
}
