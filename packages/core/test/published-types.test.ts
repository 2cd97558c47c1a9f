import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

/**
 * The published types of `@wscale/core` hold its public API only. Reads what `pnpm build` wrote in
 * `packages/core/dist`; builds nothing.
 */
const dist = join(import.meta.dirname, '..', 'dist');

/** Members of the internal connection, broker and server that once leaked into the types. */
const internalMembers = [
  'addRoom',
  'removeRoom',
  'deliver',
  'writeFrame',
  'writeMessage',
  'hold',
  'release',
  'takeOp',
  'markAlive',
  'markOwn',
  'countDropped',
  'roomList',
  'ownRooms',
  'conn',
  'gone',
  'heartbeat',
  'handlerFailed',
  'wants',
  'linkChanged',
  'attach',
  'detach',
];
/** Internal types that no public type may name. */
const internalTypes = ['ClientHost', 'Connection', 'AnyClient', 'Outgoing', 'BroadcastTarget'];

function declarationFiles(folder: string): string[] {
  return readdirSync(folder, { withFileTypes: true }).flatMap((entry) => {
    const path = join(folder, entry.name);
    if (entry.isDirectory()) return declarationFiles(path);
    return /\.d\.c?ts$/.test(entry.name) ? [path] : [];
  });
}

const files = existsSync(dist) ? declarationFiles(dist) : [];

describe('published types of @wscale/core', () => {
  it('exist (run `pnpm build` first)', () => {
    expect(files.map((file) => file.slice(dist.length + 1))).toContain('index.d.ts');
  });

  it.each(files.map((file) => [file.slice(dist.length + 1), file]))(
    '%s holds no @internal member and no internal name',
    (_name, file) => {
      const text = readFileSync(file, 'utf8');
      expect(text).not.toMatch(/@internal/);
      const code = text.replace(/\/\*[\s\S]*?\*\//g, '');
      // A public member declaration: indented, then the name, then `(`, `<`, `:` or `?`
      // (protected members are the adapters' API: `BaseBroker.deliver` is one).
      const member = new RegExp(
        `^[ \\t]+(?:readonly |static |get |set )*(${internalMembers.join('|')})\\??[(<:]`,
        'm',
      );
      expect(code.match(member)?.[0]).toBeUndefined();
      const type = new RegExp(`\\b(${internalTypes.join('|')})\\b`);
      expect(code.match(type)?.[0]).toBeUndefined();
    },
  );
});
