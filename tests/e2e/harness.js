// SPDX-License-Identifier: Apache-2.0
// Process helpers for the end-to-end tests: free ports, Redis, the OpenID Provider (provider.js)
// and the authgate daemon. Everything started here is tracked and SIGKILLed when the test process
// exits for any reason (a failed assertion, an exception, SIGINT/SIGTERM), and its temp dir is
// removed. Every wait has a timeout and fails with an error that says what it waited for, with
// the last lines the process printed.

import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const REPO_ROOT = path.resolve(HERE, '../..');

// ----------------------------------------------------------------------------------------------
// Global teardown

const children = new Set();
let tmpRoot;

export function tmpDir() {
  tmpRoot ??= mkdtempSync(path.join(os.tmpdir(), 'authgate-e2e-'));
  return tmpRoot;
}

// Write content to a new file in this run's temp dir; returns its path.
export function tmpFile(name, content) {
  const file = path.join(tmpDir(), `${randomBytes(4).toString('hex')}-${name}`);
  writeFileSync(file, content, { mode: 0o600 });
  return file;
}

function killAll() {
  for (const c of children) {
    try { c.kill('SIGKILL'); } catch { /* already gone */ }
  }
  children.clear();
}

// Stop everything this process started (for an after() hook); waits for each to exit.
export async function stopAll() {
  await Promise.all([...children].map(async (c) => {
    try { c.kill('SIGKILL'); } catch { /* already gone */ }
    await exited(c, 5000).catch(() => {});
  }));
  children.clear();
}

process.on('exit', () => {
  killAll();
  if (tmpRoot) rmSync(tmpRoot, { recursive: true, force: true });
});
for (const [sig, n] of [['SIGINT', 2], ['SIGTERM', 15], ['SIGHUP', 1]]) {
  process.once(sig, () => {
    killAll();
    process.exit(128 + n);
  });
}

// ----------------------------------------------------------------------------------------------
// Small utilities

export const sleep = (ms) => new Promise((r) => { setTimeout(r, ms); });

// Retry an async check every intervalMs until it returns a truthy value (which is returned);
// on timeout, throws "timed out after Nms waiting for <what>" with the last error seen.
export async function waitFor(check, { timeoutMs = 10000, intervalMs = 50, what = 'a condition' } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      const v = await check();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() >= deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`
        + (last ? ` (last error: ${last.message})` : ''));
    }
    await sleep(intervalMs);
  }
}

// A TCP port that was free a moment ago on 127.0.0.1.
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

// Resolve when child has exited ({code, signal}); reject after timeoutMs.
function exited(child, timeoutMs) {
  if (child.exitCode !== null || child.signalCode !== null) {
    return Promise.resolve({ code: child.exitCode, signal: child.signalCode });
  }
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`pid ${child.pid} did not exit within ${timeoutMs} ms`)), timeoutMs);
    child.once('exit', (code, signal) => {
      clearTimeout(t);
      resolve({ code, signal });
    });
  });
}

// Spawn a tracked child whose stdout/stderr are split into lines kept in memory. The child and
// its pipes are unref'd: a test that forgets to stop it does not hang, the exit hook kills it.
function spawnTracked(cmd, args, { env, name, echo = !!process.env.E2E_ECHO } = {}) {
  const child = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  child.once('exit', () => children.delete(child));
  let spawnError; // e.g. ENOENT: 'error' is emitted and 'exit' may never come
  child.once('error', (err) => {
    spawnError = err;
    children.delete(child);
  });
  const out = [];
  const err = [];
  const listeners = new Set(); // (stream, line) => void
  for (const [stream, lines] of [['stdout', out], ['stderr', err]]) {
    let partial = '';
    child[stream].setEncoding('utf8');
    child[stream].on('data', (chunk) => {
      const parts = (partial + chunk).split('\n');
      partial = parts.pop();
      for (const line of parts) {
        lines.push(line);
        if (echo) process.stderr.write(`[${name} ${stream}] ${line}\n`);
        for (const l of listeners) l(stream, line);
      }
    });
    child[stream].on('end', () => {
      if (partial) {
        lines.push(partial);
        for (const l of listeners) l(stream, partial);
      }
    });
    child[stream].unref?.();
  }
  child.unref();
  // Resolves with the first line of `stream` that matches re (a line already seen counts), or
  // rejects when the child exits first or timeoutMs passes.
  const waitLine = (stream, re, timeoutMs, what) => new Promise((resolve, reject) => {
    const lines = stream === 'stdout' ? out : err;
    const hit = lines.find((l) => re.test(l));
    if (hit !== undefined) return resolve(hit);
    if (spawnError) return reject(new Error(`cannot run ${cmd}: ${spawnError.message}`));
    const tail = () => [...out, ...err].slice(-20).map((l) => `    | ${l}`).join('\n');
    const done = () => {
      clearTimeout(t);
      listeners.delete(onLine);
      child.off('close', onExit);
      child.off('error', onError);
    };
    const onError = (e) => {
      done();
      reject(new Error(`cannot run ${cmd}: ${e.message}`));
    };
    const onLine = (s, line) => {
      if (s === stream && re.test(line)) {
        done();
        resolve(line);
      }
    };
    const onExit = (code, signal) => {
      done();
      reject(new Error(`${name} exited (${signal ?? `status ${code}`}) before ${what}:\n${tail()}`));
    };
    const t = setTimeout(() => {
      done();
      reject(new Error(`${name} did not print ${what} within ${timeoutMs} ms:\n${tail()}`));
    }, timeoutMs);
    listeners.add(onLine);
    // 'close' rather than 'exit': it comes after the last output, which the error shows.
    child.once('close', onExit);
    child.once('error', onError);
  });
  return { child, out, err, waitLine, spawnError: () => spawnError };
}

// SIGTERM (or signal), wait up to timeoutMs, then SIGKILL. Resolves {code, signal}.
async function stopChild(child, signal = 'SIGTERM', timeoutMs = 10000) {
  if (child.exitCode !== null || child.signalCode !== null) {
    return { code: child.exitCode, signal: child.signalCode };
  }
  try { child.kill('SIGCONT'); } catch { /* paused processes must be able to handle TERM */ }
  child.kill(signal);
  try {
    return await exited(child, timeoutMs);
  } catch {
    child.kill('SIGKILL');
    await exited(child, 5000);
    return { code: null, signal: 'SIGKILL', timedOut: true };
  }
}

// ----------------------------------------------------------------------------------------------
// Redis

// Send one command (argv as RESP bulk strings) to Redis on 127.0.0.1:port and resolve its reply:
// string, number, null, array, or an Error object for a '-ERR' reply (not thrown).
export function redisCommand(port, args, { timeoutMs = 3000 } = {}) {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1');
    let buf = Buffer.alloc(0);
    const fail = (err) => {
      sock.destroy();
      reject(err);
    };
    sock.setTimeout(timeoutMs, () => fail(new Error(`redis :${port} ${args[0]}: no reply within ${timeoutMs} ms`)));
    sock.on('error', (err) => fail(new Error(`redis :${port} ${args[0]}: ${err.message}`)));
    sock.on('connect', () => {
      const parts = [`*${args.length}\r\n`];
      for (const a of args) {
        const b = Buffer.isBuffer(a) ? a : Buffer.from(String(a));
        parts.push(`$${b.length}\r\n`, b, '\r\n');
      }
      sock.write(Buffer.concat(parts.map((p) => (Buffer.isBuffer(p) ? p : Buffer.from(p)))));
    });
    sock.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      const r = parseResp(buf, 0);
      if (r) {
        sock.end();
        resolve(r.value);
      }
    });
  });
}

// Parse one RESP2 value at buf[pos]; returns {value, end} or null when incomplete.
function parseResp(buf, pos) {
  const eol = buf.indexOf('\r\n', pos);
  if (eol < 0) return null;
  const type = String.fromCharCode(buf[pos]);
  const line = buf.toString('utf8', pos + 1, eol);
  const next = eol + 2;
  switch (type) {
    case '+': return { value: line, end: next };
    case '-': return { value: new Error(line), end: next };
    case ':': return { value: Number(line), end: next };
    case '$': {
      const n = Number(line);
      if (n < 0) return { value: null, end: next };
      if (buf.length < next + n + 2) return null;
      return { value: buf.toString('utf8', next, next + n), end: next + n + 2 };
    }
    case '*': {
      const n = Number(line);
      if (n < 0) return { value: null, end: next };
      const arr = [];
      let p = next;
      for (let i = 0; i < n; i++) {
        const r = parseResp(buf, p);
        if (!r) return null;
        arr.push(r.value);
        p = r.end;
      }
      return { value: arr, end: p };
    }
    default: throw new Error(`bad RESP reply: ${JSON.stringify(buf.toString('utf8', pos, pos + 40))}`);
  }
}

// Start redis-server on a free loopback port (or opts.port), without persistence, and wait until
// it answers PING. Returns { port, url, pid, command(...args), stop(), kill(), pause(), resume(),
// restart(), logs() }. pause() (SIGSTOP) makes it hang like a stuck server; stop()/kill() make
// connections fail like a crashed one; restart() brings it back empty on the same port.
export async function startRedis({ port, timeoutMs = 10000, bin = 'redis-server' } = {}) {
  const dir = mkdtempSync(path.join(tmpDir(), 'redis-'));
  let proc;

  async function launch(p) {
    const args = ['--port', String(p), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
      '--dir', dir, '--daemonize', 'no', '--logfile', '', '--protected-mode', 'yes'];
    const t = spawnTracked(bin, args, { name: `redis-server :${p}` });
    proc = t;
    const r = await waitFor(async () => {
      if (t.spawnError()) return 'spawn';
      if (t.child.exitCode !== null) return 'exited';
      return (await redisCommand(p, ['PING'], { timeoutMs: 500 })) === 'PONG';
    }, { timeoutMs, what: `redis-server on :${p} to answer PING` });
    if (r === 'spawn') {
      throw new Error(`cannot run ${bin}: ${t.spawnError().message} (install the Debian package redis-server: tests/deps.sh)`);
    }
    if (r === 'exited') {
      throw new Error(`redis-server on :${p} exited (status ${t.child.exitCode}):\n${[...t.out, ...t.err].slice(-10).join('\n')}`);
    }
  }

  // A port taken between freePort() and redis' bind makes it exit: try another one.
  let chosen = port;
  for (let attempt = 0; ; attempt++) {
    chosen = port ?? await freePort();
    try {
      await launch(chosen);
      break;
    } catch (err) {
      if (port !== undefined || attempt >= 2 || !/exited/.test(err.message)) throw err;
    }
  }

  return {
    port: chosen,
    url: `redis://127.0.0.1:${chosen}`,
    get pid() { return proc.child.pid; },
    command: (...args) => redisCommand(chosen, args),
    stop: (timeout = 10000) => stopChild(proc.child, 'SIGTERM', timeout),
    kill: () => stopChild(proc.child, 'SIGKILL'),
    pause: () => { proc.child.kill('SIGSTOP'); },
    resume: () => { proc.child.kill('SIGCONT'); },
    async restart() {
      await stopChild(proc.child, 'SIGTERM');
      await launch(chosen);
    },
    logs: () => [...proc.out, ...proc.err],
  };
}

// ----------------------------------------------------------------------------------------------
// OpenID Provider

// Start provider.js. opts: redirectUris (for the `authgate` client), config (object, see
// provider.js), verbose, issuerHost. Returns { issuer, port, pid, discovery(), jwks(),
// rotate({drop}), addClient(meta), setRedirectUris(uris, clientId), state(), stop(), logs() }.
export async function startProvider({
  redirectUris = [], config, verbose = false, issuerHost = '127.0.0.1', timeoutMs = 15000,
} = {}) {
  const args = [path.join(HERE, 'provider.js'), '--port', '0', '--issuer-host', issuerHost];
  for (const u of redirectUris) args.push('--redirect-uri', u);
  if (config) args.push('--config', tmpFile('provider.json', JSON.stringify(config)));
  if (verbose) args.push('--verbose');
  const env = { ...process.env };
  delete env.OP_CONFIG;
  const t = spawnTracked(process.execPath, args, { env, name: 'provider.js' });
  const line = await t.waitLine('stdout', /^\{/, timeoutMs, 'its ready line ({"issuer":...})');
  const { issuer, port, pid } = JSON.parse(line);

  const call = async (method, p, body) => {
    const res = await fetch(issuer + p, {
      method,
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(10000),
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`provider ${method} ${p}: ${res.status} ${text}`);
    return JSON.parse(text);
  };

  return {
    issuer,
    port,
    pid,
    discovery: () => call('GET', '/.well-known/openid-configuration'),
    jwks: () => call('GET', '/jwks'),
    state: () => call('GET', '/__admin/state'),
    rotate: ({ drop = false } = {}) => call('POST', `/__admin/rotate${drop ? '?drop=1' : ''}`),
    addClient: (meta) => call('POST', '/__admin/clients', meta),
    setRedirectUris: (uris, clientId = 'authgate') => call('POST', '/__admin/clients',
      { client_id: clientId, redirect_uris: uris }),
    stop: (signal = 'SIGTERM', timeout = 10000) => stopChild(t.child, signal, timeout),
    logs: () => [...t.out, ...t.err],
  };
}

// ----------------------------------------------------------------------------------------------
// authgate

// Path of the daemon: $AUTHGATE, else the build/ tree, else an in-tree build. Throws when none
// exists (a missing binary is a failure, never a skip).
export function authgateBinary() {
  const candidates = [process.env.AUTHGATE, path.join(REPO_ROOT, 'build/src/authgate'),
    path.join(REPO_ROOT, 'src/authgate')].filter(Boolean);
  const found = candidates.find((c) => existsSync(c));
  if (!found) {
    throw new Error(`authgate binary not found (tried ${candidates.join(', ')}); build it: `
      + 'cd build && make -j2, or set AUTHGATE=/path/to/authgate');
  }
  return found;
}

// Render an object as the config-file TOML subset authgate reads.
export function toToml(obj) {
  const str = (s) => `"${String(s).replace(/[\\"]/g, '\\$&').replace(/\n/g, '\\n').replace(/\t/g, '\\t')}"`;
  const val = (v) => {
    if (Array.isArray(v)) return `[${v.map(val).join(', ')}]`;
    if (typeof v === 'boolean' || typeof v === 'number') return String(v);
    return str(v);
  };
  return Object.entries(obj).filter(([, v]) => v !== undefined)
    .map(([k, v]) => `${k} = ${val(v)}\n`).join('');
}

// 32 random bytes, base64: a valid cookie_secret.
export const newCookieSecret = () => randomBytes(32).toString('base64');

// Start authgate with these arguments (and opts.config, an object written as a config file and
// passed first as --config FILE). Its environment is this process' environment without any
// OAUTH2_PROXY_* / AUTHGATE_* / systemd variables, plus env. Waits for the stderr line
// "listening on http://HOST:PORT". Returns { url, port, pid, stop(signal), kill(), logs(),
// waitLog(re), configFile }. stop() rejects when the daemon printed a sanitizer report.
export async function startAuthgate(args = [], env = {}, { config, timeoutMs = 15000, bin } = {}) {
  const binary = bin ?? authgateBinary();
  const full = [...args];
  let configFile;
  if (config) {
    configFile = tmpFile('authgate.cfg', toToml(config));
    full.unshift('--config', configFile);
  }
  const childEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (/^(OAUTH2_PROXY_|AUTHGATE_)|^(NOTIFY_SOCKET|LISTEN_FDS|LISTEN_PID|LISTEN_FDNAMES|WATCHDOG_USEC|WATCHDOG_PID)$/.test(k)) continue;
    if (/^(https?|all|no)_proxy$/i.test(k)) continue;
    childEnv[k] = v;
  }
  childEnv.ASAN_OPTIONS ??= 'detect_leaks=1:abort_on_error=0:exitcode=23';
  childEnv.UBSAN_OPTIONS ??= 'halt_on_error=1:print_stacktrace=1';
  Object.assign(childEnv, env);

  const t = spawnTracked(binary, full, { env: childEnv, name: 'authgate' });
  const line = await t.waitLine('stderr', /listening on /, timeoutMs, '"listening on http://..."');
  const m = /listening on (http:\/\/(\[[0-9a-fA-F:.]+\]|[^\s:/"]+):(\d+))/.exec(line);
  if (!m) throw new Error(`authgate listens somewhere this harness cannot reach: ${line}`);
  const url = m[1];
  const port = Number(m[3]);

  const sanitizer = () => t.err.filter((l) => /ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:|SUMMARY: (Address|Undefined|Leak)/.test(l));
  return {
    url,
    port,
    pid: t.child.pid,
    configFile,
    process: t.child,
    async stop(signal = 'SIGTERM', timeout = 10000) {
      const r = await stopChild(t.child, signal, timeout);
      const s = sanitizer();
      if (s.length) throw new Error(`authgate sanitizer report:\n${s.slice(0, 10).join('\n')}`);
      return r;
    },
    kill: () => stopChild(t.child, 'SIGKILL'),
    logs: () => [...t.err],
    stdout: () => [...t.out],
    waitLog: (re, timeout = 10000) => t.waitLine('stderr', re, timeout, `a log line matching ${re}`),
  };
}
