// SPDX-License-Identifier: Apache-2.0
// The rig proves itself: the OpenID Provider, the headless login, Redis and the authgate
// harness, each against the real thing. Nothing here is skipped: a missing piece fails.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import {
  freePort, newCookieSecret, redisCommand, startAuthgate, startProvider, startRedis, stopAll,
  toToml, waitFor,
} from './harness.js';
import { CookieJar, login, LoginError, findLoginForm } from './login.js';
import {
  authorizationUrl, decodeJwt, pkce, randomToken, startFakeRp, tokenRequest, verifyJwt,
} from './oidc.js';

after(stopAll);

// One provider and one fake relying party for the provider tests.
let op;
let rp;
let disco;
before(async () => {
  rp = await startFakeRp();
  op = await startProvider({ redirectUris: [rp.callbackUrl] });
  disco = await op.discovery();
});
after(async () => {
  await op?.stop();
  await rp?.stop();
});

// Log in through the provider as user; stop at the fake RP's callback. Returns the pieces a test
// needs to redeem the code.
async function codeFor(user, password, { jar = new CookieJar(), scope, extra } = {}) {
  const state = randomToken();
  const nonce = randomToken();
  const p = pkce();
  const url = authorizationUrl(disco.authorization_endpoint, {
    redirectUri: rp.callbackUrl, state, nonce, codeChallenge: p.challenge, scope, extra,
  });
  const r = await login(url, {
    jar, username: user, password, stopAt: (u) => u.href.startsWith(rp.callbackUrl),
  });
  assert.equal(r.stopped, true, 'stopped at the callback');
  assert.equal(r.url.searchParams.get('state'), state, 'state echoed');
  assert.equal(r.url.searchParams.get('iss'), op.issuer, 'RFC 9207 iss parameter');
  const code = r.url.searchParams.get('code');
  assert.ok(code, `a code in ${r.url}`);
  return { code, nonce, verifier: p.verifier, jar, result: r };
}

async function redeem(code, verifier, opts) {
  return tokenRequest(disco.token_endpoint, {
    grant_type: 'authorization_code', code, redirect_uri: rp.callbackUrl, code_verifier: verifier,
  }, opts);
}

describe('OpenID Provider', () => {
  test('discovery document', async () => {
    assert.match(op.issuer, /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.equal(disco.issuer, op.issuer);
    for (const [k, p] of [['authorization_endpoint', '/auth'], ['token_endpoint', '/token'],
      ['jwks_uri', '/jwks'], ['userinfo_endpoint', '/me'], ['end_session_endpoint', '/session/end'],
      ['revocation_endpoint', '/token/revocation'], ['introspection_endpoint', '/token/introspection']]) {
      assert.equal(disco[k], op.issuer + p, k);
    }
    assert.ok(disco.code_challenge_methods_supported.includes('S256'));
    assert.deepEqual(disco.id_token_signing_alg_values_supported, ['RS256']);
    for (const m of ['client_secret_basic', 'client_secret_post']) {
      assert.ok(disco.token_endpoint_auth_methods_supported.includes(m), m);
    }
    for (const s of ['openid', 'email', 'profile', 'groups', 'offline_access']) {
      assert.ok(disco.scopes_supported.includes(s), s);
    }
    for (const c of ['email', 'email_verified', 'groups', 'preferred_username', 'name']) {
      assert.ok(disco.claims_supported.includes(c), c);
    }
  });

  test('authorization code + PKCE as alice, ID token, userinfo, refresh', async () => {
    const jar = new CookieJar();
    const { code, nonce, verifier } = await codeFor('alice', 'alice-pw', { jar });
    const { status, json } = await redeem(code, verifier);
    assert.equal(status, 200, JSON.stringify(json));
    assert.equal(json.token_type, 'Bearer');
    assert.ok(json.access_token && json.refresh_token && json.id_token, Object.keys(json).join(','));

    const jwks = await op.jwks();
    const { header, payload } = verifyJwt(json.id_token, jwks);
    assert.equal(header.alg, 'RS256');
    assert.ok(header.kid, 'kid in the ID token header');
    assert.equal(payload.iss, op.issuer);
    assert.equal(payload.aud, 'authgate');
    assert.equal(payload.sub, 'alice');
    assert.equal(payload.nonce, nonce);
    assert.equal(payload.email, 'alice@example.com');
    assert.equal(payload.email_verified, true);
    assert.deepEqual(payload.groups, ['admins', 'devs']);
    assert.equal(payload.preferred_username, 'alice');
    assert.equal(payload.name, 'Alice Admin');
    assert.ok(payload.exp > Date.now() / 1000);

    // userinfo with the access token.
    const ui = await fetch(disco.userinfo_endpoint, { headers: { authorization: `Bearer ${json.access_token}` } });
    assert.equal(ui.status, 200);
    const claims = await ui.json();
    assert.equal(claims.sub, 'alice');
    assert.equal(claims.email, 'alice@example.com');

    // Refresh (client_secret_post this time): new tokens; the refresh token rotates and the
    // consumed one is refused.
    const ref = await tokenRequest(disco.token_endpoint,
      { grant_type: 'refresh_token', refresh_token: json.refresh_token }, { auth: 'post' });
    assert.equal(ref.status, 200, JSON.stringify(ref.json));
    assert.ok(ref.json.id_token && ref.json.access_token && ref.json.refresh_token);
    assert.notEqual(ref.json.refresh_token, json.refresh_token);
    const refreshed = verifyJwt(ref.json.id_token, jwks).payload;
    assert.equal(refreshed.sub, 'alice');
    assert.deepEqual(refreshed.groups, ['admins', 'devs']);
    const reuse = await tokenRequest(disco.token_endpoint,
      { grant_type: 'refresh_token', refresh_token: json.refresh_token });
    assert.equal(reuse.json.error, 'invalid_grant');

    // The provider session (cookie jar) signs the next authorization in without a form, and
    // this time the login helper follows the redirect to the fake RP.
    const before = rp.calls.length;
    const url = authorizationUrl(disco.authorization_endpoint, { redirectUri: rp.callbackUrl, state: 's2' });
    const r = await login(url, { jar }); // no credentials: a login form would throw
    assert.equal(r.stopped, false);
    assert.equal(r.response.status, 200);
    assert.equal(r.url.href.startsWith(rp.callbackUrl), true);
    assert.equal(rp.calls.length, before + 1);
    assert.equal(rp.calls.at(-1).query.get('state'), 's2');
    assert.ok(rp.calls.at(-1).query.get('code'));

    // A code is single use, and replaying it revokes what it gave (RFC 6749 4.1.2).
    const again = await redeem(code, verifier);
    assert.equal(again.status, 400);
    assert.equal(again.json.error, 'invalid_grant');
    const revoked = await fetch(disco.userinfo_endpoint, { headers: { authorization: `Bearer ${ref.json.access_token}` } });
    assert.equal(revoked.status, 401);
  });

  test('PKCE is enforced and the client secret is checked', async () => {
    const { code, verifier } = await codeFor('alice', 'alice-pw');
    const wrongVerifier = await redeem(code, `${verifier}x`);
    assert.equal(wrongVerifier.status, 400);
    assert.equal(wrongVerifier.json.error, 'invalid_grant');

    const c2 = await codeFor('alice', 'alice-pw');
    const badSecret = await redeem(c2.code, c2.verifier, { clientSecret: 'nope' });
    assert.equal(badSecret.status, 401);
    assert.equal(badSecret.json.error, 'invalid_client');
  });

  test('users: bob, carol (unverified), mallory (tricky email)', async () => {
    const expect = {
      bob: { email: 'bob@other.org', email_verified: true, groups: ['devs'], preferred_username: 'bob' },
      carol: { email: 'carol@example.com', email_verified: false, groups: [] },
      mallory: { email: 'attacker@evil.com@example.com', email_verified: true },
    };
    const jwks = await op.jwks();
    for (const [user, claims] of Object.entries(expect)) {
      const { code, verifier } = await codeFor(user, `${user}-pw`);
      const { json } = await redeem(code, verifier);
      const { payload } = verifyJwt(json.id_token, jwks);
      assert.equal(payload.sub, user);
      for (const [k, v] of Object.entries(claims)) assert.deepEqual(payload[k], v, `${user}.${k}`);
    }
  });

  test('a wrong password is refused, and so is an unknown user', async () => {
    const before = rp.calls.length;
    for (const [user, pw] of [['alice', 'wrong'], ['nobody', 'x'], ['alice', '']]) {
      const url = authorizationUrl(disco.authorization_endpoint, { redirectUri: rp.callbackUrl, state: 'x' });
      await assert.rejects(login(url, { username: user, password: pw }), (err) => {
        assert.ok(err instanceof LoginError, err.stack);
        assert.match(err.message, /Invalid login or password/);
        const form = findLoginForm(err.page, 'http://x/');
        assert.equal(form.fields.login, user, 'the form comes back with the login filled in');
        return true;
      });
    }
    assert.equal(rp.calls.length, before, 'no callback reached the relying party');
  });

  test('cancelling the login sends error=access_denied to the relying party', async () => {
    const jar = new CookieJar();
    const url = authorizationUrl(disco.authorization_endpoint, { redirectUri: rp.callbackUrl, state: 'c' });
    // Without credentials the walk ends at the login form with a LoginError holding the page.
    const r = await login(url, { jar }).catch((e) => e);
    assert.ok(r instanceof LoginError);
    const abort = /href="([^"]*\/abort)"/.exec(r.page)[1];
    const done = await login(new URL(abort, op.issuer).href,
      { jar, stopAt: (u) => u.href.startsWith(rp.callbackUrl) });
    assert.equal(done.url.searchParams.get('error'), 'access_denied');
    assert.equal(done.url.searchParams.get('state'), 'c');
  });

  test('key rotation: the new key signs, the old one stays until dropped', async () => {
    const jwks1 = await op.jwks();
    assert.equal(jwks1.keys.length, 1);
    const oldKid = jwks1.keys[0].kid;
    const first = await codeFor('alice', 'alice-pw');
    const oldTokens = (await redeem(first.code, first.verifier)).json;
    assert.equal(decodeJwt(oldTokens.id_token).header.kid, oldKid);

    const st = await op.rotate();
    assert.equal(st.kids.length, 2);
    assert.notEqual(st.signing, oldKid);
    const jwks2 = await op.jwks();
    assert.deepEqual(jwks2.keys.map((k) => k.kid), [st.signing, oldKid]);
    for (const k of jwks2.keys) {
      assert.equal(k.kty, 'RSA');
      assert.equal(k.alg, 'RS256');
      assert.equal(k.use, 'sig');
      assert.equal(k.d, undefined, 'no private parts in the JWKS');
    }

    // New ID tokens carry the new kid; old ones still verify against the JWKS.
    const second = await codeFor('alice', 'alice-pw');
    const newTokens = (await redeem(second.code, second.verifier)).json;
    assert.equal(verifyJwt(newTokens.id_token, jwks2).header.kid, st.signing);
    assert.equal(verifyJwt(oldTokens.id_token, jwks2).header.kid, oldKid);

    // Tokens issued before the rotation are still good: the grant survived it.
    const ref = await tokenRequest(disco.token_endpoint,
      { grant_type: 'refresh_token', refresh_token: oldTokens.refresh_token });
    assert.equal(ref.status, 200, JSON.stringify(ref.json));
    assert.equal(decodeJwt(ref.json.id_token).header.kid, st.signing);

    // drop=1: only a brand-new key is left; the old tokens no longer verify.
    const st3 = await op.rotate({ drop: true });
    assert.equal(st3.kids.length, 1);
    const jwks3 = await op.jwks();
    assert.deepEqual(jwks3.keys.map((k) => k.kid), [st3.signing]);
    assert.throws(() => verifyJwt(newTokens.id_token, jwks3), /no key with kid/);
  });

  test('api-client: client_credentials gives JWT access tokens for a resource', async () => {
    const jwks = await op.jwks();
    const opts = { clientId: 'api-client', clientSecret: 'api-secret' };
    const def = await tokenRequest(disco.token_endpoint,
      { grant_type: 'client_credentials', scope: 'api:read' }, opts);
    assert.equal(def.status, 200, JSON.stringify(def.json));
    const a = verifyJwt(def.json.access_token, jwks).payload;
    assert.equal(a.aud, 'urn:authgate:api');
    assert.equal(a.client_id, 'api-client');
    assert.equal(a.iss, op.issuer);
    assert.equal(a.scope, 'api:read');

    const res = await tokenRequest(disco.token_endpoint,
      { grant_type: 'client_credentials', resource: 'https://api.example.test/', scope: 'api:read api:write' }, opts);
    assert.equal(res.status, 200, JSON.stringify(res.json));
    assert.equal(verifyJwt(res.json.access_token, jwks).payload.aud, 'https://api.example.test/');

    const wrong = await tokenRequest(disco.token_endpoint, { grant_type: 'client_credentials' },
      { ...opts, clientSecret: 'nope' });
    assert.equal(wrong.status, 401);
  });

  test('admin: add a client and change redirect URIs at run time', async () => {
    const other = await startFakeRp({ path: '/cb' });
    try {
      const url = () => authorizationUrl(disco.authorization_endpoint,
        { clientId: 'second', redirectUri: other.callbackUrl, state: 'z' });
      // Unknown client: the provider shows an error page, no redirect.
      const unknown = await login(url(), { username: 'bob', password: 'bob-pw' });
      assert.equal(unknown.response.status, 400);

      const st = await op.addClient({
        client_id: 'second', client_secret: 'second-secret', redirect_uris: [other.callbackUrl],
        grant_types: ['authorization_code', 'refresh_token'],
      });
      assert.ok(st.clients.includes('second'));
      const r = await login(url(), { username: 'bob', password: 'bob-pw', stopAt: (u) => u.href.startsWith(other.callbackUrl) });
      assert.ok(r.url.searchParams.get('code'));

      // Bad metadata is refused and leaves the clients as they were.
      await assert.rejects(op.addClient({ client_id: 'broken', redirect_uris: ['not a url'] }), /400/);
      assert.deepEqual((await op.state()).clients, st.clients);

      // setRedirectUris replaces the list of the authgate client.
      await op.setRedirectUris([rp.callbackUrl, other.callbackUrl]);
      const ok = await login(authorizationUrl(disco.authorization_endpoint,
        { redirectUri: other.callbackUrl }), { username: 'bob', password: 'bob-pw', stopAt: (u) => u.href.startsWith(other.callbackUrl) });
      assert.ok(ok.stopped);
    } finally {
      await other.stop();
    }
  });
});

describe('OpenID Provider configuration file', () => {
  test('extra user, extra client with ES256 ID tokens, short ID token TTL', async () => {
    const rp2 = await startFakeRp();
    const op2 = await startProvider({
      config: {
        signingAlgs: ['RS256', 'ES256'],
        ttl: { IdToken: 30 },
        accounts: { dave: { password: 'dave-pw', email: 'dave@example.net', email_verified: true, groups: ['ops'] } },
        clients: [{
          client_id: 'es', client_secret: 'es-secret', redirect_uris: [rp2.callbackUrl],
          grant_types: ['authorization_code', 'refresh_token'], id_token_signed_response_alg: 'ES256',
        }],
      },
    });
    try {
      const d = await op2.discovery();
      assert.deepEqual(d.id_token_signing_alg_values_supported.sort(), ['ES256', 'RS256']);
      const p = pkce();
      const r = await login(authorizationUrl(d.authorization_endpoint, {
        clientId: 'es', redirectUri: rp2.callbackUrl, codeChallenge: p.challenge, state: 'e',
      }), { username: 'dave', password: 'dave-pw', stopAt: (u) => u.href.startsWith(rp2.callbackUrl) });
      const { status, json } = await tokenRequest(d.token_endpoint, {
        grant_type: 'authorization_code', code: r.url.searchParams.get('code'),
        redirect_uri: rp2.callbackUrl, code_verifier: p.verifier,
      }, { clientId: 'es', clientSecret: 'es-secret' });
      assert.equal(status, 200, JSON.stringify(json));
      const { header, payload } = verifyJwt(json.id_token, await op2.jwks(), { algs: ['ES256'] });
      assert.equal(header.alg, 'ES256');
      assert.equal(payload.sub, 'dave');
      assert.deepEqual(payload.groups, ['ops']);
      assert.equal(payload.exp - payload.iat, 30);
      assert.throws(() => verifyJwt(json.id_token, { keys: [] }, { algs: ['RS256'] }), /alg ES256 not allowed/);
    } finally {
      await op2.stop();
      await rp2.stop();
    }
  });
});

describe('CookieJar', () => {
  test('host (not port) scope, Path, Max-Age, Expires, Domain, Secure', () => {
    const jar = new CookieJar();
    jar.setFrom('http://127.0.0.1:1000/a/b', [
      'plain=1',
      'root=2; Path=/',
      'sub=3; Path=/x; HttpOnly; SameSite=Lax',
      'gone=4; Max-Age=0',
      'old=5; Expires=Thu, 01 Jan 1970 00:00:00 GMT',
      'sec=6; Secure; Path=/',
      'dom=7; Domain=example.com; Path=/',
    ]);
    // Default path of /a/b is /a; cookies are shared across ports of a host, as in browsers.
    assert.equal(jar.header('http://127.0.0.1:2000/a/z'), 'plain=1; root=2; sec=6');
    assert.equal(jar.header('http://127.0.0.1:1000/'), 'root=2; sec=6');
    assert.equal(jar.header('http://127.0.0.1:1000/x/y'), 'sub=3; root=2; sec=6');
    assert.equal(jar.header('http://127.0.0.1:1000/xy'), 'root=2; sec=6', '/x does not match /xy');
    assert.equal(jar.header('http://localhost:1000/'), '', 'another host');
    assert.equal(jar.all().find((c) => c.name === 'sub').httpOnly, true);

    jar.setFrom('http://app.example.com/', ['d=1; Domain=.example.com', 'h=2', 's=3; Secure']);
    assert.equal(jar.all().some((c) => c.name === 'dom'), false, 'a Domain the host is not in is refused');
    assert.equal(jar.header('http://x.app.example.com/'), 'd=1', 'Domain cookies reach subdomains');
    assert.equal(jar.get('d', 'http://x.example.com/'), '1');
    assert.equal(jar.get('h', 'http://x.example.com/'), undefined);
    assert.equal(jar.get('s', 'http://app.example.com/'), undefined, 'Secure from plain http is refused');
    jar.setFrom('https://app.example.com/', ['s=3; Secure']);
    assert.equal(jar.get('s', 'https://app.example.com/'), '3');
    assert.equal(jar.get('s', 'http://app.example.com/'), undefined, 'Secure is not sent over http');

    jar.setFrom('http://127.0.0.1/', ['root=; Max-Age=0; Path=/']);
    assert.equal(jar.get('root', 'http://127.0.0.1/'), undefined, 'deleted by Max-Age=0');
    jar.setFrom('http://127.0.0.1/', ['t=1; Max-Age=1; Path=/'], Date.now() - 2000);
    assert.equal(jar.get('t', 'http://127.0.0.1/'), undefined, 'expired by Max-Age');
  });
});

describe('Redis', () => {
  test('start, PING/SET/GET, pause, stop, restart', async () => {
    const redis = await startRedis();
    try {
      assert.equal(await redis.command('PING'), 'PONG');
      assert.equal(await redis.command('SET', 'k', 'v\r\nwith bytes'), 'OK');
      assert.equal(await redis.command('GET', 'k'), 'v\r\nwith bytes');
      assert.equal(await redis.command('GET', 'missing'), null);
      assert.deepEqual(await redis.command('KEYS', '*'), ['k']);
      assert.ok((await redis.command('NOSUCHCMD')) instanceof Error);
      // Persistence is off.
      assert.deepEqual(await redis.command('CONFIG', 'GET', 'save'), ['save', '']);

      // Paused: connections open but nothing answers.
      redis.pause();
      await assert.rejects(redisCommand(redis.port, ['PING'], { timeoutMs: 300 }), /no reply within 300 ms/);
      redis.resume();
      assert.equal(await redis.command('PING'), 'PONG');

      // Stopped: refused.
      const st = await redis.stop();
      assert.equal(st.code, 0);
      await assert.rejects(redis.command('PING'), /ECONNREFUSED/);

      // Restarted on the same port, empty.
      await redis.restart();
      assert.equal(await redis.command('PING'), 'PONG');
      assert.equal(await redis.command('GET', 'k'), null);
      await redis.kill();
      await assert.rejects(redis.command('PING'), /ECONNREFUSED/);
    } finally {
      await redis.kill();
    }
  });
});

describe('authgate harness', () => {
  test('starts the real binary against the provider and Redis; /ping answers OK; TERM stops it', async () => {
    const redis = await startRedis();
    const ag = await startAuthgate([], {}, {
      config: {
        provider: 'oidc',
        oidc_issuer_url: op.issuer,
        client_id: 'authgate',
        client_secret: 'authgate-secret',
        cookie_secret: newCookieSecret(),
        email_domains: ['*'],
        http_address: '127.0.0.1:0',
        redis_connection_url: `${redis.url}/0`,
      },
    });
    assert.match(ag.url, /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.ok(ag.port > 0);
    const res = await fetch(`${ag.url}/ping`);
    assert.equal(res.status, 200);
    assert.equal(await res.text(), 'OK');
    assert.ok(ag.logs().some((l) => l.includes('listening on')));
    const st = await ag.stop();
    assert.equal(st.code, 0, ag.logs().join('\n'));
    await redis.stop();
  });

  test('a daemon that does not come up fails clearly', async () => {
    await assert.rejects(startAuthgate(['--no-such-option']), /authgate exited \(status \d+\) before "listening on/);
    await assert.rejects(startAuthgate([], {}, { bin: '/nonexistent/authgate' }), /cannot run \/nonexistent\/authgate/);
    await assert.rejects(waitFor(() => false, { timeoutMs: 100, what: 'nothing' }), /timed out after 100 ms waiting for nothing/);
  });

  test('toToml and freePort', async () => {
    assert.equal(toToml({ a: 'x"y\\', b: true, c: 3, d: ['p', 'q'], e: undefined }),
      'a = "x\\"y\\\\"\nb = true\nc = 3\nd = ["p", "q"]\n');
    const p = await freePort();
    assert.ok(p > 1024 && p < 65536);
  });
});
