// SPDX-License-Identifier: Apache-2.0
// Byte-level HTTP tools for the HTTP attack suite (http-attacks.test.js). Everything here works on
// raw sockets (node:net): requests are written exactly as given, never normalised by a client, and
// the upstream records every byte authgate sends it.
//
//   exchange(port, bytes, opts)   one connection: write bytes, read every answer until the server
//                                 closes (or a timeout); { responses, closed, closedMs, raw, error }
//   parseResponses(buf)           the complete HTTP/1.x responses at the start of buf
//   pingOnce(port, opts)          GET /ping on a new connection; resolves its latency in ms
//   pingLoop(port, opts)          /ping after /ping until stop(); stop() -> { count, failures, maxMs }
//   slowClients(port, n, opts)    n connections that send their head one byte at a time, forever;
//                                 each records when the server closed it and whether it answered
//   slowClientsInWorker(...)      the same on a worker thread, so that hundreds of dribbling
//                                 sockets do not delay the timers of the test's own /ping loop
//   startRecorder()               a raw TCP upstream that records every byte it receives, answers
//                                 each request it can parse 200 (101 to a WebSocket handshake)

import { createHash } from 'node:crypto';
import net from 'node:net';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';

const toBuf = (b) => (Buffer.isBuffer(b) ? b : Buffer.from(b, 'latin1'));

// ----------------------------------------------------------------------------------------------
// Responses

// Parse the complete responses at the start of buf. Returns { responses: [{ status, headers
// (lowercase -> [values]), header(name), body (Buffer) }], rest (unparsed bytes), bad (a reason when
// the bytes are no HTTP response at all) }. A HEAD-less parse: a response without Content-Length or
// chunked coding and not 1xx/204/304 runs to the end of the bytes (complete only when closed).
export function parseResponses(buf, { closed = false } = {}) {
  const responses = [];
  let p = 0;
  for (;;) {
    if (p >= buf.length) break;
    const end = buf.indexOf('\r\n\r\n', p);
    if (end < 0) break;
    const [statusLine, ...lines] = buf.toString('latin1', p, end).split('\r\n');
    const m = /^HTTP\/1\.[01] (\d{3})/.exec(statusLine);
    if (!m) return { responses, rest: buf.subarray(p), bad: `bad status line ${JSON.stringify(statusLine.slice(0, 80))}` };
    const status = Number(m[1]);
    const headers = {};
    for (const l of lines) {
      const i = l.indexOf(':');
      (headers[l.slice(0, i).trim().toLowerCase()] ??= []).push(l.slice(i + 1).trim());
    }
    const header = (n) => headers[n.toLowerCase()]?.join(', ');
    let q = end + 4;
    let body;
    if ((status >= 100 && status < 200) || status === 204 || status === 304) {
      body = Buffer.alloc(0);
    } else if (/chunked/i.test(header('transfer-encoding') ?? '')) {
      const parts = [];
      let done = false;
      for (;;) {
        const eol = buf.indexOf('\r\n', q);
        if (eol < 0) break;
        const n = parseInt(buf.toString('latin1', q, eol), 16);
        if (Number.isNaN(n)) return { responses, rest: buf.subarray(p), bad: 'bad chunk size' };
        if (n === 0) {
          const tEnd = buf.indexOf('\r\n\r\n', eol); // after the trailers, if any
          if (tEnd < 0) break;
          q = tEnd + 4;
          done = true;
          break;
        }
        if (buf.length < eol + 2 + n + 2) break;
        parts.push(buf.subarray(eol + 2, eol + 2 + n));
        q = eol + 2 + n + 2;
      }
      if (!done) break;
      body = Buffer.concat(parts);
    } else if (header('content-length') !== undefined) {
      const n = Number(header('content-length'));
      if (buf.length < q + n) break;
      body = buf.subarray(q, q + n);
      q += n;
    } else {
      if (!closed) break;
      body = buf.subarray(q);
      q = buf.length;
    }
    responses.push({ status, headers, header, body, text: () => body.toString('utf8') });
    p = q;
  }
  return { responses, rest: buf.subarray(p) };
}

// ----------------------------------------------------------------------------------------------
// One connection

// Connect to 127.0.0.1:port (from localAddress when given), write `bytes` (a string, read as
// latin1, a Buffer, or an array of them written one after the other), and read until the server
// closes the connection or timeoutMs passes. A server that answered something other than a refusal
// (a status below 400) is not waited for: the exchange ends afterResponseMs after that answer, and
// so does a refusal that leaves the connection open (closed is then false). Never rejects.
// Resolves { responses, statuses, closed (the server ended or reset the connection), closedMs (ms
// from connect to that), raw (Buffer of everything received), error (a socket error, e.g. ECONNRESET),
// writeError }.
export function exchange(port, bytes, {
  host = '127.0.0.1', localAddress, timeoutMs = 5000, afterResponseMs = 1000, endWrite = false,
} = {}) {
  return new Promise((resolve) => {
    const chunks = [];
    const t0 = Date.now();
    let closedMs;
    let error;
    let writeError;
    let settled = false;
    let afterTimer;
    const sock = net.connect({ port, host, localAddress });
    const finish = (closed) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      clearTimeout(afterTimer);
      sock.destroy();
      const raw = Buffer.concat(chunks);
      const parsed = parseResponses(raw, { closed });
      resolve({
        responses: parsed.responses,
        statuses: parsed.responses.map((r) => r.status),
        bad: parsed.bad,
        closed,
        closedMs,
        raw,
        error,
        writeError,
      });
    };
    const timer = setTimeout(() => finish(false), timeoutMs);
    sock.on('error', (err) => {
      if (sock.connecting || !sock.remoteAddress) writeError ??= err.code;
      error = err.code ?? err.message;
      closedMs ??= Date.now() - t0;
      finish(true);
    });
    sock.on('connect', () => {
      const list = Array.isArray(bytes) ? bytes : [bytes];
      for (const b of list) sock.write(toBuf(b), (err) => { if (err) writeError ??= err.code; });
      if (endWrite) sock.end();
    });
    sock.on('data', (d) => {
      chunks.push(d);
      const { responses } = parseResponses(Buffer.concat(chunks));
      if (responses.length && !afterTimer) {
        // an answer that is not a refusal: no need to wait for the close that will not come
        const ms = responses.some((r) => r.status < 400) ? 50 : afterResponseMs;
        afterTimer = setTimeout(() => finish(false), ms);
      }
    });
    sock.on('end', () => {
      closedMs ??= Date.now() - t0;
      finish(true);
    });
    sock.on('close', () => {
      closedMs ??= Date.now() - t0;
      finish(true);
    });
  });
}

// ----------------------------------------------------------------------------------------------
// Health checks

// GET /ping on its own new connection; resolves the latency in ms, rejects when there is no
// complete 200 within timeoutMs.
export function pingOnce(port, { path = '/ping', timeoutMs = 1000, localAddress } = {}) {
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    const chunks = [];
    let done = false;
    const sock = net.connect({ port, host: '127.0.0.1', localAddress });
    const fail = (why) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      reject(new Error(`${path}: ${why} after ${Date.now() - t0} ms`));
    };
    const timer = setTimeout(() => fail(`no answer within ${timeoutMs} ms`), timeoutMs);
    sock.on('error', (e) => fail(e.code ?? e.message));
    sock.on('connect', () => sock.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nConnection: close\r\n\r\n`));
    sock.on('data', (d) => {
      chunks.push(d);
      const { responses } = parseResponses(Buffer.concat(chunks));
      if (!responses.length || done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      if (responses[0].status !== 200) reject(new Error(`${path}: status ${responses[0].status}`));
      else resolve(Date.now() - t0);
    });
    sock.on('close', () => fail('connection closed without an answer'));
  });
}

// Ping in a loop (each on a new connection, gapMs apart) until stop(). stop() waits for the
// ping in flight and resolves { count, failures: [message], maxMs }.
export function pingLoop(port, { timeoutMs = 1000, gapMs = 50 } = {}) {
  let running = true;
  const stats = { count: 0, failures: [], maxMs: 0 };
  const loop = (async () => {
    while (running) {
      const t = Date.now();
      try {
        const ms = await pingOnce(port, { timeoutMs });
        stats.maxMs = Math.max(stats.maxMs, ms);
      } catch (err) {
        stats.failures.push(`${new Date(t).toISOString().slice(11, 23)} ${err.message}`);
        stats.maxMs = Math.max(stats.maxMs, Date.now() - t);
      }
      stats.count += 1;
      if (running) await new Promise((r) => { setTimeout(r, gapMs); });
    }
  })();
  return {
    stats,
    async stop() {
      running = false;
      await loop;
      return stats;
    },
  };
}

// ----------------------------------------------------------------------------------------------
// Slow clients

// Open n connections to 127.0.0.1:port that each send a request head one byte every intervalMs and
// never finish it. mode
//   'idle'              sends nothing at all;
//   'headers'           the request line at once, then endless header bytes;
//   'line'              an endless request-target;
//   'keepalive-line'    a complete GET /ping first, then, after its answer, an endless request line;
//   'keepalive-headers' a complete GET /ping first, then, after its answer, the next request line at
//                       once and endless header bytes.
// Opens them batch at a time (so the accept queue is not the test). Each client records
// { openedAt (just before connecting), connectedAt, startedAt (the slow part began: its first byte,
// or for 'keepalive-headers' the next request line), answeredAt (keep-alive: the first answer
// arrived), closedAt (the server closed or reset it), received (bytes received in the slow part),
// error }. Resolves { clients, open() (how many are still open), stop() }.
export async function slowClients(port, n, {
  mode = 'headers', intervalMs = 250, localAddress, batch = 50, connectTimeoutMs = 5000,
} = {}) {
  const clients = [];
  const timers = new Set();
  let stopped = false;
  const keepalive = mode.startsWith('keepalive');
  const open1 = () => new Promise((resolve) => {
    const c = { openedAt: Date.now(), received: 0 };
    clients.push(c);
    const text = mode === 'line' || mode === 'keepalive-line' ? `GET /${'a'.repeat(1 << 20)}` : `X-Slow-${clients.length}: ${'b'.repeat(1 << 20)}`;
    const lineFirst = `GET /ping HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n`;
    let sent = 0;
    const sock = net.connect({ port, host: '127.0.0.1', localAddress });
    c.sock = sock;
    const dribble = () => {
      if (stopped || c.closedAt !== undefined) return;
      sock.write(text[sent++ % text.length]);
      const t = setTimeout(() => { timers.delete(t); dribble(); }, intervalMs);
      timers.add(t);
    };
    const slowPart = () => {
      c.startedAt = Date.now();
      if (mode === 'headers' || mode === 'keepalive-headers') sock.write(lineFirst);
      dribble();
    };
    const ct = setTimeout(() => { c.error = 'connect timeout'; sock.destroy(); resolve(); }, connectTimeoutMs);
    sock.on('connect', () => {
      clearTimeout(ct);
      c.connectedAt = Date.now();
      if (mode === 'idle') c.startedAt = c.connectedAt;
      else if (keepalive) sock.write(`${lineFirst}\r\n`);
      else slowPart();
      resolve();
    });
    let got = Buffer.alloc(0);
    sock.on('data', (d) => {
      if (keepalive && c.answeredAt === undefined) {
        got = Buffer.concat([got, d]);
        if (parseResponses(got).responses.length) {
          c.answeredAt = Date.now();
          slowPart();
        }
        return;
      }
      c.received += d.length;
    });
    sock.on('error', (e) => { c.error ??= e.code ?? e.message; });
    sock.on('close', () => { c.closedAt ??= Date.now(); clearTimeout(ct); resolve(); });
  });
  for (let i = 0; i < n; i += batch) {
    await Promise.all(Array.from({ length: Math.min(batch, n - i) }, open1));
  }
  return {
    clients,
    open: () => clients.filter((c) => c.closedAt === undefined).length,
    stop() {
      stopped = true;
      for (const t of timers) clearTimeout(t);
      timers.clear();
      for (const c of clients) c.sock.destroy();
    },
  };
}

// slowClients() on a worker thread. Resolves once every connection is open with { report()
// (a promise of the clients' records, without their sockets), stop() (closes them all, ends the
// worker, resolves the final records) }.
export async function slowClientsInWorker(port, n, opts = {}) {
  const w = new Worker(new URL(import.meta.url), { workerData: { role: 'slow-clients', port, n, opts } });
  const replies = [];
  w.on('message', (m) => replies.shift()?.(m));
  const failed = new Promise((_, reject) => {
    w.once('error', reject);
    w.once('exit', (code) => reject(new Error(`slow-client worker exited (${code})`)));
  });
  failed.catch(() => {});
  const ask = (type) => Promise.race([failed, new Promise((resolve) => {
    replies.push(resolve);
    if (type) w.postMessage(type);
  })]);
  await ask(); // 'ready'
  return {
    report: async () => (await ask('report')).clients,
    async stop() {
      const { clients } = await ask('stop');
      await w.terminate();
      return clients;
    },
  };
}

if (!isMainThread && workerData?.role === 'slow-clients') {
  const { port, n, opts } = workerData;
  const s = await slowClients(port, n, opts);
  const plain = () => s.clients.map(({ sock, ...c }) => c);
  parentPort.on('message', (type) => {
    if (type === 'stop') s.stop();
    parentPort.postMessage({ clients: plain() });
  });
  parentPort.postMessage({ ready: true });
}

// ----------------------------------------------------------------------------------------------
// The recording upstream

// A raw TCP server on 127.0.0.1 that records every byte it receives, per connection and in one
// stream, and answers each request it can parse: 200 with a small body (a request with an
// `Upgrade: websocket` header gets 101 and the connection then only records). Its parser is lenient
// on purpose, like the upstreams a smuggling attack aims at: header names are trimmed
// (`Content-Length : 6` counts as Content-Length), so a request hidden in a body shows up as one
// more parsed request. Returns { port, url, total() (bytes received so far), since(mark) (Buffer of
// the bytes received after total() was mark), requests ([{ conn, head (string) }]), connections,
// stop() }.
export async function startRecorder() {
  const stream = [];
  let total = 0;
  const requests = [];
  const socks = new Set();
  let connections = 0;
  const server = net.createServer((sock) => {
    const conn = ++connections;
    socks.add(sock);
    let buf = Buffer.alloc(0);
    let tunnel = false;
    sock.on('error', () => {});
    sock.on('close', () => socks.delete(sock));
    sock.on('data', (d) => {
      stream.push(d);
      total += d.length;
      if (tunnel) return;
      buf = Buffer.concat([buf, d]);
      for (;;) {
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        const headText = buf.toString('latin1', 0, end);
        const fields = {};
        for (const l of headText.split(/\r\n/).slice(1)) {
          const i = l.indexOf(':');
          if (i > 0) fields[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
        }
        let rest = buf.subarray(end + 4);
        if (/chunked/i.test(fields['transfer-encoding'] ?? '')) {
          // skip a chunked body; wait for more when incomplete
          let q = 0;
          let complete = false;
          for (;;) {
            const eol = rest.indexOf('\r\n', q);
            if (eol < 0) break;
            const size = parseInt(rest.toString('latin1', q, eol), 16);
            if (Number.isNaN(size)) { complete = true; q = rest.length; break; }
            if (size === 0) {
              const t = rest.indexOf('\r\n\r\n', eol);
              if (t < 0) break;
              q = t + 4;
              complete = true;
              break;
            }
            if (rest.length < eol + 2 + size + 2) break;
            q = eol + 2 + size + 2;
          }
          if (!complete) return;
          rest = rest.subarray(q);
        } else if (fields['content-length'] !== undefined) {
          const size = Number.parseInt(fields['content-length'], 10) || 0;
          if (rest.length < size) return;
          rest = rest.subarray(size);
        }
        requests.push({ conn, head: headText });
        buf = rest;
        if (/websocket/i.test(fields.upgrade ?? '')) {
          const accept = createHash('sha1')
            .update(`${fields['sec-websocket-key'] ?? ''}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
          sock.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`);
          tunnel = true;
          return;
        }
        const body = `upstream saw request ${requests.length}\n`;
        sock.write(`HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
      }
    });
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address();
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    requests,
    get connections() { return connections; },
    total: () => total,
    since(mark) {
      const all = Buffer.concat(stream);
      return all.subarray(mark);
    },
    stop: () => new Promise((resolve) => {
      for (const s of socks) s.destroy();
      server.close(() => resolve());
    }),
  };
}
