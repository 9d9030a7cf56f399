// Opens a page in Debian's Chromium, headless, through playwright-core (which
// never downloads a browser). Collects what would show a broken page: console
// errors, uncaught exceptions, and any request that is not to a local file.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { chromium, type Page } from 'playwright-core';
import { tempDir } from './kbx.js';

export const CHROMIUM = '/usr/bin/chromium';

export interface PageProblems {
  errors: string[];
  requests: string[];
}

/** Runs `use` on the page loaded from `file`; the browser is closed afterwards. Timeouts are off: tests have no wall-clock limit. */
export async function withPage<T>(file: string, use: (page: Page, problems: PageProblems) => Promise<T>): Promise<T> {
  assert.ok(existsSync(CHROMIUM), `Chromium is missing at ${CHROMIUM}: install Debian's chromium package (apt-get install chromium); CI installs it`);
  const context = await chromium.launchPersistentContext(tempDir('chromium-profile'), {
    executablePath: CHROMIUM,
    headless: true,
    timeout: 0,
    viewport: { width: 1280, height: 900 },
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  try {
    const page = await context.newPage();
    page.setDefaultTimeout(0);
    const problems: PageProblems = { errors: [], requests: [] };
    page.on('console', (m) => {
      if (m.type() === 'error') problems.errors.push(`console: ${m.text()}`);
    });
    page.on('pageerror', (e) => problems.errors.push(`page error: ${e.message}`));
    page.on('request', (r) => {
      if (!/^(file|data|about):/.test(r.url())) problems.requests.push(r.url());
    });
    await page.goto(pathToFileURL(file).href, { waitUntil: 'load' });
    return await use(page, problems);
  } finally {
    await context.close();
  }
}
