import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import {
  type NatsServer,
  RedisServer,
  redisAvailable,
  skipWithoutNats,
  startNatsServer,
} from '@wscale/test-support';
import { afterAll, describe, expect, it } from 'vitest';
import { documentationSnippets, ROOT, type Snippet, snippetsOf } from './snippets.js';
import { typeCheck } from './type-check.js';

const run = promisify(execFile);
const snippets = documentationSnippets();
const programs = snippets.filter((snippet) => snippet.kind === 'run');
/** How long one documented program may run before it counts as hanging. */
const PROGRAM_TIMEOUT_MS = 30_000;

describe('the documentation code blocks (docs/README.md says how to mark them)', () => {
  it('finds the blocks of every README and docs page', () => {
    const files = new Set(snippets.map((snippet) => snippet.file));
    for (const file of ['README.md', 'packages/core/README.md', 'docs/deployment.md']) {
      expect(files).toContain(file);
    }
    expect(programs.length).toBeGreaterThan(0);
  });

  it('marks every ts / js block `run` or `fragment`, with known attributes only', () => {
    const unmarked = snippets
      .filter((snippet) => snippet.kind === undefined || snippet.unknown.length > 0)
      .map((snippet) => snippet.where);
    expect(unmarked).toEqual([]);
  });

  it('gives every program, in JavaScript, the output it prints', () => {
    const incomplete = programs
      .filter((snippet) => snippet.lang !== 'js' || snippet.output === undefined)
      .map((snippet) => snippet.where);
    expect(incomplete).toEqual([]);
  });

  it('type-checks every block in strict mode, against the built packages', () => {
    const errors = [...typeCheck(snippets).values()].flat();
    expect(errors).toEqual([]);
  }, 120_000);
});

describe('the documented programs print what the text says', () => {
  const services = new Services();
  afterAll(() => services.stop());

  it.for(programs)('$where', { timeout: PROGRAM_TIMEOUT_MS + 30_000 }, async (snippet, context) => {
    const env = await services.for(snippet);
    // The service is not installed here (in CI, which requires it, `for` throws instead).
    if (env === undefined) return context.skip();
    expect(lines(await runProgram(snippet.code, env))).toEqual(lines(snippet.output ?? ''));
  });
});

describe('blocks that the text pairs', () => {
  it("the root README's server answers the client README's browser block", async () => {
    const block = (file: string) => snippets.find((snippet) => snippet.file === file)!;
    const server = replaced(block('README.md').code, [
      ['port: 8080,', "port: 0, host: '127.0.0.1',"],
    ]);
    const client = replaced(block('packages/client/README.md').code, [
      [
        "createClient('wss://example.com/ws')",
        "createClient('ws://127.0.0.1:' + wss.address()?.port, { WebSocket })",
      ],
    ]);
    const program = [
      // What the text says to put in the placeholders, for one process.
      "import { MemoryBroker } from '@wscale/core';",
      "import WebSocket from 'ws';",
      'const broker = new MemoryBroker();',
      "const someClientId = 'a-client-id';",
      server,
      client,
      'console.log(reply);',
      'await client.close();',
      'await wss.close();',
      'await broker.close();',
    ].join('\n');
    expect(lines(await runProgram(program, {}))).toEqual([
      'connection open',
      'you said hello',
      'connection closed',
    ]);
  });
});

describe('reading the markdown', () => {
  it('takes ts / js blocks with their markers, in lists too, and the output after a program', () => {
    const markdown = [
      '```ts fragment',
      'const a = 1;',
      '```',
      '1. in a list:',
      '   ```js run in=examples/raw',
      '   console.log(2);',
      '   ```',
      '   ```text output',
      '   2',
      '   ```',
      '````md',
      '```ts',
      'not a block of its own',
      '```',
      '````',
      '```ts fragment continues shiny',
      'a;',
      '```',
      '```sh',
      'ls',
      '```',
      '```JavaScript',
      'untold();',
      '```',
    ].join('\n');
    const found = snippetsOf('x.md', markdown);
    expect(
      found.map(({ where, kind, lang, code, output, continues, folder, unknown }) => ({
        where,
        kind,
        lang,
        code,
        output,
        continues,
        folder,
        unknown,
      })),
    ).toEqual([
      {
        where: 'x.md:1',
        kind: 'fragment',
        lang: 'ts',
        code: 'const a = 1;\n',
        output: undefined,
        continues: false,
        folder: undefined,
        unknown: [],
      },
      {
        where: 'x.md:5',
        kind: 'run',
        lang: 'js',
        code: 'console.log(2);\n',
        output: '2\n',
        continues: false,
        folder: 'examples/raw',
        unknown: [],
      },
      {
        where: 'x.md:16',
        kind: 'fragment',
        lang: 'ts',
        code: 'a;\n',
        output: undefined,
        continues: true,
        folder: undefined,
        unknown: ['shiny'],
      },
      {
        where: 'x.md:22',
        kind: undefined,
        lang: 'js',
        code: 'untold();\n',
        output: undefined,
        continues: false,
        folder: undefined,
        unknown: [],
      },
    ]);
  });

  it('reports a block that does not type-check at its line in the markdown', () => {
    const [first, second] = snippetsOf(
      'x.md',
      [
        '```ts fragment',
        "const port: number = '8080';",
        '```',
        '```ts fragment continues',
        'port.toFixed();',
        'port.nope();',
        '```',
      ].join('\n'),
    );
    const errors = typeCheck([first!, second!]);
    const at = (where: string) => errors.get(where)?.map((error) => error.split(': ')[0]);
    expect(at('x.md:1')).toEqual(['x.md:2']);
    expect(at('x.md:4')).toEqual(['x.md:6']); // `port` of the block it continues is known
  }, 120_000);
});

/** Runs a program with `node` from docs/, as a user's file; resolves with what it printed. */
async function runProgram(code: string, env: Record<string, string>): Promise<string> {
  const dir = join(ROOT, 'docs/.tmp');
  mkdirSync(dir, { recursive: true });
  const programDir = mkdtempSync(join(dir, 'program-'));
  try {
    // In docs/, so that its imports resolve from docs/node_modules as a user's would.
    const file = join(programDir, 'program.mjs');
    writeFileSync(file, code);
    const { stdout } = await run(process.execPath, [file], {
      cwd: programDir,
      env: { ...process.env, ...env },
      timeout: PROGRAM_TIMEOUT_MS,
      killSignal: 'SIGKILL',
    });
    return stdout;
  } finally {
    rmSync(programDir, { recursive: true, force: true });
  }
}

/** `code` with each `[from, to]` replaced; a `from` that is not there is the text having changed. */
function replaced(code: string, replacements: Array<[string, string]>): string {
  return replacements.reduce((text, [from, to]) => {
    if (!text.includes(from)) throw new Error(`the block no longer contains ${from}`);
    return text.replace(from, to);
  }, code);
}

/** Trimmed, non-empty lines. */
function lines(text: string): string[] {
  return text
    .split('\n')
    .map((line) => line.trimEnd())
    .filter((line) => line !== '');
}

/**
 * The servers documented programs talk to, started by the test on free loopback ports (never the
 * machine's shared ones): a program that reads `REDIS_URL` or `NATS_URL` gets its own server's.
 */
class Services {
  #redis: Promise<RedisServer> | undefined;
  #nats: Promise<{ server: NatsServer; close(): Promise<void> }> | undefined;

  /** The environment a program needs, or `undefined` when a service is missing here. */
  async for(snippet: Snippet): Promise<Record<string, string> | undefined> {
    const env: Record<string, string> = {};
    const needs = (name: string, libraries: string[]) => {
      const reads = snippet.code.includes(`process.env.${name}`);
      const library = libraries.find((candidate) => snippet.code.includes(`'${candidate}`));
      if (library !== undefined && !reads) {
        // Without it the program would reach a server on the default port: the machine's own.
        throw new Error(`${snippet.where} uses ${library}: it must read process.env.${name}`);
      }
      return reads;
    };
    if (needs('REDIS_URL', ['@wscale/redis', 'ioredis'])) {
      if (!redisAvailable()) return undefined;
      this.#redis ??= RedisServer.launch();
      env.REDIS_URL = (await this.#redis).url;
    }
    if (needs('NATS_URL', ['@wscale/nats', '@nats-io/'])) {
      if (skipWithoutNats()) return undefined;
      this.#nats ??= startNatsServer();
      env.NATS_URL = (await this.#nats).server.url;
    }
    return env;
  }

  async stop(): Promise<void> {
    await Promise.all([
      this.#redis?.then((server) => server.destroy()),
      this.#nats?.then((nats) => nats.close()),
    ]);
  }
}
