// SPDX-License-Identifier: Apache-2.0
// Reverse-proxy mode (--upstream=http://...): authgate in front of a real upstream application
// (upstream-app.js), with the real provider, Redis and daemon. Login through the proxied app,
// 401 for API clients with nothing reaching the app, the request as sent (method, raw path, query),
// the identity and X-Forwarded-* headers authgate injects and the client's forged copies it drops,
// hop-by-hop headers both ways, the session and CSRF cookies kept from the app, status codes and
// Set-Cookie passed back, large bodies streamed both ways in bounded memory (RSS of the daemon),
// server-sent events unbuffered, HEAD, a dead and a slow upstream (502, 504), keep-alive reuse of
// upstream connections, and path routing between several upstreams (longest prefix wins).

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';

import { freePort, startProvider, startRedis, stopAll } from './harness.js';
import { CookieJar, request } from './login.js';
import { CSRF_COOKIE, SESSION_COOKIE, browserLogin, rawRequest, startGate } from './stack.js';
import {
  HEAD_LENGTH, HOP_RESPONSE_HEADERS, SET_COOKIES, expectedSha256, patternChunks, startUpstreamApp,
} from './upstream-app.js';

after(stopAll);

const MiB = 1024 * 1024;
const RSS_BOUND = 64 * MiB;

let redis;
let op;
let disco;
let app; // the upstream of the main gate
let A; // the main gate: upstreams [app/]
let alice; // { jar, cookie } of a login through A
const gates = []; // every authgate started here, stopped (and checked) by the last test
const apps = [];

// Under AddressSanitizer (the build the suite runs against) freed memory waits in a quarantine of
// up to 256 MB before it is reused: a proxy that allocates and frees a buffer per chunk would show
// that quarantine in its RSS, not its own buffering. The gate whose RSS is measured gets a small one.
const smallQuarantine = {
  ASAN_OPTIONS: `${process.env.ASAN_OPTIONS ?? 'detect_leaks=1:abort_on_error=0:exitcode=23'}:quarantine_size_mb=4`,
};

async function gate(config, env = {}) {
  const ag = await startGate({ op, redis, config: { skip_provider_button: true, ...config }, env });
  gates.push(ag);
  return ag;
}

async function upstreamApp(name) {
  const a = await startUpstreamApp({ name });
  apps.push(a);
  return a;
}

// Log in as alice through ag's /oauth2/start; returns { jar, cookie (value of the session cookie) }.
async function loggedIn(ag) {
  const jar = new CookieJar();
  const r = await browserLogin(`${ag.base}/oauth2/start?rd=%2F`, { jar });
  assert.equal(r.status, 302, `callback answered ${r.status}: ${r.body ?? ''}\n${ag.logs().slice(-5).join('\n')}`);
  const cookie = jar.get(SESSION_COOKIE, ag.base);
  assert.ok(cookie, `a session cookie after the callback (Set-Cookie: ${r.setCookies.join(' | ')})`);
  return { jar, cookie };
}

const sessionCookie = (s) => `${SESSION_COOKIE}=${s.cookie}`;

// rawRequest through ag with s's session cookie (unless headers carry their own Cookie).
function raw(ag, s, { headers = [], ...opts } = {}) {
  const h = headers.some(([k]) => k.toLowerCase() === 'cookie') ? headers : [['Cookie', sessionCookie(s)], ...headers];
  return rawRequest(ag.base, { headers: h, ...opts });
}

// What the upstream app's /echo saw, from the answer authgate passed back.
function echoed(r, what) {
  assert.equal(r.status, 200, `${what}: ${r.status} ${r.body.slice(0, 300)}`);
  return JSON.parse(r.body);
}

// X-Forwarded-Groups as a list, whether sent as one comma-joined line or one line per group.
const groupList = (vals) => (vals ?? []).join(',').split(',').map((g) => g.trim()).filter(Boolean);

// Tokens of the Connection header lines.
const connectionTokens = (vals) => (vals ?? []).join(',').split(',').map((t) => t.trim().toLowerCase()).filter(Boolean);

// ----------------------------------------------------------------------------------------------
// Streaming clients and the RSS sampler

// VmRSS of pid in bytes.
function rss(pid) {
  const m = /^VmRSS:\s+(\d+)\s+kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  assert.ok(m, `VmRSS of pid ${pid}`);
  return Number(m[1]) * 1024;
}

// Samples pid's RSS every 100 ms from now until stop(); stop() returns { baseline, peak, samples }.
function rssSampler(pid) {
  assert.equal(readFileSync(`/proc/${pid}/comm`, 'utf8').trim(), 'authgate', `pid ${pid} is authgate`);
  const baseline = rss(pid);
  let peak = baseline;
  let samples = 0;
  const take = () => {
    try {
      peak = Math.max(peak, rss(pid));
      samples += 1;
    } catch { /* the process is gone: the transfer itself fails */ }
  };
  const timer = setInterval(take, 100);
  return {
    baseline,
    stop() {
      clearInterval(timer);
      take();
      return { baseline, peak, samples, growth: peak - baseline };
    },
  };
}

const mib = (n) => `${(n / MiB).toFixed(1)} MiB`;

// GET url on its own connection, hashing the body as it streams. pauseAfter/pauseMs: stop reading
// for pauseMs once pauseAfter bytes have arrived (the sender must then hold back, not buffer).
// Resolves { status, headers, bytes, sha256, ms }.
function streamGet(url, { headers = {}, pauseAfter, pauseMs = 0, timeoutMs = 120000 } = {}) {
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    const req = http.get(url, { headers, agent: false }, (res) => {
      const h = createHash('sha256');
      let bytes = 0;
      let paused = false;
      res.on('data', (c) => {
        h.update(c);
        bytes += c.length;
        if (pauseAfter !== undefined && !paused && bytes >= pauseAfter) {
          paused = true;
          res.pause();
          setTimeout(() => res.resume(), pauseMs);
        }
      });
      res.on('end', () => {
        clearTimeout(timer);
        resolve({ status: res.statusCode, headers: res.headers, bytes, sha256: h.digest('hex'), ms: Date.now() - t0 });
      });
      res.on('error', reject);
      res.on('aborted', () => reject(new Error(`GET ${url}: the answer was cut after ${bytes} bytes`)));
    });
    const timer = setTimeout(() => {
      req.destroy();
      reject(new Error(`GET ${url}: not complete within ${timeoutMs} ms`));
    }, timeoutMs);
    req.on('error', (err) => { clearTimeout(timer); reject(new Error(`GET ${url}: ${err.message}`)); });
  });
}

// POST `bytes` bytes of the pattern, streamed from a generator (never one buffer), with
// Content-Length. Resolves { status, headers, body (text), ms }.
function streamUpload(url, bytes, { headers = {}, timeoutMs = 120000 } = {}) {
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    const req = http.request(url, {
      method: 'POST',
      agent: false,
      headers: { ...headers, 'content-type': 'application/octet-stream', 'content-length': bytes },
    }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { body += d; });
      res.on('end', () => {
        clearTimeout(timer);
        resolve({ status: res.statusCode, headers: res.headers, body, ms: Date.now() - t0 });
      });
    });
    const timer = setTimeout(() => {
      req.destroy();
      reject(new Error(`POST ${url}: not complete within ${timeoutMs} ms`));
    }, timeoutMs);
    req.on('error', (err) => { clearTimeout(timer); reject(new Error(`POST ${url}: ${err.message}`)); });
    Readable.from(patternChunks(bytes)).pipe(req);
  });
}

// ----------------------------------------------------------------------------------------------

before(async () => {
  [redis, op, app] = await Promise.all([startRedis(), startProvider(), upstreamApp('app')]);
  disco = await op.discovery();
  A = await gate({ upstreams: [`${app.url}/`] }, smallQuarantine);
  alice = await loggedIn(A);
});

after(async () => {
  await Promise.all(apps.map((a) => a.stop()));
});

describe('authentication in front of the app', () => {
  test('a browser without a session: 302 to the provider; after the login it lands on the URL it asked for', async () => {
    const start = app.requests.length;
    const target = `${A.base}/echo/x?a=1&b=2`;
    const first = await request(target, { headers: { accept: 'text/html' } });
    assert.equal(first.status, 302);
    assert.ok(first.headers.get('location')?.startsWith(`${disco.authorization_endpoint}?`), first.headers.get('location'));
    assert.equal(app.requests.length, start, 'nothing reached the app without a session');

    const jar = new CookieJar();
    const r = await browserLogin(target, { jar, headers: { accept: 'text/html' } });
    assert.equal(r.status, 302, `callback answered ${r.status}: ${r.body ?? ''}`);
    assert.equal(r.location?.href, target, 'back at the URL asked for, query intact');
    assert.equal(app.requests.length, start, 'nothing reached the app before the login finished');

    const land = await request(r.location.href, { jar, headers: { accept: 'text/html' } });
    assert.equal(land.status, 200);
    const seen = await land.json();
    assert.equal(seen.url, '/echo/x?a=1&b=2');
    assert.equal(seen.method, 'GET');
    assert.equal(app.requests.length, start + 1);
    assert.equal(app.requests.at(-1).url, '/echo/x?a=1&b=2');
  });

  test('an API client without a session: 401, and nothing reaches the app', async () => {
    const start = app.requests.length;
    const r = await request(`${A.base}/echo/api?x=1`, { headers: { accept: 'application/json' } });
    assert.equal(r.status, 401);
    const post = await request(`${A.base}/echo/api`, {
      method: 'POST', headers: { accept: 'application/json', 'content-type': 'application/json' }, body: '{"a":1}',
    });
    assert.equal(post.status, 401);
    // forged identity headers do not stand in for a session
    const forged = await rawRequest(A.base, {
      path: '/echo/forged',
      headers: [['Accept', 'application/json'], ['X-Forwarded-User', 'alice'], ['X-Forwarded-Email', 'alice@example.com'],
        ['X-Auth-Request-User', 'alice']],
    });
    assert.equal(forged.status, 401);
    // a tampered session cookie neither
    const bad = await rawRequest(A.base, {
      path: '/echo/bad', headers: [['Accept', 'application/json'], ['Cookie', `${SESSION_COOKIE}=${alice.cookie}x`]],
    });
    assert.equal(bad.status, 401);
    assert.equal(app.requests.length, start, `the app saw: ${app.requests.slice(start).map((q) => q.url).join(' ')}`);
  });
});

describe('the request the app sees', () => {
  test('method, raw path and query reach the app exactly as sent', async () => {
    const p = '/echo/a%2Fb/../c?x=%20y&x=2';
    for (const method of ['GET', 'POST', 'PUT', 'DELETE', 'PATCH']) {
      const body = ['POST', 'PUT', 'PATCH'].includes(method) ? `body of ${method}` : undefined;
      const seen = echoed(await raw(A, alice, { method, path: p, body }), `${method} ${p}`);
      assert.equal(seen.method, method);
      assert.equal(seen.url, p, `${method}: the app saw ${seen.url}`);
      assert.equal(app.requests.at(-1).url, p);
      assert.equal(seen.bodyLength, body ? Buffer.byteLength(body) : 0, method);
      if (body) assert.equal(seen.bodySha256, createHash('sha256').update(body).digest('hex'));
    }
  });

  test('identity and X-Forwarded-* headers; Host is the client\'s (pass_host_header defaults to true)', async () => {
    const host = 'gate.example.test:8443';
    const seen = echoed(await raw(A, alice, { path: '/echo/headers', headers: [['Host', host]] }), 'headers');
    const h = seen.headers;
    assert.deepEqual(h['x-forwarded-user'], ['alice']);
    assert.deepEqual(h['x-forwarded-email'], ['alice@example.com']);
    assert.deepEqual(groupList(h['x-forwarded-groups']), ['admins', 'devs'], `X-Forwarded-Groups: ${JSON.stringify(h['x-forwarded-groups'])}`);
    assert.deepEqual(h['x-forwarded-preferred-username'], ['alice']);
    assert.deepEqual(h['x-forwarded-for'], ['127.0.0.1']);
    assert.deepEqual(h['x-forwarded-proto'], ['http']);
    assert.deepEqual(h['x-forwarded-host'], [host]);
    assert.deepEqual(h.host, [host]);

    const plain = echoed(await raw(A, alice, { path: '/echo/headers' }), 'headers, default Host');
    assert.deepEqual(plain.headers.host, [`127.0.0.1:${A.port}`]);
    assert.deepEqual(plain.headers['x-forwarded-host'], [`127.0.0.1:${A.port}`]);
  });

  test('client-sent identity headers never reach the app with the client\'s values', async () => {
    const forged = [
      ['X-Forwarded-User', 'mallory'], ['x-forwarded-email', 'mallory@example.com'],
      ['X_Forwarded_Groups', 'forged-group'], ['X-Forwarded-Groups', 'forged-group'],
      ['X-Forwarded-Preferred-Username', 'mallory'], ['X-Auth-Request-User', 'mallory'],
      ['X-Auth-Request-Email', 'mallory@example.com'], ['X-Forwarded-Access-Token', 'forged-token'],
    ];
    const seen = echoed(await raw(A, alice, { path: '/echo/forged', headers: forged }), 'forged');
    const h = seen.headers;
    assert.deepEqual(h['x-forwarded-user'], ['alice']);
    assert.deepEqual(h['x-forwarded-email'], ['alice@example.com']);
    assert.deepEqual(groupList(h['x-forwarded-groups']), ['admins', 'devs']);
    assert.deepEqual(h['x-forwarded-preferred-username'], ['alice']);
    for (const v of ['mallory', 'forged-group', 'forged-token']) {
      assert.ok(!JSON.stringify(h).includes(v), `"${v}" reached the app: ${JSON.stringify(h)}`);
    }
    assert.equal(h['x_forwarded_groups'], undefined);
  });

  test('a client\'s Connection header cannot remove the injected identity headers', async () => {
    const seen = echoed(await raw(A, alice, {
      path: '/echo/conn', headers: [['Connection', 'X-Forwarded-User, X-Forwarded-Email']],
    }), 'Connection: X-Forwarded-User');
    assert.deepEqual(seen.headers['x-forwarded-user'], ['alice']);
    assert.deepEqual(seen.headers['x-forwarded-email'], ['alice@example.com']);
  });

  test('hop-by-hop request headers, and those the client\'s Connection header names, do not reach the app', async () => {
    const seen = echoed(await raw(A, alice, {
      path: '/echo/hop',
      headers: [
        ['Connection', 'x-secret'], ['X-Secret', '1'], ['Keep-Alive', 'timeout=5, max=100'], ['TE', 'deflate'],
        ['Trailer', 'X-Checksum'], ['Upgrade', 'foo/1'], ['Proxy-Connection', 'keep-alive'], ['X-Ordinary', 'kept'],
      ],
    }), 'hop-by-hop');
    const h = seen.headers;
    for (const name of ['keep-alive', 'te', 'trailer', 'upgrade', 'proxy-connection', 'x-secret']) {
      assert.equal(h[name], undefined, `${name}: ${JSON.stringify(h[name])} reached the app`);
    }
    const tokens = connectionTokens(h.connection);
    assert.ok(tokens.every((t) => t === 'keep-alive' || t === 'close'),
      `the app got the client's Connection header: ${JSON.stringify(h.connection)}`);
    assert.deepEqual(h['x-ordinary'], ['kept'], 'an end-to-end header passes');
  });

  test('the session and CSRF cookies never reach the app; the other cookies do, in order', async () => {
    const mixed = echoed(await raw(A, alice, {
      path: '/echo/cookies',
      headers: [['Cookie', `theme=dark; ${SESSION_COOKIE}=${alice.cookie}; lang=en; ${CSRF_COOKIE}=csrf-value`]],
    }), 'cookies');
    assert.equal((mixed.headers.cookie ?? []).join('; '), 'theme=dark; lang=en');

    const first = echoed(await raw(A, alice, {
      path: '/echo/cookies', headers: [['Cookie', `${SESSION_COOKIE}=${alice.cookie}; theme=dark; lang=en`]],
    }), 'session cookie first');
    assert.equal((first.headers.cookie ?? []).join('; '), 'theme=dark; lang=en');

    const only = echoed(await raw(A, alice, { path: '/echo/cookies' }), 'session cookie alone');
    assert.ok((only.headers.cookie ?? []).every((v) => v.trim() === ''), `Cookie: ${JSON.stringify(only.headers.cookie)}`);

    for (const s of [mixed, first, only]) {
      const all = JSON.stringify(s.headers);
      assert.ok(!all.includes(alice.cookie) && !all.includes(SESSION_COOKIE) && !all.includes('csrf-value'), all);
    }
  });
});

describe('the answer the client gets', () => {
  test('status codes and bodies pass through', async () => {
    for (const code of [201, 404, 500]) {
      const r = await raw(A, alice, { path: `/status/${code}` });
      assert.equal(r.status, code, `${code}: ${r.body.slice(0, 200)}`);
      assert.equal(r.body, `status ${code}\n`);
    }
  });

  test('both Set-Cookie headers of the app reach the client', async () => {
    const r = await raw(A, alice, { path: '/set-cookie' });
    assert.equal(r.status, 200);
    const fromApp = (r.headers['set-cookie'] ?? []).filter((l) => !l.startsWith(SESSION_COOKIE));
    assert.deepEqual(fromApp, SET_COOKIES);
    assert.equal(r.body, 'ok\n');
  });

  test('hop-by-hop response headers of the app are not forwarded', async () => {
    const r = await raw(A, alice, { path: '/hop-by-hop' });
    assert.equal(r.status, 200);
    assert.equal(r.body, 'hop\n');
    for (const [name] of HOP_RESPONSE_HEADERS.filter(([n]) => n !== 'Connection')) {
      const k = name.toLowerCase();
      assert.equal(r.headers[k], undefined, `${name}: ${JSON.stringify(r.headers[k])} reached the client`);
    }
    assert.ok(!connectionTokens(r.headers.connection).includes('x-upstream-secret'),
      `the app's Connection header reached the client: ${JSON.stringify(r.headers.connection)}`);
  });

  test('HEAD: status and Content-Length pass, no body', async () => {
    const r = await raw(A, alice, { method: 'HEAD', path: '/head' });
    assert.equal(r.status, 200);
    assert.deepEqual(r.headers['content-length'], [String(HEAD_LENGTH)]);
    assert.equal(r.body, '');
    assert.equal(app.requests.at(-1).method, 'HEAD');
  });

  test('server-sent events arrive one by one as the app sends them, the first within 1 s', async (t) => {
    const t0 = Date.now();
    const events = []; // [n, ms after the request]
    const res = await new Promise((resolve, reject) => {
      const req = http.get(`${A.base}/sse`, { agent: false, headers: { cookie: sessionCookie(alice), accept: 'text/event-stream' } }, (r) => {
        let buf = '';
        r.setEncoding('utf8');
        r.on('data', (d) => {
          const at = Date.now() - t0;
          buf += d;
          let i;
          while ((i = buf.indexOf('\n\n')) >= 0) {
            events.push([buf.slice(0, i), at]);
            buf = buf.slice(i + 2);
          }
        });
        r.on('end', () => resolve(r));
      });
      req.on('error', reject);
      req.setTimeout(10000, () => req.destroy(new Error('/sse: no end within 10 s')));
    });
    assert.equal(res.statusCode, 200);
    assert.match(res.headers['content-type'], /^text\/event-stream/);
    assert.deepEqual(events.map(([e]) => e), ['data: 1', 'data: 2', 'data: 3', 'data: 4', 'data: 5']);
    const times = events.map(([, at]) => at);
    t.diagnostic(`events arrived after ${times.join(', ')} ms`);
    assert.ok(times[0] < 1000, `first event after ${times[0]} ms (arrivals: ${times.join(', ')} ms)`);
    for (let i = 1; i < times.length; i++) {
      assert.ok(times[i] - times[i - 1] >= 100,
        `events ${i} and ${i + 1} arrived together, not as sent 200 ms apart (arrivals: ${times.join(', ')} ms)`);
    }
  });
});

describe('large bodies stream through in bounded memory', () => {
  test(`200 MB upload (the app pauses reading for 2 s): right sha256, authgate RSS < +${RSS_BOUND / MiB} MiB`, { timeout: 120000 }, async (t) => {
    const bytes = 200 * MiB;
    const want = expectedSha256(bytes);
    const sampler = rssSampler(A.pid);
    const r = await streamUpload(`${A.base}/upload?pause_ms=2000`, bytes, { headers: { cookie: sessionCookie(alice) } });
    const m = sampler.stop();
    t.diagnostic(`upload ${mib(bytes)} in ${r.ms} ms; RSS ${mib(m.baseline)} -> peak ${mib(m.peak)} (+${mib(m.growth)}, ${m.samples} samples)`);
    assert.equal(r.status, 200, r.body.slice(0, 300));
    assert.deepEqual(JSON.parse(r.body), { bytes, sha256: want });
    assert.ok(m.samples >= 10, `${m.samples} RSS samples`);
    assert.ok(m.growth < RSS_BOUND, `authgate RSS grew by ${mib(m.growth)} (${mib(m.baseline)} -> ${mib(m.peak)})`);
  });

  test(`1 GB download with Content-Length (the client pauses 2 s): right sha256, authgate RSS < +${RSS_BOUND / MiB} MiB`, { timeout: 180000 }, async (t) => {
    const bytes = 1024 * MiB;
    const want = expectedSha256(bytes);
    const sampler = rssSampler(A.pid);
    const r = await streamGet(`${A.base}/download?bytes=${bytes}`, {
      headers: { cookie: sessionCookie(alice) }, pauseAfter: MiB, pauseMs: 2000, timeoutMs: 170000,
    });
    const m = sampler.stop();
    t.diagnostic(`download ${mib(bytes)} in ${r.ms} ms (${(bytes / MiB / (r.ms / 1000)).toFixed(0)} MiB/s incl. 2 s pause); `
      + `RSS ${mib(m.baseline)} -> peak ${mib(m.peak)} (+${mib(m.growth)}, ${m.samples} samples)`);
    assert.equal(r.status, 200);
    assert.equal(r.headers['content-length'], String(bytes));
    assert.equal(r.bytes, bytes);
    assert.equal(r.sha256, want);
    assert.ok(m.samples >= 10, `${m.samples} RSS samples`);
    assert.ok(m.growth < RSS_BOUND, `authgate RSS grew by ${mib(m.growth)} (${mib(m.baseline)} -> ${mib(m.peak)})`);
  });

  test(`50 MB chunked download: right sha256, authgate RSS < +${RSS_BOUND / MiB} MiB`, { timeout: 120000 }, async (t) => {
    const bytes = 50 * MiB;
    const want = expectedSha256(bytes);
    const sampler = rssSampler(A.pid);
    const r = await streamGet(`${A.base}/download?bytes=${bytes}&chunked=1`, {
      headers: { cookie: sessionCookie(alice) }, pauseAfter: MiB, pauseMs: 1000,
    });
    const m = sampler.stop();
    t.diagnostic(`chunked download ${mib(bytes)} in ${r.ms} ms; RSS ${mib(m.baseline)} -> peak ${mib(m.peak)} (+${mib(m.growth)}, ${m.samples} samples)`);
    assert.equal(r.status, 200);
    assert.equal(r.bytes, bytes);
    assert.equal(r.sha256, want);
    assert.ok(m.samples >= 5, `${m.samples} RSS samples`);
    assert.ok(m.growth < RSS_BOUND, `authgate RSS grew by ${mib(m.growth)} (${mib(m.baseline)} -> ${mib(m.peak)})`);
  });
});

describe('upstream connections', () => {
  test('20 sequential requests reuse upstream connections (at most 3 new ones)', async (t) => {
    const startConns = app.connections;
    for (let i = 0; i < 20; i++) {
      const r = await request(`${A.base}/echo/keepalive/${i}`, { headers: { cookie: sessionCookie(alice) } });
      assert.equal(r.status, 200, `request ${i}`);
      assert.equal((await r.json()).url, `/echo/keepalive/${i}`);
    }
    const used = app.connections - startConns;
    t.diagnostic(`${used} new upstream connection(s) for 20 requests`);
    assert.ok(used <= 3, `20 requests opened ${used} upstream connections`);
  });

  describe('a dead and a slow upstream (upstream_timeout 1s, pass_host_header false)', () => {
    let B;
    let b;
    before(async () => {
      const dead = await freePort(); // nothing listens there
      B = await gate({
        upstreams: [`http://127.0.0.1:${dead}/dead/`, `${app.url}/`],
        upstream_timeout: '1s',
        pass_host_header: false,
      });
      b = await loggedIn(B);
    });

    test('nothing listening: 502 with a page', async () => {
      const r = await raw(B, b, { path: '/dead/x', headers: [['Accept', 'text/html']] });
      assert.equal(r.status, 502, r.body.slice(0, 300));
      assert.match(r.header('content-type') ?? '', /text\/html/);
      assert.ok(r.body.length > 0, 'a page, not an empty answer');
    });

    test('no headers within upstream_timeout: 504 within ~1.5 s; the gate still serves', async (t) => {
      // Timed until the answer is complete (its Content-Length read), not until the connection
      // closes: the client has the 504 then, whatever authgate does with the connection afterwards.
      const t0 = Date.now();
      const r = await new Promise((resolve, reject) => {
        const req = http.get(`${B.base}/slow?ms=5000`, {
          agent: false, headers: { cookie: sessionCookie(b), accept: 'text/html' },
        }, (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (d) => { body += d; });
          res.on('end', () => resolve({ status: res.statusCode, body, ms: Date.now() - t0 }));
        });
        req.on('error', reject);
        req.setTimeout(8000, () => req.destroy(new Error('/slow: no answer within 8 s')));
      });
      t.diagnostic(`504 complete after ${r.ms} ms`);
      assert.equal(r.status, 504, r.body.slice(0, 300));
      assert.ok(r.ms >= 900 && r.ms < 1800, `504 after ${r.ms} ms (upstream_timeout 1s)`);
      assert.ok(r.body.length > 0, 'a page, not an empty answer');
      assert.equal(echoed(await raw(B, b, { path: '/echo/after' }), 'after the timeout').url, '/echo/after');
    });

    test('pass_host_header = false: Host is the upstream\'s host:port, X-Forwarded-Host the client\'s', async () => {
      const seen = echoed(await raw(B, b, { path: '/echo/host', headers: [['Host', 'gate.example.test']] }), 'host');
      assert.deepEqual(seen.headers.host, [`127.0.0.1:${app.port}`]);
      assert.deepEqual(seen.headers['x-forwarded-host'], ['gate.example.test']);
    });
  });
});

describe('path routing between upstreams', () => {
  let app2;
  before(async () => { app2 = await upstreamApp('app2'); });

  test('a prefix with a trailing slash covers its subtree, one without only that path; unmatched paths 404', async () => {
    const C = await gate({ upstreams: [`${app.url}/echo/api/`, `${app2.url}/echo/exact`] });
    const c = await loggedIn(C);
    const [n1, n2] = [app.requests.length, app2.requests.length];

    const api = echoed(await raw(C, c, { path: '/echo/api/x?q=1' }), '/echo/api/x');
    assert.equal(api.app, 'app');
    assert.equal(api.url, '/echo/api/x?q=1');
    const exact = echoed(await raw(C, c, { path: '/echo/exact' }), '/echo/exact');
    assert.equal(exact.app, 'app2');
    assert.equal(exact.url, '/echo/exact');
    assert.equal(app.requests.length, n1 + 1);
    assert.equal(app2.requests.length, n2 + 1);

    for (const p of ['/echo/exact/more', '/echo/other', '/', '/echo/apix']) {
      const r = await raw(C, c, { path: p });
      assert.equal(r.status, 404, `${p}: ${r.status} ${r.body.slice(0, 200)}`);
    }
    assert.equal(app.requests.length, n1 + 1, 'no unmatched path reached app');
    assert.equal(app2.requests.length, n2 + 1, 'no unmatched path reached app2');
  });

  test('the longest matching prefix wins, whatever the order of the list', async () => {
    const D = await gate({ upstreams: [`${app.url}/echo/`, `${app2.url}/echo/api/`] });
    const d = await loggedIn(D);
    for (const [p, want] of [['/echo/api/x', 'app2'], ['/echo/api/', 'app2'], ['/echo/apix', 'app'], ['/echo/other', 'app']]) {
      const seen = echoed(await raw(D, d, { path: p }), p);
      assert.equal(seen.app, want, `${p} went to ${seen.app}`);
      assert.equal(seen.url, p);
    }
  });
});

describe('host routing and unix-socket upstreams', () => {
  let app2;
  let sockServer;
  let sockPath;
  const sockSeen = [];
  before(async () => {
    app2 = await upstreamApp('app2');
    sockPath = `${process.env.TMPDIR ?? '/tmp'}/authgate-e2e-${process.pid}.sock`;
    sockServer = http.createServer((req, res) => {
      sockSeen.push({ url: req.url, host: req.headers.host, user: req.headers['x-forwarded-user'] });
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ app: 'unix', url: req.url }));
    });
    await new Promise((resolve) => sockServer.listen(sockPath, resolve));
  });
  after(() => sockServer?.close());

  test('host=URL upstreams serve their Host first (any port, any case); other hosts get the host-less ones', async () => {
    const H = await gate({
      upstreams: [`${app.url}/`, `grafana.example.com=${app2.url}/`, `unix.example.com=unix://${sockPath}`],
      pass_host_header: false,
    });
    const h = await loggedIn(H);
    const via = async (host, p) => echoed(await raw(H, h, { path: p, headers: [['Host', host], ['Cookie', sessionCookie(h)]] }), `${host}${p}`);
    assert.equal((await via('grafana.example.com', '/echo/x')).app, 'app2');
    assert.equal((await via('GRAFANA.Example.com:8443', '/echo/y')).app, 'app2');
    assert.equal((await via('grafana.example.com.evil.test', '/echo/z')).app, 'app');
    assert.equal((await via(new URL(H.base).host, '/echo/w')).app, 'app');
    const u = await via('unix.example.com', '/echo/sock?a=1');
    assert.equal(u.app, 'unix');
    assert.equal(u.url, '/echo/sock?a=1');
    assert.equal(sockSeen.at(-1).user, 'alice', 'the unix-socket app gets the identity too');
    assert.equal(sockSeen.at(-1).host, 'localhost', 'pass_host_header = false: the upstream\'s own name');
  });
});

describe('Debian nginx as the upstream, over http and https', () => {
  let nginx;
  let dir;
  let bigSha;
  const BIG = 64 * MiB;
  before(async () => {
    const { mkdtempSync, writeFileSync } = await import('node:fs');
    const { execFileSync } = await import('node:child_process');
    const { randomBytes } = await import('node:crypto');
    dir = mkdtempSync(`${process.env.TMPDIR ?? '/tmp'}/authgate-nginx-up-`);
    const block = randomBytes(MiB);
    const big = Buffer.concat(Array.from({ length: BIG / MiB }, (_, i) => { const b = Buffer.from(block); b.writeUInt32BE(i); return b; }));
    bigSha = createHash('sha256').update(big).digest('hex');
    writeFileSync(`${dir}/big.bin`, big);
    writeFileSync(`${dir}/index.html`, '<h1>nginx</h1>');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${dir}/key.pem`, '-out', `${dir}/cert.pem`,
      '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
    const [p1, p2] = [await freePort(), await freePort()];
    const { startNginx } = await import('./frontends.js');
    nginx = await startNginx({
      port: p1,
      site: `server { listen 127.0.0.1:${p1}; root ${dir}; }
server { listen 127.0.0.1:${p2} ssl; ssl_certificate ${dir}/cert.pem; ssl_certificate_key ${dir}/key.pem; root ${dir}; }`,
    });
    nginx.http = `http://127.0.0.1:${p1}`;
    nginx.https = `https://127.0.0.1:${p2}`;
  });
  after(async () => { await nginx?.stop(); });

  test('a 64 MB file from nginx arrives whole; a Range request gets nginx\'s 206', async () => {
    const N = await gate({ upstreams: [`${nginx.http}/`] });
    const n = await loggedIn(N);
    const res = await new Promise((resolve, reject) => {
      const req = http.get(`${N.base}/big.bin`, { headers: { cookie: sessionCookie(n) } }, (r) => {
        const h = createHash('sha256');
        let len = 0;
        r.on('data', (d) => { h.update(d); len += d.length; });
        r.on('end', () => resolve({ status: r.statusCode, len, sha: h.digest('hex'), headers: r.headers }));
        r.on('error', reject);
      });
      req.on('error', reject);
    });
    assert.equal(res.status, 200);
    assert.equal(res.len, BIG);
    assert.equal(res.sha, bigSha);
    assert.equal(res.headers['content-length'], String(BIG));
    const part = await raw(N, n, { path: '/big.bin', headers: [['Cookie', sessionCookie(n)], ['Range', 'bytes=0-9']] });
    assert.equal(part.status, 206);
    assert.equal(part.header('content-range'), `bytes 0-9/${BIG}`);
    assert.equal(part.header('content-length'), '10');
  });

  test('https upstream: the certificate is verified (self-signed: 502); ssl_upstream_insecure_skip_verify opts out', async () => {
    const V = await gate({ upstreams: [`${nginx.https}/`] });
    const v = await loggedIn(V);
    const refused = await raw(V, v, { path: '/index.html' });
    assert.equal(refused.status, 502);
    assert.ok(!refused.body.includes('<h1>nginx</h1>'));
    const I = await gate({ upstreams: [`${nginx.https}/`], ssl_upstream_insecure_skip_verify: true });
    const i = await loggedIn(I);
    const ok = await raw(I, i, { path: '/index.html' });
    assert.equal(ok.status, 200);
    assert.equal(ok.body, '<h1>nginx</h1>');
  });
});

describe('file:// upstreams', () => {
  let dir;
  before(async () => {
    const { mkdtempSync, writeFileSync, mkdirSync, symlinkSync } = await import('node:fs');
    dir = mkdtempSync(`${process.env.TMPDIR ?? '/tmp'}/authgate-files-`);
    mkdirSync(`${dir}/www/docs`, { recursive: true });
    mkdirSync(`${dir}/www/.git`);
    writeFileSync(`${dir}/www/index.html`, '<h1>home</h1>');
    writeFileSync(`${dir}/www/app.js`, 'console.log(1)');
    writeFileSync(`${dir}/www/docs/index.html`, '<h1>docs</h1>');
    writeFileSync(`${dir}/www/docs/a b.txt`, 'spaced');
    writeFileSync(`${dir}/www/.git/config`, 'secret');
    writeFileSync(`${dir}/outside.txt`, 'outside');
    symlinkSync(`${dir}/outside.txt`, `${dir}/www/escape.txt`);
  });

  test('a directory served at a prefix: files, index.html, types; never outside it or hidden files', async () => {
    const F = await gate({ upstreams: [`file://${dir}/www#/static/`, `${app.url}/`] });
    const f = await loggedIn(F);
    const get = (p, method = 'GET') => raw(F, f, { path: p, method });
    let r = await get('/static/app.js');
    assert.equal(r.status, 200);
    assert.equal(r.body, 'console.log(1)');
    assert.match(r.header('content-type'), /^text\/javascript/);
    assert.equal(r.header('x-content-type-options'), 'nosniff');
    r = await get('/static/');
    assert.equal(r.status, 200);
    assert.equal(r.body, '<h1>home</h1>');
    assert.equal((await get('/static/docs/')).body, '<h1>docs</h1>');
    assert.equal((await get('/static/docs/a%20b.txt')).body, 'spaced');
    r = await get('/static/app.js', 'HEAD');
    assert.equal(r.status, 200);
    assert.equal(r.header('content-length'), String('console.log(1)'.length));
    assert.equal(r.body, '');
    for (const p of ['/static/../outside.txt', '/static/%2e%2e/outside.txt', '/static/docs/../../outside.txt',
      '/static/.git/config', '/static/escape.txt', '/static/docs%2fa%20b.txt', '/static/nope.js', '/static/app.js%00']) {
      r = await get(p);
      assert.equal(r.status, 404, `${p}: ${r.status} ${r.body.slice(0, 100)}`);
      assert.ok(!r.body.includes('secret') && !r.body.includes('outside'), p);
    }
    r = await get('/static/app.js', 'POST');
    assert.equal(r.status, 405);
    assert.equal(r.header('allow'), 'GET, HEAD');
    // the other upstream still serves the rest
    assert.equal(echoed(await get('/echo/x'), '/echo/x').url, '/echo/x');
  });

  test('without a session the files are as protected as the rest', async () => {
    const F = gates.at(-1);
    const r = await rawRequest(F.base, { path: '/static/app.js', headers: [['Accept', 'application/json']] });
    assert.equal(r.status, 401);
    assert.ok(!r.body.includes('console.log'));
  });
});

test('every authgate exits cleanly on SIGTERM, without sanitizer reports', async () => {
  for (const ag of gates.splice(0)) {
    const st = await ag.stop();
    assert.equal(st.code, 0, `authgate ${ag.base} exit ${JSON.stringify(st)}:\n${ag.logs().slice(-15).join('\n')}`);
  }
});
