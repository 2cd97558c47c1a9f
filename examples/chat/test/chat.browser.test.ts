import { mkdirSync } from 'node:fs';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Demo, hasChromium, shots, startDemo } from './demo.js';

/** Waits for a page's connection state badge to read `state`. */
async function stateIs(page: Page, state: string, timeout = 15_000): Promise<void> {
  await page.waitForSelector(`#state[data-state="${state}"]`, { timeout });
}

const nodeOf = (page: Page) => page.textContent('#node') as Promise<string>;
const onlineOf = (page: Page) =>
  page.$$eval('#online li', (items) => items.map((item) => item.textContent ?? ''));
/** The joins and leaves a page's online list went through, recorded inside the page. */
const presenceLog = (page: Page) =>
  page.evaluate(() => (window as unknown as { presenceLog: string[] }).presenceLog);
/** The worker's node timeout (3 × its 1 s heartbeat) plus its presence grace, and a margin. */
const PRESENCE_SETTLE_MS = 3000 + 10_000 + 2000;
const chatLines = (page: Page) =>
  page.$$eval('#log p.chat', (lines) => lines.map((line) => line.firstChild?.textContent ?? ''));

describe.skipIf(!hasChromium)('the chat demo in headless Chromium', () => {
  let demo: Demo;
  let browser: Demo['browser'];
  let url = '';

  beforeAll(async () => {
    demo = await startDemo();
    ({ browser, url } = demo);
  }, 60_000);

  afterAll(() => demo?.stop());

  it('two pages on different nodes chat; one node is killed, its page resumes losing nothing and is heard again', async () => {
    const alice = await browser.newPage();
    await alice.goto(`${url}?name=alice`);
    await stateIs(alice, 'open');
    const aliceNode = await nodeOf(alice);

    // node:cluster deals connections round-robin: a new page lands on the other worker soon.
    const bob = await browser.newPage();
    for (let attempt = 0; attempt < 10; attempt++) {
      await bob.goto(`${url}?name=bob`);
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
    // Both see each other online; from now on, nobody may leave or join in either list.
    for (const page of [alice, bob]) {
      await page.waitForFunction(
        () => document.querySelectorAll('#online li').length === 2,
        undefined,
        { timeout: 10_000 },
      );
      expect(await onlineOf(page)).toEqual(['alice', 'bob']);
      await page.evaluate(() => {
        (window as unknown as { presenceLog: string[] }).presenceLog.length = 0;
      });
    }
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

    // The dead node's entry for alice outlives it by the node timeout plus the grace; by then
    // alice is back on another node, so the online lists never flickered.
    await new Promise((resolve) => setTimeout(resolve, PRESENCE_SETTLE_MS));
    for (const page of [alice, bob]) {
      expect(await presenceLog(page)).toEqual([]);
      expect(await onlineOf(page)).toEqual(['alice', 'bob']);
    }

    mkdirSync(shots, { recursive: true });
    await alice.screenshot({ path: `${shots}chat-demo.png`, fullPage: true });
  }, 90_000);

  it('a page reloaded comes back in its session: it shows what was said while it reloaded, once, and nobody saw it leave', async () => {
    const carol = await browser.newPage();
    await carol.goto(`${url}?name=carol`);
    await stateIs(carol, 'open');
    const dave = await browser.newPage();
    await dave.goto(`${url}?name=dave`);
    await stateIs(dave, 'open');
    await dave.fill('#text', 'before the reload');
    await dave.click('button[type="submit"]');
    await carol.waitForFunction(() =>
      document.querySelector('#log')?.textContent?.includes('before the reload'),
    );
    const online = () =>
      dave.waitForFunction(
        () =>
          Array.from(document.querySelectorAll('#online li')).some(
            (li) => li.textContent === 'carol',
          ),
        undefined,
        { timeout: 10_000 },
      );
    await online();
    await dave.evaluate(() => {
      (window as unknown as { presenceLog: string[] }).presenceLog.length = 0;
    });

    // Carol's tab leaves the page (its pagehide saves the session) and comes back to it.
    await carol.goto('about:blank');
    for (let n = 1; n <= 3; n++) {
      await dave.fill('#text', `while reloading ${n}`);
      await dave.click('button[type="submit"]');
    }
    await carol.goto(`${url}?name=carol`);
    await stateIs(carol, 'open');
    expect(await carol.textContent('#log')).toMatch(/resumed on node-\d+ — chat:lobby: recovered/);
    await carol.fill('#text', 'carol is back');
    await carol.click('button[type="submit"]');
    await dave.waitForFunction(() =>
      document.querySelector('#log')?.textContent?.includes('carol is back'),
    );
    const expected = [
      'while reloading 1',
      'while reloading 2',
      'while reloading 3',
      'carol is back',
    ];
    await carol.waitForFunction(
      (count) => document.querySelectorAll('#log p.chat').length >= count,
      expected.length,
      { timeout: 10_000 },
    );
    const seen = (await chatLines(carol)).map((text) => text.replace(/^[^:]+: /, ''));
    expect(seen).toEqual(expected);
    // Back within the presence grace: dave's list never lost her, and hers lists them both.
    expect(await presenceLog(dave)).toEqual([]);
    await online();
    await carol.waitForFunction(
      () =>
        ['carol', 'dave'].every((name) =>
          Array.from(document.querySelectorAll('#online li')).some((li) => li.textContent === name),
        ),
      undefined,
      { timeout: 10_000 },
    );
  }, 60_000);
});
