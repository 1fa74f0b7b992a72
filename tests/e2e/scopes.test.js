// SPDX-License-Identifier: Apache-2.0
// Required scopes (--required-scope, --required-scope-route, /oauth2/auth?required_scope=) and the
// claim-to-header map (--claim-header), for bearer tokens from the real provider and for browser
// sessions. The verified-token cache keeps what a token says, never a decision: a token accepted on
// one route must still be judged by the next route's rule (Oathkeeper CVE-2021-32701).

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { startProvider, startRedis, stopAll } from './harness.js';
import { request } from './login.js';
import { tokenRequest } from './oidc.js';
import { startEnvoyEmulator } from './envoy-emulator.js';
import { browserLogin, rawRequest, startEcho, startGate } from './stack.js';

after(stopAll);

let redis;
let op;
let disco;
let R; // scope rules per route, claim headers
let G; // one global required scope

const token = async (scope) => {
  const r = await tokenRequest(disco.token_endpoint, { grant_type: 'client_credentials', scope },
    { clientId: 'api-client', clientSecret: 'api-secret' });
  assert.equal(r.status, 200, JSON.stringify(r.json));
  assert.equal(r.json.scope, scope, 'the provider granted what was asked');
  return r.json.access_token;
};
const bearer = (t, extra = {}) => ({ authorization: `Bearer ${t}`, accept: 'application/json', ...extra });
const challenge = (r) => r.headers.get('www-authenticate') ?? '';

before(async () => {
  [redis, op] = await Promise.all([startRedis(), startProvider()]);
  disco = await op.discovery();
  const common = { skip_jwt_bearer_tokens: true, oidc_extra_audiences: ['urn:authgate:api'], email_domains: ['*'] };
  [R, G] = await Promise.all([
    startGate({
      op, redis, config: {
        ...common,
        reverse_proxy: true,
        trusted_proxy_ips: ['127.0.0.1/32'],
        required_scope_routes: ['^/admin/ api:admin', 'POST=^/api/ api:write', 'DELETE=^/api/ api:write api:admin'],
        claim_headers: ['X-Tenant=org.tenant', 'X-Tenant-Id=org.id', 'X-Roles=https://authgate.test/roles',
          'X-Name=name', 'X-Absent=org.nothing'],
      },
    }),
    startGate({ op, redis, config: { ...common, required_scope: 'api:write' } }),
  ]);
});

describe('required scopes for bearer tokens', () => {
  test('route rules: reading needs no scope, writing needs api:write, /admin/ needs api:admin', async () => {
    const read = await token('api:read');
    const rw = await token('api:read api:write');
    const get = await request(`${R.base}/api/items`, { headers: bearer(read) });
    assert.equal(get.status, 200);
    const post = await request(`${R.base}/api/items`, { method: 'POST', headers: bearer(read) });
    assert.equal(post.status, 403);
    assert.match(challenge(post), /^Bearer error="insufficient_scope", error_description="[^"]+"$/);
    assert.ok(!challenge(post).includes(read.slice(0, 20)), 'the challenge never echoes the token');
    assert.equal((await request(`${R.base}/api/items`, { method: 'POST', headers: bearer(rw) })).status, 200);
    // both scopes of a rule are needed
    assert.equal((await request(`${R.base}/api/items/1`, { method: 'DELETE', headers: bearer(rw) })).status, 403);
    assert.equal((await request(`${R.base}/admin/users`, { headers: bearer(rw) })).status, 403);
  });

  test('a token accepted (and cached) for one route is judged again by the next route\'s rule', async () => {
    const t = await token('api:read');
    // first use: verified and cached
    assert.equal((await request(`${R.base}/oauth2/auth?required_scope=api:read`, { headers: bearer(t) })).status, 202);
    assert.equal((await request(`${R.base}/api/items`, { headers: bearer(t) })).status, 200);
    // same token, from the cache, on routes asking for more
    const asks = [
      [`${R.base}/oauth2/auth?required_scope=api:write`, 'GET'],
      [`${R.base}/oauth2/auth?required_scope=api:read%20api:admin`, 'GET'],
      [`${R.base}/oauth2/auth?required_scope=api:read&required_scope=api:admin`, 'GET'], // never only the first
      [`${R.base}/admin/users`, 'GET'],
      [`${R.base}/api/items`, 'POST'],
    ];
    for (const [url, method] of asks) {
      const r = await request(url, { method, headers: bearer(t) });
      assert.equal(r.status, 403, `${method} ${url}`);
      assert.match(challenge(r), /^Bearer error="insufficient_scope"/);
    }
    // and still fine where it was fine
    assert.equal((await request(`${R.base}/oauth2/auth?required_scope=api:read`, { headers: bearer(t) })).status, 202);
  });

  test('route rules are matched on the normalised path; an ambiguous path is refused, never let through', async () => {
    const rw = await token('api:read api:write');
    const raw = (p) => rawRequest(R.base, { path: p, headers: [['Authorization', `Bearer ${rw}`], ['Accept', 'application/json']] });
    assert.equal((await raw('/api/items')).status, 200);
    // sent as written (fetch would resolve them first): dot segments, encoded dots and slashes, ..;
    for (const p of ['/api/../admin/users', '/api/%2e%2e/admin/x', '/admin%2fusers', '/api/..;/admin/x', '/./admin/x']) {
      assert.equal((await raw(p)).status, 403, p);
    }
    // a path that cannot be read unambiguously meets no rule's demand: refused
    for (const p of ['/api/%00', '/api/%zz', '/api\\x']) {
      assert.equal((await raw(p)).status, 403, p);
    }
    // the query is not the path
    assert.equal((await raw('/api/items?next=/admin/')).status, 200);
  });

  test('/oauth2/auth judges the original URI its proxy forwards (X-Forwarded-Uri from a trusted proxy)', async () => {
    const rw = await token('api:read api:write');
    const at = (uri, method = 'GET') => request(`${R.base}/oauth2/auth`, {
      headers: bearer(rw, { 'x-forwarded-uri': uri, 'x-forwarded-method': method }),
    });
    assert.equal((await at('/api/items')).status, 202);
    assert.equal((await at('/api/items', 'POST')).status, 202);
    assert.equal((await at('/api/items', 'DELETE')).status, 403);
    assert.equal((await at('/admin/users')).status, 403);
    assert.equal((await at('/api/%2e%2e/admin/users')).status, 403);
  });

  test('--required-scope applies to every request', async () => {
    const r = await request(`${G.base}/api/items`, { headers: bearer(await token('api:read')) });
    assert.equal(r.status, 403);
    assert.match(challenge(r), /insufficient_scope/);
    assert.equal((await request(`${G.base}/api/items`, { headers: bearer(await token('api:write')) })).status, 200);
    assert.equal((await request(`${G.base}/oauth2/auth`, { headers: bearer(await token('api:write')) })).status, 202);
  });
});

describe('claim headers', () => {
  test('nested claims, claims named with dots, numbers and arrays become headers; absent claims do not', async () => {
    const r = await request(`${R.base}/api/items`, { headers: bearer(await token('api:read')) });
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('x-tenant'), 'acme');
    assert.equal(r.headers.get('x-tenant-id'), '42');
    assert.equal(r.headers.get('x-roles'), 'reader,writer');
    assert.equal(r.headers.get('x-name'), null, 'a machine token has no name');
    assert.equal(r.headers.get('x-absent'), null);
    const a = await request(`${R.base}/oauth2/auth`, { headers: bearer(await token('api:read')) });
    assert.equal(a.status, 202);
    assert.equal(a.headers.get('x-tenant'), 'acme');
  });

  test('through the Envoy emulator a client\'s forged copies never reach the app', async () => {
    const echo = await startEcho();
    const envoy = await startEnvoyEmulator({
      upstream: echo.url,
      authz: R.base,
      includeRequestHeadersInCheck: ['authorization', 'cookie'],
      headersToUpstreamOnAllow: ['authorization', 'x-auth-request-*', 'x-tenant', 'x-tenant-id', 'x-roles', 'x-name', 'x-absent'],
      headersToDownstreamOnAllow: ['set-cookie'],
      headersToDownstreamOnDeny: ['content-type', 'location', 'www-authenticate'],
    });
    try {
      const r = await request(`${envoy.url}/api/items`, {
        headers: bearer(await token('api:read'), {
          'x-tenant': 'evil', 'x-absent': 'forged', 'x-name': 'Mallory', 'x-auth-request-email': 'mallory@example.com',
          'x-auth-request-groups': 'root', 'x-auth-request-preferred-username': 'mallory',
        }),
      });
      assert.equal(r.status, 200);
      const seen = (await r.json()).headers;
      assert.deepEqual(seen['x-tenant'], ['acme']);
      assert.deepEqual(seen['x-auth-request-user'], ['api-client']);
      // the token has none of these: authgate names them in x-envoy-auth-headers-to-remove
      for (const h of ['x-absent', 'x-name', 'x-auth-request-email', 'x-auth-request-groups', 'x-auth-request-preferred-username']) {
        assert.equal(seen[h], undefined, `${h} reached the app: ${JSON.stringify(seen[h])}`);
      }
      assert.ok(!JSON.stringify(seen).includes('allory'), JSON.stringify(seen));
      const denied = await request(`${envoy.url}/admin/x`, { headers: bearer(await token('api:read')) });
      assert.equal(denied.status, 403);
      assert.match(denied.headers.get('www-authenticate') ?? '', /insufficient_scope/);
    } finally {
      await envoy.stop();
      await echo.stop();
    }
  });
});

describe('browser sessions', () => {
  test('a session carries the claim headers of its ID token and the scopes its login was granted', async () => {
    const login = await browserLogin(`${R.base}/oauth2/start?rd=%2Fapp`);
    assert.equal(login.status, 302);
    const app = await request(`${R.base}/app`, { jar: login.jar });
    assert.equal(app.status, 200);
    assert.equal(app.headers.get('x-name'), 'Alice Admin');
    assert.equal(app.headers.get('x-auth-request-email'), 'alice@example.com');
    // the login asked for "openid email profile groups" (the test stack's scope): not api:admin
    const admin = await request(`${R.base}/admin/users`, { jar: login.jar });
    assert.equal(admin.status, 403);
    const auth = await request(`${R.base}/oauth2/auth?required_scope=email`, { jar: login.jar });
    assert.equal(auth.status, 202);
    assert.equal(auth.headers.get('x-name'), 'Alice Admin');
    assert.equal((await request(`${R.base}/oauth2/auth?required_scope=api:write`, { jar: login.jar })).status, 403);
  });

  test('--required-scope refuses a session whose login did not grant it', async () => {
    const login = await browserLogin(`${G.base}/oauth2/start?rd=%2Fapp`);
    assert.equal(login.status, 302);
    const r = await request(`${G.base}/app`, { jar: login.jar });
    assert.equal(r.status, 403);
  });
});

test('every authgate exits cleanly on SIGTERM, without sanitizer reports', async () => {
  await R.stop();
  await G.stop();
});
