// SPDX-License-Identifier: Apache-2.0
// authgate behind Debian's Caddy with forward_auth, configured from the user-facing recipe
// conf/caddy-forward-auth.Caddyfile.example (only its addresses are replaced, global options for
// a test instance added; checked with `caddy validate`): the browser login through Caddy, identity
// headers for the app, sign-out, and what a client cannot forge; and programs with bearer tokens
// (skip_jwt_bearer_tokens): a valid token reaches the app, a refused one gets authgate's RFC 6750
// answer (401/403 with WWW-Authenticate), never the login redirect.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { freePort, startProvider, startRedis, stopAll } from './harness.js';
import { CookieJar, request } from './login.js';
import { decodeJwt, tokenRequest } from './oidc.js';
import {
  INSUFFICIENT_SCOPE, INVALID_TOKEN, assertRefused, basicAuth, frontRequest, renderCaddyRecipe, startCaddy, tamperedSignature,
  validateCaddyfile,
} from './frontends.js';
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
        // WSGI, PHP and Rack read these as X-Auth-Request-User / X-Forwarded-Email (CVE-2025-64484 class)
        X_Auth_Request_User: 'mallory', 'x-auth_request-user': 'mallory', 'X-Auth-Request_Email': 'mallory@x',
        X_Forwarded_Email: 'mallory@x', 'X-Forwarded_User': 'mallory', x_auth_request_preferred_username: 'mallory',
      },
    }));
    assert.deepEqual(seen.headers['x-auth-request-user'], ['alice']);
    const spelled = Object.keys(seen.headers).filter((k) => k.includes('_'));
    assert.deepEqual(spelled, [], `headers with '_' reached the app: ${spelled.join(', ')}`);
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

describe('Caddy forward_auth: API clients with bearer tokens (skip_jwt_bearer_tokens, same recipe)', () => {
  let open; // email_domains "*": the machine token (no email) is allowed
  let scoped; // also required_scope api:write: a token with only api:read is refused (403 insufficient_scope)
  let token; // a client-credentials JWT access token of the provider (sub api-client), scope api:read

  const gateBehindCaddy = async (config) => {
    const port = await freePort();
    const gate = await startGate({
      op,
      redis,
      config: {
        trusted_proxy_ips: ['127.0.0.1'],
        reverse_proxy: true,
        skip_jwt_bearer_tokens: true,
        oidc_extra_audiences: ['urn:authgate:api'],
        email_domains: ['*'],
        ...config,
      },
    });
    const front = await startCaddy({ port, caddyfile: renderCaddyRecipe({ authgatePort: gate.port, appPort: echo.port, port }) });
    return { gate, front, url: (p) => `${front.url}${p}` };
  };
  const clientToken = async (scope) => {
    const r = await tokenRequest(disco.token_endpoint, { grant_type: 'client_credentials', scope },
      { clientId: 'api-client', clientSecret: 'api-secret' });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    assert.equal(r.json.scope, scope, 'the provider granted what was asked');
    return r.json.access_token;
  };

  before(async () => {
    [open, scoped] = await Promise.all([gateBehindCaddy({}), gateBehindCaddy({ required_scope: 'api:write' })]);
    token = await clientToken('api:read');
    assert.equal(decodeJwt(token).header.typ, 'at+jwt');
  });
  after(async () => {
    for (const x of [open, scoped]) {
      await x?.front.stop();
      await x?.gate.stop();
    }
  });

  const tampered = () => tamperedSignature(token);
  const basic = (password) => basicAuth('api-client', password);
  // The recipe's identity headers, forged by the client.
  const forged = {
    'X-Auth-Request-User': 'mallory', 'X-Auth-Request-Email': 'mallory@example.com',
    'X-Auth-Request-Groups': 'mallory-root', 'X-Auth-Request-Preferred-Username': 'mallory',
    'X-Auth-Request-Access-Token': 'mallory-token', 'X-Forwarded-User': 'mallory', 'X-Forwarded-Email': 'mallory@example.com',
  };
  const raw = frontRequest;
  // What the app saw of an allowed request (200 from the echo upstream, exactly one request).
  const passed = async (front, p, authorization, extra) => {
    const before = echo.requests.length;
    const r = await raw(front, p, authorization, extra);
    assert.equal(r.status, 200, `${p}: ${r.status} ${r.header('location') ?? ''} ${r.header('www-authenticate') ?? ''}`);
    assert.equal(r.header('www-authenticate'), undefined);
    assert.equal(r.header('set-cookie'), undefined, 'no session cookie for a token');
    assert.equal(echo.requests.length, before + 1);
    return JSON.parse(r.body);
  };
  // A refusal passed on from authgate, the forged identity headers sent along.
  const refused = (front, p, authorization, status, challenge) =>
    assertRefused(echo, front, p, authorization, status, challenge, forged);

  test('a valid client-credentials token reaches the app as its sub; forged identity headers do not', async () => {
    const { sub } = decodeJwt(token).payload;
    assert.equal(sub, 'api-client');
    const seen = await passed(open, '/api/items?page=2', `Bearer ${token}`, forged);
    assert.equal(seen.url, '/api/items?page=2');
    // forward_auth copies authgate's X-Auth-Request-User; the recipe dropped the client's copies first.
    assert.deepEqual(seen.headers['x-auth-request-user'], [sub]);
    assert.equal(seen.headers['x-auth-request-preferred-username'], undefined);
    // a machine token has no email or groups: not even Caddy 2.6's placeholder text comes through
    assert.equal(seen.headers['x-auth-request-email'], undefined);
    assert.equal(seen.headers['x-auth-request-groups'], undefined);
    assert.equal(seen.headers['x-auth-request-access-token'], undefined);
    assert.ok(!JSON.stringify(seen.headers).includes('mallory'), JSON.stringify(seen.headers));
    assert.ok(!JSON.stringify(seen.headers).includes('{http.'), JSON.stringify(seen.headers));
    // The app may check the token itself: Caddy passes it on.
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
    const ok = await passed(open, '/api/basic', basic(token));
    assert.deepEqual(ok.headers['x-auth-request-user'], ['api-client']);
    await refused(open, '/api/basic', basic(tampered()), 401, INVALID_TOKEN);
    // a password that is no token at all: authgate sees no credentials (no challenge), Caddy still
    // answers the program with the 401 instead of a login page
    await refused(open, '/api/basic', basic('wrong-password'), 401, null);
  });

  test('a valid token without the required scope: 403 with WWW-Authenticate: Bearer error="insufficient_scope"', async () => {
    await refused(scoped, '/api/items', `Bearer ${token}`, 403, INSUFFICIENT_SCOPE);
    // the control: a token with the scope passes there
    const seen = await passed(scoped, '/api/items', `Bearer ${await clientToken('api:write')}`);
    assert.deepEqual(seen.headers['x-auth-request-user'], ['api-client']);
    // and a refused token there is still a 401 invalid_token, not a redirect
    await refused(scoped, '/api/items', `Bearer ${tampered()}`, 401, INVALID_TOKEN);
  });
});
