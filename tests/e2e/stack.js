// SPDX-License-Identifier: Apache-2.0
// Building blocks of the browser-login suites (login, envoy, nginx, caddy): an authgate wired to
// the test provider and Redis, a login walk that reports what happened at /oauth2/callback, an
// echo upstream, raw HTTP requests (no URL normalisation, any header bytes), and tracked child
// processes for the front proxies (nginx, caddy) that are killed when the test process exits.

import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';

import {
  REPO_ROOT, freePort, newCookieSecret, sleep, startAuthgate, tmpDir, waitFor,
} from './harness.js';
import { CookieJar, login } from './login.js';

export const SESSION_COOKIE = '_oauth2_proxy';
export const CSRF_COOKIE = '_oauth2_proxy_csrf';

// ----------------------------------------------------------------------------------------------
// Files of the source tree (conf/ recipes): $AG_SRCDIR (set by tests/integration/lib.sh, also
// when make check runs a copy of this directory from the build tree), else the repository.

export function sourceFile(rel) {
  const roots = [process.env.AG_SRCDIR, REPO_ROOT].filter(Boolean);
  for (const r of roots) {
    const f = path.join(r, rel);
    if (existsSync(f)) return f;
  }
  throw new Error(`${rel} not found under ${roots.join(', ')} (set AG_SRCDIR to the source tree)`);
}

export const readSourceFile = (rel) => readFileSync(sourceFile(rel), 'utf8');

// ----------------------------------------------------------------------------------------------
// authgate against the provider

// The provider's `authgate` client gets every redirect URI any test registered (the list is
// replaced as a whole by the admin endpoint, so keep the union per provider).
const redirectUris = new WeakMap();
export async function registerRedirectUri(op, uri) {
  const set = redirectUris.get(op) ?? new Set();
  redirectUris.set(op, set);
  if (set.has(uri)) return;
  set.add(uri);
  await op.setRedirectUris([...set]);
}

// The configuration every suite starts from (see the brief in the README of this directory).
export function baseConfig({ op, redis, port }) {
  return {
    provider: 'oidc',
    oidc_issuer_url: op.issuer,
    client_id: 'authgate',
    client_secret: 'authgate-secret',
    cookie_secret: newCookieSecret(),
    email_domains: ['example.com'],
    redis_connection_url: `${redis.url}/0`,
    http_address: `127.0.0.1:${port}`,
    cookie_secure: false,
    scope: 'openid email profile groups',
    set_xauthrequest: true,
    upstreams: ['static://200'],
  };
}

// Start authgate on a fresh port with baseConfig + config (a key set to undefined is left out),
// register its callback (and any extra redirect URIs, e.g. of a proxy in front) at the provider,
// and wait for /ready. Returns the harness handle plus { base, config, callbackUrl }.
export async function startGate({ op, redis, config = {}, redirectVia = [], args = [], env = {} }) {
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const cfg = { ...baseConfig({ op, redis, port }), ...config };
  for (const [k, v] of Object.entries(cfg)) if (v === undefined) delete cfg[k];
  for (const uri of [`${base}/oauth2/callback`, ...redirectVia]) await registerRedirectUri(op, uri);
  const ag = await startAuthgate(args, env, { config: cfg });
  await waitReady(base, ag);
  return Object.assign(ag, { base, config: cfg, callbackUrl: `${base}/oauth2/callback` });
}

export async function waitReady(base, ag, timeoutMs = 10000) {
  await waitFor(async () => (await fetch(`${base}/ready`, { signal: AbortSignal.timeout(2000) })).status === 200, {
    timeoutMs,
    what: `${base}/ready to answer 200${ag ? `; authgate said:\n${ag.logs().slice(-10).join('\n')}` : ''}`,
  });
}

// ----------------------------------------------------------------------------------------------
// The browser login

// Walk from startUrl (an app URL or /oauth2/start?rd=...) through the provider's login form and
// back to `callbackPath`, and stop right after the callback's answer. Returns
//   { callback: Response of /oauth2/callback (undefined if never reached), callbackUrl (URL),
//     status (its status), location (URL it redirected to, or undefined), body (its page when it
//     did not redirect), setCookies (its Set-Cookie lines), history, jar }.
export async function browserLogin(startUrl, {
  jar = new CookieJar(), user = 'alice', password, callbackPath = '/oauth2/callback', headers = {},
} = {}) {
  let callbackUrl;
  const r = await login(startUrl, {
    jar,
    username: user,
    password: password ?? `${user}-pw`,
    headers,
    stopAt: (u) => {
      if (callbackUrl) return true; // the redirect after the callback: stop here
      if (u.pathname === callbackPath) callbackUrl = u;
      return false;
    },
  });
  const last = r.history.at(-1);
  const reached = callbackUrl && last.url === callbackUrl.href;
  return {
    callback: reached ? r.response : undefined,
    callbackUrl,
    status: reached ? last.status : undefined,
    location: r.stopped ? r.url : undefined,
    body: r.body,
    setCookies: reached ? r.response.headers.getSetCookie() : [],
    history: r.history,
    jar,
    result: r,
  };
}

// The authorization request authgate's /oauth2/start (or a check) redirected to, parsed.
export function authorizeParams(location) {
  const u = new URL(location);
  return Object.fromEntries(u.searchParams);
}

// ----------------------------------------------------------------------------------------------
// Raw HTTP: one request on its own connection, written byte for byte (the path is not
// normalised, headers may repeat or be odd), the answer parsed. headers: [[name, value], ...] or
// an object. Resolves { status, headers (lowercase name -> [values]), header(name), body }.

export function rawRequest(base, { method = 'GET', path: reqPath = '/', headers = [], body, timeoutMs = 10000 } = {}) {
  const u = new URL(base);
  const list = Array.isArray(headers) ? headers : Object.entries(headers);
  return new Promise((resolve, reject) => {
    const sock = net.connect(Number(u.port), u.hostname);
    const chunks = [];
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`${method} ${base}${reqPath}: no complete answer within ${timeoutMs} ms`));
    }, timeoutMs);
    sock.on('error', (err) => {
      clearTimeout(timer);
      reject(new Error(`${method} ${base}${reqPath}: ${err.message}`));
    });
    sock.on('connect', () => {
      const lines = [`${method} ${reqPath} HTTP/1.1`];
      if (!list.some(([k]) => k.toLowerCase() === 'host')) lines.push(`Host: ${u.host}`);
      for (const [k, v] of list) lines.push(`${k}: ${v}`);
      lines.push('Connection: close');
      if (body !== undefined) lines.push(`Content-Length: ${Buffer.byteLength(body)}`);
      sock.write(`${lines.join('\r\n')}\r\n\r\n${body ?? ''}`);
    });
    sock.on('data', (d) => chunks.push(d));
    sock.on('end', () => {
      clearTimeout(timer);
      try {
        resolve(parseResponse(Buffer.concat(chunks)));
      } catch (err) {
        reject(new Error(`${method} ${base}${reqPath}: ${err.message}`));
      }
    });
  });
}

function parseResponse(buf) {
  const end = buf.indexOf('\r\n\r\n');
  if (end < 0) throw new Error(`no complete response head (${buf.length} bytes: ${JSON.stringify(buf.toString('latin1', 0, 200))})`);
  const [statusLine, ...lines] = buf.toString('latin1', 0, end).split('\r\n');
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(statusLine);
  if (!m) throw new Error(`bad status line ${JSON.stringify(statusLine)}`);
  const headers = {};
  for (const l of lines) {
    const i = l.indexOf(':');
    const k = l.slice(0, i).trim().toLowerCase();
    (headers[k] ??= []).push(l.slice(i + 1).trim());
  }
  let body = buf.subarray(end + 4);
  if (headers['transfer-encoding']?.some((v) => /chunked/i.test(v))) {
    const out = [];
    let p = 0;
    for (;;) {
      const eol = body.indexOf('\r\n', p);
      const n = parseInt(body.toString('latin1', p, eol), 16);
      if (!n) break;
      out.push(body.subarray(eol + 2, eol + 2 + n));
      p = eol + 2 + n + 2;
    }
    body = Buffer.concat(out);
  }
  return {
    status: Number(m[1]),
    headers,
    header: (name) => headers[name.toLowerCase()]?.join(', '),
    body: body.toString('utf8'),
  };
}

// ----------------------------------------------------------------------------------------------
// Echo upstream: answers every request 200 with JSON { method, url, headers (lowercase name ->
// [values], in arrival order), body } and records it.

export async function startEcho() {
  const requests = [];
  const server = http.createServer(async (req, res) => {
    const chunks = [];
    for await (const c of req) chunks.push(c);
    const headers = {};
    for (let i = 0; i < req.rawHeaders.length; i += 2) {
      (headers[req.rawHeaders[i].toLowerCase()] ??= []).push(req.rawHeaders[i + 1]);
    }
    const seen = { method: req.method, url: req.url, headers, body: Buffer.concat(chunks).toString('utf8') };
    requests.push(seen);
    const text = JSON.stringify(seen);
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
    res.end(text);
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address();
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    requests,
    stop: () => new Promise((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}

// ----------------------------------------------------------------------------------------------
// Tracked child processes (nginx, caddy). Each runs in its own process group (nginx has worker
// processes that outlive a killed master), which is SIGKILLed when this process exits; stop()
// sends SIGTERM to the main process first.

const procs = new Set();
function killGroup(child, signal) {
  try {
    process.kill(-child.pid, signal);
  } catch {
    try { child.kill(signal); } catch { /* gone */ }
  }
}
process.on('exit', () => {
  for (const p of procs) killGroup(p, 'SIGKILL');
});

export function spawnProcess(cmd, args, { env = process.env, name = cmd, cwd } = {}) {
  const child = spawn(cmd, args, { env, cwd, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  procs.add(child);
  const lines = [];
  let spawnError;
  child.once('error', (e) => { spawnError = e; procs.delete(child); });
  for (const s of ['stdout', 'stderr']) {
    let partial = '';
    child[s].setEncoding('utf8');
    child[s].on('data', (d) => {
      const parts = (partial + d).split('\n');
      partial = parts.pop();
      for (const l of parts) {
        lines.push(l);
        if (process.env.E2E_ECHO) process.stderr.write(`[${name} ${s}] ${l}\n`);
      }
    });
    child[s].unref?.();
  }
  child.unref();
  const exitedPromise = new Promise((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
    child.once('error', () => resolve({ code: null, signal: null }));
  });
  return {
    child,
    name,
    logs: () => [...lines],
    spawnError: () => spawnError,
    exited: exitedPromise,
    // SIGTERM, then (after timeoutMs) SIGKILL to the whole group; the group is always killed at
    // the end so that no worker is left behind.
    async stop(timeoutMs = 5000) {
      if (!spawnError) {
        if (child.exitCode === null && child.signalCode === null) {
          child.kill('SIGTERM');
          const t = setTimeout(() => killGroup(child, 'SIGKILL'), timeoutMs);
          await exitedPromise;
          clearTimeout(t);
        }
        killGroup(child, 'SIGKILL');
      }
      procs.delete(child);
    },
  };
}

// Wait until something accepts TCP connections on 127.0.0.1:port; fails at once when proc dies.
export async function waitPort(port, proc, timeoutMs = 10000) {
  const died = () => proc && (proc.spawnError() || proc.child.exitCode !== null || proc.child.signalCode !== null);
  const r = await waitFor(async () => {
    if (died()) return 'died';
    return new Promise((resolve) => {
      const s = net.connect(port, '127.0.0.1');
      s.once('connect', () => { s.destroy(); resolve(true); });
      s.once('error', () => resolve(false));
    });
  }, { timeoutMs, what: `${proc?.name ?? 'a server'} to listen on 127.0.0.1:${port}` });
  if (r === 'died') {
    await sleep(100); // let the last output arrive
    const why = proc.spawnError() ? proc.spawnError().message : `status ${proc.child.exitCode ?? proc.child.signalCode}`;
    throw new Error(`${proc.name} exited (${why}) before listening on :${port}:\n${proc.logs().slice(-20).join('\n')}`);
  }
}

// A fresh directory under this run's temp dir (removed at exit by the harness).
export const newTmpDir = (prefix) => mkdtempSync(path.join(tmpDir(), `${prefix}-`));
