import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { expect, it } from 'vitest';

/**
 * The packages' entry points, as an application with TypeScript's older settings finds them
 * (`"module": "CommonJS"`, whose resolution is `node10`: no `exports`, so the subpaths need
 * `typesVersions`). Against what `pnpm build` wrote, installed as in docs/.
 */
const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const file = join(ROOT, 'docs', '.node10-user.ts');
const text = `
import { ScaledWebSocketServer } from '@wscale/core';
import { brokerSuite } from '@wscale/core/testing';
import { decodeServerFrame } from '@wscale/core/protocol';
import { clusterView } from '@wscale/prometheus/cluster-view';
import { collectMetrics } from '@wscale/prometheus';
import { WscaleClient } from '@wscale/client';
import { RedisBroker } from '@wscale/redis';
import { NatsBroker } from '@wscale/nats';
export const used = [ScaledWebSocketServer, brokerSuite, decodeServerFrame, clusterView, collectMetrics, WscaleClient, RedisBroker, NatsBroker];
`;

it('every entry point type-checks under moduleResolution node10 (module CommonJS)', () => {
  const options: ts.CompilerOptions = {
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.CommonJS,
    moduleResolution: ts.ModuleResolutionKind.Node10,
    types: ['node'],
    typeRoots: [join(ROOT, 'node_modules/@types')],
    strict: true,
    esModuleInterop: true,
    skipLibCheck: true,
    noEmit: true,
  };
  const host = ts.createCompilerHost(options);
  const { getSourceFile, fileExists, readFile } = host;
  host.getSourceFile = (name, language, ...rest) =>
    name === file
      ? ts.createSourceFile(name, text, language)
      : getSourceFile(name, language, ...rest);
  host.fileExists = (name) => name === file || fileExists(name);
  host.readFile = (name) => (name === file ? text : readFile(name));
  const program = ts.createProgram([file], options, host);
  const errors = ts
    .getPreEmitDiagnostics(program, program.getSourceFile(file))
    .map((diagnostic) => ts.flattenDiagnosticMessageText(diagnostic.messageText, '\n'));
  expect(errors).toEqual([]);
}, 60_000);
