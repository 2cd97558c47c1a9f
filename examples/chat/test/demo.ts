import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { freePort, serviceAvailable } from '@wscale/test-support';
import { type Browser, chromium } from 'playwright-core';

const CHROMIUM = '/usr/bin/chromium';
/** Whether headless Chromium can run here. */
export const hasChromium = serviceAvailable(CHROMIUM);
const root = fileURLToPath(new URL('..', import.meta.url));
/** Where screenshots go. */
export const shots = fileURLToPath(new URL('../../../.test-results/', import.meta.url));

/** The chat demo running with two workers, and a headless Chromium to look at it. */
export interface Demo {
  url: string;
  browser: Browser;
  stop(): Promise<void>;
}

/** Starts the demo (`server.js`, two workers) and Chromium. */
export async function startDemo(): Promise<Demo> {
  const port = await freePort();
  const demo: ChildProcess = spawn(process.execPath, ['server.js'], {
    cwd: root,
    env: { ...process.env, PORT: String(port), WORKERS: '2' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the demo did not start')), 20_000);
    demo.stdout!.on('data', (chunk: Buffer) => {
      if (String(chunk).includes('chat demo:')) {
        clearTimeout(timer);
        resolve();
      }
    });
    demo.once('exit', (code) => reject(new Error(`the demo exited with ${code}`)));
  });
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  });
  return {
    url: `http://127.0.0.1:${port}/`,
    browser,
    async stop() {
      await browser.close();
      if (demo.exitCode === null) {
        const exited = new Promise((resolve) => demo.once('exit', resolve));
        demo.kill('SIGTERM');
        await exited;
      }
    },
  };
}
