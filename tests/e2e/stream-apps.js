// SPDX-License-Identifier: Apache-2.0
// Upstreams for the streaming suite (proxy-stream.test.js), each instrumented so that a test can
// see from the upstream's side what authgate did: how many bytes it took or gave so far, how many
// streams and connections are open, what the upgrade request carried.
//
//   startStreamUpstream(): node:http (and a `ws` WebSocket echo at /ws)
//     /bytes?id=I&n=N              N bytes of the pattern (upstream-app.js), Content-Length, written
//                                  as fast as the reader takes them; sent(I) = bytes handed to the
//                                  kernel so far (write callbacks), done(I) once all were
//     /upload?id=I[&slow=B&rate=R] consumes the body, the first B bytes at R bytes/s, then at once;
//                                  received(I) = bytes read so far; answers { bytes, sha256 }
//     /events                      text/event-stream; open streams are counted (open, maxOpen);
//                                  startTicks(ms) then writes `data: n\n\n` to every open stream
//                                  every ms (n counts per stream from 1); ticks lists how many
//                                  streams each tick reached
//     /slow?ms=M[&bytes=N]         headers after M ms, then N bytes of the pattern (default a small
//                                  JSON), Content-Length; `pending` lists requests not yet answered
//     /echo...                     JSON { url, headers }
//     connections (accepted), closedByPeer (connections the peer closed), active (requests in
//     progress), maxActive, upgrades ([{ url, headers }]),
//     wsOpen (WebSocket connections open), wsClosed (closed by the other side), stop()
//   startCuttingUpstream(): a raw TCP server that answers /cut/<mode>?n=N and closes:
//     cl-full, cl-half     Content-Length: N with all N bytes, or N/2 bytes and then a FIN
//     chunked-full, chunked-cut   chunked, 64 KiB chunks: N bytes and the last chunk, or N/2 bytes
//                                 and a FIN without the last chunk
//   startTlsWsUpstream({ dir }): https (self-signed certificate for 127.0.0.1, made with openssl in
//     dir) with a `ws` server: /ws/echo sends "welcome" and echoes every message as it came (text
//     or binary); /ws/refuse answers the upgrade 403. upgrades ([{ url, headers }]), tlsErrors.

import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import path from 'node:path';

import { WebSocketServer } from 'ws';

import { patternChunks } from './upstream-app.js';

const headerMap = (rawHeaders) => {
  const headers = {};
  for (let i = 0; i < rawHeaders.length; i += 2) {
    (headers[rawHeaders[i].toLowerCase()] ??= []).push(rawHeaders[i + 1]);
  }
  return headers;
};

const listen = (server, host = '127.0.0.1') => new Promise((resolve, reject) => {
  server.once('error', reject);
  server.listen(0, host, () => resolve(server.address().port));
});

// Read `stream` (a paused-mode capable Readable), the first `slowBytes` bytes at `rate` bytes/s
// (pausing it, so that TCP pushes back on the sender), then as fast as it comes. onChunk(c) sees
// every chunk. Returns { get bytes(), get slowDoneAt () (ms timestamp, or undefined) }.
export function readThrottled(stream, { slowBytes = 0, rate = Infinity, onChunk = () => {} } = {}) {
  const t0 = Date.now();
  const st = { bytes: 0, slowDoneAt: undefined };
  stream.on('data', (c) => {
    st.bytes += c.length;
    onChunk(c);
    if (st.bytes < slowBytes) {
      const wait = t0 + (st.bytes / rate) * 1000 - Date.now();
      if (wait >= 1) {
        stream.pause();
        setTimeout(() => stream.resume(), wait);
      }
    } else if (st.slowDoneAt === undefined) {
      st.slowDoneAt = Date.now();
    }
  });
  return st;
}

// Write `bytes` bytes of the pattern to a Writable, waiting for 'drain' whenever it says so;
// counter.flushed grows as the chunks reach the kernel (write callbacks).
export async function writePatternCounted(w, bytes, counter) {
  for (const c of patternChunks(bytes)) {
    if (w.destroyed) return false;
    const len = c.length;
    if (!w.write(c, (err) => { if (!err) counter.flushed += len; })) {
      await new Promise((resolve) => {
        const done = () => { w.off('drain', done); w.off('close', done); resolve(); };
        w.on('drain', done);
        w.on('close', done);
      });
    }
  }
  return true;
}

export async function startStreamUpstream() {
  const sent = new Map(); // id -> { flushed, done }
  const received = new Map(); // id -> bytes
  const streams = new Set(); // { res, n }
  const timers = new Set();
  const st = {
    connections: 0, closedByPeer: 0, active: 0, maxActive: 0, open: 0, maxOpen: 0, ticks: [],
    upgrades: [], wsOpen: 0, wsClosed: 0, pending: [],
  };
  let ticker;

  const server = http.createServer(async (req, res) => {
    const u = new URL(req.url, 'http://upstream.invalid');
    const p = u.pathname;
    res.on('error', () => {});
    req.on('error', () => {});
    st.active += 1;
    st.maxActive = Math.max(st.maxActive, st.active);
    res.on('close', () => { st.active -= 1; });
    if (p === '/bytes') {
      const id = u.searchParams.get('id');
      const n = Number(u.searchParams.get('n'));
      const counter = { flushed: 0, done: false };
      sent.set(id, counter);
      req.resume();
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': n });
      if (await writePatternCounted(res, n, counter)) {
        res.end(() => { counter.done = true; });
      }
    } else if (p === '/upload') {
      const id = u.searchParams.get('id');
      received.set(id, 0);
      const h = createHash('sha256');
      const r = readThrottled(req, {
        slowBytes: Number(u.searchParams.get('slow') ?? 0),
        rate: Number(u.searchParams.get('rate') ?? Infinity),
        onChunk: (c) => { h.update(c); received.set(id, received.get(id) + c.length); },
      });
      req.on('end', () => {
        const body = JSON.stringify({ bytes: r.bytes, sha256: h.digest('hex') });
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
        res.end(body);
      });
    } else if (p === '/events') {
      req.resume();
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
      res.flushHeaders();
      const s = { res, n: 0 };
      streams.add(s);
      st.open += 1;
      st.maxOpen = Math.max(st.maxOpen, st.open);
      res.on('close', () => {
        if (streams.delete(s)) st.open -= 1;
      });
    } else if (p === '/slow') {
      const ms = Number(u.searchParams.get('ms') ?? 1000);
      const bytes = u.searchParams.get('bytes');
      req.resume();
      const entry = { url: req.url };
      st.pending.push(entry);
      const t = setTimeout(async () => {
        timers.delete(t);
        st.pending.splice(st.pending.indexOf(entry), 1);
        if (res.destroyed) return;
        if (bytes === null) {
          const body = JSON.stringify({ url: req.url, slept: ms });
          res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
          res.end(body);
        } else {
          res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': Number(bytes) });
          if (await writePatternCounted(res, Number(bytes), { flushed: 0 })) res.end();
        }
      }, ms);
      timers.add(t);
    } else if (p.startsWith('/echo')) {
      req.resume();
      req.on('end', () => {
        const body = JSON.stringify({ url: req.url, headers: headerMap(req.rawHeaders) });
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
        res.end(body);
      });
    } else {
      req.resume();
      res.writeHead(404, { 'content-type': 'text/plain', 'content-length': 10 });
      res.end('not found\n');
    }
  });
  server.keepAliveTimeout = 120000; // idle upstream connections stay for authgate to reuse
  server.headersTimeout = 130000;
  server.on('connection', (sock) => {
    st.connections += 1;
    sock.on('end', () => { st.closedByPeer += 1; });
  });

  const wss = new WebSocketServer({ noServer: true });
  server.on('upgrade', (req, socket, head) => {
    st.upgrades.push({ url: req.url, headers: headerMap(req.rawHeaders) });
    socket.on('error', () => {});
    wss.handleUpgrade(req, socket, head, (ws) => {
      st.wsOpen += 1;
      ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
      ws.on('close', () => { st.wsOpen -= 1; st.wsClosed += 1; });
      ws.on('error', () => {});
    });
  });

  const port = await listen(server);
  return Object.assign(st, {
    url: `http://127.0.0.1:${port}`,
    port,
    sent: (id) => sent.get(id)?.flushed ?? 0,
    done: (id) => sent.get(id)?.done ?? false,
    received: (id) => received.get(id) ?? 0,
    // Every `ms`, the next event to every open stream; ticks gets the number of streams reached.
    startTicks(ms) {
      clearInterval(ticker);
      ticker = setInterval(() => {
        let reached = 0;
        for (const s of streams) {
          if (s.res.destroyed) continue;
          s.n += 1;
          s.res.write(`data: ${s.n}\n\n`);
          reached += 1;
        }
        st.ticks.push(reached);
      }, ms);
    },
    stopTicks() { clearInterval(ticker); },
    stop: () => new Promise((resolve) => {
      clearInterval(ticker);
      for (const t of timers) clearTimeout(t);
      for (const c of wss.clients) c.terminate();
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  });
}

// ----------------------------------------------------------------------------------------------

export async function startCuttingUpstream() {
  const st = { requests: [] };
  const sockets = new Set();
  const server = net.createServer((sock) => {
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    sock.on('error', () => {});
    let buf = Buffer.alloc(0);
    const onData = (d) => {
      buf = Buffer.concat([buf, d]);
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      sock.off('data', onData);
      const target = buf.toString('latin1', 0, end).split('\r\n')[0].split(' ')[1] ?? '/';
      const u = new URL(target, 'http://upstream.invalid');
      const mode = u.pathname.replace(/^\/cut\//, '');
      const n = Number(u.searchParams.get('n') ?? 1024 * 1024);
      st.requests.push({ mode, n });
      const cut = mode.endsWith('-half') || mode.endsWith('-cut');
      const give = cut ? n / 2 : n;
      if (mode.startsWith('cl-')) {
        sock.write(`HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: ${n}\r\n\r\n`);
        for (const c of patternChunks(give)) sock.write(c);
      } else if (mode.startsWith('chunked-')) {
        sock.write('HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n');
        for (const c of patternChunks(give)) sock.write(Buffer.concat([Buffer.from(`${c.length.toString(16)}\r\n`), c, Buffer.from('\r\n')]));
        if (!cut) sock.write('0\r\n\r\n');
      } else {
        sock.write('HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n');
      }
      sock.end(); // a FIN: after the whole answer, or in the middle of it
    };
    sock.on('data', onData);
  });
  const port = await listen(server);
  return Object.assign(st, {
    url: `http://127.0.0.1:${port}`,
    port,
    stop: () => new Promise((resolve) => {
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    }),
  });
}

// ----------------------------------------------------------------------------------------------

export async function startTlsWsUpstream({ dir }) {
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', path.join(dir, 'key.pem'),
    '-out', path.join(dir, 'cert.pem'), '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'],
  { stdio: 'ignore' });
  const st = { upgrades: [], tlsErrors: 0 };
  const server = https.createServer({
    key: readFileSync(path.join(dir, 'key.pem')), cert: readFileSync(path.join(dir, 'cert.pem')),
  }, (req, res) => {
    req.resume();
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': 6 });
    res.end('https\n');
  });
  server.on('tlsClientError', () => { st.tlsErrors += 1; });
  const wss = new WebSocketServer({ noServer: true });
  server.on('upgrade', (req, socket, head) => {
    st.upgrades.push({ url: req.url, headers: headerMap(req.rawHeaders) });
    socket.on('error', () => {});
    if (req.url.startsWith('/ws/refuse')) {
      socket.end('HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nX-Refused-By: upstream\r\nContent-Length: 0\r\n\r\n');
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      ws.send('welcome');
      ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
      ws.on('error', () => {});
    });
  });
  const port = await listen(server);
  return Object.assign(st, {
    url: `https://127.0.0.1:${port}`,
    port,
    stop: () => new Promise((resolve) => {
      for (const c of wss.clients) c.terminate();
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  });
}
