// SPDX-License-Identifier: Apache-2.0
// authgate behind Debian's Caddy with forward_auth, configured from the user-facing recipe
// conf/caddy-forward-auth.Caddyfile.example (only its addresses are replaced, global options for
// a test instance added; checked with `caddy validate`): the browser login through Caddy, identity
// headers for the app, sign-out, and what a client cannot forge.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { freePort, startProvider, startRedis, stopAll } from './harness.js';
import { CookieJar, request } from './login.js';
import { renderCaddyRecipe, startCaddy, validateCaddyfile } from './frontends.js';
import { SESSION_COOKIE, browserLogin, rawRequest, startEcho, startGate } from './stack.js';

after(stopAll);

let redis;
let op;
let echo;
let ag;
let caddy;
let disco;
let caddyfile;

before(async () => {
  [redis, op, echo] = await Promise.all([startRedis(), startProvider(), startEcho()]);
  disco = await op.discovery();
  const port = await freePort();
  ag = await startGate({
    op,
    redis,
    redirectVia: [`http://127.0.0.1:${port}/oauth2/callback`],
    config: {
      trusted_proxy_ips: ['127.0.0.1'],
      reverse_proxy: true,
      skip_auth_routes: ['GET=^/public/'],
    },
  });
  caddyfile = renderCaddyRecipe({ authgatePort: ag.port, appPort: echo.port, port });
  caddy = await startCaddy({ port, caddyfile });
});
after(async () => {
  await caddy?.stop();
  await echo?.stop();
});

const app = (p) => `${caddy.url}${p}`;
const seenBy = async (res) => {
  assert.equal(res.status, 200, `the app answered through Caddy (${res.status}: ${res.headers.get('location') ?? ''})`);
  return res.json();
};
const loginRedirect = (loc) => new URL(loc, caddy.url).href;

describe('Caddy forward_auth (conf/caddy-forward-auth.Caddyfile.example)', () => {
  let jar;

  test('the recipe passes caddy validate', () => {
    assert.match(validateCaddyfile(caddyfile), /Valid configuration/);
  });

  test('unauthenticated: 302 to /oauth2/start with rd = the page, nothing reaches the app', async () => {
    const before = echo.requests.length;
    const r = await request(app('/app/page?x=1'), { headers: { 'x-auth-request-user': 'alice' } });
    assert.equal(r.status, 302);
    assert.equal(loginRedirect(r.headers.get('location')), `${caddy.url}/oauth2/start?rd=${caddy.url}/app/page?x=1`);
    assert.equal(echo.requests.length, before);
  });

  test('the login through Caddy: /oauth2/start -> provider -> /oauth2/callback -> the app as alice', async () => {
    jar = new CookieJar();
    const r = await browserLogin(app('/app/page?x=1'), { jar });
    assert.equal(r.history[0].status, 302);
    assert.ok(r.history[1].url.startsWith(`${caddy.url}/oauth2/start?`), r.history[1].url);
    assert.ok(r.history[1].location.startsWith(`${disco.authorization_endpoint}?`), r.history[1].location);
    assert.equal(new URL(r.history[1].location).searchParams.get('redirect_uri'), `${caddy.url}/oauth2/callback`);
    assert.equal(r.status, 302, r.body);
    assert.equal(r.location.href, `${caddy.url}/app/page?x=1`);
    assert.ok(jar.get(SESSION_COOKIE, caddy.url));

    const seen = await seenBy(await request(app('/app/page?x=1'), { jar }));
    assert.equal(seen.url, '/app/page?x=1');
    assert.deepEqual(seen.headers['x-auth-request-email'], ['alice@example.com']);
    assert.deepEqual(seen.headers['x-auth-request-user'], ['alice']);
    assert.deepEqual(seen.headers['x-auth-request-groups'], ['admins,devs']);
    assert.deepEqual(seen.headers['x-auth-request-preferred-username'], ['alice']);

    const ui = await request(app('/oauth2/userinfo'), { jar });
    assert.equal(ui.status, 200);
    assert.equal((await ui.json()).user, 'alice');
  });

  test('client-sent identity headers are replaced or dropped', async () => {
    const seen = await seenBy(await request(app('/app'), {
      jar,
      headers: {
        'X-Auth-Request-User': 'mallory', 'x-auth-request-email': 'mallory@example.com',
        'X-Auth-Request-Groups': 'root', 'X-Auth-Request-Access-Token': 'forged',
      },
    }));
    assert.deepEqual(seen.headers['x-auth-request-user'], ['alice']);
    assert.deepEqual(seen.headers['x-auth-request-email'], ['alice@example.com']);
    assert.deepEqual(seen.headers['x-auth-request-groups'], ['admins,devs']);
    assert.equal(seen.headers['x-auth-request-access-token'], undefined, 'dropped: authgate does not send one');
    assert.ok(!JSON.stringify(seen.headers).includes('mallory'), JSON.stringify(seen.headers));
    // Without a session a skip route reaches the app; a forged identity must not come along.
    const pub = await seenBy(await request(app('/public/x'), { headers: { 'X-Auth-Request-User': 'mallory' } }));
    assert.equal(pub.headers['x-auth-request-user'], undefined);
  });

  test('skip-auth routes are judged on the original URI (X-Forwarded-Uri from Caddy)', async () => {
    const pub = await seenBy(await request(app('/public/logo.png')));
    assert.equal(pub.url, '/public/logo.png');
    for (const p of ['/public/../admin', '/public/%2e%2e/admin', '/admin?x=/public/']) {
      const r = await rawRequest(caddy.url, { path: p });
      assert.equal(r.status, 302, `${p} -> ${r.status}`);
      assert.ok(loginRedirect(r.header('location')).startsWith(`${caddy.url}/oauth2/start?rd=`), r.header('location'));
    }
  });

  test('sign-out ends it: the old cookie is refused, the browser is sent to the login again', async () => {
    const old = jar.get(SESSION_COOKIE, caddy.url);
    const out = await request(app('/oauth2/sign_out?rd=%2Fbye'), { jar });
    assert.equal(out.status, 302);
    assert.equal(out.headers.get('location'), '/bye');
    assert.equal(jar.get(SESSION_COOKIE, caddy.url), undefined);
    const before = echo.requests.length;
    const again = await request(app('/app'), { headers: { cookie: `${SESSION_COOKIE}=${old}` } });
    assert.equal(again.status, 302);
    assert.ok(loginRedirect(again.headers.get('location')).startsWith(`${caddy.url}/oauth2/start?rd=`));
    assert.equal(echo.requests.length, before);
  });

  test('authgate down: Caddy answers 502, never the app', async () => {
    const before = echo.requests.length;
    const st = await ag.stop();
    assert.equal(st.code, 0, ag.logs().slice(-10).join('\n'));
    const r = await request(app('/app'));
    assert.ok(r.status >= 500, `got ${r.status}`);
    assert.equal(echo.requests.length, before);
  });
});
