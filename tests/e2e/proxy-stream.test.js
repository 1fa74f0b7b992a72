// SPDX-License-Identifier: Apache-2.0
// Reverse-proxy mode under streaming load (the acceptance tests of issue 12, which makes the
// proxy event-driven), each seen from both ends: the client's and an instrumented upstream's
// (stream-apps.js). Backpressure both ways (a slow reader of a fast 1 GiB answer, a slow upstream
// under a fast 200 MiB upload: what one side has given is never far ahead of what the other has
// taken, and authgate's RSS stays flat), 1,000 concurrent server-sent-event streams through one
// authgate, an upstream that closes in the middle of a body (the client must be able to tell),
// WebSockets to an https upstream (and a refused upgrade), the drain on SIGTERM with a transfer
// and a tunnel open, and upstream keep-alive pooling under sequential and concurrent load.
//
// The bounds are about behaviour, not speed: GAP_BOUND is socket buffers (a few MiB each way on
// loopback) plus a few MiB, far below what buffering a whole answer or upload would show.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { after, before, describe, test } from 'node:test';

import WebSocket from 'ws';

import { startProvider, startRedis, stopAll } from './harness.js';
import { CookieJar } from './login.js';
import { SESSION_COOKIE, browserLogin, newTmpDir, startGate } from './stack.js';
import {
  readThrottled, startCuttingUpstream, startStreamUpstream, startTlsWsUpstream, writePatternCounted,
} from './stream-apps.js';
import { expectedSha256 } from './upstream-app.js';

after(stopAll);

const MiB = 1024 * 1024;
const RSS_BOUND = 64 * MiB; // as in proxy.test.js
const GAP_BOUND = 64 * MiB; // what one end may be ahead of the other through authgate

let redis;
let op;
let up; // the instrumented upstream (stream-apps.js)
let cut; // the upstream that closes in the middle of answers
let G; // the main gate: /cut/ -> cut, the rest -> up
let alice;
const gates = []; // every authgate started here, stopped (and checked) by the last test
const servers = [];

// As in proxy.test.js: under AddressSanitizer freed memory waits in a quarantine of up to 256 MB,
// which would show in RSS; the gate whose RSS is measured gets a small one.
const smallQuarantine = {
  ASAN_OPTIONS: `${process.env.ASAN_OPTIONS ?? 'detect_leaks=1:abort_on_error=0:exitcode=23'}:quarantine_size_mb=4`,
};

async function gate(config, env = {}) {
  const ag = await startGate({ op, redis, config: { skip_provider_button: true, ...config }, env });
  gates.push(ag);
  return ag;
}

// Log in as alice through ag; returns the Cookie header value of the session.
async function loggedIn(ag) {
  const jar = new CookieJar();
  const r = await browserLogin(`${ag.base}/oauth2/start?rd=%2F`, { jar });
  assert.equal(r.status, 302, `callback answered ${r.status}: ${r.body ?? ''}\n${ag.logs().slice(-5).join('\n')}`);
  const cookie = jar.get(SESSION_COOKIE, ag.base);
  assert.ok(cookie, `a session cookie after the callback (Set-Cookie: ${r.setCookies.join(' | ')})`);
  return `${SESSION_COOKIE}=${cookie}`;
}

const mib = (n) => `${(n / MiB).toFixed(1)} MiB`;
const sleep = (ms) => new Promise((resolve) => { setTimeout(resolve, ms); });

// Poll cond() every 50 ms until it is truthy; throws `what` (a string or a function giving one)
// after ms.
async function waitUntil(cond, ms, what) {
  const end = Date.now() + ms;
  for (;;) {
    if (await cond()) return;
    if (Date.now() > end) throw new Error(`not within ${ms} ms: ${typeof what === 'function' ? what() : what}`);
    await sleep(50);
  }
}

// VmRSS of pid in bytes.
function rss(pid) {
  const m = /^VmRSS:\s+(\d+)\s+kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  assert.ok(m, `VmRSS of pid ${pid}`);
  return Number(m[1]) * 1024;
}

// Samples pid's RSS every 100 ms until stop(); stop() returns { baseline, peak, samples, growth }.
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
    stop() {
      clearInterval(timer);
      take();
      return { baseline, peak, samples, growth: peak - baseline };
    },
  };
}

// Samples ahead() (bytes one end has given minus what the other has taken) every 100 ms until
// stop(); stop() returns { max, samples }.
function gapSampler(ahead) {
  let max = -Infinity;
  let samples = 0;
  const take = () => {
    max = Math.max(max, ahead());
    samples += 1;
  };
  const timer = setInterval(take, 100);
  return { stop() { clearInterval(timer); take(); return { max, samples }; } };
}

// GET path through ag; resolves { status, body (text) }. agent: an http.Agent or false.
function get(ag, cookie, p, { agent = false, headers = {}, timeoutMs = 15000 } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.get(`${ag.base}${p}`, { agent, headers: { cookie, ...headers } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body }));
      res.on('error', reject);
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`GET ${p}: no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
  });
}

// GET path through ag on its own connection and say how the answer ended: { status, bytes,
// sha256 (of what arrived), complete (node's res.complete), ended ('end' came), aborted, error }.
function getOutcome(ag, cookie, p, { timeoutMs = 15000 } = {}) {
  return new Promise((resolve, reject) => {
    const out = { status: undefined, bytes: 0, complete: false, ended: false, aborted: false, error: undefined };
    const h = createHash('sha256');
    const timer = setTimeout(() => { req.destroy(); reject(new Error(`GET ${p}: not over within ${timeoutMs} ms`)); }, timeoutMs);
    const finish = () => { clearTimeout(timer); resolve({ ...out, sha256: h.digest('hex') }); };
    const req = http.get(`${ag.base}${p}`, { agent: false, headers: { cookie } }, (res) => {
      out.status = res.statusCode;
      out.headers = res.headers;
      res.on('data', (c) => { h.update(c); out.bytes += c.length; });
      res.on('end', () => { out.ended = true; });
      res.on('aborted', () => { out.aborted = true; });
      res.on('error', (err) => { out.error = err.message; });
      res.on('close', () => { out.complete = res.complete; finish(); });
    });
    req.on('error', (err) => {
      if (out.status === undefined) { out.error = err.message; finish(); }
    });
  });
}

// A WebSocket to url: resolves { ws, status: 101, next(what) } once open, or { status, headers }
// when the upgrade is refused. Messages are queued from the start (one may come with the 101);
// next(what) resolves the next one as { data (Buffer), isBinary }, or rejects after 5 s.
function openWs(url, headers = {}) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers, handshakeTimeout: 5000 });
    const queue = [];
    const waiters = [];
    ws.on('message', (data, isBinary) => {
      const m = { data: Buffer.from(data), isBinary };
      if (waiters.length) waiters.shift()(m);
      else queue.push(m);
    });
    const next = (what, ms = 5000) => (queue.length ? Promise.resolve(queue.shift()) : new Promise((res, rej) => {
      const t = setTimeout(() => {
        waiters.splice(waiters.indexOf(w), 1);
        rej(new Error(`no WebSocket message (${what}) within ${ms} ms`));
      }, ms);
      const w = (m) => { clearTimeout(t); res(m); };
      waiters.push(w);
    }));
    let status;
    ws.once('upgrade', (res) => { status = res.statusCode; });
    ws.once('open', () => resolve({ ws, status, next }));
    ws.once('unexpected-response', (req, res) => {
      res.resume();
      resolve({ status: res.statusCode, headers: res.headers });
      req.destroy();
    });
    ws.on('error', (err) => reject(err)); // after the handshake: the test's own close listeners tell
  });
}

// ----------------------------------------------------------------------------------------------

before(async () => {
  [redis, op, up, cut] = await Promise.all([startRedis(), startProvider(), startStreamUpstream(), startCuttingUpstream()]);
  servers.push(up, cut);
  G = await gate({ upstreams: [`${cut.url}/cut/`, `${up.url}/`] }, smallQuarantine);
  alice = await loggedIn(G);
});

after(async () => {
  await Promise.all(servers.map((s) => s.stop()));
});

describe('backpressure both ways, in bounded memory', () => {
  test(`a slow reader of a fast 1 GiB answer (100 MiB at 20 MiB/s, then the rest at once): the upstream is held back `
    + `(< ${GAP_BOUND / MiB} MiB ahead of the client), authgate RSS < +${RSS_BOUND / MiB} MiB, right sha256`, { timeout: 150000 }, async (t) => {
    const bytes = 1024 * MiB;
    const slow = 100 * MiB;
    const rate = 20 * MiB;
    const id = `download-${Date.now()}`;
    const want = expectedSha256(bytes);
    let client; // readThrottled's state
    let atSlowEnd; // { read, sent, ms } when the client has read `slow` bytes
    const t0 = Date.now();
    const sampler = rssSampler(G.pid);
    const gaps = gapSampler(() => up.sent(id) - (client?.bytes ?? 0));
    let r;
    let g;
    let m;
    try {
      r = await new Promise((resolve, reject) => {
        const req = http.get(`${G.base}/bytes?id=${id}&n=${bytes}`, { agent: false, headers: { cookie: alice } }, (res) => {
          const h = createHash('sha256');
          client = readThrottled(res, {
            slowBytes: slow,
            rate,
            onChunk: (c) => {
              h.update(c);
              if (!atSlowEnd && client.bytes >= slow) atSlowEnd = { read: client.bytes, sent: up.sent(id), ms: Date.now() - t0 };
            },
          });
          res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, bytes: client.bytes, sha256: h.digest('hex') }));
          res.on('aborted', () => reject(new Error(`the answer was cut after ${client.bytes} bytes`)));
          res.on('error', reject);
        });
        req.setTimeout(60000, () => req.destroy(new Error('no data for 60 s')));
        req.on('error', reject);
      });
    } finally {
      g = gaps.stop();
      m = sampler.stop();
    }
    const ms = Date.now() - t0;
    t.diagnostic(`${mib(bytes)} in ${ms} ms; after the slow ${mib(slow)} (${atSlowEnd?.ms} ms) the upstream had sent `
      + `${mib(atSlowEnd?.sent ?? NaN)}; largest gap ${mib(g.max)} (${g.samples} samples); `
      + `RSS ${mib(m.baseline)} -> peak ${mib(m.peak)} (+${mib(m.growth)}, ${m.samples} samples)`);
    assert.equal(r.status, 200);
    // the client was slow (else nothing was shown): 100 MiB at 20 MiB/s take 5 s
    assert.ok(atSlowEnd.ms >= 4500, `the slow part took ${atSlowEnd.ms} ms`);
    assert.ok(atSlowEnd.sent - atSlowEnd.read < GAP_BOUND,
      `when the client had read ${mib(atSlowEnd.read)} the upstream had sent ${mib(atSlowEnd.sent)}: authgate buffers the answer`);
    assert.ok(g.samples >= 40, `${g.samples} gap samples`);
    assert.ok(g.max < GAP_BOUND, `the upstream was up to ${mib(g.max)} ahead of the client: authgate buffers the answer`);
    assert.ok(m.samples >= 40, `${m.samples} RSS samples`);
    assert.ok(m.growth < RSS_BOUND, `authgate RSS grew by ${mib(m.growth)} (${mib(m.baseline)} -> ${mib(m.peak)})`);
    assert.equal(r.bytes, bytes);
    assert.equal(r.sha256, want);
    assert.equal(r.headers['content-length'], String(bytes));
    assert.ok(up.done(id), 'the upstream wrote the whole answer');
  });

  test(`a slow upstream under a fast 200 MiB upload (it reads 100 MiB at 20 MiB/s, then the rest at once): the client is `
    + `held back (< ${GAP_BOUND / MiB} MiB ahead of the upstream), authgate RSS < +${RSS_BOUND / MiB} MiB, right sha256`, { timeout: 120000 }, async (t) => {
    const bytes = 200 * MiB;
    const slow = 100 * MiB;
    const rate = 20 * MiB;
    const id = `upload-${Date.now()}`;
    const want = expectedSha256(bytes);
    const sent = { flushed: 0 };
    let atSlowEnd; // { received, sent, ms } at the first 10 ms tick after the upstream has read `slow` bytes
    const t0 = Date.now();
    const watch = setInterval(() => {
      if (!atSlowEnd && up.received(id) >= slow) atSlowEnd = { received: up.received(id), sent: sent.flushed, ms: Date.now() - t0 };
    }, 10);
    const sampler = rssSampler(G.pid);
    const gaps = gapSampler(() => sent.flushed - up.received(id));
    let r;
    let g;
    let m;
    try {
      r = await new Promise((resolve, reject) => {
        const req = http.request(`${G.base}/upload?id=${id}&slow=${slow}&rate=${rate}`, {
          method: 'POST',
          agent: false,
          headers: { cookie: alice, 'content-type': 'application/octet-stream', 'content-length': bytes },
        }, (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (d) => { body += d; });
          res.on('end', () => resolve({ status: res.statusCode, body }));
          res.on('error', reject);
        });
        req.setTimeout(60000, () => req.destroy(new Error('no progress for 60 s')));
        req.on('error', reject);
        writePatternCounted(req, bytes, sent).then(() => req.end(), reject);
      });
    } finally {
      clearInterval(watch);
      g = gaps.stop();
      m = sampler.stop();
    }
    t.diagnostic(`${mib(bytes)} in ${Date.now() - t0} ms; after the slow ${mib(slow)} (${atSlowEnd?.ms} ms) the client had sent `
      + `${mib(atSlowEnd?.sent ?? NaN)}; largest gap ${mib(g.max)} (${g.samples} samples); `
      + `RSS ${mib(m.baseline)} -> peak ${mib(m.peak)} (+${mib(m.growth)}, ${m.samples} samples)`);
    assert.equal(r.status, 200, r.body.slice(0, 300));
    assert.ok(atSlowEnd.ms >= 4500, `the slow part took ${atSlowEnd.ms} ms`);
    assert.ok(atSlowEnd.sent - atSlowEnd.received < GAP_BOUND,
      `when the upstream had read ${mib(atSlowEnd.received)} the client had sent ${mib(atSlowEnd.sent)}: authgate buffers the upload`);
    assert.ok(g.samples >= 40, `${g.samples} gap samples`);
    assert.ok(g.max < GAP_BOUND, `the client was up to ${mib(g.max)} ahead of the upstream: authgate buffers the upload`);
    assert.ok(m.samples >= 40, `${m.samples} RSS samples`);
    assert.ok(m.growth < RSS_BOUND, `authgate RSS grew by ${mib(m.growth)} (${mib(m.baseline)} -> ${mib(m.peak)})`);
    assert.deepEqual(JSON.parse(r.body), { bytes, sha256: want });
  });
});

test('1,000 concurrent server-sent-event streams through one authgate: all open at once, each gets its first event '
  + 'within 5 s and its first three in order; closing them closes them upstream', { timeout: 120000 }, async (t) => {
  const N = 1000;
  const S = await gate({ upstreams: [`${up.url}/`], max_connections: 4 * N, workers: 2 });
  gates.splice(gates.indexOf(S), 1); // stopped here, with time for LeakSanitizer's exit scan (seconds after 2,000 threads)
  const cookie = await loggedIn(S);
  const agent = new http.Agent({ keepAlive: false, maxSockets: Infinity });
  const streams = [];
  const t0 = Date.now();
  try {
    for (let i = 0; i < N; i++) {
      const s = { i, status: undefined, events: [], error: undefined, buf: '' };
      s.req = http.get(`${S.base}/events?i=${i}`, { agent, headers: { cookie, accept: 'text/event-stream' } }, (res) => {
        s.status = res.statusCode;
        s.type = res.headers['content-type'];
        res.setEncoding('utf8');
        res.on('data', (d) => {
          s.buf += d;
          let k;
          while ((k = s.buf.indexOf('\n\n')) >= 0) {
            s.events.push([s.buf.slice(0, k), Date.now()]);
            s.buf = s.buf.slice(k + 2);
          }
        });
        res.on('error', () => {});
      });
      s.req.on('error', (err) => { s.error ??= err.message; });
      streams.push(s);
    }
    const errs = () => streams.filter((s) => s.error !== undefined);
    await waitUntil(() => streams.every((s) => s.status !== undefined || s.error !== undefined), 30000,
      () => `answers to ${streams.filter((s) => s.status !== undefined).length} of ${N} streams`);
    assert.deepEqual(errs().map((s) => `${s.i}: ${s.error}`).slice(0, 10), [], `${errs().length} streams failed`);
    const bad = streams.filter((s) => s.status !== 200 || !/^text\/event-stream/.test(s.type ?? ''));
    assert.deepEqual(bad.map((s) => `${s.i}: ${s.status} ${s.type}`).slice(0, 10), [], `${bad.length} streams not 200 event-stream`);
    await waitUntil(() => up.open === N, 10000, () => `${up.open} of ${N} streams open at the upstream`);
    const opened = Date.now() - t0;

    const tick0 = up.ticks.length;
    const t1 = Date.now();
    up.startTicks(500);
    await waitUntil(() => streams.every((s) => s.events.length >= 3), 20000,
      () => `${streams.filter((s) => s.events.length >= 3).length} of ${N} streams have 3 events `
        + `(${streams.filter((s) => s.events.length === 0).length} none; ticks reached ${up.ticks.slice(tick0).join(', ')})`);
    const first = streams.map((s) => s.events[0][1] - t1);
    const threads = /^Threads:\s+(\d+)$/m.exec(readFileSync(`/proc/${S.pid}/status`, 'utf8'))?.[1];
    // event-driven: the streams cost no thread each (one event loop per CPU, a few helpers)
    assert.ok(Number(threads) < 64, `authgate runs ${threads} threads with ${N} streams open`);
    t.diagnostic(`${N} streams open after ${opened} ms (authgate has ${threads} threads); first events ${Math.min(...first)}..${Math.max(...first)} ms after the `
      + `ticks started (500 ms apart); ticks reached ${up.ticks.slice(tick0, tick0 + 4).join(', ')} streams; upstream peak ${up.maxOpen}`);
    assert.equal(up.maxOpen, N, 'the upstream saw each stream once');
    assert.deepEqual(up.ticks.slice(tick0, tick0 + 3), [N, N, N], 'the first three ticks reached all streams: all were open at once');
    const late = streams.filter((s, i) => first[i] > 5000);
    assert.equal(late.length, 0, `${late.length} streams got their first event later than 5 s (latest ${Math.max(...first)} ms)`);
    const wrong = streams.filter((s) => JSON.stringify(s.events.slice(0, 3).map(([e]) => e)) !== '["data: 1","data: 2","data: 3"]');
    assert.deepEqual(wrong.map((s) => `${s.i}: ${JSON.stringify(s.events.slice(0, 3).map(([e]) => e))}`).slice(0, 10), [],
      `${wrong.length} streams did not get events 1, 2, 3 in order`);

    // the clients go away: authgate ends the upstream streams (the ticks go on meanwhile)
    for (const s of streams) s.req.destroy();
    await waitUntil(() => up.open === 0, 15000, () => `${up.open} streams still open at the upstream after the clients closed`);
    assert.equal((await get(S, cookie, '/echo/after-sse')).status, 200, 'the gate still serves');
  } finally {
    up.stopTicks();
    for (const s of streams) s.req.destroy();
    agent.destroy();
  }
  const t2 = Date.now();
  const st = await S.stop('SIGTERM', 60000); // rejects on a sanitizer report (a leak per stream, say)
  t.diagnostic(`exit after ${Date.now() - t2} ms`);
  assert.deepEqual(st, { code: 0, signal: null }, `authgate exit ${JSON.stringify(st)}:\n${S.logs().slice(-15).join('\n')}`);
});

describe('an upstream that closes in the middle of the body: the client can tell the answer is cut', () => {
  const N = 1024 * 1024;

  // A cut answer must not look complete: either an error status, or a 200 whose body ends in an
  // error (node's 'aborted'/'error', res.complete false), never a clean end of a short body.
  function assertCut(r, what) {
    assert.ok(r.status === 200 || r.status === 502, `${what}: status ${r.status} (${r.error ?? ''})`);
    if (r.status === 502) return;
    assert.ok(r.bytes < N, `${what}: ${r.bytes} bytes of ${N} arrived`);
    assert.equal(r.sha256, expectedSha256(r.bytes), `${what}: the bytes that arrived are the upstream's`);
    assert.equal(r.complete, false, `${what}: a ${r.bytes}-byte body of ${N} looked complete to the client`);
    assert.equal(r.ended, false, `${what}: the body ended cleanly after ${r.bytes} of ${N} bytes`);
    assert.ok(r.aborted || r.error, `${what}: the client saw neither 'aborted' nor an error`);
  }

  function assertWhole(r, what) {
    assert.equal(r.status, 200, what);
    assert.equal(r.bytes, N, what);
    assert.equal(r.sha256, expectedSha256(N), what);
    assert.ok(r.complete && r.ended && !r.aborted && !r.error, `${what}: ${JSON.stringify(r)}`);
  }

  test('Content-Length: N and a FIN after N/2 bytes: not a clean short 200 (a whole answer is clean)', async (t) => {
    const whole = await getOutcome(G, alice, `/cut/cl-full?n=${N}`);
    assertWhole(whole, 'the whole answer');
    const r = await getOutcome(G, alice, `/cut/cl-half?n=${N}`);
    t.diagnostic(`cut answer: ${JSON.stringify({ ...r, headers: undefined, sha256: undefined })}`);
    assert.equal(cut.requests.at(-1).mode, 'cl-half', 'the upstream cut it');
    assertCut(r, 'Content-Length');
    assert.equal((await get(G, alice, '/echo/after-cut')).status, 200, 'the gate still serves');
  });

  test('chunked, and a FIN after N/2 bytes without the last chunk: the client\'s answer ends in an error', async (t) => {
    const whole = await getOutcome(G, alice, `/cut/chunked-full?n=${N}`);
    assertWhole(whole, 'the whole chunked answer');
    const r = await getOutcome(G, alice, `/cut/chunked-cut?n=${N}`);
    t.diagnostic(`cut answer: ${JSON.stringify({ ...r, headers: undefined, sha256: undefined })}`);
    assert.equal(cut.requests.at(-1).mode, 'chunked-cut', 'the upstream cut it');
    assertCut(r, 'chunked');
    assert.equal((await get(G, alice, '/echo/after-cut')).status, 200, 'the gate still serves');
  });
});

describe('WebSocket to an https upstream', () => {
  let tls;
  let W; // ssl_upstream_insecure_skip_verify = true
  let w;
  before(async () => {
    tls = await startTlsWsUpstream({ dir: newTmpDir('tls-ws') });
    servers.push(tls);
    W = await gate({ upstreams: [`${tls.url}/`], proxy_websockets: true, ssl_upstream_insecure_skip_verify: true });
    w = await loggedIn(W);
  });

  test('the upgrade gets 101, messages pass both ways (text and a 256 KiB binary), the upstream got the identity', async () => {
    const n = tls.upgrades.length;
    const c = await openWs(`ws://127.0.0.1:${W.port}/ws/echo?x=1`, { cookie: w, 'x-forwarded-email': 'mallory@example.com' });
    assert.equal(c.status, 101, `the upgrade was answered ${c.status}`);
    try {
      assert.equal((await c.next('the upstream\'s welcome')).data.toString(), 'welcome', 'the upstream\'s first message');
      let m = c.next('the echo of hello');
      c.ws.send('hello');
      assert.deepEqual(await m, { data: Buffer.from('hello'), isBinary: false });
      const big = Buffer.alloc(256 * 1024);
      for (let i = 0; i < big.length; i += 4) big.writeUInt32BE(i, i);
      m = c.next('the echo of 256 KiB');
      c.ws.send(big);
      const back = await m;
      assert.equal(back.isBinary, true);
      assert.ok(back.data.equals(big), `the 256 KiB message came back altered (${back.data.length} bytes)`);
    } finally {
      const closed = new Promise((resolve) => { c.ws.once('close', (code) => resolve(code)); });
      c.ws.close(1000, 'done');
      assert.equal(await closed, 1000, 'a clean close handshake through the tunnel');
    }
    assert.equal(tls.upgrades.length, n + 1);
    const h = tls.upgrades.at(-1).headers;
    assert.equal(tls.upgrades.at(-1).url, '/ws/echo?x=1');
    assert.deepEqual(h['x-forwarded-email'], ['alice@example.com'], JSON.stringify(h));
    assert.deepEqual(h['x-forwarded-user'], ['alice']);
    assert.ok(!JSON.stringify(h).includes(w.slice(w.indexOf('=') + 1)), 'the session cookie did not reach the upstream');
  });

  test('the upstream refuses the upgrade (403): the client gets 403; without a session nothing reaches the upstream', async () => {
    const n = tls.upgrades.length;
    const refused = await openWs(`ws://127.0.0.1:${W.port}/ws/refuse`, { cookie: w });
    assert.equal(refused.status, 403);
    assert.equal(refused.headers['x-refused-by'], 'upstream', 'the upstream\'s own answer');
    assert.equal(tls.upgrades.length, n + 1);
    assert.deepEqual(tls.upgrades.at(-1).headers['x-forwarded-email'], ['alice@example.com']);
    const anonymous = await openWs(`ws://127.0.0.1:${W.port}/ws/echo`, { accept: 'application/json' });
    assert.equal(anonymous.status, 401);
    assert.equal(tls.upgrades.length, n + 1, 'an upgrade without a session reached the upstream');
  });

  test('without ssl_upstream_insecure_skip_verify the self-signed upstream is refused for tunnels too (502)', async () => {
    const V = await gate({ upstreams: [`${tls.url}/`], proxy_websockets: true });
    const v = await loggedIn(V);
    const n = tls.upgrades.length;
    const r = await openWs(`ws://127.0.0.1:${V.port}/ws/echo`, { cookie: v });
    assert.equal(r.status, 502);
    assert.equal(tls.upgrades.length, n, 'the upgrade reached an upstream whose certificate failed');
  });
});

test('SIGTERM with a slow transfer and a WebSocket tunnel open: the transfer completes whole, the tunnel is closed '
  + 'within shutdown_timeout, exit 0 without sanitizer reports', { timeout: 60000 }, async (t) => {
  const shutdownMs = 8000;
  const D = await gate({ upstreams: [`${up.url}/`], shutdown_timeout: `${shutdownMs / 1000}s` });
  gates.splice(gates.indexOf(D), 1); // stopped here
  const cookie = await loggedIn(D);
  const bytes = 4 * MiB;

  const c = await openWs(`ws://127.0.0.1:${D.port}/ws`, { cookie });
  assert.equal(c.status, 101);
  const echo = c.next('the echo of before');
  c.ws.send('before');
  assert.equal((await echo).data.toString(), 'before');
  const wsClosed = up.wsClosed;
  let closedAt;
  const wsClose = new Promise((resolve) => { c.ws.once('close', (code) => { closedAt = Date.now(); resolve(code); }); });

  const pending = up.pending.length;
  const transfer = getOutcome(D, cookie, `/slow?ms=1000&bytes=${bytes}`, { timeoutMs: 20000 });
  await waitUntil(() => up.pending.length > pending, 5000, 'the slow request to reach the upstream');
  const t0 = Date.now();
  const stopped = D.stop('SIGTERM', shutdownMs + 5000); // sends SIGTERM now; rejects on a sanitizer report
  const [r, st] = await Promise.all([transfer, stopped]);
  const exitMs = Date.now() - t0;
  await Promise.race([wsClose, sleep(1000)]);
  t.diagnostic(`exit after ${exitMs} ms; tunnel closed after ${closedAt ? closedAt - t0 : 'never'} ms; transfer ${JSON.stringify({ ...r, headers: undefined })}`);
  assert.equal(r.status, 200, `the in-flight transfer: ${JSON.stringify(r)}`);
  assert.equal(r.bytes, bytes);
  assert.equal(r.sha256, expectedSha256(bytes));
  assert.ok(r.complete && r.ended, `the in-flight transfer was cut: ${JSON.stringify(r)}`);
  assert.deepEqual(st, { code: 0, signal: null }, `authgate exit ${JSON.stringify(st)}:\n${D.logs().slice(-15).join('\n')}`);
  assert.ok(closedAt !== undefined, 'the client never saw the tunnel close');
  assert.ok(closedAt - t0 < shutdownMs, `the tunnel closed ${closedAt - t0} ms after SIGTERM (shutdown_timeout ${shutdownMs} ms)`);
  await waitUntil(() => up.wsClosed > wsClosed, 2000, 'the upstream\'s end of the tunnel to close');
});

test('upstream keep-alive: 200 sequential requests open at most 3 connections, 50 concurrent at most 50, '
  + 'and 100 more sequential ones reuse them (at most 3 new)', { timeout: 60000 }, async (t) => {
  const seq = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const burst = new http.Agent({ keepAlive: false, maxSockets: Infinity });
  try {
    // n requests one after the other: { opened: new upstream connections, closed: upstream
    // connections authgate closed meanwhile (a pool that keeps its connections closes none) }
    const sequential = async (n, tag) => {
      const [c0, f0] = [up.connections, up.closedByPeer];
      for (let i = 0; i < n; i++) {
        const r = await get(G, alice, `/echo/${tag}/${i}`, { agent: seq });
        assert.equal(r.status, 200, `${tag} ${i}: ${r.body.slice(0, 200)}`);
        assert.equal(JSON.parse(r.body).url, `/echo/${tag}/${i}`, 'the answer to this request');
      }
      return { opened: up.connections - c0, closed: up.closedByPeer - f0 };
    };
    const first = await sequential(200, 'seq');

    const c1 = up.connections;
    up.maxActive = up.active;
    const answers = await Promise.all(Array.from({ length: 50 }, (_, i) => get(G, alice, `/slow?ms=300&i=${i}`, { agent: burst })));
    answers.forEach((r, i) => {
      assert.equal(r.status, 200, `concurrent ${i}: ${r.body.slice(0, 200)}`);
      assert.equal(JSON.parse(r.body).url, `/slow?ms=300&i=${i}`, `concurrent ${i} got another request's answer`);
    });
    const concurrent = up.connections - c1;
    const peak = up.maxActive;

    await sleep(200); // the pool settles (a bounded pool closes what it does not keep)
    const later = await sequential(100, 'again');
    t.diagnostic(`new upstream connections: ${first.opened} for 200 sequential (${first.closed} closed by authgate meanwhile), `
      + `${concurrent} for 50 concurrent (up to ${peak} at once at the upstream), ${later.opened} for 100 sequential `
      + `after them (${later.closed} closed)`);
    assert.ok(first.opened <= 3, `200 sequential requests opened ${first.opened} upstream connections; authgate closed `
      + `${first.closed} meanwhile`);
    assert.ok(concurrent <= 50, `50 concurrent requests opened ${concurrent} upstream connections`);
    assert.ok(later.opened <= 3, `100 sequential requests after the burst opened ${later.opened} upstream connections; `
      + `authgate closed ${later.closed} meanwhile`);
  } finally {
    seq.destroy();
    burst.destroy();
  }
});

test('upstream_max_connections = 2 (two event loops): 12 concurrent slow requests are all answered, the upstream '
  + 'never sees more than 2 at once', { timeout: 60000 }, async (t) => {
  const bounded = await gate({ upstreams: [`${up.url}/`], upstream_max_connections: 2, workers: 2 });
  const cookie = await loggedIn(bounded);
  const burst = new http.Agent({ keepAlive: false, maxSockets: Infinity });
  try {
    up.maxActive = up.active;
    const t0 = Date.now();
    const answers = await Promise.all(Array.from({ length: 12 }, (_, i) => get(bounded, cookie, `/slow?ms=200&i=${i}`, { agent: burst })));
    const took = Date.now() - t0;
    answers.forEach((r, i) => {
      assert.equal(r.status, 200, `request ${i}: ${r.body.slice(0, 200)}`);
      assert.equal(JSON.parse(r.body).url, `/slow?ms=200&i=${i}`, `request ${i} got another request's answer`);
    });
    t.diagnostic(`12 requests of 200 ms through a bound of 2: ${took} ms, up to ${up.maxActive} at once at the upstream`);
    assert.ok(up.maxActive <= 2, `the upstream saw ${up.maxActive} requests at once`);
    assert.ok(up.maxActive >= 1 && took >= 6 * 200 - 50, `they waited for a connection (${took} ms for 12 x 200 ms over 2)`);
  } finally {
    burst.destroy();
  }
});

test('every authgate exits cleanly on SIGTERM, without sanitizer reports', async (t) => {
  for (const ag of gates.splice(0)) {
    const t0 = Date.now();
    const st = await ag.stop();
    t.diagnostic(`${ag.base} (${ag.config.upstreams.join(' ')}) exited after ${Date.now() - t0} ms`);
    assert.equal(st.code, 0, `authgate ${ag.base} exit ${JSON.stringify(st)}:\n${ag.logs().slice(-15).join('\n')}`);
  }
});
