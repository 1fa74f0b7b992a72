// SPDX-License-Identifier: Apache-2.0
// --skip-jwt-bearer-tokens: programs bring JWT access tokens (client credentials at the real provider,
// RFC 9068 "at+jwt") instead of a session. Valid tokens pass with identity headers; forged ones (alg
// none, HS256 with the provider's public key as the secret, tampered payload, another key, wrong
// audience, expired) get RFC 6750 answers; the provider's key rotation needs no restart.

import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { after, before, describe, test } from 'node:test';

import { startProvider, startRedis, stopAll, waitFor } from './harness.js';
import { request } from './login.js';
import { b64url, decodeJwt, signJwt, tokenRequest } from './oidc.js';
import { ISTIO_OAUTH2_PROXY_EXAMPLE, startEnvoyEmulator } from './envoy-emulator.js';
import { browserLogin, startEcho, startGate } from './stack.js';

after(stopAll);

let redis;
let op;
let disco;
let A; // email_domains "*": machine tokens pass
let B; // email_domains example.com: machine tokens (no email) are refused; no login fallback

const machineToken = async (params = {}) => {
  const r = await tokenRequest(disco.token_endpoint, { grant_type: 'client_credentials', scope: 'api:read', ...params },
    { clientId: 'api-client', clientSecret: 'api-secret' });
  assert.equal(r.status, 200, JSON.stringify(r.json));
  return r.json.access_token;
};
const bearer = (t) => ({ authorization: `Bearer ${t}` });
const challenge = (r) => r.headers.get('www-authenticate') ?? '';

before(async () => {
  [redis, op] = await Promise.all([startRedis(), startProvider()]);
  disco = await op.discovery();
  const common = { skip_jwt_bearer_tokens: true, oidc_extra_audiences: ['urn:authgate:api'], pass_access_token: true };
  [A, B] = await Promise.all([
    startGate({ op, redis, config: { ...common, email_domains: ['*'] } }),
    startGate({ op, redis, config: { ...common, bearer_token_login_fallback: false } }),
  ]);
});

describe('valid bearer tokens', () => {
  test('a client-credentials JWT (at+jwt) passes the check and /oauth2/auth with identity headers', async () => {
    const t = await machineToken();
    assert.equal(decodeJwt(t).header.typ, 'at+jwt');
    const c = await request(`${A.base}/api/items`, { headers: bearer(t) });
    assert.equal(c.status, 200);
    assert.equal(await c.text(), 'Authenticated');
    assert.equal(c.headers.get('x-auth-request-user'), 'api-client');
    assert.equal(c.headers.get('x-auth-request-access-token'), t);
    const a = await request(`${A.base}/oauth2/auth`, { headers: bearer(t) });
    assert.equal(a.status, 202);
    assert.equal(a.headers.get('x-auth-request-user'), 'api-client');
    assert.equal(a.headers.getSetCookie().length, 0, 'no session is created for a token');
  });

  test('the JWT as the password of Basic auth is accepted too (as oauth2-proxy does)', async () => {
    const t = await machineToken();
    const basic = `Basic ${Buffer.from(`anything:${t}`).toString('base64')}`;
    assert.equal((await request(`${A.base}/oauth2/auth`, { headers: { authorization: basic } })).status, 202);
  });

  test('a token without an email is refused where email domains are restricted: 403 insufficient_scope', async () => {
    const r = await request(`${B.base}/oauth2/auth`, { headers: bearer(await machineToken()) });
    assert.equal(r.status, 403);
    assert.match(challenge(r), /^Bearer error="insufficient_scope"/);
  });

  test('after the provider rotates its key, new tokens verify without a restart', async () => {
    await op.rotate();
    const t = await machineToken();
    assert.equal((await request(`${A.base}/oauth2/auth`, { headers: bearer(t) })).status, 202);
  });
});

describe('refused bearer tokens', () => {
  let good;
  before(async () => { good = await machineToken(); });

  const forged = async () => {
    const { header, payload } = decodeJwt(good);
    const jwk = (await op.jwks()).keys.find((k) => k.kid === header.kid);
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const [h, , s] = good.split('.');
    return {
      'alg none': signJwt(payload, { alg: 'none', kid: header.kid, header: { typ: 'at+jwt' } }),
      'HS256 with the public key as secret': signJwt(payload, {
        alg: 'HS256', kid: header.kid, key: Buffer.from(JSON.stringify(jwk)), header: { typ: 'at+jwt' },
      }),
      'tampered payload': `${h}.${b64url(JSON.stringify({ ...payload, sub: 'admin' }))}.${s}`,
      'another key, same kid': signJwt(payload, { alg: 'RS256', kid: header.kid, key: privateKey }),
      'unknown kid': signJwt(payload, { alg: 'RS256', kid: 'no-such-kid', key: privateKey }),
      'expired': signJwt({ ...payload, exp: 1000 }, { alg: 'RS256', kid: header.kid, key: privateKey }),
      'two segments': `${h}.${b64url(JSON.stringify(payload))}`,
      'garbage': 'not-a-jwt',
    };
  };

  test('forged or broken tokens: 401 invalid_token for programs, never a 2xx', async () => {
    for (const [name, t] of Object.entries(await forged())) {
      const a = await request(`${A.base}/oauth2/auth`, { headers: bearer(t) });
      assert.equal(a.status, 401, `${name}: /oauth2/auth -> ${a.status}`);
      assert.match(challenge(a), /^Bearer error="invalid_token", error_description="[^"]+"$/, name);
      assert.ok(!challenge(a).includes(t.slice(0, 20)), `${name}: the token is never echoed`);
      const c = await request(`${A.base}/api/items`, { headers: { ...bearer(t), accept: 'application/json' } });
      assert.equal(c.status, 401, `${name}: check -> ${c.status}`);
    }
  });

  test('a token for another audience (resource) is refused', async () => {
    const t = await machineToken({ resource: 'https://api.example.test/' });
    const r = await request(`${A.base}/oauth2/auth`, { headers: bearer(t) });
    assert.equal(r.status, 401);
    assert.match(challenge(r), /wrong audience/);
  });

  test('with bearer_token_login_fallback = false an invalid token is a 403, not a login', async () => {
    const r = await request(`${B.base}/app`, { headers: { ...bearer('not-a-jwt'), accept: 'text/html' } });
    assert.equal(r.status, 403);
    assert.match(challenge(r), /^Bearer error="invalid_token"/);
  });

  test('with the fallback (default) an invalid token falls back to the session, else 401 invalid_token', async () => {
    const r = await request(`${A.base}/app`, { headers: { ...bearer('not-a-jwt'), accept: 'text/html' } });
    assert.equal(r.status, 401);
    assert.match(challenge(r), /^Bearer error="invalid_token"/);
    // and a valid session still works next to a broken token
    const s = await browserLogin(`${A.base}/oauth2/start?rd=%2F`);
    assert.equal(s.status, 302);
    const ok = await request(`${A.base}/oauth2/auth`, { jar: s.jar, headers: bearer('not-a-jwt') });
    assert.equal(ok.status, 202);
  });

  test('a token naming no accepted audience is refused whatever key signed it', async () => {
    const s = await browserLogin(`${A.base}/oauth2/start?rd=%2F`);
    const ui = await request(`${A.base}/oauth2/auth`, { jar: s.jar });
    assert.equal(ui.status, 202);
    // a JWT with typ "JWT" from the provider for our client id is accepted (an ID token is a JWT for us) ...
    // ... but a token naming no accepted audience never is, whatever its signature.
    const { header, payload } = decodeJwt(await machineToken());
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const other = signJwt({ ...payload, aud: 'someone-else' }, { alg: 'RS256', kid: header.kid, key: privateKey });
    assert.equal((await request(`${A.base}/oauth2/auth`, { headers: bearer(other) })).status, 401);
  });
});

describe('--extra-jwt-issuers', () => {
  let op2;
  let C;
  before(async () => {
    op2 = await startProvider();
    C = await startGate({
      op, redis, config: { skip_jwt_bearer_tokens: true, email_domains: ['*'], extra_jwt_issuers: [`${op2.issuer}=urn:authgate:api`] },
    });
  });
  after(async () => { await C?.stop(); await op2?.stop(); });

  const tokenFrom = async (provider, params = {}) => {
    const d = await provider.discovery();
    const r = await tokenRequest(d.token_endpoint, { grant_type: 'client_credentials', scope: 'api:read', ...params },
      { clientId: 'api-client', clientSecret: 'api-secret' });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    return r.json.access_token;
  };

  test('a token of the extra issuer for its audience passes; the login issuer still needs its own audiences', async () => {
    const t2 = await tokenFrom(op2);
    await waitFor(async () => (await request(`${C.base}/oauth2/auth`, { headers: bearer(t2) })).status === 202,
      { timeoutMs: 10000, what: 'the extra issuer to be discovered and its token accepted' });
    const ok = await request(`${C.base}/api/x`, { headers: bearer(t2) });
    assert.equal(ok.status, 200);
    assert.equal(ok.headers.get('x-auth-request-user'), 'api-client');
    // the same audience from the login provider is not one of ITS accepted audiences here
    const t1 = await tokenFrom(op);
    const r1 = await request(`${C.base}/oauth2/auth`, { headers: bearer(t1) });
    assert.equal(r1.status, 401);
    assert.match(challenge(r1), /wrong audience/);
    // the extra issuer's token for another audience is refused
    const other = await tokenFrom(op2, { resource: 'https://api.example.test/' });
    assert.equal((await request(`${C.base}/oauth2/auth`, { headers: bearer(other) })).status, 401);
  });

  test('a token claiming the extra issuer but signed by the login provider is refused', async () => {
    // iss routes the token to the extra issuer's keys: the login provider's signature does not verify there
    const { header, payload } = decodeJwt(await tokenFrom(op));
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const fake = signJwt({ ...payload, iss: op2.issuer }, { alg: 'RS256', kid: header.kid, key: privateKey });
    assert.equal((await request(`${C.base}/oauth2/auth`, { headers: bearer(fake) })).status, 401);
  });
});

describe('bearer tokens through the Envoy ext_authz emulator (Istio example configuration)', () => {
  let echo;
  let envoy;
  before(async () => {
    echo = await startEcho();
    envoy = await startEnvoyEmulator({ upstream: echo.url, ...ISTIO_OAUTH2_PROXY_EXAMPLE, authz: A.base });
    envoy.authz = A.base;
  });
  after(async () => { await envoy?.stop(); await echo?.stop(); });

  test('a client-credentials token reaches the upstream with authgate\'s identity headers', async () => {
    const t = await machineToken();
    const r = await request(`${envoy.url}/api/items?page=2`, {
      headers: { ...bearer(t), 'x-auth-request-user': 'mallory' },
    });
    assert.equal(r.status, 200);
    const seen = await r.json();
    assert.equal(seen.url, '/api/items?page=2');
    assert.deepEqual(seen.headers['x-auth-request-user'], ['api-client']);
    assert.deepEqual(seen.headers.authorization, [`Bearer ${t}`]);
  });

  test('an invalid token gets 401 with the RFC 6750 header, and nothing reaches the upstream', async () => {
    const before = echo.requests.length;
    const r = await request(`${envoy.url}/api/items`, { headers: { ...bearer('eyJhbGciOiJub25lIn0.e30.'), accept: 'application/json' } });
    assert.equal(r.status, 401);
    assert.match(r.headers.get('www-authenticate') ?? '', /^Bearer error="invalid_token"/);
    assert.equal(echo.requests.length, before);
  });
});

describe('opaque tokens: RFC 7662 introspection (--introspection-url)', () => {
  let D;
  before(async () => {
    D = await startGate({
      op, redis, config: {
        skip_jwt_bearer_tokens: true, email_domains: ['*'], pass_access_token: true,
        introspection_url: disco.introspection_endpoint, introspection_cache_ttl: '1s',
      },
    });
  });
  after(async () => { await D?.stop(); });

  test('an opaque access token is introspected; revoked, it stops working once the cache entry ends', async () => {
    const s = await browserLogin(`${D.base}/oauth2/start?rd=%2F`);
    assert.equal(s.status, 302);
    const at = (await request(`${D.base}/oauth2/auth`, { jar: s.jar })).headers.get('x-auth-request-access-token');
    assert.ok(at && at.split('.').length !== 3, `an opaque access token: ${at}`);
    const r = await request(`${D.base}/oauth2/auth`, { headers: bearer(at) });
    assert.equal(r.status, 202);
    assert.equal(r.headers.get('x-auth-request-user'), 'alice');
    const revoked = await fetch(disco.revocation_endpoint, {
      method: 'POST',
      headers: {
        authorization: `Basic ${Buffer.from('authgate:authgate-secret').toString('base64')}`,
        'content-type': 'application/x-www-form-urlencoded',
      },
      body: new URLSearchParams({ token: at, token_type_hint: 'access_token' }),
    });
    assert.equal(revoked.status, 200);
    await waitFor(async () => (await request(`${D.base}/oauth2/auth`, { headers: bearer(at) })).status === 401,
      { timeoutMs: 5000, what: 'the revoked token to be refused after the 1 s cache' });
    const gone = await request(`${D.base}/oauth2/auth`, { headers: bearer(at) });
    assert.match(challenge(gone), /^Bearer error="invalid_token", error_description="token is not active"/);
  });

  test('unknown opaque tokens are refused; without introspection an opaque token is no JWT', async () => {
    const r = await request(`${D.base}/oauth2/auth`, { headers: bearer('made-up-opaque-token') });
    assert.equal(r.status, 401);
    assert.match(challenge(r), /invalid_token/);
    const a = await request(`${A.base}/oauth2/auth`, { headers: bearer('made-up-opaque-token') });
    assert.equal(a.status, 401);
    assert.match(challenge(a), /not a JWT/);
  });
});

test('every authgate exits cleanly on SIGTERM, without sanitizer reports', async () => {
  await A.stop();
  await B.stop();
});
