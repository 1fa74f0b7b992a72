// SPDX-License-Identifier: Apache-2.0
// authgate as Istio's ext_authz HTTP service, through envoy-emulator.js (an EMULATION of Envoy's
// ext_authz HTTP filter, see its header: Envoy cannot run here). The emulator is first checked
// against a scripted authorization server, then the whole browser login runs through it alone:
// browser -> "Envoy" -> 302 to the provider -> login -> provider redirects to
// http://<gateway>/oauth2/callback, which "Envoy" sends to authgate as a check -> 302 + session
// cookie -> the app, whose upstream sees authgate's identity headers.

import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, test } from 'node:test';

import { startProvider, startRedis, stopAll } from './harness.js';
import { CookieJar, request } from './login.js';
import { ISTIO_OAUTH2_PROXY_EXAMPLE, startEnvoyEmulator } from './envoy-emulator.js';
import { SESSION_COOKIE, browserLogin, startEcho, startGate } from './stack.js';

after(stopAll);

let redis;
let op;
let disco;
let echo;
const cleanups = [];
before(async () => {
  [redis, op, echo] = await Promise.all([startRedis(), startProvider(), startEcho()]);
  disco = await op.discovery();
});
after(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => {});
  await echo?.stop();
});

// What the echo upstream saw, for the response r (a fetch Response from the app through Envoy).
const upstreamView = async (r) => {
  assert.equal(r.status, 200, `through the gateway: ${r.status}`);
  return r.json();
};

// ----------------------------------------------------------------------------------------------

describe('the emulator itself (against a scripted authorization server)', () => {
  let stub;
  let next; // (req) => { status, headers: [[k, v]...], body }
  const seen = [];
  before(async () => {
    stub = http.createServer((req, res) => {
      const chunks = [];
      req.on('data', (c) => chunks.push(c));
      req.on('end', async () => {
        seen.push({ method: req.method, url: req.url, rawHeaders: req.rawHeaders, body: Buffer.concat(chunks).toString() });
        const a = await next(req);
        if (a.hang) return undefined;
        res.writeHead(a.status, a.headers.flat());
        return res.end(a.body ?? '');
      });
    });
    await new Promise((r) => { stub.listen(0, '127.0.0.1', r); });
    cleanups.push(() => new Promise((r) => { stub.closeAllConnections(); stub.close(r); }));
  });

  test('check request: method, prefix + path + query, host, allow-listed lowercase merged headers, no body', async () => {
    const envoy = await startEnvoyEmulator({
      authz: `http://127.0.0.1:${stub.address().port}`,
      upstream: echo.url,
      pathPrefix: '/authz',
      includeRequestHeadersInCheck: ['cookie', 'x-forwarded-for', 'x-custom-*'],
      includeAdditionalHeadersInCheck: { 'x-forwarded-uri': 'https://%REQ(:authority)%%REQ(:path)%', 'x-fixed': 'v' },
      timeoutMs: 1500,
    });
    cleanups.push(envoy.stop);
    next = () => ({ status: 200, headers: [] });
    const res = await new Promise((resolve, reject) => {
      const req = http.request(`${envoy.url}/a/b?c=d&e=f`, {
        method: 'POST',
        headers: [
          ['Host', 'app.example.test'], ['Cookie', 'a=1'], ['Cookie', 'b=2'], ['X-Custom-One', 'x'],
          ['X-Forwarded-For', '10.0.0.1'], ['User-Agent', 'ua'], ['X-Forwarded-Proto', 'https'],
          ['X-Forwarded-Uri', '/forged'], ['X-Fixed', 'client'], ['Authorization', 'Bearer t'],
          ['Content-Type', 'text/plain'],
        ].flat(),
      }, resolve);
      req.on('error', reject);
      req.end('body!');
    });
    res.resume();
    assert.equal(res.statusCode, 200);
    const c = seen.at(-1);
    assert.equal(c.method, 'POST');
    assert.equal(c.url, '/authz/a/b?c=d&e=f');
    assert.equal(c.body, '');
    const h = {};
    for (let i = 0; i < c.rawHeaders.length; i += 2) {
      if (c.rawHeaders[i] === 'Connection') continue; // node's http client, not the emulation
      assert.equal(c.rawHeaders[i], c.rawHeaders[i].toLowerCase(), 'lowercase names');
      assert.equal(h[c.rawHeaders[i]], undefined, `${c.rawHeaders[i]} once`);
      h[c.rawHeaders[i]] = c.rawHeaders[i + 1];
    }
    assert.equal(h.host, 'app.example.test');
    assert.equal(h['content-length'], '0');
    assert.equal(h.cookie, 'a=1,b=2');
    assert.equal(h['x-custom-one'], 'x');
    assert.equal(h.authorization, 'Bearer t');
    assert.equal(h['x-forwarded-for'], '10.0.0.1, 127.0.0.1');
    assert.equal(h['x-forwarded-uri'], 'https://app.example.test/a/b?c=d&e=f');
    assert.equal(h['x-fixed'], 'v');
    assert.equal(h['x-envoy-internal'], 'true');
    assert.equal(h['x-envoy-expected-rq-timeout-ms'], '1500');
    for (const absent of ['user-agent', 'x-forwarded-proto', 'content-type']) assert.equal(h[absent], undefined, absent);
    assert.equal(echo.requests.at(-1).body, 'body!', 'the upstream gets the body');
  });

  test('decision: only 200 allows; headers to upstream / client; denials; errors', async () => {
    const envoy = await startEnvoyEmulator({
      authz: `http://127.0.0.1:${stub.address().port}`, upstream: echo.url, ...ISTIO_OAUTH2_PROXY_EXAMPLE, timeoutMs: 500,
    });
    cleanups.push(envoy.stop);
    const get = (p = '/x', headers = {}) => fetch(`${envoy.url}${p}`, { headers, redirect: 'manual' });

    next = () => ({
      status: 200,
      headers: [['X-Auth-Request-User', 'alice'], ['Set-Cookie', 'a=1'], ['Set-Cookie', 'b=2'], ['X-Other', 'no'],
        ['x-envoy-auth-headers-to-remove', 'x-drop-me, x-drop-too']],
    });
    const ok = await get('/x', { 'x-auth-request-user': 'mallory', 'x-drop-me': '1', 'x-drop-too': '2', 'x-keep': '3' });
    const seenUp = await upstreamView(ok);
    assert.deepEqual(seenUp.headers['x-auth-request-user'], ['alice']);
    assert.equal(seenUp.headers['x-drop-me'], undefined);
    assert.equal(seenUp.headers['x-drop-too'], undefined);
    assert.deepEqual(seenUp.headers['x-keep'], ['3']);
    assert.equal(seenUp.headers['x-other'], undefined, 'not in headersToUpstreamOnAllow');
    assert.deepEqual(ok.headers.getSetCookie(), ['a=1', 'b=2'], 'both Set-Cookie reach the client');

    const upstreamBefore = echo.requests.length;
    for (const status of [201, 202, 204, 302, 401, 403]) {
      next = () => ({
        status,
        headers: [['Location', 'http://idp/x'], ['Set-Cookie', 'c=1'], ['X-Other', 'no'], ['Content-Type', 'text/plain'],
          ['WWW-Authenticate', 'Bearer']],
        body: status === 204 ? '' : `denied ${status}`,
      });
      const r = await get();
      assert.equal(r.status, status);
      assert.equal(await r.text(), status === 204 ? '' : `denied ${status}`);
      assert.equal(r.headers.get('location'), 'http://idp/x');
      assert.equal(r.headers.get('www-authenticate'), 'Bearer');
      assert.deepEqual(r.headers.getSetCookie(), ['c=1']);
      assert.equal(r.headers.get('x-other'), null);
    }
    assert.equal(echo.requests.length, upstreamBefore, 'denied requests never reach the upstream');

    for (const script of [{ status: 500, headers: [], body: 'oops' }, { status: 503, headers: [] }, { hang: true }]) {
      next = () => script;
      const r = await get();
      assert.equal(r.status, 403, JSON.stringify(script));
      assert.equal(await r.text(), '');
    }
  });

  test('an unreachable authorization service: 403 (statusOnError), or pass with failOpen', async () => {
    const closed = await new Promise((resolve) => {
      const s = http.createServer();
      s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
    });
    const strict = await startEnvoyEmulator({ authz: `http://127.0.0.1:${closed}`, upstream: echo.url });
    const open = await startEnvoyEmulator({ authz: `http://127.0.0.1:${closed}`, upstream: echo.url, failOpen: true });
    cleanups.push(strict.stop, open.stop);
    const r = await fetch(`${strict.url}/x`);
    assert.equal(r.status, 403);
    assert.equal(await r.text(), '');
    assert.match(strict.checks.at(-1).error, /ECONNREFUSED/);
    assert.equal((await fetch(`${open.url}/x`)).status, 200);
  });
});

// ----------------------------------------------------------------------------------------------

// Istio's example plus `accept` in includeRequestHeadersInCheck: without it authgate never sees
// the client's Accept header and cannot tell an API client (401 JSON) from a browser (302).
describe('authgate behind Envoy ext_authz (Istio oauth2-proxy example configuration + accept)', () => {
  let envoy;
  let ag;
  let jar;
  before(async () => {
    envoy = await startEnvoyEmulator({
      upstream: echo.url,
      ...ISTIO_OAUTH2_PROXY_EXAMPLE,
      includeRequestHeadersInCheck: [...ISTIO_OAUTH2_PROXY_EXAMPLE.includeRequestHeadersInCheck, 'accept'],
    });
    cleanups.push(envoy.stop);
    ag = await startGate({
      op, redis, redirectVia: [`${envoy.url}/oauth2/callback`], config: { skip_provider_button: true },
    });
    envoy.authz = ag.base;
  });

  test('the whole login works through Envoy alone', async () => {
    jar = new CookieJar();
    const app = `${envoy.url}/app/page?x=1&y=2`;
    const first = await request(app, { jar, headers: { accept: 'text/html' } });
    assert.equal(first.status, 302, 'a browser without a session is sent to the provider');
    assert.ok(first.headers.get('location').startsWith(`${disco.authorization_endpoint}?`), first.headers.get('location'));
    assert.ok(first.headers.getSetCookie().some((c) => c.startsWith('_oauth2_proxy_csrf=')), 'the CSRF cookie passes the denial');
    const redirectUri = new URL(first.headers.get('location')).searchParams.get('redirect_uri');
    assert.equal(redirectUri, `${envoy.url}/oauth2/callback`, 'the callback goes through the gateway');

    const r = await browserLogin(first.headers.get('location'), { jar });
    assert.equal(r.status, 302, r.body);
    assert.equal(r.location.href, app);
    assert.ok(r.callbackUrl.href.startsWith(`${envoy.url}/oauth2/callback?`));
    const cbCheck = envoy.checks.find((c) => c.path.startsWith('/oauth2/callback?'));
    assert.ok(cbCheck, 'the callback reached authgate as a check request');
    assert.equal(cbCheck.status, 302);
    assert.equal(cbCheck.headers['content-length'], '0');
    assert.ok(jar.get(SESSION_COOKIE, envoy.url), 'the session cookie passed the denial to the browser');

    const seen = await upstreamView(await request(app, { jar }));
    assert.equal(seen.url, '/app/page?x=1&y=2');
    assert.deepEqual(seen.headers['x-auth-request-email'], ['alice@example.com']);
    assert.deepEqual(seen.headers['x-auth-request-user'], ['alice']);
    assert.deepEqual(seen.headers['x-auth-request-groups'], ['admins,devs']);
    assert.deepEqual(seen.headers['x-auth-request-preferred-username'], ['alice']);
    assert.equal(envoy.checks.at(-1).status, 200, 'allowed with exactly 200');
  });

  test('other methods: the check carries the method without the body; the upstream gets both', async () => {
    const r = await request(`${envoy.url}/app/form`, {
      jar, method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'a=1&b=2',
    });
    const seen = await upstreamView(r);
    assert.equal(seen.method, 'POST');
    assert.equal(seen.body, 'a=1&b=2');
    assert.deepEqual(seen.headers['x-auth-request-user'], ['alice']);
    const check = envoy.checks.at(-1);
    assert.equal(check.method, 'POST');
    assert.equal(check.status, 200);
    for (const m of ['PUT', 'DELETE', 'PATCH']) {
      assert.equal((await upstreamView(await request(`${envoy.url}/app/x`, { jar, method: m }))).method, m);
    }
    const head = await request(`${envoy.url}/app`, { jar, method: 'HEAD' });
    assert.equal(head.status, 200);
  });

  test('a forged identity from the client never reaches the upstream in place of authgate\'s', async () => {
    const seen = await upstreamView(await request(`${envoy.url}/app`, {
      jar,
      headers: {
        'x-auth-request-user': 'mallory', 'X-Auth-Request-Email': 'mallory@example.com',
        'x-auth-request-groups': 'root', 'x-auth-request-preferred-username': 'mallory',
      },
    }));
    assert.deepEqual(seen.headers['x-auth-request-user'], ['alice']);
    assert.deepEqual(seen.headers['x-auth-request-email'], ['alice@example.com']);
    assert.deepEqual(seen.headers['x-auth-request-groups'], ['admins,devs']);
    assert.deepEqual(seen.headers['x-auth-request-preferred-username'], ['alice']);
    assert.ok(!JSON.stringify(seen.headers).includes('mallory'));
  });

  test('without a session: JSON clients get 401, nothing reaches the upstream', async () => {
    const before = echo.requests.length;
    const r = await request(`${envoy.url}/api/data`, { headers: { accept: 'application/json' } });
    assert.equal(r.status, 401);
    assert.match(r.headers.get('content-type'), /application\/json/);
    assert.ok((await r.json()).error);
    const forged = await request(`${envoy.url}/app`, {
      headers: { accept: 'text/html', 'x-auth-request-user': 'alice', cookie: `${SESSION_COOKIE}=v1.forged` },
    });
    assert.equal(forged.status, 302);
    assert.equal(echo.requests.length, before);
  });

  test('sign-out through Envoy: cookie cleared, the next request goes to the provider', async () => {
    const out = await request(`${envoy.url}/oauth2/sign_out?rd=%2Fbye`, { jar });
    assert.equal(out.status, 302);
    assert.equal(out.headers.get('location'), '/bye');
    assert.equal(jar.get(SESSION_COOKIE, envoy.url), undefined);
    const again = await request(`${envoy.url}/app`, { jar, headers: { accept: 'text/html' } });
    assert.equal(again.status, 302);
    assert.ok(again.headers.get('location').startsWith(disco.authorization_endpoint));
  });

  test('authgate down: 403 with an empty body (statusOnError), never the upstream', async () => {
    const before = echo.requests.length;
    const st = await ag.stop();
    assert.equal(st.code, 0, ag.logs().slice(-10).join('\n'));
    const r = await request(`${envoy.url}/app`, { jar, headers: { accept: 'text/html' } });
    assert.equal(r.status, 403);
    assert.equal(await r.text(), '');
    assert.equal(echo.requests.length, before);
  });
});

// ----------------------------------------------------------------------------------------------

// Istio's example exactly (no `accept` in the check): API clients are recognised by api_routes,
// which must be judged on the path without the check prefix.
describe('with a check path prefix (Istio pathPrefix = check_path_prefix = /ext-authz) and Kyma\'s x-forwarded-uri', () => {
  let envoy;
  let ag;
  let jar;
  before(async () => {
    envoy = await startEnvoyEmulator({
      upstream: echo.url,
      ...ISTIO_OAUTH2_PROXY_EXAMPLE,
      pathPrefix: '/ext-authz',
      includeAdditionalHeadersInCheck: { 'x-forwarded-uri': 'http://%REQ(:authority)%%REQ(:path)%' },
    });
    cleanups.push(envoy.stop);
    ag = await startGate({
      op,
      redis,
      redirectVia: [`${envoy.url}/oauth2/callback`],
      config: {
        skip_provider_button: true,
        check_path_prefix: '/ext-authz',
        trusted_proxy_ips: ['127.0.0.1'],
        reverse_proxy: true,
        api_routes: ['^/api/'],
      },
    });
    envoy.authz = ag.base;
  });
  after(async () => {
    const st = await ag?.stop();
    assert.equal(st.code, 0);
  });

  test('the login works; the callback arrives as /ext-authz/oauth2/callback', async () => {
    jar = new CookieJar();
    const app = `${envoy.url}/dashboard?tab=2`;
    const r = await browserLogin(app, { jar });
    assert.equal(r.status, 302, r.body);
    assert.equal(r.location.href, app);
    assert.ok(envoy.checks.some((c) => c.path.startsWith('/ext-authz/oauth2/callback?') && c.status === 302));
    const seen = await upstreamView(await request(app, { jar }));
    assert.deepEqual(seen.headers['x-auth-request-email'], ['alice@example.com']);
    assert.equal(seen.url, '/dashboard?tab=2');
  });

  test('the app\'s own /ping, /ready, /robots.txt are checked like any path, not answered by authgate', async () => {
    const before = echo.requests.length;
    for (const p of ['/ping', '/ready', '/robots.txt', '/metrics']) {
      const anon = await request(`${envoy.url}${p}`, { headers: { accept: 'text/html' } });
      assert.notEqual(anon.status, 200, `${p} without a session must not pass (got ${anon.status})`);
      assert.equal(anon.status, 302, p);
      assert.ok(anon.headers.get('location').startsWith(disco.authorization_endpoint), p);
    }
    assert.equal(echo.requests.length, before, 'nothing reached the app');
    for (const p of ['/ping', '/robots.txt']) {
      const seen = await upstreamView(await request(`${envoy.url}${p}`, { jar }));
      assert.equal(seen.url, p, 'with a session the app\'s own path is served by the app');
      assert.deepEqual(seen.headers['x-auth-request-user'], ['alice']);
    }
  });

  test('without a session: 401 JSON for api_routes (judged on the path without the prefix)', async () => {
    const r = await request(`${envoy.url}/api/x`, { headers: { accept: 'application/json', 'x-auth-request-user': 'alice' } });
    assert.equal(r.status, 401, `GET /api/x, checked as /ext-authz/api/x, api_routes ^/api/: ${r.status} ${r.headers.get('location') ?? ''}`);
    assert.match(r.headers.get('content-type'), /application\/json/);
  });

  test('forged identity headers are replaced by authgate\'s', async () => {
    const seen = await upstreamView(await request(`${envoy.url}/app`, {
      jar, headers: { 'x-auth-request-user': 'mallory', 'x-auth-request-email': 'mallory@example.com' },
    }));
    assert.deepEqual(seen.headers['x-auth-request-user'], ['alice']);
    assert.deepEqual(seen.headers['x-auth-request-email'], ['alice@example.com']);
  });
});
