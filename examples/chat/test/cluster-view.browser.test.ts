import { mkdirSync } from 'node:fs';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Demo, hasChromium, shots, startDemo } from './demo.js';

/** Ids of the nodes the cluster view lists as answering. */
const liveNodes = (view: Page) =>
  view.$$eval('#nodes tr.live', (rows) => rows.map((row) => (row as HTMLElement).dataset.node));

describe.skipIf(!hasChromium)('the cluster view of the chat demo in headless Chromium', () => {
  let demo: Demo;

  beforeAll(async () => {
    demo = await startDemo();
  }, 60_000);

  afterAll(() => demo?.stop());

  it('shows both nodes with their clients, and a killed node gone and its client resumed', async () => {
    const chat = await demo.browser.newPage();
    await chat.goto(demo.url);
    await chat.waitForSelector('#state[data-state="open"]', { timeout: 15_000 });
    const killed = (await chat.textContent('#node'))!;

    // The chat page links to the view.
    expect(await chat.getAttribute('a[href="/cluster"]', 'href')).toBe('/cluster');
    const view = await demo.browser.newPage();
    await view.goto(`${demo.url}cluster`);
    await view.waitForFunction(
      () => document.querySelectorAll('#nodes tr.live').length === 2,
      undefined,
      { timeout: 15_000 },
    );
    expect(await liveNodes(view)).toContain(killed);
    // The chat page's node holds its one client.
    await view.waitForFunction(
      (node) =>
        document.querySelector(`#nodes tr[data-node="${node}"] td:nth-child(3)`)?.textContent ===
        '1',
      killed,
      { timeout: 10_000 },
    );
    expect(await view.textContent(`#nodes tr[data-node="${killed}"] td:nth-child(2)`)).toBe(
      'ready',
    );
    mkdirSync(shots, { recursive: true });
    await view.screenshot({ path: `${shots}cluster-view.png`, fullPage: true });

    await chat.click('#kill');
    // The dead node leaves the view (first "not answering", then gone once the others time it
    // out); the primary forks a replacement, and the chat page resumes on a live node.
    await view.waitForFunction(
      (node) =>
        document.querySelector(`#nodes tr[data-node="${node}"]`) === null &&
        document.querySelectorAll('#nodes tr.live').length === 2,
      killed,
      { timeout: 30_000 },
    );
    expect(await liveNodes(view)).not.toContain(killed);
    await view.waitForFunction(
      () => document.querySelector('#resumes')?.textContent?.includes('recovered'),
      undefined,
      { timeout: 15_000 },
    );
    await view.screenshot({ path: `${shots}cluster-view-after-kill.png`, fullPage: true });
  }, 90_000);
});
