import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

/**
 * docs/guarantees.md maps each promise to the tests that prove it. This keeps the map true: every
 * row names at least one test, and every test it names exists, in the file it names.
 */
const root = fileURLToPath(new URL('../..', import.meta.url));
const HEADING = '## Where each promise is tested';

interface Row {
  promise: string;
  tests: Array<{ file: string; name: string }>;
}

/** The table under {@link HEADING}: one row per promise, its cell of `file`: "test name" refs. */
function table(markdown: string): Row[] {
  const section = markdown.split(HEADING)[1]?.split('\n## ')[0] ?? '';
  return section
    .split('\n')
    .filter((line) => line.startsWith('|') && !/^\|\s*(Promise|-+)\s*\|/.test(line))
    .map((line) => {
      const [, promise = '', cell = ''] = line.split('|').map((part) => part.trim());
      const tests = [...cell.matchAll(/`([^`]+)`: "([^"]+)"/g)].map(([, file, name]) => ({
        file: file!,
        name: name!,
      }));
      return { promise, tests };
    });
}

/** The names of the tests a file declares with `it(…)` or `test(…)` (modifiers included). */
function testNames(source: string): Set<string> {
  const call = /\b(?:it|test)(?:\.\w+(?:\([^()]*\))?)*\(\s*(['"`])((?:\\.|(?!\1)[^\\])*)\1/g;
  return new Set([...source.matchAll(call)].map((match) => match[2]!.replace(/\\(.)/g, '$1')));
}

describe('docs/guarantees.md', () => {
  const rows = table(readFileSync(`${root}/docs/guarantees.md`, 'utf8'));

  it('maps every promise to at least one test', () => {
    expect(rows.length).toBeGreaterThan(10);
    expect(rows.filter((row) => row.tests.length === 0).map((row) => row.promise)).toEqual([]);
  });

  it('names only tests that exist, in the files named', () => {
    const missing: string[] = [];
    for (const { file, name } of rows.flatMap((row) => row.tests)) {
      const path = `${root}/${file}`;
      if (!existsSync(path) || !testNames(readFileSync(path, 'utf8')).has(name)) {
        missing.push(`${file}: "${name}"`);
      }
    }
    expect(missing).toEqual([]);
  });

  it('finds test names the way the map writes them', () => {
    const names = testNames(
      [
        "it('plain', () => {});",
        'it("a client\'s own", async () => {});',
        "it.runIf(true)(\n  'modified', () => {});",
        "test('it\\'s escaped', () => {});",
        "// not a test: suit('x')",
      ].join('\n'),
    );
    expect([...names].sort()).toEqual(["a client's own", "it's escaped", 'modified', 'plain']);
  });
});
