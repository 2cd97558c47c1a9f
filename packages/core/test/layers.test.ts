import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, posix, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

/**
 * The folders of `packages/core/src` are layers (see docs/architecture.md and each folder's
 * README.md): a folder imports itself, the folders it lists here, and the floor (`contracts.ts`,
 * `errors.ts`, `util/`), nothing else, counting `import type` too. `index.ts` at the root is the
 * public entry and imports anything.
 */
// biome-ignore format: a table, one row per folder
const MAY_IMPORT: Record<string, readonly string[]> = {
  server: ['transport', 'v1', 'presence', 'rooms', 'sessions', 'mesh', 'ops', 'protocol', 'adapters'],
  transport: ['v1', 'presence', 'rooms', 'sessions', 'mesh', 'ops', 'protocol'],
  v1: ['presence', 'rooms', 'sessions', 'mesh', 'ops', 'protocol'],
  presence: ['rooms', 'mesh', 'ops', 'protocol'],
  rooms: ['ops', 'protocol'],
  sessions: ['ops', 'protocol'],
  mesh: ['ops', 'protocol'],
  ops: ['protocol'],
  protocol: [],
  adapters: [],
  testing: [],
  floor: [],
};

const SRC = join(dirname(fileURLToPath(import.meta.url)), '../src');

/** The layer a file (relative to src, with `/`) belongs to; `undefined` for the public entry. */
function layerOf(file: string): string | undefined {
  if (file === 'index.ts') return undefined;
  const [top] = file.split('/');
  return top === file || top === 'util' ? 'floor' : top!;
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(path);
    return entry.name.endsWith('.ts') ? [relative(SRC, path).split(sep).join('/')] : [];
  });
}

/** The relative specifiers a file imports or re-exports (static, `import type`, dynamic). */
function relativeImports(source: string): string[] {
  const specifiers = source.matchAll(/\b(?:from|import)\s*\(?\s*['"](\.{1,2}\/[^'"]+)['"]/g);
  return [...specifiers].map((match) => match[1]!);
}

/** Every import that crosses the layers the wrong way: `file imports specifier (rule)`. */
function violations(): string[] {
  const found: string[] = [];
  for (const file of sourceFiles(SRC)) {
    const from = layerOf(file);
    if (from === undefined) continue;
    for (const specifier of relativeImports(readFileSync(join(SRC, file), 'utf8'))) {
      const target = posix.join(posix.dirname(file), specifier).replace(/\.js$/, '.ts');
      const to = layerOf(target);
      if (to === from || to === 'floor' || (to !== undefined && MAY_IMPORT[from]!.includes(to))) {
        continue;
      }
      found.push(`${file} imports ${specifier} (${from}/ may not import ${to ?? 'index.ts'})`);
    }
  }
  return found;
}

describe('the folders of packages/core/src are layers', () => {
  it('every folder has a row in the table of allowed imports', () => {
    const folders = readdirSync(SRC, { withFileTypes: true })
      .filter((entry) => entry.isDirectory() && entry.name !== 'util')
      .map((entry) => entry.name);
    expect(folders.filter((folder) => MAY_IMPORT[folder] === undefined)).toEqual([]);
  });

  it('finds the files of every folder and their imports, import type included', () => {
    const files = sourceFiles(SRC);
    expect(files).toContain('protocol/outgoing.ts');
    expect(files).toContain('adapters/memory/memory-broker.ts');
    expect(
      relativeImports("import type {\n  A,\n} from '../x/y.js';\nexport * from './z.js';"),
    ).toEqual(['../x/y.js', './z.js']);
  });

  it('no folder imports a folder above it or beside it', () => {
    expect(violations()).toEqual([]);
  });
});
