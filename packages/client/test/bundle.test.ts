import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closeAll, startFixture } from './helpers/clients.js';

const run = promisify(execFile);
const packageDir = fileURLToPath(new URL('..', import.meta.url));
/** How far the README's size may be from the measured one, in kB. */
const SIZE_TOLERANCE_KB = 0.2;

/** What this test uses of esbuild's API. */
interface Bundler {
  build(options: object): Promise<{ outputFiles: Array<{ contents: Uint8Array }> }>;
}

/**
 * Builds the package with its real tsup config into a temporary directory and checks what a
 * browser would load: the protocol codec is bundled in, and nothing reaches Node or the server.
 */
describe('the built bundle', () => {
  let out = '';
  const read = (file: string) => readFile(join(out, file), 'utf8');

  beforeAll(async () => {
    out = await mkdtemp(join(tmpdir(), 'wscale-client-build-'));
    await run('npx', ['tsup', '--out-dir', out], { cwd: packageDir, timeout: 120_000 });
  }, 120_000);

  afterAll(async () => {
    await closeAll();
    if (out) await rm(out, { recursive: true, force: true });
  });

  it('the ESM bundle imports nothing: no node: built-in, no ws, no @wscale/core', async () => {
    const esm = await read('index.js');
    expect(esm).toContain('wscale.v1');
    expect(esm).not.toMatch(/^\s*import[\s{*]/m);
    expect(esm).not.toMatch(/\bimport\s*\(/);
    expect(esm).not.toMatch(/\brequire\s*\(/);
    expect(esm).not.toMatch(/["']node:/);
    expect(esm).not.toMatch(/["']ws["']/);
    expect(esm).not.toMatch(/["']@wscale\/core/);
  });

  it('the CJS bundle requires nothing', async () => {
    const cjs = await read('index.cjs');
    expect(cjs).not.toMatch(/\brequire\s*\(/);
    expect(cjs).not.toMatch(/["']node:/);
  });

  it('the type declarations are self-contained', async () => {
    for (const file of ['index.d.ts', 'index.d.cts']) {
      const dts = await read(file);
      expect(dts).toContain('declare class WscaleClient');
      expect(dts).not.toMatch(/from\s+["']/);
      expect(dts).not.toMatch(/import\(["']/);
    }
  });

  /** The ESM bundle as a bundler ships it to a browser: minified. */
  async function minified(): Promise<Uint8Array> {
    // esbuild is tsup's own bundler: the one the build already uses, not a dependency of ours.
    const esbuild: Bundler = createRequire(createRequire(import.meta.url).resolve('tsup'))(
      'esbuild',
    );
    const bundle = await esbuild.build({
      stdin: { contents: "export * from './index.js';", resolveDir: out },
      bundle: true,
      minify: true,
      format: 'esm',
      platform: 'browser',
      write: false,
    });
    return bundle.outputFiles[0]!.contents;
  }

  it('is as small as the README says, minified and gzipped as a bundler ships it', async () => {
    const kB = gzipSync(await minified(), { level: 9 }).length / 1000;
    const readme = await readFile(join(packageDir, 'README.md'), 'utf8');
    const stated = /\*\*(\d+(?:\.\d+)?) kB minified and gzipped\*\*/.exec(readme)?.[1];
    expect(stated, 'the README states "**<n> kB minified and gzipped**"').toBeDefined();
    expect(
      Math.abs(Number(stated) - kB),
      `the README says ${stated} kB, the bundle is ${kB.toFixed(2)} kB`,
    ).toBeLessThanOrEqual(SIZE_TOLERANCE_KB);
  });

  it('names its errors after their classes when minified', async () => {
    const source = Buffer.from(await minified()).toString('base64');
    const bundle: Record<string, unknown> = await import(`data:text/javascript;base64,${source}`);
    const errors = Object.entries(bundle).filter(
      ([, value]) => typeof value === 'function' && value.prototype instanceof Error,
    );
    expect(errors.length).toBeGreaterThanOrEqual(9);
    for (const [name, Class] of errors) {
      const error = Reflect.construct(Class as new () => Error, ['INVALID_ARGUMENT', 'x']);
      expect(error.name).toBe(name);
    }
  });

  it('runs on a standard WebSocket (the global one, as in browsers)', async () => {
    const fixture = await startFixture();
    fixture.behavior.join = (room, connection, id) => {
      connection.send({ t: 'joined', r: room, o: 0, e: 'E' });
      connection.send({ t: 'ack', id });
    };
    fixture.behavior.request = ({ message, binary }) => {
      if (message.t === 'req' && !binary) {
        // A message to the client once it asked: binary, in the room, at offset 1.
        fixture.last.send({ t: 'msg', r: 'smoke', o: 1, e: 'E' }, new Uint8Array([7, 7]));
      }
      return binary ? { binary } : { d: `re:${(message as { d?: string }).d}` };
    };
    // Node 20 has a global WebSocket only behind a flag; later versions have it by default.
    const flags = 'WebSocket' in globalThis ? [] : ['--experimental-websocket'];
    const { stdout } = await run(
      process.execPath,
      [
        ...flags,
        fileURLToPath(new URL('./helpers/bundle-smoke.mjs', import.meta.url)),
        pathToFileURL(join(out, 'index.js')).href,
        fixture.url,
      ],
      { timeout: 20_000 },
    );
    expect(JSON.parse(stdout.trim().split('\n').at(-1)!)).toEqual({
      states: ['open', 'closed'],
      rooms: ['smoke'],
      text: 're:hello',
      binary: [true, 1, 2, 3],
      received: [true, 7, 7, { room: 'smoke', offset: 1, epoch: 'E' }],
    });
  });
});
