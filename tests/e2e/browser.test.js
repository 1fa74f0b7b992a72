// SPDX-License-Identifier: Apache-2.0
// The browser login, end to end, in a real headless Chromium (Debian `chromium` driven by
// playwright-core; see browser.js): through authgate alone (its sign-in page), through nginx
// auth_request in front of the demo app (conf/nginx-demo.conf, as tests/demo.sh runs it), and a
// user the email domain rule refuses. Real Redis, the real OpenID Provider (provider.js).

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';

import { withBrowser } from './browser.js';
import {
  REPO_ROOT, freePort, newCookieSecret, startAuthgate, startProvider, startRedis, stopAll,
  tmpDir, waitFor,
} from './harness.js';

const TEST_TIMEOUT = 30000;

let redis;
let op;
let agPort; // authgate alone (tests 1 and 3)
let frontPort; // nginx in front of the demo app (test 2)
let agBehindNginxPort;
let appPort;

function agConfig(port, extra = {}) {
  return {
    provider: 'oidc',
    oidc_issuer_url: op.issuer,
    client_id: 'authgate',
    client_secret: 'authgate-secret',
    cookie_secret: newCookieSecret(),
    email_domains: ['example.com'],
    redis_connection_url: `redis://127.0.0.1:${redis.port}/0`,
    http_address: `127.0.0.1:${port}`,
    cookie_secure: false,
    scope: 'openid email profile groups',
    set_xauthrequest: true,
    ...extra,
  };
}

// Start authgate, wait for /ready, run fn(ag), then stop it (which fails on a sanitizer report).
async function withAuthgate(port, extra, fn) {
  const ag = await startAuthgate([], {}, { config: agConfig(port, extra) });
  let failed = true;
  try {
    await waitFor(async () => (await fetch(`${ag.url}/ready`, { signal: AbortSignal.timeout(1000) })).status === 200,
      { timeoutMs: 10000, what: `authgate ${ag.url}/ready to answer 200` });
    await fn(ag);
    failed = false;
  } finally {
    if (failed) await ag.stop().catch((e) => process.stderr.write(`${e.message}\n`));
  }
  await ag.stop();
}

const isLoginForm = (u) => u.origin === op.issuer && /^\/interaction\/[\w-]+$/.test(u.pathname);

// Wait for the provider's login form, fill it in and submit it.
async function submitLogin(page, username, password) {
  await page.waitForURL(isLoginForm);
  await page.locator('#login-form input[name="login"]').fill(username);
  await page.locator('#login-form input[name="password"]').fill(password);
  await page.locator('#login-form button[type="submit"]').click();
}

before(async () => {
  redis = await startRedis();
  [agPort, frontPort, agBehindNginxPort, appPort] = await Promise.all(
    [freePort(), freePort(), freePort(), freePort()],
  );
  op = await startProvider({
    redirectUris: [`http://127.0.0.1:${agPort}/oauth2/callback`,
      `http://127.0.0.1:${frontPort}/oauth2/callback`],
  });
});

after(async () => {
  await stopAll();
});

// ----------------------------------------------------------------------------------------------

test('browser login through authgate alone: sign-in page, provider, original URL, sign out',
  { timeout: TEST_TIMEOUT }, async () => {
    await withAuthgate(agPort, { skip_provider_button: false }, (ag) => withBrowser('authgate-alone', async ({ page, context }) => {
      const start = `${ag.url}/app/page?x=1`;
      const first = await page.goto(start);
      assert.equal(first.status(), 403, 'an anonymous request gets the sign-in page (403)');
      const button = page.getByRole('button', { name: /^Sign in with / });
      await button.waitFor();

      await button.click();
      await page.waitForURL(isLoginForm);
      const back = page.waitForResponse((r) => r.url() === start && r.request().isNavigationRequest());
      back.catch(() => {}); // awaited below; no unhandled rejection when an earlier step fails
      await submitLogin(page, 'alice', 'alice-pw');
      const landed = await back;
      await page.waitForURL((u) => u.href === start);
      assert.equal(landed.status(), 200, 'the original URL answers 200 once signed in');
      assert.equal((await page.locator('body').innerText()).trim(), 'Authenticated');

      const ui = await page.goto(`${ag.url}/oauth2/userinfo`);
      assert.equal(ui.status(), 200, '/oauth2/userinfo with the session');
      const info = JSON.parse(await ui.text());
      assert.equal(info.email, 'alice@example.com', `userinfo: ${JSON.stringify(info)}`);

      const cookie = (await context.cookies(ag.url)).find((c) => c.name === '_oauth2_proxy');
      assert.ok(cookie, 'the browser holds the _oauth2_proxy session cookie');
      assert.equal(cookie.httpOnly, true, 'the session cookie is HttpOnly');
      assert.ok(!(await page.evaluate(() => document.cookie)).includes('_oauth2_proxy'),
        'page scripts cannot read the session cookie');

      await page.goto(`${ag.url}/oauth2/sign_out`);
      await page.waitForURL((u) => u.href === `${ag.url}/`);
      assert.ok(!(await context.cookies(ag.url)).some((c) => c.name === '_oauth2_proxy' && c.value),
        'sign_out clears the session cookie');
      const gone = await page.goto(`${ag.url}/oauth2/userinfo`);
      assert.equal(gone.status(), 401, '/oauth2/userinfo after sign_out');
    }, { logs: () => ag.logs() }));
  });

// ----------------------------------------------------------------------------------------------

// conf/nginx-demo.conf rendered as tests/demo.sh does; nginx in the foreground. Returns { stop() }.
async function startNginxDemo(dir) {
  const bin = [process.env.NGINX, '/usr/sbin/nginx', '/usr/bin/nginx'].find((f) => f && existsSync(f));
  if (!bin) throw new Error('nginx not found (/usr/sbin/nginx): install the Debian package nginx (tests/deps.sh)');
  // The source tree: $AG_SRCDIR under make check (which may run a copy of tests/e2e in the build
  // tree), else the checkout this file is in.
  const confFile = [process.env.AG_SRCDIR, REPO_ROOT].filter(Boolean)
    .map((d) => path.join(d, 'conf/nginx-demo.conf')).find((f) => existsSync(f));
  if (!confFile) throw new Error(`conf/nginx-demo.conf not found under ${process.env.AG_SRCDIR ?? REPO_ROOT} (set AG_SRCDIR to the source tree)`);
  mkdirSync(path.join(dir, 'logs'), { recursive: true });
  const conf = readFileSync(confFile, 'utf8')
    .replaceAll('@FRONT_PORT@', String(frontPort))
    .replaceAll('@AUTHGATE_PORT@', String(agBehindNginxPort))
    .replaceAll('@APP_PORT@', String(appPort));
  writeFileSync(path.join(dir, 'nginx.conf'), conf);
  const errorLog = path.join(dir, 'error.log');
  const child = spawn(bin, ['-p', dir, '-c', 'nginx.conf',
    '-g', `daemon off; pid ${path.join(dir, 'nginx.pid')}; error_log ${errorLog};`],
  { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (d) => { stderr += d; });
  let spawnError;
  child.once('error', (e) => { spawnError = e; });
  const kill = () => { try { child.kill('SIGKILL'); } catch { /* gone */ } };
  process.once('exit', kill);
  const log = () => `${stderr}${existsSync(errorLog) ? readFileSync(errorLog, 'utf8') : ''}`;
  try {
    const up = await waitFor(async () => {
      if (spawnError || child.exitCode !== null) return 'dead';
      const r = await fetch(`http://127.0.0.1:${frontPort}/oauth2/sign_in`, { signal: AbortSignal.timeout(1000) });
      return r.status === 403 && /\/oauth2\/start/.test(await r.text()); // authgate's sign-in page
    }, { timeoutMs: 10000, what: `nginx on :${frontPort} to pass /oauth2/sign_in to authgate` });
    if (up === 'dead') {
      throw new Error(spawnError ? `cannot run ${bin}: ${spawnError.message}` : `nginx exited (status ${child.exitCode})`);
    }
  } catch (err) {
    kill();
    throw new Error(`${err.message}\nnginx log:\n${log()}`);
  }
  return {
    log,
    async stop() {
      process.off('exit', kill);
      if (child.exitCode !== null || child.signalCode !== null) return;
      const gone = new Promise((r) => { child.once('exit', r); });
      child.kill('SIGTERM'); // fast shutdown
      const t = setTimeout(kill, 5000);
      await gone;
      clearTimeout(t);
    },
  };
}

test('browser login through nginx auth_request: the demo app shows who signed in; Sign out ends it',
  { timeout: TEST_TIMEOUT }, async () => {
    // prompt=login: the provider asks for the password every time (without it, its own browser
    // session signs alice straight back in after Sign out). So landing on its login form after
    // Sign out shows that the authgate session ended: a surviving one would show the demo page.
    await withAuthgate(agBehindNginxPort, { prompt: 'login' }, async (ag) => {
      const dir = path.join(tmpDir(), `nginx-${agBehindNginxPort}`);
      const nginx = await startNginxDemo(dir);
      try {
        const front = `http://127.0.0.1:${frontPort}`;
        await withBrowser('nginx-demo', async ({ page, context }) => {
          await page.goto(`${front}/`);
          await page.waitForURL(isLoginForm); // nginx turned authgate's 401 into /oauth2/start
          await submitLogin(page, 'alice', 'alice-pw');
          await page.waitForURL((u) => u.href === `${front}/`);
          await page.getByRole('heading', { name: 'Demo app' }).waitFor();
          assert.equal(await page.locator('b').first().innerText(), 'alice@example.com');
          const text = await page.locator('body').innerText();
          assert.match(text, /Signed in through authgate as alice@example\.com/);
          assert.match(text, /groups admins,devs\)/, `demo page: ${text}`);

          const cookie = (await context.cookies(front)).find((c) => c.name === '_oauth2_proxy');
          assert.ok(cookie?.value, 'the browser holds the _oauth2_proxy session cookie');
          assert.equal(cookie.httpOnly, true);

          await page.getByRole('link', { name: 'Sign out' }).click();
          // /oauth2/sign_out?rd=/ -> / -> nginx: 401 -> /oauth2/start -> the provider's login form.
          await page.waitForURL(isLoginForm);
          assert.ok(!(await context.cookies(front)).some((c) => c.name === '_oauth2_proxy' && c.value),
            'Sign out clears the session cookie');
          // The session is gone on the server too (Redis), not only from the browser.
          const replay = await fetch(`${front}/`, {
            headers: { cookie: `_oauth2_proxy=${cookie.value}` }, redirect: 'manual',
            signal: AbortSignal.timeout(5000),
          });
          assert.equal(replay.status, 302, 'the old session cookie no longer lets nginx through');
          assert.match(replay.headers.get('location') ?? '', /\/oauth2\/start\?rd=\//);
        }, { logs: () => [...ag.logs(), '--- nginx:', ...nginx.log().split('\n')] });
      } finally {
        await nginx.stop();
      }
    });
  });

// ----------------------------------------------------------------------------------------------

test('browser login of a refused user (email domain): 403 access_denied, no session cookie',
  { timeout: TEST_TIMEOUT }, async () => {
    await withAuthgate(agPort, { skip_provider_button: false }, (ag) => withBrowser('refused', async ({ page, context }) => {
      await page.goto(`${ag.url}/app/page`);
      await page.getByRole('button', { name: /^Sign in with / }).click();
      const callback = page.waitForResponse((r) => new URL(r.url()).pathname === '/oauth2/callback'
        && r.url().startsWith(ag.url) && r.request().isNavigationRequest());
      callback.catch(() => {}); // awaited below
      await submitLogin(page, 'bob', 'bob-pw');
      const res = await callback;
      assert.equal(res.status(), 403, 'authgate refuses bob@other.org at the callback');
      await page.waitForLoadState();
      assert.match(await page.title(), /403/);
      assert.match(await page.content(), /access_denied/, 'authgate\'s access_denied page');
      assert.deepEqual((await context.cookies()).filter((c) => c.name === '_oauth2_proxy' && c.value), [],
        'no session cookie for a refused user');
      const ui = await page.goto(`${ag.url}/oauth2/userinfo`);
      assert.equal(ui.status(), 401);
    }, { logs: () => ag.logs() }));
  });
