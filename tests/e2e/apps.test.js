// SPDX-License-Identifier: Apache-2.0
// The three apps' shapes behind authgate in reverse-proxy mode, each through the shipped sample
// that documents it: conf/proxy-grafana.cfg.example (auth.proxy reads X-Forwarded-Email; Grafana
// Live's WebSocket), conf/proxy-jaeger.cfg.example (UI pages and a JSON API under api_routes),
// conf/proxy-kiali.cfg.example (`header` strategy: Authorization: Bearer <ID token>) and
// conf/proxy-multi.cfg.example (all three by Host, one login for the parent domain).
//
// Each sample is rendered by replacing only its addresses (authgate's, the apps', Redis', the
// issuer), client_id and the redirect URL; every other line is used as shipped. The secrets come
// from the environment, as tests/integration/test_cli.sh and the systemd unit give them. The apps
// are stand-ins (fake-apps.js) that trust exactly what the real ones trust.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { chromium } from 'playwright-core';
import WebSocket from 'ws';

import { CHROMIUM_ARGS, chromiumPath, withBrowser } from './browser.js';
import { headerValues, startGrafanaLike, startJaegerLike, startKialiLike } from './fake-apps.js';
import {
  freePort, newCookieSecret, startAuthgate, startProvider, startRedis, stopAll, tmpDir, tmpFile,
} from './harness.js';
import { request } from './login.js';
import { decodeJwt, signJwt } from './oidc.js';
import {
  SESSION_COOKIE, browserLogin, rawRequest, readSourceFile, registerRedirectUri, waitReady,
} from './stack.js';

const TEST_TIMEOUT = 60000;

let redis;
let op;
let secretFile;
const apps = [];
const gates = [];

before(async () => {
  [redis, op] = await Promise.all([startRedis(), startProvider()]);
  secretFile = tmpFile('client-secret', 'authgate-secret');
});

after(async () => {
  for (const g of gates) await g.stop(); // fails the run on a sanitizer report
  for (const a of apps) await a.stop();
  await stopAll();
});

// ----------------------------------------------------------------------------------------------
// Rendering a sample

// Replace `from` (a string that must occur exactly once, or a RegExp that must match exactly once)
// by `to`.
function replaceOnce(text, from, to, file) {
  const n = typeof from === 'string' ? text.split(from).length - 1 : (text.match(new RegExp(from.source, `${from.flags.replace('g', '')}g`)) ?? []).length;
  if (n !== 1) throw new Error(`${file}: expected ${from} exactly once, found it ${n} times (the test renders the sample by replacing it)`);
  return text.replace(from, to);
}

// The sample `rel` with authgate's address, the issuer, Redis and client_id replaced, plus `more`
// ([from, to] pairs: the apps' addresses, the redirect URL).
function renderSample(rel, port, more = []) {
  let t = readSourceFile(rel);
  const pairs = [
    ['http_address = "127.0.0.1:4180"', `http_address = "127.0.0.1:${port}"`],
    ['oidc_issuer_url = "https://sso.example.com/realms/main"', `oidc_issuer_url = "${op.issuer}"`],
    ['redis_connection_url = "redis://127.0.0.1:6379/0"', `redis_connection_url = "${redis.url}/0"`],
    [/^client_id = "[a-z]+"$/m, 'client_id = "authgate"'],
    ...more,
  ];
  for (const [from, to] of pairs) t = replaceOnce(t, from, to, rel);
  return t;
}

// Start authgate with the rendered sample on `port`, the secrets in its environment, and the
// redirect URIs registered at the provider. Returns the harness handle plus { base, text }.
async function startSample(rel, port, more, redirectUris) {
  const text = renderSample(rel, port, more);
  const file = tmpFile(path.basename(rel).replace('.example', ''), text);
  for (const uri of redirectUris) await registerRedirectUri(op, uri);
  const ag = await startAuthgate(['--config', file], {
    AUTHGATE_COOKIE_SECRET: newCookieSecret(),
    AUTHGATE_CLIENT_SECRET_FILE: secretFile,
  });
  gates.push(ag);
  const base = `http://127.0.0.1:${port}`;
  await waitReady(base, ag);
  return Object.assign(ag, { base, text });
}

async function app(start) {
  const a = await start();
  apps.push(a);
  return a;
}

// Log in as alice in a fresh jar through startUrl; asserts the callback sent her back to backUrl.
async function loginAlice(startUrl, backUrl = startUrl) {
  const r = await browserLogin(startUrl, { user: 'alice' });
  assert.equal(r.status, 302, `callback answer: ${r.status} ${r.body ?? ''}`);
  assert.equal(r.location?.href, backUrl, 'the callback sends the browser back to the page first asked for');
  return r.jar;
}

const isLoginForm = (u) => u.origin === op.issuer && /^\/interaction\/[\w-]+$/.test(u.pathname);

async function submitLogin(page, username = 'alice', password = `${username}-pw`) {
  await page.waitForURL(isLoginForm);
  await page.locator('#login-form input[name="login"]').fill(username);
  await page.locator('#login-form input[name="password"]').fill(password);
  await page.locator('#login-form button[type="submit"]').click();
}

// An anonymous request's answer is authgate's own: a redirect to the provider, or 401 JSON.
function assertToProvider(r, what) {
  assert.equal(r.status, 302, `${what}: ${r.status}`);
  const loc = new URL(r.header ? r.header('location') : r.headers.get('location'));
  assert.equal(loc.origin + loc.pathname, `${op.issuer}/auth`, `${what}: straight to the provider's authorization endpoint (skip_provider_button)`);
  return loc;
}

async function assert401Json(r, what) {
  assert.equal(r.status, 401, `${what}: ${r.status}`);
  const type = r.header ? r.header('content-type') : r.headers.get('content-type');
  assert.match(type ?? '', /^application\/json/, `${what}: JSON`);
  const body = r.header ? r.body : await r.text();
  assert.equal(JSON.parse(body).error, 'unauthorized', `${what}: ${body}`);
  assert.ok(!(r.header ? r.header('location') : r.headers.get('location')), `${what}: no redirect`);
}

// WebSocket to url with extra headers: resolves { ws, open: true } or { status } when refused.
function openWs(url, headers = {}) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers, handshakeTimeout: 5000 });
    ws.once('open', () => resolve({ ws, open: true }));
    ws.once('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (d) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode, body }));
    });
    ws.once('error', (err) => reject(err));
  });
}

function wsEcho(ws, text) {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('no WebSocket echo within 5 s')), 5000);
    ws.once('message', (d) => { clearTimeout(t); resolve(JSON.parse(d.toString())); });
    ws.send(text);
  });
}

// ----------------------------------------------------------------------------------------------

describe('Grafana (conf/proxy-grafana.cfg.example): auth.proxy with X-Forwarded-Email, Grafana Live', () => {
  let grafana;
  let G;
  let jar;

  before(async () => {
    grafana = await app(startGrafanaLike);
    const port = await freePort();
    G = await startSample('conf/proxy-grafana.cfg.example', port, [
      ['"http://127.0.0.1:3000/"', `"${grafana.url}/"`],
      ['redirect_url = "https://grafana.example.com/oauth2/callback"', `redirect_url = "http://127.0.0.1:${port}/oauth2/callback"`],
    ], [`http://127.0.0.1:${port}/oauth2/callback`]);
  });

  test('the stand-in is strict: without the header it answers 401 itself (so a pass below means authgate set it)', async () => {
    const r = await request(`${grafana.url}/api/user`);
    assert.equal(r.status, 401);
    const ws = await openWs(`ws://127.0.0.1:${grafana.port}/api/live/ws`);
    assert.equal(ws.status, 401, 'the Live WebSocket also needs the header');
    const ok = await request(`${grafana.url}/api/user`, { headers: { 'x-forwarded-email': 'x@example.com' } });
    assert.equal(ok.status, 200);
    grafana.reset();
  });

  test('anonymous: a browser goes straight to the provider, an API call gets 401 JSON; Grafana sees neither', async () => {
    assertToProvider(await request(`${G.base}/d/abc/overview?orgId=1`, { headers: { accept: 'text/html' } }), 'GET /d/abc');
    await assert401Json(await request(`${G.base}/api/user`, { headers: { accept: '*/*' } }), 'GET /api/user (api_routes)');
    await assert401Json(await request(`${G.base}/d/abc`, { headers: { accept: 'application/json' } }), 'Accept: application/json');
    const ws = await openWs(`ws://127.0.0.1:${G.port}/api/live/ws`);
    assert.equal(ws.status, 401, 'an anonymous WebSocket upgrade is refused');
    assert.deepEqual([grafana.requests.length, grafana.upgrades.length], [0, 0], 'nothing reached Grafana');
  });

  test('after the login Grafana signs in the user of X-Forwarded-Email, with groups and name; no session cookie upstream', async () => {
    jar = await loginAlice(`${G.base}/d/abc/overview?orgId=1`);
    const page = await request(`${G.base}/d/abc/overview?orgId=1`, { jar });
    assert.equal(page.status, 200);
    assert.match(await page.text(), /Signed in as <b id="user">alice@example\.com<\/b>/);
    const r = await request(`${G.base}/api/user`, { jar, headers: { cookie: `${jar.header(`${G.base}/`)}; grafana_session=g123` } });
    assert.equal(r.status, 200);
    assert.deepEqual(await r.json(), { email: 'alice@example.com', login: 'alice@example.com', name: 'alice', groups: ['admins', 'devs'] });
    const seen = grafana.requests.at(-1);
    assert.deepEqual(headerValues(seen, 'x-forwarded-email'), ['alice@example.com']);
    assert.deepEqual(headerValues(seen, 'x-auth-request-email'), ['alice@example.com'], 'set_xauthrequest: the other header_name choice');
    assert.deepEqual(headerValues(seen, 'x-forwarded-user'), ['alice']);
    // (the jar also holds the provider's cookies: browsers keep cookies per host, not per port)
    const cookies = headerValues(seen, 'cookie').join('; ').split('; ');
    assert.ok(cookies.includes('grafana_session=g123'), `Grafana's own cookie passes: ${cookies}`);
    assert.ok(!cookies.some((c) => c.startsWith(SESSION_COOKIE)), `authgate's session cookie does not: ${cookies}`);
    assert.deepEqual(headerValues(seen, 'authorization'), [], 'no Authorization header (Grafana would take it for an API key)');
  });

  test('a forged X-Forwarded-Email from a client with a valid session never reaches Grafana', async () => {
    const cookie = `${SESSION_COOKIE}=${jar.get(SESSION_COOKIE, `${G.base}/`)}`;
    const forged = [
      ['X-Forwarded-Email', 'mallory@example.com'],
      ['x-forwarded-email', 'forged-lower@example.com'],
      ['X_Forwarded_Email', 'forged-underscore@example.com'],
      ['X-Auth-Request-Email', 'forged-xar@example.com'],
      ['X-Forwarded-User', 'forged-user'],
      ['X-Forwarded-Groups', 'forged-group'],
      ['X-Forwarded-Preferred-Username', 'forged-name'],
    ];
    grafana.reset();
    const r = await rawRequest(G.base, { path: '/api/user', headers: [['Cookie', cookie], ['Accept', 'application/json'], ...forged] });
    assert.equal(r.status, 200, r.body);
    assert.equal(JSON.parse(r.body).email, 'alice@example.com', 'Grafana signed in the session\'s user');
    assert.equal(grafana.requests.length, 1);
    const seen = grafana.requests[0];
    assert.deepEqual(headerValues(seen, 'x-forwarded-email'), ['alice@example.com']);
    assert.deepEqual(headerValues(seen, 'x_forwarded_email'), [], 'the underscore spelling is dropped too');
    assert.deepEqual(headerValues(seen, 'x-auth-request-email'), ['alice@example.com']);
    assert.deepEqual(headerValues(seen, 'x-forwarded-user'), ['alice']);
    assert.deepEqual(headerValues(seen, 'x-forwarded-groups'), ['admins,devs']);
    assert.deepEqual(headerValues(seen, 'x-forwarded-preferred-username'), ['alice']);
    for (const [, v] of forged) {
      assert.ok(!seen.headers.some(([, hv]) => hv.includes(v)), `the forged value ${v} reached Grafana: ${JSON.stringify(seen.headers)}`);
    }
    // and without a session the forged header gets nowhere at all
    const anon = await rawRequest(G.base, { path: '/api/user', headers: [['X-Forwarded-Email', 'alice@example.com']] });
    assert.equal(anon.status, 401);
    assert.equal(grafana.requests.length, 1, 'the anonymous request did not reach Grafana');
  });

  test('Grafana Live: the WebSocket upgrade is tunnelled with the identity, and refused without a session', async () => {
    grafana.reset();
    const cookie = `${SESSION_COOKIE}=${jar.get(SESSION_COOKIE, `${G.base}/`)}`;
    const c = await openWs(`ws://127.0.0.1:${G.port}/api/live/ws`, { cookie, 'x-forwarded-email': 'mallory@example.com' });
    assert.equal(c.open, true, `upgrade refused: ${c.status} ${c.body}`);
    try {
      assert.deepEqual(await wsEcho(c.ws, 'hello'), { echo: 'hello', user: 'alice@example.com' });
      const big = 'x'.repeat(200000);
      assert.equal((await wsEcho(c.ws, big)).echo.length, big.length, 'a 200 kB message both ways');
    } finally {
      c.ws.close();
    }
    assert.equal(grafana.upgrades.length, 1);
    assert.deepEqual(headerValues(grafana.upgrades[0], 'x-forwarded-email'), ['alice@example.com']);
    assert.deepEqual(headerValues(grafana.upgrades[0], 'cookie'), [], 'no session cookie on the upgrade either');
    const refused = await openWs(`ws://127.0.0.1:${G.port}/api/live/ws`, { cookie: `${SESSION_COOKIE}=forged` });
    assert.equal(refused.status, 401);
    assert.equal(grafana.upgrades.length, 1, 'the refused upgrade never reached Grafana');
  });

  test('browser (Chromium): login through the Grafana sample; the page\'s WebSocket to /api/live/ws echoes', { timeout: TEST_TIMEOUT }, async () => {
    grafana.reset();
    const start = `${G.base}/d/abc/overview?orgId=1`;
    await withBrowser('grafana-live', async ({ page, context }) => {
      await page.goto(start);
      await submitLogin(page, 'alice');
      await page.waitForURL((u) => u.href === start);
      assert.equal(await page.locator('#user').innerText(), 'alice@example.com');
      const live = page.locator('#live');
      await page.waitForFunction(() => document.getElementById('live').dataset.result !== 'pending', null, { timeout: 10000 });
      assert.equal(await live.getAttribute('data-result'), 'pass', `the page's verdict: ${await live.innerText()}`);
      const echoed = JSON.parse(await live.innerText());
      assert.equal(echoed.user, 'alice@example.com');
      assert.match(echoed.echo, /^[a-z0-9]+$/);
      const cookie = (await context.cookies(G.base)).find((c) => c.name === SESSION_COOKIE);
      assert.ok(cookie?.value && cookie.secure && cookie.httpOnly, 'the shipped cookie settings (Secure, HttpOnly) work');
      assert.equal(cookie.sameSite, 'Lax');
    }, { logs: () => G.logs() });
    assert.equal(grafana.upgrades.length, 1, 'the page opened one WebSocket through authgate');
    assert.deepEqual(headerValues(grafana.upgrades[0], 'x-forwarded-email'), ['alice@example.com']);
    assert.match(headerValues(grafana.upgrades[0], 'origin')[0] ?? '', new RegExp(`^${G.base}$`), 'the browser\'s Origin passes (Grafana checks it)');
  });
});

// ----------------------------------------------------------------------------------------------

describe('Jaeger (conf/proxy-jaeger.cfg.example): UI pages and a JSON API under api_routes', () => {
  let jaeger;
  let J;

  before(async () => {
    jaeger = await app(startJaegerLike);
    const port = await freePort();
    J = await startSample('conf/proxy-jaeger.cfg.example', port, [
      ['"http://127.0.0.1:16686/"', `"${jaeger.url}/"`],
      ['redirect_url = "https://jaeger.example.com/oauth2/callback"', `redirect_url = "http://127.0.0.1:${port}/oauth2/callback"`],
    ], [`http://127.0.0.1:${port}/oauth2/callback`]);
  });

  test('anonymous: the UI redirects to the provider; the API answers 401 JSON whatever Accept says; Jaeger sees nothing', async () => {
    assertToProvider(await request(`${J.base}/search?service=frontend`, { headers: { accept: 'text/html,application/xhtml+xml' } }), 'GET /search');
    assertToProvider(await request(`${J.base}/`), 'GET / without Accept');
    for (const accept of ['*/*', 'text/html', 'application/json']) {
      await assert401Json(await request(`${J.base}/api/traces?service=frontend&limit=20`, { headers: { accept } }), `GET /api/traces, Accept: ${accept}`);
    }
    await assert401Json(await request(`${J.base}/api/services`), 'GET /api/services without Accept');
    // the regex is anchored: a UI path that merely contains /api/ is a page, not the API
    assertToProvider(await request(`${J.base}/trace/api/x`, { headers: { accept: 'text/html' } }), 'GET /trace/api/x');
    assert.equal(jaeger.requests.length, 0, 'nothing reached Jaeger');
  });

  test('after the login: the UI page and the API come from Jaeger, with the identity and without the session cookie', async () => {
    const jar = await loginAlice(`${J.base}/search?service=frontend`);
    const ui = await request(`${J.base}/search?service=frontend`, { jar, headers: { accept: 'text/html' } });
    assert.equal(ui.status, 200);
    assert.match(await ui.text(), /<title>Jaeger UI<\/title>/);
    const traces = await request(`${J.base}/api/traces?service=frontend&limit=5`, { jar, headers: { accept: 'application/json' } });
    assert.equal(traces.status, 200);
    const body = await traces.json();
    assert.equal(body.data[0].traceID, '4bf92f3577b34da6');
    assert.equal(body.limit, 5, 'the query string reached Jaeger');
    const seen = jaeger.requests.at(-1);
    assert.equal(seen.url, '/api/traces?service=frontend&limit=5');
    assert.deepEqual(headerValues(seen, 'x-forwarded-email'), ['alice@example.com']);
    assert.ok(!headerValues(seen, 'cookie').join('; ').includes(SESSION_COOKIE), 'no session cookie upstream');
    assert.deepEqual(headerValues(seen, 'authorization'), []);
    // Jaeger's own 404 JSON passes through unchanged
    const missing = await request(`${J.base}/api/nothing`, { jar });
    assert.equal(missing.status, 404);
    assert.equal((await missing.json()).errors[0].code, 404);
  });
});

// ----------------------------------------------------------------------------------------------

describe('Kiali (conf/proxy-kiali.cfg.example): header strategy, Authorization: Bearer <ID token>', () => {
  let kiali;
  let K;

  before(async () => {
    kiali = await app(() => startKialiLike({ issuer: op.issuer, clientId: 'authgate', jwks: () => op.jwks() }));
    const port = await freePort();
    K = await startSample('conf/proxy-kiali.cfg.example', port, [
      ['"http://127.0.0.1:20001/"', `"${kiali.url}/"`],
      ['redirect_url = "https://kiali.example.com/oauth2/callback"', `redirect_url = "http://127.0.0.1:${port}/oauth2/callback"`],
    ], [`http://127.0.0.1:${port}/oauth2/callback`]);
  });

  test('the stand-in is strict: no token, or a token signed by another key, is 401', async () => {
    assert.equal((await request(`${kiali.url}/api/namespaces`)).status, 401);
    const { generateKeyPairSync } = await import('node:crypto');
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const jwks = await op.jwks();
    const now = Math.floor(Date.now() / 1000);
    const claims = { iss: op.issuer, aud: 'authgate', sub: 'alice', email: 'alice@example.com', iat: now, exp: now + 300 };
    const forged = signJwt(claims, { key: privateKey, kid: jwks.keys[0].kid });
    const r = await request(`${kiali.url}/api/namespaces`, { headers: { authorization: `Bearer ${forged}` } });
    assert.equal(r.status, 401);
    assert.match((await r.json()).error, /bad signature/);
    kiali.reset();
  });

  test('anonymous: the API answers 401 JSON, the UI redirects to the provider; Kiali sees nothing', async () => {
    await assert401Json(await request(`${K.base}/api/namespaces`), 'GET /api/namespaces');
    assertToProvider(await request(`${K.base}/console/overview`, { headers: { accept: 'text/html' } }), 'GET /console/overview');
    assert.equal(kiali.requests.length, 0);
  });

  test('after the login Kiali gets the session\'s ID token: signed by the provider, issued to our client, for alice', async () => {
    const jar = await loginAlice(`${K.base}/console/overview`);
    const userinfo = await (await request(`${K.base}/oauth2/userinfo`, { jar })).json();
    const r = await request(`${K.base}/api/namespaces`, { jar, headers: { accept: 'application/json' } });
    assert.equal(r.status, 200, await r.clone().text());
    const body = await r.json();
    assert.equal(body.verified, true);
    assert.deepEqual(body.namespaces.map((n) => n.name), ['bookinfo', 'istio-system']);
    assert.equal(body.user.iss, op.issuer);
    assert.equal(body.user.sub, 'alice');
    assert.equal(body.user.sub, userinfo.user, 'the token\'s subject is the session\'s user');
    assert.equal(body.user.email, 'alice@example.com');
    assert.equal(body.user.email, userinfo.email);
    const auth = headerValues(kiali.requests.at(-1), 'authorization');
    assert.equal(auth.length, 1);
    const { payload, header } = decodeJwt(auth[0].replace(/^Bearer /, ''));
    assert.ok(payload.nonce, 'it is the ID token (it carries the login\'s nonce)');
    assert.equal(header.alg, 'RS256');
  });

  test('a client\'s own Authorization header is replaced by the session\'s token, never passed on', async () => {
    const jar = await loginAlice(`${K.base}/`);
    kiali.reset();
    const cookie = `${SESSION_COOKIE}=${jar.get(SESSION_COOKIE, `${K.base}/`)}`;
    const now = Math.floor(Date.now() / 1000);
    const fake = signJwt({ iss: op.issuer, aud: 'authgate', sub: 'admin', email: 'admin@example.com', exp: now + 300 }, { alg: 'HS256', key: 'x' });
    for (const name of ['Authorization', 'authorization']) {
      const r = await rawRequest(K.base, { path: '/api/namespaces', headers: [['Cookie', cookie], [name, `Bearer ${fake}`], ['Accept', 'application/json']] });
      assert.equal(r.status, 200, r.body);
      assert.equal(JSON.parse(r.body).user.sub, 'alice');
    }
    for (const seen of kiali.requests) {
      const auth = headerValues(seen, 'authorization');
      assert.equal(auth.length, 1, `exactly one Authorization header: ${JSON.stringify(auth)}`);
      assert.ok(!auth[0].includes(fake), 'the client\'s token never reaches Kiali');
    }
  });
});

// ----------------------------------------------------------------------------------------------
// Multi-host: a Chromium whose resolver sends *.example.com to 127.0.0.1, so the browser itself
// uses the real host names (on authgate's port): cookies with Domain=.example.com are shared as
// they would be in production. Those http:// origins are declared secure contexts, so the
// sample's Secure cookies (cookie_secure is left at its default, true) are kept as on https.

const HOSTS = ['grafana.example.com', 'jaeger.example.com', 'kiali.example.com'];

async function withHostBrowser(name, port, fn, { logs } = {}) {
  const dir = mkdtempSync(path.join(tmpDir(), `browser-${name}-`));
  const origins = HOSTS.flatMap((h) => [`http://${h}:${port}`, `ws://${h}:${port}`]);
  let context;
  let page;
  const navigations = [];
  try {
    context = await chromium.launchPersistentContext(path.join(dir, 'profile'), {
      executablePath: chromiumPath(),
      headless: true,
      args: [...CHROMIUM_ARGS, '--host-resolver-rules=MAP *.example.com 127.0.0.1',
        `--unsafely-treat-insecure-origin-as-secure=${origins.join(',')}`],
      timeout: 20000,
    });
    context.setDefaultTimeout(10000);
    page = context.pages()[0] ?? await context.newPage();
    page.on('framenavigated', (f) => { if (f === page.mainFrame()) navigations.push(f.url()); });
    await fn({ context, page, navigations });
  } catch (err) {
    const notes = [`page URL: ${page?.url()}`, `navigations:\n    ${navigations.join('\n    ')}`];
    if (logs) notes.push(`log tail:\n${logs().slice(-25).map((l) => `    | ${l}`).join('\n')}`);
    err.message += `\n${notes.join('\n')}`;
    throw err;
  } finally {
    await context?.close().catch(() => {});
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('one authgate for all three by Host (conf/proxy-multi.cfg.example)', () => {
  let grafana;
  let jaeger;
  let kiali;
  let M;
  let port;
  const origin = (host) => `http://${host}:${port}`;

  before(async () => {
    [grafana, jaeger, kiali] = await Promise.all([
      app(startGrafanaLike), app(startJaegerLike),
      app(() => startKialiLike({ issuer: op.issuer, clientId: 'authgate', jwks: () => op.jwks() })),
    ]);
    port = await freePort();
    M = await startSample('conf/proxy-multi.cfg.example', port, [
      ['"grafana.example.com=http://127.0.0.1:3000/"', `"grafana.example.com=${grafana.url}/"`],
      ['"jaeger.example.com=http://127.0.0.1:16686/"', `"jaeger.example.com=${jaeger.url}/"`],
      ['"kiali.example.com=http://127.0.0.1:20001/"', `"kiali.example.com=${kiali.url}/"`],
    ], HOSTS.map((h) => `http://${h}:${port}/oauth2/callback`));
  });

  const byHost = (host, p, headers = []) => rawRequest(M.base, { path: p, headers: [['Host', `${host}:${port}`], ...headers] });

  test('anonymous: each host\'s pages go to the provider with that host\'s callback; the APIs answer 401; no app is reached', async () => {
    for (const host of HOSTS) {
      const loc = assertToProvider(await byHost(host, '/some/page', [['Accept', 'text/html']]), host);
      assert.equal(loc.searchParams.get('redirect_uri'), `${origin(host)}/oauth2/callback`, `${host}: the callback is on the host asked for`);
      await assert401Json(await byHost(host, '/api/x'), `${host} /api/x`);
    }
    assert.deepEqual([grafana, jaeger, kiali].map((a) => a.requests.length), [0, 0, 0]);
  });

  test('browser (Chromium, real host names): one login on grafana opens jaeger and kiali; each Host reaches its app', { timeout: TEST_TIMEOUT }, async () => {
    let session;
    await withHostBrowser('multi', port, async ({ page, context, navigations }) => {
      await page.goto(`${origin('grafana.example.com')}/d/home`);
      await submitLogin(page, 'alice');
      await page.waitForURL((u) => u.href === `${origin('grafana.example.com')}/d/home`);
      assert.equal(await page.locator('#user').innerText(), 'alice@example.com');
      await page.waitForFunction(() => document.getElementById('live').dataset.result !== 'pending', null, { timeout: 10000 });
      assert.equal(await page.locator('#live').getAttribute('data-result'), 'pass', 'Grafana Live through the multi-host gate');

      // (all cookies: Playwright's URL filter leaves Secure cookies out of http:// URLs)
      session = (await context.cookies()).find((c) => c.name === SESSION_COOKIE);
      assert.equal(session?.domain, '.example.com', `the session cookie is for the parent domain: ${JSON.stringify(session)}`);
      assert.equal(session.secure, true);

      const seenBefore = navigations.length;
      const j = await page.goto(`${origin('jaeger.example.com')}/search`);
      assert.equal(j.status(), 200);
      assert.equal(await page.title(), 'Jaeger UI');
      const k = await page.goto(`${origin('kiali.example.com')}/api/namespaces`);
      assert.equal(k.status(), 200);
      const body = JSON.parse(await k.text());
      assert.equal(body.verified, true);
      assert.deepEqual([body.user.sub, body.user.email], ['alice', 'alice@example.com']);
      assert.ok(!navigations.slice(seenBefore).some((u) => u.startsWith(op.issuer)), `no second login: ${navigations.slice(seenBefore).join(' ')}`);
    }, { logs: () => M.logs() });

    for (const [a, host] of [[grafana, 'grafana.example.com'], [jaeger, 'jaeger.example.com'], [kiali, 'kiali.example.com']]) {
      assert.ok(a.requests.length + a.upgrades.length > 0, `${host}'s app was reached`);
      for (const rec of [...a.requests, ...a.upgrades]) {
        assert.deepEqual(headerValues(rec, 'host'), [`${host}:${port}`], `${a.name} got only ${host}'s requests (${rec.url})`);
        assert.deepEqual(headerValues(rec, 'x-forwarded-email'), ['alice@example.com']);
      }
    }
    // pass_authorization_header is global: Grafana and Jaeger get Kiali's ID token too (the
    // sample says so; real Grafana may take it for an API key).
    assert.equal(headerValues(grafana.requests.at(-1), 'authorization').length, 1);

    // The session, as the browser holds it, by Host without a browser: a host with no upstream
    // is 404 even signed in, and never reaches an app.
    const cookie = ['Cookie', `${SESSION_COOKIE}=${session.value}`];
    const counts = () => [grafana, jaeger, kiali].map((a) => a.requests.length);
    const before = counts();
    const other = await byHost('other.example.com', '/', [cookie]);
    assert.equal(other.status, 404, `Host other.example.com: ${other.status}`);
    assert.deepEqual(counts(), before);
    assert.equal((await byHost('jaeger.example.com', '/api/services', [cookie])).status, 200);

    // Sign-out: rd to another of the hosts is allowed (whitelist_domains), a foreign host is not;
    // the session ends for all hosts.
    const bad = await byHost('kiali.example.com', `/oauth2/sign_out?rd=${encodeURIComponent('https://evil.example.net/')}`);
    assert.equal(bad.status, 302);
    assert.equal(bad.header('location'), '/', 'a foreign rd becomes /');
    const out = await byHost('kiali.example.com', `/oauth2/sign_out?rd=${encodeURIComponent('https://grafana.example.com/d/home')}`, [cookie]);
    assert.equal(out.status, 302);
    assert.equal(out.header('location'), 'https://grafana.example.com/d/home');
    assert.match(out.header('set-cookie') ?? '', new RegExp(`^${SESSION_COOKIE}=;.*Domain=\\.example\\.com`), 'the parent-domain cookie is cleared');
    for (const host of HOSTS) await assert401Json(await byHost(host, '/api/x', [cookie]), `${host} after sign-out`);
  });
});
