// SPDX-License-Identifier: Apache-2.0
// The browser login against authgate alone: the real provider (provider.js), a real
// redis-server and the real daemon. /oauth2/start -> provider login form -> /oauth2/callback ->
// session cookie -> /oauth2/auth, /oauth2/userinfo and the check route; sign-out and sign-in end
// it; CSRF and state failures, users who are not allowed, redirect validation, hostile cookies,
// the CSRF cookie's sealed record (opened and re-sealed here with authgate's own key), refresh
// with the provider's refresh-token reuse detection armed, and Redis going away.

import assert from 'node:assert/strict';
import { createCipheriv, createDecipheriv, createHash, createHmac, randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';

import { sleep, startProvider, startRedis, stopAll, waitFor } from './harness.js';
import { CookieJar, login, LoginError, request } from './login.js';
import { decodeJwt } from './oidc.js';
import {
  CSRF_COOKIE, SESSION_COOKIE, authorizeParams, browserLogin, rawRequest, startEcho, startGate, waitReady,
} from './stack.js';

after(stopAll);

let redis;
let op;
let disco;
const gates = []; // every authgate started here, stopped (and checked) by the last test

before(async () => {
  [redis, op] = await Promise.all([startRedis(), startProvider()]);
  disco = await op.discovery();
});

async function gate(config) {
  const ag = await startGate({ op, redis, config });
  gates.push(ag);
  return ag;
}

const sessionKeys = async () => (await redis.command('KEYS', 'authgate:s:*')).filter((k) => !k.endsWith(':lock')).sort();

// The Set-Cookie line for cookie `name` among lines (undefined when none).
const setCookieFor = (lines, name) => lines.find((l) => l.startsWith(`${name}=`));
const clears = (line) => line !== undefined && (/;\s*Max-Age=0/i.test(line) || /=;/.test(line.split(';')[0] + ';'));

// Log in as user through gate ag (via /oauth2/start?rd=rd) in a fresh jar (or jar); asserts the
// callback set a session. Returns { jar, cookie (the session cookie value), login result }.
async function loggedIn(ag, { user = 'alice', rd = '/', jar = new CookieJar() } = {}) {
  const r = await browserLogin(`${ag.base}/oauth2/start?rd=${encodeURIComponent(rd)}`, { jar, user });
  assert.equal(r.status, 302, `callback answered ${r.status}: ${r.body ?? ''}\n${ag.logs().slice(-5).join('\n')}`);
  const cookie = jar.get(SESSION_COOKIE, ag.base);
  assert.ok(cookie, `a session cookie after the callback (Set-Cookie: ${r.setCookies.join(' | ')})`);
  return { jar, cookie, r };
}

const withCookie = (value) => ({ cookie: `${SESSION_COOKIE}=${value}` });

// ----------------------------------------------------------------------------------------------

describe('browser login (sign-in page, no provider button skipping)', () => {
  let A;
  let alice; // { jar, cookie }

  before(async () => {
    A = await gate({
      whitelist_domains: ['.example.org'],
      skip_auth_routes: ['GET=^/public/', '^/api/.*/status'],
      api_routes: ['^/api/'],
      pass_access_token: true,
      set_authorization_header: true,
    });
  });

  test('/oauth2/start: 302 to the provider with state, nonce, PKCE S256 and the CSRF cookie', async () => {
    const res = await request(`${A.base}/oauth2/start?rd=%2Fdest`);
    assert.equal(res.status, 302);
    const loc = res.headers.get('location');
    assert.ok(loc.startsWith(`${disco.authorization_endpoint}?`), loc);
    const p = authorizeParams(loc);
    assert.equal(p.response_type, 'code');
    assert.equal(p.client_id, 'authgate');
    assert.equal(p.redirect_uri, A.callbackUrl);
    assert.deepEqual(p.scope.split(' ').sort(), ['email', 'groups', 'openid', 'profile']);
    assert.ok(p.state?.length >= 22, `state ${p.state}`);
    assert.ok(p.nonce?.length >= 22, `nonce ${p.nonce}`);
    assert.equal(p.code_challenge_method, 'S256');
    assert.match(p.code_challenge, /^[A-Za-z0-9_-]{43}$/);
    const csrf = setCookieFor(res.headers.getSetCookie(), CSRF_COOKIE);
    assert.ok(csrf, res.headers.getSetCookie().join(' | '));
    assert.match(csrf, /;\s*HttpOnly/i);
    assert.match(csrf, /;\s*Max-Age=900\b/);
    assert.doesNotMatch(csrf, /;\s*Secure/i, 'cookie_secure = false');
    assert.ok(!csrf.includes(p.state) && !csrf.includes(p.nonce), 'state and nonce are sealed, not in clear');

    const again = authorizeParams((await request(`${A.base}/oauth2/start?rd=%2Fdest`)).headers.get('location'));
    assert.notEqual(again.state, p.state);
    assert.notEqual(again.nonce, p.nonce);
    assert.notEqual(again.code_challenge, p.code_challenge);
  });

  test('alice logs in: session cookie, CSRF cookie cleared, back at rd', async () => {
    const jar = new CookieJar();
    const r = await browserLogin(`${A.base}/oauth2/start?rd=${encodeURIComponent('/after/login?x=1')}`, { jar });
    assert.equal(r.status, 302, r.body);
    assert.equal(r.location.href, `${A.base}/after/login?x=1`);
    const session = setCookieFor(r.setCookies, SESSION_COOKIE);
    assert.ok(session, r.setCookies.join(' | '));
    assert.match(session, /^_oauth2_proxy=v1\./);
    assert.match(session, /;\s*HttpOnly/i);
    assert.match(session, /;\s*Max-Age=604800\b/, 'Max-Age = cookie_expire (168h)');
    assert.match(session, /;\s*Path=\//);
    assert.ok(clears(setCookieFor(r.setCookies, CSRF_COOKIE)), `CSRF cookie cleared: ${r.setCookies.join(' | ')}`);
    assert.equal(jar.get(CSRF_COOKIE, A.base), undefined);
    alice = { jar, cookie: jar.get(SESSION_COOKIE, A.base) };
    assert.ok(!alice.cookie.includes('alice'), 'the cookie carries a ticket, not the identity');
  });

  test('/oauth2/auth 202 with the identity headers, /oauth2/userinfo JSON, the check route 200', async () => {
    const auth = await request(`${A.base}/oauth2/auth`, { jar: alice.jar });
    assert.equal(auth.status, 202);
    assert.equal(auth.headers.get('x-auth-request-user'), 'alice');
    assert.equal(auth.headers.get('x-auth-request-email'), 'alice@example.com');
    assert.equal(auth.headers.get('x-auth-request-groups'), 'admins,devs');
    assert.equal(auth.headers.get('x-auth-request-preferred-username'), 'alice');
    assert.ok(auth.headers.get('x-auth-request-access-token'), 'pass_access_token');
    const bearer = /^Bearer (.+)$/.exec(auth.headers.get('authorization') ?? '');
    assert.ok(bearer, `Authorization: ${auth.headers.get('authorization')}`);
    const { payload } = decodeJwt(bearer[1]);
    assert.equal(payload.sub, 'alice');
    assert.equal(payload.iss, op.issuer);
    assert.equal(payload.aud, 'authgate');

    const ui = await request(`${A.base}/oauth2/userinfo`, { jar: alice.jar });
    assert.equal(ui.status, 200);
    assert.match(ui.headers.get('content-type'), /application\/json/);
    assert.deepEqual(await ui.json(),
      { user: 'alice', email: 'alice@example.com', groups: ['admins', 'devs'], preferredUsername: 'alice' });

    for (const p of ['/', '/some/page?q=1', '/deep/a/b/c.html']) {
      const c = await request(`${A.base}${p}`, { jar: alice.jar });
      assert.equal(c.status, 200, p);
      assert.equal(await c.text(), 'Authenticated');
      assert.equal(c.headers.get('x-auth-request-user'), 'alice');
      assert.equal(c.headers.get('x-auth-request-email'), 'alice@example.com');
      assert.equal(c.headers.get('x-auth-request-groups'), 'admins,devs');
      assert.equal(c.headers.get('authorization'), auth.headers.get('authorization'));
    }
    // /oauth2/auth?allowed_groups narrows one check.
    assert.equal((await request(`${A.base}/oauth2/auth?allowed_groups=devs`, { jar: alice.jar })).status, 202);
    assert.equal((await request(`${A.base}/oauth2/auth?allowed_groups=ops,admins`, { jar: alice.jar })).status, 202);
    const no = await request(`${A.base}/oauth2/auth?allowed_groups=ops`, { jar: alice.jar });
    assert.equal(no.status, 403);
    assert.equal(no.headers.get('x-auth-request-user'), null);
  });

  test('the session lives in Redis, sealed', async () => {
    const keys = await sessionKeys();
    assert.ok(keys.length >= 1, `authgate:s:* keys: ${keys}`);
    for (const k of keys) {
      const v = await redis.command('GET', k);
      assert.equal(typeof v, 'string');
      for (const clear of ['alice', 'example.com', 'admins']) assert.ok(!v.includes(clear), `${k} holds "${clear}" in clear`);
      const ttl = await redis.command('PTTL', k);
      assert.ok(ttl > 600000000 && ttl <= 604800000, `${k} TTL ${ttl} ms = cookie_expire`);
    }
  });

  test('client-sent identity headers never come back as the identity', async () => {
    const forged = [
      ['X-Auth-Request-User', 'mallory'], ['x-auth-request-user', 'mallory'], ['X_Auth_Request_User', 'mallory'],
      ['X-Auth-Request-Email', 'mallory@example.com'], ['X-Auth-Request-Groups', 'admins,root'],
      ['X-Forwarded-User', 'mallory'], ['X-Forwarded-Email', 'mallory@example.com'],
      ['Authorization', 'Bearer forged'], ['Connection', 'X-Auth-Request-User'],
    ];
    for (const p of ['/oauth2/auth', '/app']) {
      const r = await rawRequest(A.base, { path: p, headers: [['Cookie', `${SESSION_COOKIE}=${alice.cookie}`], ...forged] });
      assert.ok([200, 202].includes(r.status), `${p}: ${r.status}`);
      assert.deepEqual(r.headers['x-auth-request-user'], ['alice'], p);
      assert.deepEqual(r.headers['x-auth-request-email'], ['alice@example.com'], p);
      assert.deepEqual(r.headers['x-auth-request-groups'], ['admins,devs'], p);
      assert.equal(r.headers.authorization?.length, 1, p);
      assert.notEqual(r.headers.authorization[0], 'Bearer forged');
      assert.ok(!JSON.stringify(r.headers).includes('mallory'), `${p}: ${JSON.stringify(r.headers)}`);
    }
  });

  test('without a session: sign-in page, 401 JSON for APIs, 401 at /oauth2/auth and /userinfo', async () => {
    const page = await request(`${A.base}/app/page?x=1`, { headers: { accept: 'text/html' } });
    assert.equal(page.status, 403);
    assert.match(page.headers.get('content-type'), /text\/html/);
    const html = await page.text();
    assert.match(html, /action="\/oauth2\/start"/);
    assert.ok(html.includes(`value="${A.base}/app/page?x=1"`), `rd of the sign-in form: ${html}`);
    assert.equal(page.headers.get('x-auth-request-user'), null);

    const json = await request(`${A.base}/app/page`, { headers: { accept: 'application/json' } });
    assert.equal(json.status, 401);
    assert.match(json.headers.get('content-type'), /application\/json/);
    assert.ok((await json.json()).error);

    const api = await request(`${A.base}/api/things`, { headers: { accept: 'text/html' } });
    assert.equal(api.status, 401, 'api_routes answer 401, not a page');
    assert.match(api.headers.get('content-type'), /application\/json/);

    for (const p of ['/oauth2/auth', '/oauth2/userinfo']) {
      const r = await request(`${A.base}${p}`, { headers: { accept: 'text/html' } });
      assert.equal(r.status, 401, p);
      assert.equal(r.headers.get('location'), null, `${p} never redirects`);
    }
    // A skip route judged on X-Forwarded-Uri must come from a trusted proxy (nobody here).
    const fwd = await request(`${A.base}/oauth2/auth`, { headers: { 'x-forwarded-uri': '/public/x' } });
    assert.equal(fwd.status, 401);
  });

  test('skip-auth routes pass without a session; their look-alikes do not', async () => {
    for (const p of ['/public/x', '/public/', '/api/v1/status', '/api/a/b/status']) {
      const r = await rawRequest(A.base, { path: p });
      assert.equal(r.status, 200, `${p} -> ${r.status}`);
      assert.equal(r.body, 'Authenticated');
      assert.equal(r.header('x-auth-request-user'), undefined);
    }
    for (const p of ['/public/../admin', '/public/%2e%2e/admin', '/public/%2E%2E/admin', '/public/..;/admin',
      '/public/..%2fadmin', '/api/private/x?path=/status', '/api/private/x?/status', '/admin?r=/public/',
      '/PUBLIC/x', '//public/x']) {
      const r = await rawRequest(A.base, { path: p, headers: [['Accept', 'text/html']] });
      assert.notEqual(r.status, 200, `${p} must need a session (got ${r.status})`);
      assert.ok([401, 403].includes(r.status), `${p} -> ${r.status}`);
    }
    const post = await rawRequest(A.base, { method: 'POST', path: '/public/x', body: '' });
    assert.notEqual(post.status, 200, 'GET= rules do not cover POST');
  });

  test('rd validation: foreign targets end at "/", whitelisted and own ones are honoured', async () => {
    const jar = new CookieJar();
    const cases = [
      ['https://evil.com/', `${A.base}/`],
      ['//evil.com/x', `${A.base}/`],
      ['/\\evil.com', `${A.base}/`],
      ['/%09/evil.com', `${A.base}/`],
      ['http://evilexample.org/', `${A.base}/`],
      ['http://app.example.org.evil.com/', `${A.base}/`],
      ['https://evil.com@app.example.org/', `${A.base}/`],
      ['javascript:alert(1)', `${A.base}/`],
      ['http://app.example.org/welcome?a=1', 'http://app.example.org/welcome?a=1'],
      ['https://example.org/', 'https://example.org/'],
      [`${A.base}/own/page`, `${A.base}/own/page`],
      ['/relative/x?y=2', `${A.base}/relative/x?y=2`],
      ['/ok\r\nSet-Cookie: injected=1', `${A.base}/`],
    ];
    for (const [rd, want] of cases) {
      const r = await browserLogin(`${A.base}/oauth2/start?rd=${encodeURIComponent(rd)}`, { jar });
      assert.equal(r.status, 302, `rd=${rd}: ${r.body}`);
      assert.equal(r.location.href, want, `rd=${rd}`);
      const evil = r.history.some((h) => /evil/.test(new URL(h.url).host));
      assert.equal(evil, false, `rd=${rd} visited ${r.history.map((h) => h.url).join(' ')}`);
      assert.equal(jar.get('injected', A.base), undefined);
    }
    // X-Auth-Request-Redirect is the target when there is no rd, validated the same way.
    for (const [hdr, want] of [['/via/header', `${A.base}/via/header`], ['https://evil.com/', `${A.base}/`]]) {
      const r = await browserLogin(`${A.base}/oauth2/start`, { jar, headers: { 'x-auth-request-redirect': hdr } });
      assert.equal(r.status, 302, r.body);
      assert.equal(r.location.href, want, `X-Auth-Request-Redirect: ${hdr}`);
    }
    // A 20 KB target is refused (not carried in the CSRF cookie).
    const big = await request(`${A.base}/oauth2/start?rd=${encodeURIComponent(`/${'a'.repeat(20000)}`)}`);
    assert.equal(big.status, 302);
    assert.ok(setCookieFor(big.headers.getSetCookie(), CSRF_COOKIE).length < 2000, 'the CSRF cookie stays small');
  });

  test('CSRF and state: provider errors, missing / foreign / tampered / replayed state, duplicates', async () => {
    // A provider error is shown escaped, never as markup.
    const xss = await request(`${A.base}/oauth2/callback?error=${encodeURIComponent('<script>alert(1)</script>')}&state=x`);
    assert.equal(xss.status, 403);
    const xssBody = await xss.text();
    assert.ok(!xssBody.includes('<script>alert(1)'), xssBody);
    assert.ok(xssBody.includes('&lt;script&gt;alert(1)&lt;/script&gt;'), xssBody);
    assert.equal(setCookieFor(xss.headers.getSetCookie(), SESSION_COOKIE), undefined);

    // The user cancels at the provider: error=access_denied comes back to the callback.
    {
      const jar = new CookieJar();
      const form = await login(`${A.base}/oauth2/start?rd=%2F`, { jar }).catch((e) => e);
      assert.ok(form instanceof LoginError, String(form));
      const abort = new URL(/href="([^"]*\/abort)"/.exec(form.page)[1], op.issuer).href;
      const done = await login(abort, { jar });
      assert.equal(done.response.status, 403);
      assert.match(done.body, /access_denied/);
      assert.equal(jar.get(SESSION_COOKIE, A.base), undefined);
    }

    // Walk to the callback without calling it.
    const toCallback = async (jar, startUrl = `${A.base}/oauth2/start?rd=%2Fback`) => {
      const r = await login(startUrl, {
        jar, username: 'alice', password: 'alice-pw', stopAt: (u) => u.pathname === '/oauth2/callback',
      });
      assert.ok(r.stopped, 'reached the callback');
      return r.url.href;
    };

    // Another browser (no CSRF cookie) cannot use this state; the right browser still can.
    const jar = new CookieJar();
    const cb = await toCallback(jar);
    const csrfValue = jar.get(CSRF_COOKIE, A.base);
    assert.ok(csrfValue);
    const foreign = await request(cb);
    assert.equal(foreign.status, 403);
    assert.match(await foreign.text(), /csrf/i);
    assert.equal(setCookieFor(foreign.headers.getSetCookie(), SESSION_COOKIE), undefined);

    // A tampered CSRF cookie is refused.
    const flipped = csrfValue.slice(0, 20) + (csrfValue[20] === 'A' ? 'B' : 'A') + csrfValue.slice(21);
    for (const bad of [flipped, csrfValue.slice(0, csrfValue.length >> 1), `${csrfValue}x`, '%s%s%n', '']) {
      const r = await request(cb, { headers: { cookie: `${CSRF_COOKIE}=${bad}` } });
      assert.equal(r.status, 403, `CSRF cookie ${JSON.stringify(bad.slice(0, 30))}`);
      assert.equal(setCookieFor(r.headers.getSetCookie(), SESSION_COOKIE), undefined);
    }

    // Two state or two code parameters.
    const u = new URL(cb);
    for (const dup of ['state', 'code']) {
      const d = new URL(u);
      d.searchParams.append(dup, u.searchParams.get(dup));
      const r = await request(d.href, { headers: { cookie: `${CSRF_COOKIE}=${csrfValue}` } });
      assert.equal(r.status, 403, `two ${dup} parameters`);
    }
    // A state that is not the cookie's.
    const other = new URL(u);
    other.searchParams.set('state', `${u.searchParams.get('state').slice(0, -2)}xx`);
    assert.equal((await request(other.href, { headers: { cookie: `${CSRF_COOKIE}=${csrfValue}` } })).status, 403);
    // A POST without Content-Type (or with a form body) is no way around the checks.
    for (const headers of [{}, { 'content-type': 'application/x-www-form-urlencoded' }]) {
      const r = await request(`${A.base}/oauth2/callback`, {
        method: 'POST', headers: { ...headers, cookie: `${CSRF_COOKIE}=${csrfValue}` }, body: u.search.slice(1),
      });
      assert.ok(r.status >= 400 && r.status < 500, `POST callback -> ${r.status}`);
      assert.equal(setCookieFor(r.headers.getSetCookie(), SESSION_COOKIE), undefined);
    }
    // No parameters at all.
    assert.equal((await request(`${A.base}/oauth2/callback`, { headers: { cookie: `${CSRF_COOKIE}=${csrfValue}` } })).status, 403);
    // RFC 9207: an iss naming another provider (mix-up), or two iss parameters, is refused.
    for (const evil of [['http://evil.example'], [op.issuer, op.issuer], [`${op.issuer}/`]]) {
      const m = new URL(u);
      m.searchParams.delete('iss');
      for (const v of evil) m.searchParams.append('iss', v);
      const r = await request(m.href, { headers: { cookie: `${CSRF_COOKIE}=${csrfValue}` } });
      assert.equal(r.status, 403, `iss ${JSON.stringify(evil)}`);
      assert.match(await r.text(), /issuer_mismatch/);
      assert.equal(setCookieFor(r.headers.getSetCookie(), SESSION_COOKIE), undefined);
    }

    // The right browser completes the login (the failures above did not burn the state) ...
    const ok = await request(cb, { jar });
    assert.equal(ok.status, 302, await ok.text());
    assert.equal(ok.headers.get('location'), '/back');
    assert.ok(jar.get(SESSION_COOKIE, A.base));
    // ... once: the same callback again, with the CSRF cookie put back, is a replay.
    const replay = await request(cb, { headers: { cookie: `${CSRF_COOKIE}=${csrfValue}` } });
    assert.equal(replay.status, 403);
    assert.match(await replay.text(), /state_replayed/);
    assert.equal(setCookieFor(replay.headers.getSetCookie(), SESSION_COOKIE), undefined);

    // Two logins in one browser without per-request CSRF cookies: the second start replaces the
    // first's cookie, so finishing the first is a state mismatch.
    const jar2 = new CookieJar();
    const first = (await request(`${A.base}/oauth2/start?rd=%2F1`, { jar: jar2 })).headers.get('location');
    await request(`${A.base}/oauth2/start?rd=%2F2`, { jar: jar2 });
    const cb1 = await toCallback(jar2, first);
    const mismatch = await request(cb1, { jar: jar2 });
    assert.equal(mismatch.status, 403);
    assert.match(await mismatch.text(), /csrf_mismatch|state/i);
    assert.equal(jar2.get(SESSION_COOKIE, A.base), undefined);
  });

  test('users who are not allowed get a 403 and no session', async () => {
    const before = await sessionKeys();
    for (const [user, why] of [['carol', 'email_verified=false'], ['mallory', 'attacker@evil.com@example.com'],
      ['bob', 'bob@other.org']]) {
      const jar = new CookieJar();
      const r = await browserLogin(`${A.base}/oauth2/start?rd=%2F`, { jar, user });
      assert.equal(r.status, 403, `${user} (${why}) -> ${r.status}`);
      const sc = setCookieFor(r.setCookies, SESSION_COOKIE);
      assert.ok(sc === undefined || clears(sc), `${user}: no session cookie (${r.setCookies.join(' | ')})`);
      assert.equal(jar.get(SESSION_COOKIE, A.base), undefined, user);
      assert.ok(!r.body.includes('<script'), user);
      assert.equal((await request(`${A.base}/oauth2/auth`, { jar })).status, 401, user);
    }
    assert.deepEqual(await sessionKeys(), before, 'no session was stored for them');
  });

  test('/oauth2/sign_out ends the session everywhere; rd is validated', async () => {
    const s = await loggedIn(A);
    const keysBefore = await sessionKeys();
    assert.equal((await request(`${A.base}/oauth2/auth`, { jar: s.jar })).status, 202);

    const out = await request(`${A.base}/oauth2/sign_out?rd=${encodeURIComponent('https://evil.com/')}`, { jar: s.jar });
    assert.equal(out.status, 302);
    assert.equal(out.headers.get('location'), '/', 'a foreign rd becomes /');
    assert.ok(clears(setCookieFor(out.headers.getSetCookie(), SESSION_COOKIE)), out.headers.getSetCookie().join(' | '));
    assert.equal(s.jar.get(SESSION_COOKIE, A.base), undefined);
    const keysAfter = await sessionKeys();
    assert.equal(keysAfter.length, keysBefore.length - 1, 'the session was deleted from Redis');

    // The old cookie value, replayed, is refused everywhere.
    assert.equal((await request(`${A.base}/oauth2/auth`, { headers: withCookie(s.cookie) })).status, 401);
    assert.equal((await request(`${A.base}/oauth2/userinfo`, { headers: withCookie(s.cookie) })).status, 401);
    const check = await request(`${A.base}/app`, { headers: { ...withCookie(s.cookie), accept: 'application/json' } });
    assert.equal(check.status, 401);
    assert.notEqual((await request(`${A.base}/app`, { headers: withCookie(s.cookie) })).status, 200);

    for (const [rd, want] of [['/bye', '/bye'], ['http://app.example.org/bye', 'http://app.example.org/bye'],
      ['//evil.com', '/'], ['/\\evil.com', '/']]) {
      const r = await request(`${A.base}/oauth2/sign_out?rd=${encodeURIComponent(rd)}`);
      assert.equal(r.status, 302);
      assert.equal(r.headers.get('location'), want, `sign_out rd=${rd}`);
    }
    // alice's other session is untouched.
    assert.equal((await request(`${A.base}/oauth2/auth`, { jar: alice.jar })).status, 202);
  });

  test('/oauth2/sign_in clears an existing session', async () => {
    const s = await loggedIn(A);
    const keysBefore = await sessionKeys();
    const r = await request(`${A.base}/oauth2/sign_in?rd=%2Fx`, { jar: s.jar });
    assert.equal(r.status, 403, 'the sign-in page, never a 200 that Envoy would take for "allowed"');
    assert.match(r.headers.get('content-type'), /text\/html/);
    assert.match(await r.text(), /\/oauth2\/start/);
    assert.ok(clears(setCookieFor(r.headers.getSetCookie(), SESSION_COOKIE)), r.headers.getSetCookie().join(' | '));
    assert.equal((await sessionKeys()).length, keysBefore.length - 1);
    assert.equal((await request(`${A.base}/oauth2/auth`, { headers: withCookie(s.cookie) })).status, 401);
  });

  test('hostile cookies: 401, no crash', async () => {
    const good = alice.cookie;
    const parts = good.split('.');
    const flip = (s, i) => s.slice(0, i) + (s[i] === 'A' ? 'B' : 'A') + s.slice(i + 1);
    const values = [
      flip(good, 5), flip(good, good.length >> 1), flip(good, good.length - 2),
      good.slice(0, -1), good.slice(0, good.length >> 1), good.slice(0, 3), `${good}A`, `${good}.x`,
      [...parts].reverse().join('.'), parts.slice(0, 2).join('.'), `v1.${'!'.repeat(40)}`, `v2.${parts.slice(1).join('.')}`,
      '%s%s%s%n%x', `v1.%s%s%n.%x%x`, '%n%n%n%n%n%n%n%n%n%n', '', '""', `"${good.slice(0, -1)}"`, 'v1.', '.', '....',
      'A'.repeat(8000), `v1.${'A'.repeat(4000)}.${'B'.repeat(4000)}`, '\u00e9\u00e8', 'a\tb',
    ];
    const headersList = [
      ...values.map((v) => [['Cookie', `${SESSION_COOKIE}=${v}`]]),
      [['Cookie', ';']], [['Cookie', ';;']], [['Cookie', '']], [['Cookie', '=']], [['Cookie', `=${good}`]],
      [['Cookie', `${SESSION_COOKIE}`]], [['Cookie', `${SESSION_COOKIE}_0of2=${good}; ${SESSION_COOKIE}_5of2=x`]],
      [['Cookie', `${SESSION_COOKIE}_1of99999999=x`]],
      [['Cookie', Array.from({ length: 200 }, (_, i) => `c${i}=${'v'.repeat(20)}`).join('; ')]],
      [['Cookie', `${Array.from({ length: 200 }, (_, i) => `${SESSION_COOKIE}=x${i}`).join('; ')}`]],
      Array.from({ length: 200 }, (_, i) => ['Cookie', `k${i}=v${i}`]),
      [['Cookie', `a=${'x'.repeat(8192)}`]],
    ];
    for (const headers of headersList) {
      const what = JSON.stringify(headers).slice(0, 80);
      const r = await rawRequest(A.base, { path: '/oauth2/auth', headers });
      assert.equal(r.status, 401, `${what} -> ${r.status}`);
      assert.equal(r.header('x-auth-request-user'), undefined, what);
      const c = await rawRequest(A.base, { path: '/app', headers: [...headers, ['Accept', 'application/json']] });
      assert.equal(c.status, 401, `check ${what} -> ${c.status}`);
    }
    assert.equal((await request(`${A.base}/ping`)).status, 200, 'still alive');
    assert.equal((await request(`${A.base}/oauth2/auth`, { jar: alice.jar })).status, 202, 'the real session still works');
  });

  describe('other deployments: other cookie secret, per-request CSRF cookies, provider button skipped, trusted proxy, allowed_groups, short CSRF expiry', () => {
    let B;
    let E; // CSRF cookies of 1 s
    before(async () => {
      E = await gate({ cookie_csrf_expire: '1s' });
      B = await gate({
        email_domains: ['*'],
        allowed_groups: ['admins'],
        skip_provider_button: true,
        cookie_csrf_per_request: true,
        trusted_proxy_ips: ['127.0.0.1'],
        reverse_proxy: true,
        upstreams: ['static://201'],
        api_routes: ['^/api/'],
      });
    });

    test('a valid cookie of one deployment is refused by the other (and vice versa)', async () => {
      const b = await loggedIn(B);
      assert.equal((await request(`${B.base}/oauth2/auth`, { jar: b.jar })).status, 202);
      assert.equal((await request(`${A.base}/oauth2/auth`, { headers: withCookie(b.cookie) })).status, 401);
      assert.equal((await request(`${B.base}/oauth2/auth`, { headers: withCookie(alice.cookie) })).status, 401);
      // static://201 answers exactly that code when allowed.
      const c = await request(`${B.base}/x`, { jar: b.jar });
      assert.equal(c.status, 201);
      assert.equal(c.headers.get('x-auth-request-user'), 'alice');
    });

    test('allowed_groups: bob (devs only) is refused at the callback, alice (admins) is not', async () => {
      const r = await browserLogin(`${B.base}/oauth2/start?rd=%2F`, { user: 'bob' });
      assert.equal(r.status, 403);
      assert.equal(r.jar.get(SESSION_COOKIE, B.base), undefined);
      // email_domains=* does not let carol's unverified address in either.
      const c = await browserLogin(`${B.base}/oauth2/start?rd=%2F`, { user: 'carol' });
      assert.equal(c.status, 403);
    });

    test('skip_provider_button: the check sends the browser to the provider, rd = the original URL', async () => {
      const jar = new CookieJar();
      const res = await request(`${B.base}/app/page?x=1&y=2`, { jar, headers: { accept: 'text/html' } });
      assert.equal(res.status, 302);
      const loc = res.headers.get('location');
      assert.ok(loc.startsWith(`${disco.authorization_endpoint}?`), `absolute Location to the provider: ${loc}`);
      const csrf = res.headers.getSetCookie().find((l) => /^_oauth2_proxy_csrf_[A-Za-z0-9_-]+=/.test(l));
      assert.ok(csrf, `per-request CSRF cookie: ${res.headers.getSetCookie().join(' | ')}`);
      const r = await browserLogin(loc, { jar });
      assert.equal(r.status, 302, r.body);
      assert.equal(r.location.href, `${B.base}/app/page?x=1&y=2`);
      assert.ok(clears(r.setCookies.find((l) => l.startsWith(csrf.split('=')[0]))), r.setCookies.join(' | '));

      // From a trusted proxy, X-Forwarded-Uri is the original request.
      const jar3 = new CookieJar();
      const again = await request(`${B.base}/ignored`, { jar: jar3, headers: { accept: 'text/html', 'x-forwarded-uri': '/orig/path?z=9' } });
      const r3 = await browserLogin(again.headers.get('location'), { jar: jar3 });
      assert.equal(r3.status, 302, r3.body);
      assert.equal(r3.location.href, `${B.base}/orig/path?z=9`);

      // JSON clients still get 401, never a redirect.
      const api = await request(`${B.base}/app`, { headers: { accept: 'application/json' } });
      assert.equal(api.status, 401);
      assert.equal((await request(`${B.base}/api/x`, { headers: { accept: 'text/html' } })).status, 401, 'api_routes');
      // /oauth2/auth never redirects, even with skip_provider_button.
      const auth = await request(`${B.base}/oauth2/auth`);
      assert.equal(auth.status, 401);
    });

    test('api_routes are judged on the original URI a trusted proxy forwards', async () => {
      // Skip routes already are (see target_path); an API request forwarded by Traefik or Caddy
      // (X-Forwarded-Uri) must get 401 JSON too, not a redirect to the provider.
      const r = await request(`${B.base}/`, { headers: { accept: 'text/html', 'x-forwarded-uri': '/api/x' } });
      assert.equal(r.status, 401, `X-Forwarded-Uri /api/x from a trusted proxy, api_routes ^/api/: ${r.status} ${r.headers.get('location') ?? ''}`);
      const plain = await request(`${B.base}/`, { headers: { accept: 'text/html', 'x-forwarded-uri': '/app' } });
      assert.equal(plain.status, 302);
    });

    test('per-request CSRF cookies: two parallel logins in one browser both finish', async () => {
      const jar = new CookieJar();
      const l1 = (await request(`${B.base}/oauth2/start?rd=%2Fone`, { jar })).headers.get('location');
      const l2 = (await request(`${B.base}/oauth2/start?rd=%2Ftwo`, { jar })).headers.get('location');
      assert.equal(jar.all().filter((c) => c.name.startsWith(`${CSRF_COOKIE}_`)).length, 2);
      const r1 = await browserLogin(l1, { jar });
      const r2 = await browserLogin(l2, { jar });
      assert.equal(r1.status, 302, r1.body);
      assert.equal(r2.status, 302, r2.body);
      assert.equal(r1.location.pathname, '/one');
      assert.equal(r2.location.pathname, '/two');
    });

    test('an expired CSRF cookie (cookie_csrf_expire = 1s) is refused', async () => {
      const jar = new CookieJar();
      const start = await request(`${E.base}/oauth2/start?rd=%2Flate`, { jar });
      const [name, value] = start.headers.getSetCookie()[0].split(';')[0].split(/=(.*)/s);
      assert.equal(name, CSRF_COOKIE);
      assert.match(start.headers.getSetCookie()[0], /Max-Age=1\b/);
      const waited = sleep(2100); // the expiry is checked in whole seconds
      const r = await login(start.headers.get('location'), {
        jar, username: 'alice', password: 'alice-pw', stopAt: (u) => u.pathname === '/oauth2/callback',
      });
      await waited;
      // The browser has dropped it (Max-Age); sent anyway, the server refuses it.
      const late = await request(r.url.href, { headers: { cookie: `${name}=${value}` } });
      assert.equal(late.status, 403);
      assert.equal(setCookieFor(late.headers.getSetCookie(), SESSION_COOKIE), undefined);
    });
  });
});

// ----------------------------------------------------------------------------------------------
// The CSRF cookie's record, opened and re-sealed here with the key authgate derives itself
// (src/app.c): HMAC-SHA256 keyed with the cookie secret's bytes over "authgate csrf cookie v1".
// The secret's bytes are read as src/config.c ag_config_cookie_key does: its base64 reading (either
// alphabet, trailing '=' optional, stray low bits ignored) when that is 16, 24 or 32 bytes, else the
// string itself. The value is base64url without padding of AES-256-GCM nonce(12) | ciphertext |
// tag(16), with the cookie's name as additional data (src/util/crypto.c ag_seal). The record
// (src/oidc/flow.c) is format 2: "AGC2", state, nonce, PKCE verifier, redirect URI, return target,
// each a 2-byte big-endian length and its bytes, then the expiry as 8 bytes big-endian unix
// seconds, nothing after; format 1 (JSON {s, n, u, r, e, v}) is what the previous build wrote.

const CSRF_LABEL = 'authgate csrf cookie v1';

function cookieSecretBytes(secret) {
  const text = secret.replace(/=+$/, '');
  if (/^[A-Za-z0-9+/_-]*$/.test(text) && text.length % 4 !== 1) {
    const b = Buffer.from(text.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
    if ([16, 24, 32].includes(b.length)) return b;
  }
  const raw = Buffer.from(secret, 'utf8');
  assert.ok([16, 24, 32].includes(raw.length), `cookie secret of ${raw.length} bytes`);
  return raw;
}

const csrfKeyOf = (secret) => createHmac('sha256', cookieSecretBytes(secret)).update(CSRF_LABEL).digest();

// The plaintext of a CSRF cookie value (throws when it does not authenticate with key and aad).
function openCsrf(key, aad, value) {
  assert.match(value, /^[A-Za-z0-9_-]+$/, 'base64url without padding');
  const raw = Buffer.from(value, 'base64url');
  assert.equal(raw.toString('base64url'), value, 'one spelling per value');
  assert.ok(raw.length >= 12 + 16, `${raw.length} bytes: nonce and tag at least`);
  const d = createDecipheriv('aes-256-gcm', key, raw.subarray(0, 12));
  d.setAAD(Buffer.from(aad));
  d.setAuthTag(raw.subarray(raw.length - 16));
  return Buffer.concat([d.update(raw.subarray(12, raw.length - 16)), d.final()]);
}

// A CSRF cookie value holding plaintext, sealed as authgate seals it (a fresh nonce).
function sealCsrf(key, aad, plaintext) {
  const nonce = randomBytes(12);
  const c = createCipheriv('aes-256-gcm', key, nonce);
  c.setAAD(Buffer.from(aad));
  const ct = Buffer.concat([c.update(plaintext), c.final()]);
  return Buffer.concat([nonce, ct, c.getAuthTag()]).toString('base64url');
}

// Format 2, read strictly (asserts): { state, nonce, verifier, uri, rd, expires (BigInt) }.
function parseV2(pt) {
  assert.equal(pt.subarray(0, 4).toString('latin1'), 'AGC2', `format 2 magic: ${pt.subarray(0, 8).toString('hex')}`);
  let o = 4;
  const out = {};
  for (const f of ['state', 'nonce', 'verifier', 'uri', 'rd']) {
    assert.ok(pt.length - o >= 2, `${f}: length`);
    const n = pt.readUInt16BE(o);
    o += 2;
    assert.ok(pt.length - o >= n, `${f}: ${n} bytes`);
    const b = pt.subarray(o, o + n);
    assert.equal(b.indexOf(0), -1, `${f}: no NUL`);
    out[f] = b.toString('utf8');
    o += n;
  }
  assert.equal(pt.length - o, 8, 'the expiry (8 bytes) ends the record');
  out.expires = pt.readBigUInt64BE(o);
  return out;
}

// Format 2 from fields (strings or Buffers; expires a number or BigInt).
function encodeV2({ state, nonce, verifier, uri, rd, expires }, magic = 'AGC2') {
  const parts = [Buffer.from(magic, 'latin1')];
  for (const f of [state, nonce, verifier, uri, rd]) {
    const b = Buffer.isBuffer(f) ? f : Buffer.from(f, 'utf8');
    const len = Buffer.alloc(2);
    len.writeUInt16BE(b.length);
    parts.push(len, b);
  }
  const e = Buffer.alloc(8);
  e.writeBigUInt64BE(BigInt.asUintN(64, BigInt(expires)));
  parts.push(e);
  return Buffer.concat(parts);
}

// Format 1, as the previous build wrote it (json_pack order, "v" added with PKCE).
const encodeV1 = ({ state, nonce, verifier, uri, rd, expires }) => Buffer.from(JSON.stringify({
  s: state, n: nonce, u: uri, r: rd, e: Number(expires), ...(verifier ? { v: verifier } : {}),
}));

const withNul = (s, tail = '') => Buffer.concat([Buffer.from(s), Buffer.from([0]), Buffer.from(tail)]);

describe('the CSRF cookie: format 2 written, format 1 still read, format 2 read strictly', () => {
  // G: a base64 cookie secret (the usual kind), fixed CSRF cookie name, cookie_csrf_expire = 10m.
  // P: a raw 32-character secret (not base64: the string's bytes are the secret), per-request
  // CSRF cookie names (the name, and so the additional data, comes from the state).
  const secretG = randomBytes(32).toString('base64');
  const secretP = `raw.secret.${randomBytes(8).toString('hex')}.e2e!`;
  let G;
  let P;
  before(async () => {
    assert.equal(secretP.length, 32);
    [G, P] = await Promise.all([
      gate({ cookie_secret: secretG, cookie_csrf_expire: '10m' }),
      gate({ cookie_secret: secretP, cookie_csrf_per_request: true }),
    ]);
    G.csrfKey = csrfKeyOf(secretG);
    G.csrfExpire = 600;
    P.csrfKey = csrfKeyOf(secretP);
    P.csrfExpire = 900;
  });

  // The CSRF cookie name gate g uses for state (flow.c csrf_name).
  const csrfName = (g, state) => (g === P
    ? `${CSRF_COOKIE}_${createHash('sha256').update(state).digest().subarray(0, 9).toString('base64url')}`
    : CSRF_COOKIE);

  // /oauth2/start?rd=rd in a fresh jar: { jar, location, p (authorize parameters), line (the
  // Set-Cookie line), name, value, t0, t1 (unix seconds around the request) }.
  async function start(g, rd) {
    const jar = new CookieJar();
    const t0 = Math.floor(Date.now() / 1000);
    const res = await request(`${g.base}/oauth2/start?rd=${encodeURIComponent(rd)}`, { jar });
    const t1 = Math.ceil(Date.now() / 1000);
    assert.equal(res.status, 302);
    const location = res.headers.get('location');
    const lines = res.headers.getSetCookie();
    assert.equal(lines.length, 1, lines.join(' | '));
    const [name, value] = lines[0].split(';')[0].split(/=(.*)/s);
    return { jar, location, p: authorizeParams(location), line: lines[0], name, value, t0, t1 };
  }

  // A fresh login attempt walked to the callback (not called): start() plus cb (its URL) and the
  // record its CSRF cookie holds.
  async function atCallback(g, rd) {
    const s = await start(g, rd);
    const r = await login(s.location, {
      jar: s.jar, username: 'alice', password: 'alice-pw', stopAt: (u) => u.pathname === '/oauth2/callback',
    });
    assert.ok(r.stopped, 'reached the callback');
    assert.equal(new URL(r.url).searchParams.get('state'), s.p.state);
    assert.equal(s.jar.get(s.name, g.base), s.value, 'the jar still holds the CSRF cookie');
    return { ...s, cb: r.url.href, rec: parseV2(openCsrf(g.csrfKey, s.name, s.value)) };
  }

  // The callback with exactly this CSRF cookie value; a session cookie, if any, lands in jar.
  const callback = (s, value, jar) => request(s.cb, { jar, headers: { cookie: `${s.name}=${value}` } });

  // Completes s's login with its own, untouched cookie: the state was not used up before.
  async function completes(g, s, what) {
    const ok = await request(s.cb, { jar: s.jar });
    assert.equal(ok.status, 302, `${what}: the untouched cookie then completes the login: ${await ok.text()}`);
    assert.equal(ok.headers.get('location'), s.rec.rd);
    assert.ok(s.jar.get(SESSION_COOKIE, g.base), what);
  }

  test('/oauth2/start seals format 2: state, nonce, PKCE verifier, redirect URI and rd of the authorize request, expiry', async () => {
    for (const g of [G, P]) {
      const rd = '/dest/page?x=1&y=%C3%A9';
      const s = await start(g, rd);
      assert.equal(s.name, csrfName(g, s.p.state), s.line);
      assert.match(s.line, new RegExp(`;\\s*Max-Age=${g.csrfExpire}\\b`));
      const pt = openCsrf(g.csrfKey, s.name, s.value);
      assert.equal(pt.subarray(0, 4).toString('latin1'), 'AGC2', `format 2, not JSON: ${pt.subarray(0, 8)}`);
      const c = parseV2(pt);
      assert.equal(c.state, s.p.state);
      assert.equal(c.nonce, s.p.nonce);
      assert.match(c.verifier, /^[A-Za-z0-9_-]{43,128}$/, 'an RFC 7636 verifier');
      assert.equal(s.p.code_challenge_method, 'S256');
      assert.equal(createHash('sha256').update(c.verifier).digest('base64url'), s.p.code_challenge,
        'S256(verifier) is the code_challenge sent to the provider');
      assert.ok(!s.location.includes(c.verifier), 'the verifier itself never leaves in the redirect');
      assert.equal(c.uri, s.p.redirect_uri);
      assert.equal(c.uri, g.callbackUrl);
      assert.equal(c.rd, rd);
      const e = Number(c.expires);
      assert.ok(e >= s.t0 + g.csrfExpire - 1 && e <= s.t1 + g.csrfExpire + 1,
        `expiry ${e}: cookie_csrf_expire (${g.csrfExpire} s) after ${s.t0}..${s.t1}`);
      assert.deepEqual(encodeV2(c), pt, 'the record is exactly these fields');

      // The cookie's name is bound in: the same value under another name does not open, nor
      // with another key (the other deployment's, or the cookie secret itself).
      for (const aad of [`${s.name}x`, s.name.slice(0, -1), SESSION_COOKIE, `${CSRF_COOKIE}_x`, '']) {
        assert.throws(() => openCsrf(g.csrfKey, aad, s.value), /authenticate/, `additional data ${JSON.stringify(aad)}`);
      }
      assert.throws(() => openCsrf((g === G ? P : G).csrfKey, s.name, s.value), /authenticate/, 'the other key');
      assert.throws(() => openCsrf(cookieSecretBytes(g === G ? secretG : secretP), s.name, s.value), /authenticate/,
        'the cookie secret itself');
    }
  });

  test('a record sealed with another name as additional data is refused', async () => {
    for (const g of [G, P]) {
      const s = await atCallback(g, '/aad');
      for (const aad of [`${s.name}x`, SESSION_COOKIE, g === G ? `${CSRF_COOKIE}_x` : CSRF_COOKIE, '']) {
        const r = await callback(s, sealCsrf(g.csrfKey, aad, encodeV2(s.rec)));
        assert.equal(r.status, 403, `sealed with ${JSON.stringify(aad)}, sent as ${s.name}`);
        assert.match(await r.text(), /csrf_mismatch/);
        assert.equal(setCookieFor(r.headers.getSetCookie(), SESSION_COOKIE), undefined);
      }
      await completes(g, s, 'after the refusals');
    }
  });

  test('format 1 (JSON, from the previous build during a rolling upgrade) still completes a login', async () => {
    for (const g of [G, P]) {
      const s = await atCallback(g, '/v1/back?y=2');
      assert.ok(s.rec.verifier, 'PKCE');
      // A format 1 record that has expired is refused, and does not use up the state.
      const stale = await callback(s, sealCsrf(g.csrfKey, s.name, encodeV1({ ...s.rec, expires: s.t0 - 5 })));
      assert.equal(stale.status, 403);
      assert.match(await stale.text(), /csrf_mismatch/);

      const keysBefore = await sessionKeys();
      const v1 = encodeV1(s.rec);
      assert.equal(v1[0], 0x7b);
      const r = await callback(s, sealCsrf(g.csrfKey, s.name, v1), s.jar);
      assert.equal(r.status, 302, `${await r.text()}\n${g.logs().slice(-5).join('\n')}`);
      assert.equal(r.headers.get('location'), '/v1/back?y=2');
      const lines = r.headers.getSetCookie();
      assert.match(setCookieFor(lines, SESSION_COOKIE) ?? '', /^_oauth2_proxy=v1\./, lines.join(' | '));
      assert.ok(clears(setCookieFor(lines, s.name)), `the CSRF cookie is cleared: ${lines.join(' | ')}`);
      assert.equal((await sessionKeys()).length, keysBefore.length + 1, 'a session was stored');
      const auth = await request(`${g.base}/oauth2/auth`, { jar: s.jar });
      assert.equal(auth.status, 202);
      assert.equal(auth.headers.get('x-auth-request-user'), 'alice');
      assert.equal(auth.headers.get('x-auth-request-email'), 'alice@example.com');
      // ... once: the state is used up now, whatever the format.
      const replay = await request(s.cb, { headers: { cookie: `${s.name}=${s.value}` } });
      assert.equal(replay.status, 403);
      assert.match(await replay.text(), /state_replayed/);
    }
  });

  test('format 2 is read strictly: trailing bytes, NULs, truncations, past expiries, other states are refused', async () => {
    const now = () => Math.floor(Date.now() / 1000);
    const cases = [
      ['a trailing NUL byte', (c) => Buffer.concat([encodeV2(c), Buffer.from([0])])],
      ['a trailing "x"', (c) => Buffer.concat([encodeV2(c), Buffer.from('x')])],
      ['a second expiry', (c) => Buffer.concat([encodeV2(c), encodeV2(c).subarray(-8)])],
      ['the state followed by a NUL', (c) => encodeV2({ ...c, state: withNul(c.state) })],
      ['the state, a NUL and more', (c) => encodeV2({ ...c, state: withNul(c.state, 'junk') })],
      ['a NUL in the return target', (c) => encodeV2({ ...c, rd: withNul(c.rd, '//evil.com/') })],
      ['a NUL in the nonce', (c) => encodeV2({ ...c, nonce: withNul(c.nonce) })],
      ['truncated: the expiry one byte short', (c) => encodeV2(c).subarray(0, -1)],
      ['truncated: no expiry', (c) => encodeV2(c).subarray(0, -8)],
      ['truncated: inside the return target', (c) => encodeV2(c).subarray(0, -8 - 2)],
      ['truncated: inside a length', (c) => encodeV2(c).subarray(0, 4 + 2 + Buffer.byteLength(c.state) + 1)],
      ['truncated: the magic alone', () => Buffer.from('AGC2')],
      ['truncated: nothing', () => Buffer.alloc(0)],
      ['an expiry in the past', (c) => encodeV2({ ...c, expires: now() - 60 })],
      ['an expiry one second ago', (c) => encodeV2({ ...c, expires: now() - 1 })],
      ['an expiry of 2^64 - 1 (negative as a signed number)', (c) => encodeV2({ ...c, expires: -1n })],
      ['another state', (c) => encodeV2({ ...c, state: randomBytes(24).toString('base64url') })],
      ['a state differing in its last character',
        (c) => encodeV2({ ...c, state: c.state.slice(0, -1) + (c.state.endsWith('A') ? 'B' : 'A') })],
      ['a prefix of the state', (c) => encodeV2({ ...c, state: c.state.slice(0, -1) })],
      ['the state and one more character', (c) => encodeV2({ ...c, state: `${c.state}A` })],
      ['an empty state', (c) => encodeV2({ ...c, state: '' })],
      ['another magic (AGC3)', (c) => encodeV2(c, 'AGC3')],
      ['a format 1 record with another state', (c) => encodeV1({ ...c, state: randomBytes(24).toString('base64url') })],
    ];

    // Control: the record re-sealed unchanged (new nonce, same key) is accepted, so the refusals
    // below come from what was changed in it, not from the sealing done here.
    {
      const s = await atCallback(G, '/control');
      const jar = new CookieJar();
      const r = await callback(s, sealCsrf(G.csrfKey, s.name, encodeV2(s.rec)), jar);
      assert.equal(r.status, 302, await r.text());
      assert.equal(r.headers.get('location'), '/control');
      assert.equal((await request(`${G.base}/oauth2/auth`, { jar })).status, 202);
    }

    for (const [i, [what, make]] of cases.entries()) {
      // A fresh login attempt per case; after the refusal its own cookie still completes it, so
      // the refusal was the cookie's, not a used-up (replayed) state.
      const s = await atCallback(G, `/strict/${i}`);
      const keysBefore = await sessionKeys();
      const jar = new CookieJar();
      const r = await callback(s, sealCsrf(G.csrfKey, s.name, make(s.rec)), jar);
      const body = await r.text();
      assert.equal(r.status, 403, `${what}: ${r.status} ${body.slice(0, 200)}`);
      assert.match(body, /csrf_mismatch/, what);
      assert.equal(setCookieFor(r.headers.getSetCookie(), SESSION_COOKIE), undefined, what);
      assert.equal(jar.get(SESSION_COOKIE, G.base), undefined, what);
      assert.deepEqual(await sessionKeys(), keysBefore, `${what}: no session stored`);
      await completes(G, s, what);
    }
    assert.equal((await request(`${G.base}/ping`)).status, 200, 'still alive');
  });
});

// ----------------------------------------------------------------------------------------------

describe('refresh (cookie_refresh = 2s, access tokens of 2 s, refresh tokens rotated)', () => {
  let op2;
  let op3;
  let R;
  let R2; // its provider's refresh tokens live 1 s: the first refresh gets invalid_grant
  let r2Session;
  before(async () => {
    [op2, op3] = await Promise.all([
      startProvider({ verbose: true, config: { ttl: { AccessToken: 2 }, rotateRefreshToken: true } }),
      startProvider({ config: { ttl: { AccessToken: 2, RefreshToken: 1 } } }),
    ]);
    [R, R2] = await Promise.all([
      startGate({ op: op2, redis, config: { cookie_refresh: '2s', pass_access_token: true } }),
      startGate({ op: op3, redis, config: { cookie_refresh: '2s', force_json_errors: true } }),
    ]);
    gates.push(R, R2);
    r2Session = await loggedIn(R2);
  });
  after(async () => {
    await op2?.stop();
    await op3?.stop();
  });

  const tokenLines = () => op2.logs().filter((l) => /\] POST \/token /.test(l));

  test('a due session is refreshed once by parallel checks; the grant is never revoked', async () => {
    const { jar } = await loggedIn(R);
    const first = await request(`${R.base}/oauth2/auth`, { jar });
    assert.equal(first.status, 202);
    const t1 = first.headers.get('x-auth-request-access-token');
    assert.ok(t1);
    assert.equal(tokenLines().length, 1, `one token request (the code): ${tokenLines().join('\n')}`);

    await sleep(3000);
    // Several checks at once: one refreshes (single-flight lock), the others use the session they
    // have. A second refresh with the same (rotated, consumed) refresh token would make the
    // provider revoke the grant: the next refresh would then fail and end the session.
    const burst = await Promise.all(Array.from({ length: 6 }, () => request(`${R.base}/oauth2/auth`, { jar })));
    assert.deepEqual(burst.map((r) => r.status), [202, 202, 202, 202, 202, 202]);
    const c = await request(`${R.base}/some/app/page`, { jar });
    assert.equal(c.status, 200);
    assert.equal(await c.text(), 'Authenticated');
    await waitFor(() => tokenLines().length >= 2, { timeoutMs: 3000, what: 'a refresh at the provider' });
    const t2 = (await request(`${R.base}/oauth2/auth`, { jar })).headers.get('x-auth-request-access-token');
    assert.notEqual(t2, t1, 'the session holds the refreshed access token');
    assert.equal(tokenLines().length, 2, `exactly one refresh for the burst:\n${tokenLines().join('\n')}`);

    // Next round: the rotated refresh token works (the grant was not revoked by a reuse).
    await sleep(2500);
    const burst2 = await Promise.all(Array.from({ length: 4 }, () => request(`${R.base}/oauth2/auth`, { jar })));
    assert.deepEqual(burst2.map((r) => r.status), [202, 202, 202, 202]);
    await waitFor(() => tokenLines().length >= 3, { timeoutMs: 3000, what: 'a second refresh at the provider' });
    const after2 = await request(`${R.base}/oauth2/auth`, { jar });
    assert.equal(after2.status, 202, 'still signed in after two refreshes');
    assert.notEqual(after2.headers.get('x-auth-request-access-token'), t2);
    const bad = tokenLines().filter((l) => !/-> 200 /.test(l));
    assert.deepEqual(bad, [], 'every token request succeeded');
    assert.deepEqual(op2.logs().filter((l) => /grant\.error|invalid_grant/.test(l)), []);
    assert.equal(R.logs().filter((l) => /session refreshed/.test(l)).length, 2, R.logs().slice(-20).join('\n'));
  });

  test('a refresh re-issues the session cookie with a later expiry; old copies name the same session', async () => {
    const { jar, cookie: before } = await loggedIn(R);
    await sleep(2500);
    const r = await request(`${R.base}/some/app`, { jar });
    assert.equal(r.status, 200);
    const line = r.headers.getSetCookie().find((l) => l.startsWith(`${SESSION_COOKIE}=`));
    assert.ok(line, `the refreshing check carries the re-issued cookie: ${r.headers.getSetCookie().join(' | ')}`);
    assert.match(line, /HttpOnly/);
    assert.match(line, /Max-Age=604800/);
    const reissued = jar.get(SESSION_COOKIE, R.base);
    assert.notEqual(reissued, before, 'the new expiry is in the signed ticket');
    // both values name the same (refreshed) session: no second refresh for the old one
    assert.equal((await request(`${R.base}/oauth2/auth`, { headers: withCookie(reissued) })).status, 202);
    const old = await request(`${R.base}/oauth2/auth`, { headers: withCookie(before) });
    assert.equal(old.status, 202);
    assert.equal(old.headers.getSetCookie().length, 0, 'the session is fresh: no second refresh');
    // signing out with one ends the other
    assert.equal((await request(`${R.base}/oauth2/sign_out`, { jar })).status, 302);
    assert.equal((await request(`${R.base}/oauth2/auth`, { headers: withCookie(reissued) })).status, 401);
    assert.equal((await request(`${R.base}/oauth2/auth`, { headers: withCookie(before) })).status, 401);
  });

  test('force_json_errors: a browser without a session gets 401 JSON, not a page', async () => {
    const r = await request(`${R2.base}/app`, { headers: { accept: 'text/html' } });
    assert.equal(r.status, 401);
    assert.match(r.headers.get('content-type'), /application\/json/);
    assert.ok((await r.json()).error);
  });

  test('a refresh the provider refuses (invalid_grant: refresh token expired) ends the session', async () => {
    // r2Session was created before the first refresh test's waits: its refresh is long due and
    // its refresh token (1 s) long expired.
    const keysBefore = await sessionKeys();
    const r = await request(`${R2.base}/oauth2/auth`, { jar: r2Session.jar });
    assert.equal(r.status, 401, R2.logs().slice(-5).join('\n'));
    assert.equal((await sessionKeys()).length, keysBefore.length - 1, 'the session was deleted from Redis');
    assert.equal((await request(`${R2.base}/oauth2/auth`, { jar: r2Session.jar })).status, 401);
    assert.ok(R2.logs().some((l) => /refresh token refused/.test(l)), R2.logs().slice(-10).join('\n'));
  });
});

// ----------------------------------------------------------------------------------------------
// Last: it takes Redis away from every gate above.

describe('Redis goes away and comes back', () => {
  let D;
  let s;
  before(async () => {
    D = await gate({ redis_timeout: '500ms' });
    s = await loggedIn(D);
  });

  test('paused (hung) Redis: 503 for session checks, /ready 503, /ping 200; resumed: 202 again', async () => {
    redis.pause();
    try {
      const t0 = Date.now();
      const auth = await request(`${D.base}/oauth2/auth`, { jar: s.jar, timeoutMs: 8000 });
      assert.equal(auth.status, 503);
      assert.ok(Date.now() - t0 < 5000, `answered within the Redis timeout (${Date.now() - t0} ms)`);
      const check = await request(`${D.base}/app`, { jar: s.jar, timeoutMs: 8000 });
      assert.equal(check.status, 503);
      const ui = await request(`${D.base}/oauth2/userinfo`, { jar: s.jar, timeoutMs: 8000 });
      assert.equal(ui.status, 503);
      assert.equal((await request(`${D.base}/ready`, { timeoutMs: 8000 })).status, 503);
      assert.equal((await request(`${D.base}/ping`)).status, 200);
      // Requests without a session need no Redis.
      assert.equal((await request(`${D.base}/oauth2/auth`, { timeoutMs: 8000 })).status, 401);
    } finally {
      redis.resume();
    }
    await waitReady(D.base, D);
    // Every worker's connection recovers in step (a late reply to a timed-out command must not
    // be read as the answer to a later one).
    for (let round = 0; round < 3; round++) {
      const rs = await Promise.all(Array.from({ length: 4 }, () => request(`${D.base}/oauth2/auth`, { jar: s.jar })));
      assert.deepEqual(rs.map((r) => r.status), [202, 202, 202, 202], `round ${round}`);
      for (const r of rs) assert.equal(r.headers.get('x-auth-request-user'), 'alice');
    }
  });

  test('stopped Redis: 503; restarted empty: the session is gone (401), a new login works', async () => {
    await redis.stop();
    try {
      assert.equal((await request(`${D.base}/oauth2/auth`, { jar: s.jar, timeoutMs: 8000 })).status, 503);
      assert.equal((await request(`${D.base}/ready`, { timeoutMs: 8000 })).status, 503);
      const cb = await browserLogin(`${D.base}/oauth2/start?rd=%2F`, { jar: new CookieJar() });
      assert.equal(cb.status, 503, 'a login cannot finish without the session store');
    } finally {
      await redis.restart();
    }
    await waitReady(D.base, D);
    assert.equal((await request(`${D.base}/oauth2/auth`, { jar: s.jar })).status, 401, 'Redis lost the session');
    const again = await loggedIn(D);
    assert.equal((await request(`${D.base}/oauth2/auth`, { jar: again.jar })).status, 202);
  });
});

describe('backend logout (--backend-logout-url)', () => {
  let echo;
  before(async () => { echo = await startEcho(); });
  after(async () => { await echo?.stop(); });

  test('sign-out calls the provider URL with the ID token; an unreachable one does not block sign-out', async () => {
    const B = await gate({ backend_logout_url: `${echo.url}/logout?id_token_hint={id_token}&x=1` });
    const s = await loggedIn(B);
    const out = await request(`${B.base}/oauth2/sign_out`, { jar: s.jar });
    assert.equal(out.status, 302);
    const hit = echo.requests.find((r) => r.url.startsWith('/logout?'));
    assert.ok(hit, 'the backend logout URL was called');
    const q = new URL(hit.url, echo.url).searchParams;
    assert.equal(q.get('x'), '1');
    assert.equal(decodeJwt(q.get('id_token_hint')).payload.sub, 'alice');
    assert.equal((await request(`${B.base}/oauth2/auth`, { headers: withCookie(s.cookie) })).status, 401);
    assert.ok(!B.logs().some((l) => l.includes(q.get('id_token_hint'))), 'the ID token never reaches the log');

    const C = await gate({ backend_logout_url: 'http://127.0.0.1:9/logout?t={id_token}' });
    const c = await loggedIn(C);
    assert.equal((await request(`${C.base}/oauth2/sign_out`, { jar: c.jar })).status, 302);
    assert.equal((await request(`${C.base}/oauth2/auth`, { headers: withCookie(c.cookie) })).status, 401);
  });
});

test('every authgate exits cleanly on SIGTERM, without sanitizer reports', async () => {
  for (const ag of gates.splice(0)) {
    const st = await ag.stop();
    assert.equal(st.code, 0, `authgate ${ag.base} exit ${JSON.stringify(st)}:\n${ag.logs().slice(-15).join('\n')}`);
  }
});
