import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { expect, it } from 'vitest';

/**
 * An application compiled with options stricter than the repository's own (which its sources are
 * not all written for) still type-checks where it uses the packages: the fixture is checked, not
 * the packages' sources.
 */
const config = fileURLToPath(new URL('../../tsconfig.json', import.meta.url));
const fixture = fileURLToPath(new URL('./fixtures/strict-user.ts', import.meta.url));

it('every adapter fits the server and the publisher under exactOptionalPropertyTypes', () => {
  const parsed = ts.getParsedCommandLineOfConfigFile(
    config,
    { exactOptionalPropertyTypes: true },
    {
      ...ts.sys,
      onUnRecoverableConfigFileDiagnostic: (diagnostic) => {
        throw new Error(ts.flattenDiagnosticMessageText(diagnostic.messageText, '\n'));
      },
    },
  )!;
  const program = ts.createProgram([fixture], parsed.options);
  const errors = ts
    .getPreEmitDiagnostics(program, program.getSourceFile(fixture))
    .map((diagnostic) => ts.flattenDiagnosticMessageText(diagnostic.messageText, '\n'));
  expect(errors).toEqual([]);
}, 60_000);
