// SPDX-License-Identifier: Apache-2.0
// The advisory inputs of ../shared/ATTACKS.md that concern forwarded headers, health-check agents,
// chunked-cookie tricks, oversized requests and many idle connections, against the real daemon
// with a real provider and Redis. Each must end in a refusal or no effect: never a 2xx for the
// protected path, a crash, a hang or a sanitizer report (checked when the daemon stops).

import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';

import { startProvider, startRedis, stopAll } from './harness.js';
import { CookieJar, request } from './login.js';
import { SESSION_COOKIE, browserLogin, rawRequest, startGate } from './stack.js';

after(stopAll);

let redis;
let op;
let A;

before(async () => {
  [redis, op] = await Promise.all([startRedis(), startProvider()]);
  A = await startGate({
    op, redis, config: { skip_auth_routes: ['^/skip/'], max_header_bytes: 16384, max_connections: 3000 },
  });
});

describe('forwarded headers from a peer that is not a trusted proxy', () => {
  test('X-Forwarded-Uri: /skip/path on GET /admin does not skip authentication', async () => {
    const r = await request(`${A.base}/admin`, { headers: { 'x-forwarded-uri': '/skip/path', accept: 'application/json' } });
    assert.equal(r.status, 401);
    // the same rule does apply to the real path
    assert.equal((await request(`${A.base}/skip/path`)).status, 200);
  });

  test('X-Forwarded-Proto and X-Forwarded-Host do not change the callback URL or the rd check', async () => {
    const r = await request(`${A.base}/oauth2/start?rd=${encodeURIComponent('https://other.example/x')}`, {
      headers: { 'x-forwarded-proto': 'https', 'x-forwarded-host': 'other.example' },
    });
    assert.equal(r.status, 302);
    const loc = new URL(r.headers.get('location'));
    assert.equal(loc.searchParams.get('redirect_uri'), `${A.base}/oauth2/callback`);
    // rd on the forged host was refused: after login the browser lands on "/"
    const jar = new CookieJar();
    const done = await browserLogin(`${A.base}/oauth2/start?rd=${encodeURIComponent('https://other.example/x')}`, {
      jar, headers: { 'x-forwarded-host': 'other.example', 'x-forwarded-proto': 'https' },
    });
    assert.equal(done.status, 302);
    assert.equal(done.location?.href ?? String(done.location), `${A.base}/`);
  });
});

describe('health-check agents and chunked-cookie tricks', () => {
  test('User-Agent: GoogleHC/1.0 (or kube-probe) on a protected path never gets a 2xx', async () => {
    for (const ua of ['GoogleHC/1.0', 'kube-probe/1.29', 'ELB-HealthChecker/2.0']) {
      const r = await request(`${A.base}/admin`, { headers: { 'user-agent': ua } });
      assert.ok(r.status >= 400, `${ua}: ${r.status}`);
    }
  });

  test('chunk-named cookies (_0of2, 99999999 chunks, _x, _1of-1) are no session', async () => {
    const names = ['_oauth2_proxy_0', '_oauth2_proxy_1', '_oauth2_proxy_0of2', '_oauth2_proxy_5of2',
      '_oauth2_proxy_x', '_oauth2_proxy_1of-1', '_oauth2_proxy_99999999'];
    const cookie = names.map((n) => `${n}=v1.AAAA.BBBB`).join('; ');
    const r = await request(`${A.base}/oauth2/auth`, { headers: { cookie } });
    assert.equal(r.status, 401);
    assert.equal((await request(`${A.base}/ping`)).status, 200);
  });

  test('a valid session next to chunk-named junk still works, and junk never extends it', async () => {
    const jar = new CookieJar();
    const done = await browserLogin(`${A.base}/oauth2/start?rd=%2F`, { jar });
    assert.equal(done.status, 302);
    const value = jar.get(SESSION_COOKIE, A.base);
    const r = await request(`${A.base}/oauth2/auth`, {
      headers: { cookie: `_oauth2_proxy_0=${value}; ${SESSION_COOKIE}=${value}; _oauth2_proxy_1=x` },
    });
    assert.equal(r.status, 202);
    const onlyChunk = await request(`${A.base}/oauth2/auth`, { headers: { cookie: `_oauth2_proxy_0=${value}` } });
    assert.equal(onlyChunk.status, 401);
  });
});

describe('transport', () => {
  test('a 1 MB header is refused (431) and the daemon keeps serving', async () => {
    const r = await rawRequest(A.base, { path: '/ping', headers: [['X-Big', 'a'.repeat(1024 * 1024)]] }).catch((e) => e);
    if (!(r instanceof Error)) assert.ok(r.status === 431 || r.status === 413, `got ${r.status}`);
    assert.equal((await request(`${A.base}/ping`)).status, 200);
  });

  test('2000 idle connections do not stop a new client from being served', async () => {
    const socks = [];
    try {
      for (let i = 0; i < 2000; i++) {
        socks.push(await new Promise((resolve, reject) => {
          const s = net.connect(new URL(A.base).port, '127.0.0.1', () => resolve(s));
          s.on('error', reject);
        }));
      }
      const r = await request(`${A.base}/ping`);
      assert.equal(r.status, 200);
      assert.equal(await r.text(), 'OK');
    } finally {
      for (const s of socks) s.destroy();
    }
    assert.equal((await request(`${A.base}/ping`)).status, 200);
  });
});

test('the daemon exits cleanly on SIGTERM, without sanitizer reports', async () => {
  await A.stop();
});
