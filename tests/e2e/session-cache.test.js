// SPDX-License-Identifier: Apache-2.0
// The session cache (--session-cache-entries): sessions are served from memory while Redis' client-side
// caching (CLIENT TRACKING, invalidations on __redis__:invalidate) vouches for them, and a change made by
// any instance (a sign-out, a FLUSHALL, a restart) ends the cached copy before it is used again.
// Two authgates share one Redis and one cookie secret, as two instances behind a load balancer do.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { newCookieSecret, startProvider, startRedis, stopAll } from './harness.js';
import { CookieJar, request } from './login.js';
import { SESSION_COOKIE, browserLogin, startGate, waitReady } from './stack.js';

after(stopAll);

let redis;
let op;
let A;
let B;

// How many GETs Redis has served so far (INFO commandstats).
async function gets() {
  const info = String(await redis.command('INFO', 'commandstats'));
  const m = /cmdstat_get:calls=(\d+)/.exec(info);
  return m ? Number(m[1]) : 0;
}

async function login(ag) {
  const jar = new CookieJar();
  const r = await browserLogin(`${ag.base}/oauth2/start?rd=%2F`, { jar });
  assert.equal(r.status, 302, `callback: ${r.status}`);
  const cookie = jar.get(SESSION_COOKIE, ag.base);
  assert.ok(cookie);
  return { cookie: `${SESSION_COOKIE}=${cookie}` };
}

const auth = (ag, s, timeoutMs = 8000) => request(`${ag.base}/oauth2/auth`, { headers: { cookie: s.cookie }, timeoutMs });

before(async () => {
  [redis, op] = await Promise.all([startRedis(), startProvider()]);
  const cookie_secret = newCookieSecret();
  [A, B] = await Promise.all([
    startGate({ op, redis, config: { cookie_secret, redis_timeout: '500ms' } }),
    startGate({ op, redis, config: { cookie_secret, redis_timeout: '500ms' } }),
  ]);
});

describe('sessions from memory, kept exact by Redis', () => {
  test('a session in use is read from Redis once, then from memory', async () => {
    const s = await login(A);
    assert.equal((await auth(A, s)).status, 202);
    const before = await gets();
    for (let i = 0; i < 20; i++) {
      const r = await auth(A, s);
      assert.equal(r.status, 202);
      assert.equal(r.headers.get('x-auth-request-user'), 'alice');
    }
    assert.ok((await gets()) - before <= 1, `20 checks cost ${(await gets()) - before} GETs`);
  });

  test('a sign-out on one instance ends the session on the other at once (30 rounds)', async () => {
    for (let round = 0; round < 30; round++) {
      const s = await login(A);
      assert.equal((await auth(B, s)).status, 202, `round ${round}: B reads it`);
      assert.equal((await auth(B, s)).status, 202, `round ${round}: B has it in memory`);
      const out = await request(`${A.base}/oauth2/sign_out`, { headers: { cookie: s.cookie } });
      assert.equal(out.status, 302);
      assert.equal((await auth(B, s)).status, 401, `round ${round}: B still served a signed-out session`);
      assert.equal((await auth(A, s)).status, 401);
    }
  });

  test('FLUSHALL empties every cache', async () => {
    const s = await login(A);
    assert.equal((await auth(B, s)).status, 202);
    assert.equal((await auth(B, s)).status, 202);
    await redis.command('FLUSHALL');
    // Like authgate after its own writes: one more round trip, after which Redis has written the
    // invalidation ("everything") to every subscriber (see barrier() in src/session/redis.c).
    await redis.command('PING');
    assert.equal((await auth(B, s)).status, 401);
  });

  test('a hung Redis stops the cache within a second: 503 as before; resumed, memory serves again', async () => {
    const s = await login(A);
    assert.equal((await auth(A, s)).status, 202);
    redis.pause();
    try {
      await new Promise((resolve) => setTimeout(resolve, 1500));
      assert.equal((await auth(A, s)).status, 503);
    } finally {
      redis.resume();
    }
    await waitReady(A.base, A);
    assert.equal((await auth(A, s)).status, 202);
  });

  test('a Redis restart (sessions lost) ends cached sessions', async () => {
    const s = await login(A);
    assert.equal((await auth(B, s)).status, 202);
    assert.equal((await auth(B, s)).status, 202);
    await redis.stop();
    await redis.restart();
    await waitReady(B.base, B);
    assert.equal((await auth(B, s)).status, 401, 'the restarted Redis has no such session');
    // the invalidation channel came back with a new client id, and the workers' tracking followed it
    const again = await login(A);
    assert.equal((await auth(B, again)).status, 202);
    await new Promise((resolve) => setTimeout(resolve, 1200)); // the channel is heard from again
    const before = await gets();
    for (let i = 0; i < 10; i++) assert.equal((await auth(B, again)).status, 202);
    assert.ok((await gets()) - before <= 2, `10 checks after the restart cost ${(await gets()) - before} GETs`);
    await request(`${A.base}/oauth2/sign_out`, { headers: { cookie: again.cookie } });
    assert.equal((await auth(B, again)).status, 401, 'invalidations flow again after the restart');
  });

  test('with session_cache_entries = 0 every check reads Redis', async () => {
    const C = await startGate({ op, redis, config: { session_cache_entries: 0 } });
    const s = await login(C);
    const before = await gets();
    for (let i = 0; i < 5; i++) assert.equal((await auth(C, s)).status, 202);
    assert.ok((await gets()) - before >= 5);
    await C.stop();
  });
});

test('every authgate exits cleanly on SIGTERM, without sanitizer reports', async () => {
  await A.stop();
  await B.stop();
});
