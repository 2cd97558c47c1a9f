import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { freePort, serviceAvailable } from '@wscale/test-support';
import { type Browser, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const CHROMIUM = '/usr/bin/chromium';
const hasChromium = serviceAvailable(CHROMIUM);
const root = fileURLToPath(new URL('..', import.meta.url));
const shots = fileURLToPath(new URL('../../../.test-results/', import.meta.url));

/** Waits for a page's connection state badge to read `state`. */
async function stateIs(page: Page, state: string, timeout = 15_000): Promise<void> {
  await page.waitForSelector(`#state[data-state="${state}"]`, { timeout });
}

const nodeOf = (page: Page) => page.textContent('#node') as Promise<string>;
const chatLines = (page: Page) =>
  page.$$eval('#log p.chat', (lines) => lines.map((line) => line.firstChild?.textContent ?? ''));

describe.skipIf(!hasChromium)('the chat demo in headless Chromium', () => {
  let demo: ChildProcess;
  let browser: Browser;
  let url = '';

  beforeAll(async () => {
    const port = await freePort();
    demo = spawn(process.execPath, ['server.js'], {
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
    url = `http://127.0.0.1:${port}/`;
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
    });
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    if (demo && demo.exitCode === null) {
      const exited = new Promise((resolve) => demo.once('exit', resolve));
      demo.kill('SIGTERM');
      await exited;
    }
  });

  it('two pages on different nodes chat; one node is killed, its page resumes losing nothing and is heard again', async () => {
    const alice = await browser.newPage();
    await alice.goto(url);
    await stateIs(alice, 'open');
    const aliceNode = await nodeOf(alice);

    // node:cluster deals connections round-robin: a new page lands on the other worker soon.
    const bob = await browser.newPage();
    for (let attempt = 0; attempt < 10; attempt++) {
      await bob.goto(url);
      await stateIs(bob, 'open');
      if ((await nodeOf(bob)) !== aliceNode) break;
    }
    expect(await nodeOf(bob)).not.toBe(aliceNode);

    await alice.fill('#text', 'hello from alice');
    await alice.click('button[type="submit"]');
    await bob.waitForFunction(() =>
      document.querySelector('#log')?.textContent?.includes('hello from alice'),
    );

    // Kill alice's node; while she is away, bob keeps talking.
    // Record every state change in the page: the time away can be shorter than a poll.
    await alice.evaluate(() => {
      const page = window as unknown as {
        chat: { on(event: 'state', listener: (state: string) => void): void };
        seen: string[];
      };
      page.seen = [];
      page.chat.on('state', (state) => page.seen.push(state));
    });
    await alice.click('#kill');
    await alice.waitForFunction(
      () => (window as unknown as { seen: string[] }).seen.some((state) => state !== 'open'),
      undefined,
      { timeout: 10_000 },
    );
    for (let n = 1; n <= 3; n++) {
      await bob.fill('#text', `while you were away ${n}`);
      await bob.click('button[type="submit"]');
    }
    await alice.waitForFunction(
      (old) => document.querySelector('#node')?.textContent !== old,
      aliceNode,
      {
        timeout: 20_000,
      },
    );
    await stateIs(alice, 'open', 20_000);
    // The page that moved speaks on its new node, and everyone hears it.
    await alice.fill('#text', 'alice is back');
    await alice.click('button[type="submit"]');
    await bob.waitForFunction(() =>
      document.querySelector('#log')?.textContent?.includes('alice is back'),
    );
    await bob.fill('#text', 'welcome back');
    await bob.click('button[type="submit"]');

    const expected = [
      'hello from alice',
      'while you were away 1',
      'while you were away 2',
      'while you were away 3',
      'alice is back',
      'welcome back',
    ];
    for (const page of [alice, bob]) {
      await page.waitForFunction(
        (count) => document.querySelectorAll('#log p.chat').length >= count,
        expected.length,
        { timeout: 10_000 },
      );
      const seen = (await chatLines(page)).map((text) => text.replace(/^[^:]+: /, ''));
      expect(seen).toEqual(expected);
    }
    expect(await alice.textContent('#log')).toMatch(/resumed on node-\d+ — chat:lobby: recovered/);

    mkdirSync(shots, { recursive: true });
    await alice.screenshot({ path: `${shots}chat-demo.png`, fullPage: true });
  }, 90_000);
});
