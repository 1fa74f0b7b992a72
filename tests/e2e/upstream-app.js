// SPDX-License-Identifier: Apache-2.0
// A small real upstream application for the reverse-proxy suite (proxy.test.js): node:http only.
// It records every request it receives and counts the TCP connections it accepts, so a test can
// tell what authgate sent it and how (keep-alive reuse).
//
//   const app = await startUpstreamApp({ name: 'app1' });
//   app.url, app.port, app.requests ([{ method, url, headers }]), app.connections, await app.stop()
//
// Endpoints:
//   /echo...                 any method: JSON { app, method, url, headers (lowercase name -> [values],
//                            in arrival order, from rawHeaders), bodyLength, bodySha256 }
//   /download?bytes=N        N bytes of the deterministic pattern with Content-Length
//            [&chunked=1]    ... with Transfer-Encoding: chunked instead
//   /upload[?pause_ms=N]     consumes the body as a stream (after not reading for N ms, to push
//                            back on the sender): JSON { bytes, sha256 }
//   /sse                     text/event-stream: `data: n\n\n` for n = 1..5, one every 200 ms, then ends
//   /slow?ms=N               waits N ms before sending the headers, then JSON { slept: N }
//   /status/CODE             answers CODE with the text body `status CODE\n`
//   /set-cookie              two Set-Cookie headers (SET_COOKIES)
//   /head                    HEAD (and GET): Content-Length HEAD_LENGTH, no body for HEAD
//   /hop-by-hop              200 with hop-by-hop response headers (HOP_RESPONSE_HEADERS) a proxy must drop
//
// The pattern: a fixed 64 KiB block derived from a seed, with the byte offset of each 64 KiB block
// written into its first 8 bytes, so that dropped, repeated or reordered blocks change the sha256.
// expectedSha256(n) computes the digest of the first n bytes locally; patternChunks(n) yields them.

import { createHash } from 'node:crypto';
import http from 'node:http';

export const BLOCK_SIZE = 64 * 1024;

const BLOCK = (() => {
  const b = Buffer.alloc(BLOCK_SIZE);
  for (let i = 0; i < BLOCK_SIZE / 32; i++) {
    createHash('sha256').update(`authgate-e2e-pattern-${i}`).digest().copy(b, i * 32);
  }
  return b;
})();

// The 64 KiB block that starts at byte `offset` (a multiple of BLOCK_SIZE) of the pattern.
function blockAt(offset) {
  const b = Buffer.from(BLOCK);
  b.writeBigUInt64BE(BigInt(offset), 0);
  return b;
}

// The first `bytes` bytes of the pattern, as Buffers of at most 64 KiB.
export function* patternChunks(bytes) {
  for (let off = 0; off < bytes; off += BLOCK_SIZE) {
    const b = blockAt(off);
    yield bytes - off < BLOCK_SIZE ? b.subarray(0, bytes - off) : b;
  }
}

const shaCache = new Map();
// sha256 (hex) of the first `bytes` bytes of the pattern.
export function expectedSha256(bytes) {
  if (!shaCache.has(bytes)) {
    const h = createHash('sha256');
    for (const c of patternChunks(bytes)) h.update(c);
    shaCache.set(bytes, h.digest('hex'));
  }
  return shaCache.get(bytes);
}

export const SET_COOKIES = ['upstream_a=1; Path=/', 'upstream_b=2; Path=/; HttpOnly'];
export const HEAD_LENGTH = 1234;
// Sent by /hop-by-hop: every one of these is hop-by-hop (RFC 9110 7.6.1), x-upstream-secret
// because the Connection header names it.
export const HOP_RESPONSE_HEADERS = [
  ['Connection', 'x-upstream-secret'],
  ['X-Upstream-Secret', '1'],
  ['Keep-Alive', 'timeout=5, max=100'],
  ['Proxy-Connection', 'keep-alive'],
  ['Upgrade', 'foo/1'],
];

const headerMap = (rawHeaders) => {
  const headers = {};
  for (let i = 0; i < rawHeaders.length; i += 2) {
    (headers[rawHeaders[i].toLowerCase()] ??= []).push(rawHeaders[i + 1]);
  }
  return headers;
};

const sendJson = (res, status, obj) => {
  const text = JSON.stringify(obj);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
};

// Write `bytes` bytes of the pattern to res, honouring backpressure.
async function writePattern(res, bytes) {
  for (const c of patternChunks(bytes)) {
    if (res.destroyed) return;
    if (!res.write(c)) {
      await new Promise((resolve) => {
        const done = () => { res.off('drain', done); res.off('close', done); resolve(); };
        res.on('drain', done);
        res.on('close', done);
      });
    }
  }
  res.end();
}

export async function startUpstreamApp({ name = 'app', host = '127.0.0.1' } = {}) {
  const requests = [];
  const timers = new Set();
  let connections = 0;
  const later = (ms, fn) => {
    const t = setTimeout(() => { timers.delete(t); fn(); }, ms);
    timers.add(t);
    return t;
  };

  const server = http.createServer(async (req, res) => {
    const u = new URL(req.url, 'http://upstream.invalid');
    const p = u.pathname;
    requests.push({ method: req.method, url: req.url, headers: headerMap(req.rawHeaders) });
    res.on('error', () => {});
    req.on('error', () => {});
    try {
      if (p.startsWith('/echo')) {
        const h = createHash('sha256');
        let n = 0;
        for await (const c of req) { h.update(c); n += c.length; }
        sendJson(res, 200, {
          app: name, method: req.method, url: req.url, headers: headerMap(req.rawHeaders),
          bodyLength: n, bodySha256: h.digest('hex'),
        });
      } else if (p === '/download') {
        const bytes = Number(u.searchParams.get('bytes') ?? 0);
        const chunked = u.searchParams.get('chunked') === '1';
        req.resume();
        res.writeHead(200, {
          'content-type': 'application/octet-stream',
          ...(chunked ? { 'transfer-encoding': 'chunked' } : { 'content-length': bytes }),
        });
        await writePattern(res, bytes);
      } else if (p === '/upload') {
        const pause = Number(u.searchParams.get('pause_ms') ?? 0);
        if (pause > 0) {
          req.pause();
          await new Promise((resolve) => { later(pause, resolve); });
        }
        const h = createHash('sha256');
        let n = 0;
        for await (const c of req) { h.update(c); n += c.length; }
        sendJson(res, 200, { bytes: n, sha256: h.digest('hex') });
      } else if (p === '/sse') {
        req.resume();
        res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
        res.flushHeaders();
        let n = 0;
        const tick = () => {
          if (res.destroyed) return;
          n += 1;
          res.write(`data: ${n}\n\n`);
          if (n < 5) later(200, tick);
          else res.end();
        };
        later(200, tick);
      } else if (p === '/slow') {
        const ms = Number(u.searchParams.get('ms') ?? 1000);
        req.resume();
        later(ms, () => { if (!res.destroyed) sendJson(res, 200, { slept: ms }); });
      } else if (/^\/status\/\d{3}$/.test(p)) {
        req.resume();
        const code = Number(p.slice(8));
        const body = `status ${code}\n`;
        res.writeHead(code, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body) });
        res.end(body);
      } else if (p === '/set-cookie') {
        req.resume();
        res.writeHead(200, { 'content-type': 'text/plain', 'content-length': 3, 'set-cookie': SET_COOKIES });
        res.end('ok\n');
      } else if (p === '/head') {
        req.resume();
        res.writeHead(200, { 'content-type': 'text/plain', 'content-length': HEAD_LENGTH });
        res.end(req.method === 'HEAD' ? undefined : Buffer.alloc(HEAD_LENGTH, 'h'));
      } else if (p === '/hop-by-hop') {
        req.resume();
        const body = 'hop\n';
        res.writeHead(200, [
          ['Content-Type', 'text/plain'], ['Content-Length', String(body.length)], ...HOP_RESPONSE_HEADERS,
        ].flat());
        res.end(body);
      } else {
        req.resume();
        sendJson(res, 404, { error: `no endpoint ${p} in the upstream app` });
      }
    } catch (err) {
      if (!res.headersSent) sendJson(res, 500, { error: err.message });
      else res.destroy();
    }
  });
  server.on('connection', () => { connections += 1; });
  server.keepAliveTimeout = 30000;
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, resolve);
  });
  const { port } = server.address();
  return {
    name,
    url: `http://${host}:${port}`,
    port,
    requests,
    get connections() { return connections; },
    stop: () => new Promise((resolve) => {
      for (const t of timers) clearTimeout(t);
      timers.clear();
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}
