// SPDX-License-Identifier: Apache-2.0
// Headless Chromium for the end-to-end tests: the Debian `chromium` binary driven by the npm package
// `playwright-core` (which never downloads a browser of its own). Each session gets a fresh profile
// in its own temp dir; a failure leaves a screenshot there and prints its path.
//
//   await withBrowser('login', async ({ page, context }) => { ... }, { logs: () => ag.logs() });

import { accessSync, constants, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';

// Flags Debian's chromium needs here (DESIGN.md section 7): root without a sandbox, no GPU, and no
// background traffic to hosts this closed network refuses.
export const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

// Path of the Chromium binary: $CHROMIUM, else `chromium` on PATH (Debian: /usr/bin/chromium).
// Throws when there is none: a missing browser is a test failure, never a skip.
export function chromiumPath() {
  const isExe = (f) => {
    try {
      accessSync(f, constants.X_OK);
      return true;
    } catch {
      return false;
    }
  };
  if (process.env.CHROMIUM) {
    if (isExe(process.env.CHROMIUM)) return process.env.CHROMIUM;
    throw new Error(`CHROMIUM=${process.env.CHROMIUM} is not an executable file`);
  }
  const dirs = (process.env.PATH ?? '').split(':').filter(Boolean);
  for (const d of [...dirs, '/usr/bin']) {
    const f = path.join(d, 'chromium');
    if (isExe(f)) return f;
  }
  throw new Error('chromium not found on PATH (nor /usr/bin/chromium): install the Debian package '
    + '`chromium` (tests/deps.sh does), or set CHROMIUM=/path/to/chromium');
}

// Run fn({ context, page, dir, navigations }) in a new headless Chromium with a fresh profile.
// On failure: screenshot PNG in dir (kept, path printed and appended to the error), the pages the
// main frame went through, and the tail of opts.logs() (e.g. authgate's log). Always closes the
// browser and removes the profile; dir is kept only when it holds a failure screenshot.
export async function withBrowser(name, fn, { logs, timeoutMs = 10000 } = {}) {
  const dir = mkdtempSync(path.join(os.tmpdir(), `authgate-browser-${name.replace(/\W+/g, '-')}-`));
  const profile = path.join(dir, 'profile');
  let context;
  let page;
  const navigations = [];
  let keep = false; // the dir survives a failure that left a screenshot in it
  try {
    const executablePath = chromiumPath();
    context = await chromium.launchPersistentContext(profile, {
      executablePath,
      headless: true,
      args: CHROMIUM_ARGS,
      timeout: 20000,
    });
    context.setDefaultTimeout(timeoutMs);
    context.setDefaultNavigationTimeout(timeoutMs);
    page = context.pages()[0] ?? await context.newPage();
    page.on('framenavigated', (f) => {
      if (f === page.mainFrame()) navigations.push(f.url());
    });
    await fn({ context, page, dir, navigations });
  } catch (err) {
    const notes = [];
    if (page) {
      const shot = path.join(dir, 'failure.png');
      try {
        await page.screenshot({ path: shot, fullPage: true, timeout: 5000 });
        notes.push(`screenshot: ${shot}`);
        keep = true;
      } catch (e) {
        notes.push(`(no screenshot: ${e.message.split('\n')[0]})`);
      }
      notes.push(`page URL: ${page.url()}`);
    }
    if (navigations.length) notes.push(`navigations:\n${navigations.map((u) => `    ${u}`).join('\n')}`);
    if (logs) {
      try {
        notes.push(`log tail:\n${logs().slice(-25).map((l) => `    | ${l}`).join('\n')}`);
      } catch { /* no logs */ }
    }
    process.stderr.write(`[browser ${name}] FAILED: ${err.message}\n${notes.join('\n')}\n`);
    try {
      err.message += `\n${notes.join('\n')}`;
    } catch { /* read-only message */ }
    throw err;
  } finally {
    await context?.close().catch(() => {});
    rmSync(keep ? profile : dir, { recursive: true, force: true });
  }
}
