// SPDX-License-Identifier: Apache-2.0
// authgate behind Debian's nginx with auth_request, configured from the user-facing recipe
// conf/nginx-auth-request.conf.example (only its addresses are replaced): the browser login
// through nginx, identity headers for the app, sign-out, and what a client cannot forge; and
// programs with bearer tokens (skip_jwt_bearer_tokens): a valid token reaches the app, a refused
// one gets authgate's RFC 6750 answer (401/403 with WWW-Authenticate), never the login redirect.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { freePort, startProvider, startRedis, stopAll } from './harness.js';
import { CookieJar, request } from './login.js';
import { decodeJwt, tokenRequest } from './oidc.js';
import {
  INSUFFICIENT_SCOPE, INVALID_TOKEN, assertRefused, basicAuth, frontRequest, renderNginxRecipe, startNginx, tamperedSignature,
} from './frontends.js';
import { SESSION_COOKIE, browserLogin, rawRequest, startEcho, startGate } from './stack.js';

after(stopAll);

let redis;
let op;
let echo;
let ag;
let nginx;
let disco;

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
  nginx = await startNginx({ port, site: renderNginxRecipe({ authgatePort: ag.port, appPort: echo.port, port }) });
});
after(async () => {
  await nginx?.stop();
  await echo?.stop();
});

const app = (p) => `${nginx.url}${p}`;
const seenBy = async (res) => {
  assert.equal(res.status, 200, `the app answered through nginx (${res.status}: ${res.headers.get('location') ?? ''})`);
  return res.json();
};

describe('nginx auth_request (conf/nginx-auth-request.conf.example)', () => {
  let jar;

  test('unauthenticated: 302 to /oauth2/start with rd = the page, nothing reaches the app', async () => {
    const before = echo.requests.length;
    const r = await request(app('/app/page?x=1'), { headers: { 'x-email': 'alice@example.com', 'x-user': 'alice' } });
    assert.equal(r.status, 302);
    // nginx makes the Location absolute (absolute_redirect on)
    assert.equal(new URL(r.headers.get('location'), nginx.url).href, `${nginx.url}/oauth2/start?rd=${nginx.url}/app/page?x=1`);
    assert.equal(echo.requests.length, before);
    // The subrequest location is internal.
    assert.equal((await request(app('/oauth2/auth'))).status, 404);
  });

  test('the login through nginx: /oauth2/start -> provider -> /oauth2/callback -> the app as alice', async () => {
    jar = new CookieJar();
    const r = await browserLogin(app('/app/page?x=1'), { jar });
    assert.equal(r.history[0].status, 302);
    assert.ok(r.history[1].url.startsWith(`${nginx.url}/oauth2/start?`), r.history[1].url);
    assert.ok(r.history[1].location.startsWith(`${disco.authorization_endpoint}?`), r.history[1].location);
    const redirectUri = new URL(r.history[1].location).searchParams.get('redirect_uri');
    assert.equal(redirectUri, `${nginx.url}/oauth2/callback`, 'the callback URL keeps the port ($http_host)');
    assert.ok(r.callbackUrl.href.startsWith(`${nginx.url}/oauth2/callback?`));
    assert.equal(r.status, 302, r.body);
    assert.equal(r.location.href, `${nginx.url}/app/page?x=1`);
    assert.ok(jar.get(SESSION_COOKIE, nginx.url));

    const seen = await seenBy(await request(app('/app/page?x=1'), { jar }));
    assert.equal(seen.url, '/app/page?x=1');
    assert.deepEqual(seen.headers['x-email'], ['alice@example.com']);
    assert.deepEqual(seen.headers['x-user'], ['alice']);
    assert.deepEqual(seen.headers['x-groups'], ['admins,devs']);
    assert.deepEqual(seen.headers['x-preferred-username'], ['alice']);

    const ui = await request(app('/oauth2/userinfo'), { jar });
    assert.equal(ui.status, 200);
    assert.equal((await ui.json()).email, 'alice@example.com');
  });

  test('client-sent identity headers are overwritten or dropped', async () => {
    const seen = await seenBy(await request(app('/app'), {
      jar,
      headers: {
        'X-Email': 'mallory@example.com', 'X-User': 'mallory', 'X-Groups': 'root', 'X-Auth-Request-User': 'mallory',
        'X-Auth-Request-Email': 'mallory@example.com', X_Email: 'mallory@example.com', 'X-Forwarded-User': 'mallory',
      },
    }));
    assert.deepEqual(seen.headers['x-email'], ['alice@example.com']);
    assert.deepEqual(seen.headers['x-user'], ['alice']);
    assert.deepEqual(seen.headers['x-groups'], ['admins,devs']);
    assert.ok(!JSON.stringify(seen.headers).includes('mallory'), JSON.stringify(seen.headers));
  });

  test('skip-auth routes are judged on the original URI (X-Forwarded-Uri from nginx)', async () => {
    const pub = await seenBy(await request(app('/public/logo.png')));
    assert.equal(pub.url, '/public/logo.png');
    assert.equal(pub.headers['x-user'], undefined);
    // nginx normalises /public/../admin to /admin for its locations, but forwards $request_uri:
    // authgate must not skip it.
    for (const p of ['/public/../admin', '/public/%2e%2e/admin', '/admin?x=/public/']) {
      const r = await rawRequest(nginx.url, { path: p });
      assert.equal(r.status, 302, `${p} -> ${r.status}`);
      assert.ok(new URL(r.header('location'), nginx.url).href.startsWith(`${nginx.url}/oauth2/start?rd=`), r.header('location'));
    }
  });

  test('sign-out ends it: the old cookie is refused, the browser is sent to the login again', async () => {
    const old = jar.get(SESSION_COOKIE, nginx.url);
    const out = await request(app('/oauth2/sign_out?rd=%2Fbye'), { jar });
    assert.equal(out.status, 302);
    assert.equal(out.headers.get('location'), '/bye');
    assert.equal(jar.get(SESSION_COOKIE, nginx.url), undefined);
    const before = echo.requests.length;
    const again = await request(app('/app'), { headers: { cookie: `${SESSION_COOKIE}=${old}` } });
    assert.equal(again.status, 302);
    assert.ok(new URL(again.headers.get('location'), nginx.url).href.startsWith(`${nginx.url}/oauth2/start?rd=`));
    assert.equal(echo.requests.length, before);
  });

  test('authgate down: nginx answers 500, never the app', async () => {
    const before = echo.requests.length;
    const st = await ag.stop();
    assert.equal(st.code, 0, ag.logs().slice(-10).join('\n'));
    const r = await request(app('/app'));
    assert.ok(r.status >= 500, `got ${r.status}`);
    assert.equal(echo.requests.length, before);
  });
});

describe('nginx auth_request: API clients with bearer tokens (skip_jwt_bearer_tokens, same recipe)', () => {
  let open; // email_domains "*": the machine token (no email) is allowed
  let strict; // email_domains example.com: the machine token is valid but refused (403 insufficient_scope)
  let token; // a client-credentials JWT access token of the provider (sub api-client)

  const gateBehindNginx = async (config) => {
    const port = await freePort();
    const gate = await startGate({
      op,
      redis,
      config: {
        trusted_proxy_ips: ['127.0.0.1'],
        reverse_proxy: true,
        skip_jwt_bearer_tokens: true,
        oidc_extra_audiences: ['urn:authgate:api'],
        ...config,
      },
    });
    const front = await startNginx({ port, site: renderNginxRecipe({ authgatePort: gate.port, appPort: echo.port, port }) });
    return { gate, front, url: (p) => `${front.url}${p}` };
  };

  before(async () => {
    [open, strict] = await Promise.all([gateBehindNginx({ email_domains: ['*'] }), gateBehindNginx({})]);
    const r = await tokenRequest(disco.token_endpoint, { grant_type: 'client_credentials', scope: 'api:read' },
      { clientId: 'api-client', clientSecret: 'api-secret' });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    token = r.json.access_token;
    assert.equal(decodeJwt(token).header.typ, 'at+jwt');
  });
  after(async () => {
    for (const x of [open, strict]) {
      await x?.front.stop();
      await x?.gate.stop();
    }
  });

  const tampered = () => tamperedSignature(token);
  const basic = (password) => basicAuth('api-client', password);
  const forged = {
    'X-Auth-Request-User': 'mallory', 'X-Auth-Request-Email': 'mallory@example.com',
    'X-User': 'mallory', 'X-Email': 'mallory@example.com', 'X-Forwarded-User': 'mallory',
  };
  const raw = frontRequest;
  const refused = (front, p, authorization, status, challenge) =>
    assertRefused(echo, front, p, authorization, status, challenge);

  test('a valid client-credentials token reaches the app as its sub; forged identity headers do not', async () => {
    const { sub } = decodeJwt(token).payload;
    assert.equal(sub, 'api-client');
    const before = echo.requests.length;
    const r = await request(open.url('/api/items?page=2'), { headers: { authorization: `Bearer ${token}`, ...forged } });
    assert.equal(r.status, 200, `${r.status} ${r.headers.get('location') ?? ''}`);
    assert.equal(r.headers.get('www-authenticate'), null);
    assert.equal(r.headers.getSetCookie().length, 0, 'no session cookie for a token');
    const seen = await r.json();
    assert.equal(echo.requests.length, before + 1);
    assert.equal(seen.url, '/api/items?page=2');
    // The recipe hands authgate's X-Auth-Request-User to the app as X-User and drops the client's copies.
    assert.deepEqual(seen.headers['x-user'], [sub]);
    assert.equal(seen.headers['x-auth-request-user'], undefined);
    assert.equal(seen.headers['x-auth-request-email'], undefined);
    assert.equal(seen.headers['x-email'], undefined, 'a machine token has no email');
    assert.ok(!JSON.stringify(seen.headers).includes('mallory'), JSON.stringify(seen.headers));
    // The app may check the token itself: nginx passes it on.
    assert.deepEqual(seen.headers.authorization, [`Bearer ${token}`]);
  });

  test('an invalid token (tampered signature) gets 401 with WWW-Authenticate: Bearer error="invalid_token", not a redirect', async () => {
    const r = await refused(open, '/api/items', `Bearer ${tampered()}`, 401, INVALID_TOKEN);
    assert.ok(!r.header('www-authenticate').includes(token.slice(0, 20)), 'the token is never echoed');
    await refused(open, '/api/items', 'Bearer not-a-jwt', 401, INVALID_TOKEN);
  });

  test('no Authorization header: still the login redirect (302 to /oauth2/start), no challenge', async () => {
    const before = echo.requests.length;
    const r = await raw(open, '/api/items?page=2');
    assert.equal(r.status, 302);
    assert.equal(new URL(r.header('location'), open.front.url).href,
      `${open.front.url}/oauth2/start?rd=${open.front.url}/api/items?page=2`);
    assert.equal(r.header('www-authenticate'), undefined);
    assert.equal(echo.requests.length, before);
  });

  test('Authorization: Basic with a bad token as the password: 401, not a redirect', async () => {
    // the control: the valid token as the Basic password passes (as oauth2-proxy does)
    const ok = await raw(open, '/api/basic', basic(token));
    assert.equal(ok.status, 200, `${ok.status} ${ok.header('location') ?? ''}`);
    assert.deepEqual(JSON.parse(ok.body).headers['x-user'], ['api-client']);
    await refused(open, '/api/basic', basic(tampered()), 401, INVALID_TOKEN);
    // a password that is no token at all: authgate sees no credentials (no challenge), nginx still
    // answers the program with the 401 instead of a login page
    await refused(open, '/api/basic', basic('wrong-password'), 401, null);
  });

  test('a valid token the policy refuses: 403 with WWW-Authenticate: Bearer error="insufficient_scope"', async () => {
    await refused(strict, '/api/items', `Bearer ${token}`, 403, INSUFFICIENT_SCOPE);
    // and a refused token there is still a 401 invalid_token, not a redirect
    await refused(strict, '/api/items', `Bearer ${tampered()}`, 401, INVALID_TOKEN);
  });
});
