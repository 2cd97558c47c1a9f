import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { expect, it } from 'vitest';

/**
 * A real type check at test time (vitest's `expectTypeOf` checks nothing when it runs): the
 * TypeScript compiler on a fixture, with the repository's compiler options.
 */
const config = fileURLToPath(new URL('../../../tsconfig.json', import.meta.url));
const fixture = fileURLToPath(new URL('./fixtures/websocket-constructors.ts', import.meta.url));
const MARKER = '// @ts-expect-error';

/** The lines (1-based) of the fixture with a type error, after `edit` changed its text. */
function errorLines(edit: (text: string) => string): number[] {
  const parsed = ts.getParsedCommandLineOfConfigFile(
    config,
    {},
    {
      ...ts.sys,
      onUnRecoverableConfigFileDiagnostic: (diagnostic) => {
        throw new Error(ts.flattenDiagnosticMessageText(diagnostic.messageText, '\n'));
      },
    },
  )!;
  const host = ts.createCompilerHost(parsed.options);
  const getSourceFile = host.getSourceFile.bind(host);
  host.getSourceFile = (name, language, ...rest) =>
    name === fixture
      ? ts.createSourceFile(name, edit(readFileSync(fixture, 'utf8')), language)
      : getSourceFile(name, language, ...rest);
  const program = ts.createProgram([fixture], parsed.options, host);
  return ts
    .getPreEmitDiagnostics(program)
    .map((diagnostic) => {
      expect(diagnostic.file?.fileName, String(diagnostic.messageText)).toBe(fixture);
      return diagnostic.file!.getLineAndCharacterOfPosition(diagnostic.start!).line + 1;
    })
    .sort((a, b) => a - b);
}

it('accepts the WebSocket of browsers, of Node and of the ws package, and refuses others', () => {
  const lines = readFileSync(fixture, 'utf8').split('\n');
  const refused = lines.flatMap((line, i) => (line.startsWith(MARKER) ? [i + 2] : []));
  expect(refused.length).toBeGreaterThan(0);
  // As written, it compiles: the real sockets fit, and every marked line is an error.
  expect(errorLines((text) => text)).toEqual([]);
  // Without the markers, exactly the marked lines fail.
  expect(errorLines((text) => text.replaceAll(MARKER, '//'))).toEqual(refused);
}, 60_000);
