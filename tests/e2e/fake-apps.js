// SPDX-License-Identifier: Apache-2.0
// Small node:http stand-ins shaped like the apps of the conf/proxy-*.cfg.example samples, for
// apps.test.js. Each trusts what a real one trusts and nothing more, so a test that passes through
// authgate shows that authgate gave the app what it needs:
//   - Grafana-like (auth.proxy): the user is the header Grafana is told to read (X-Forwarded-Email);
//     without it 401. A WebSocket at /api/live/ws (Grafana Live) echoes, for that user only.
//   - Jaeger-like: no login at all; / is the UI page, /api/... the JSON API.
//   - Kiali-like (`header` strategy): /api/... needs Authorization: Bearer <JWT> signed by the
//     provider (JWKS), issued by it, for our client, unexpired; the user is its sub/email.
// Every app records the requests (and upgrades) it received: { method, url, headers } with headers
// as [[lowercase name, value], ...] in arrival order, so duplicates and odd spellings show.

import http from 'node:http';

import { WebSocketServer } from 'ws';

import { decodeJwt, verifyJwt } from './oidc.js';

const rawHeaders = (req) => {
  const out = [];
  for (let i = 0; i < req.rawHeaders.length; i += 2) out.push([req.rawHeaders[i].toLowerCase(), req.rawHeaders[i + 1]]);
  return out;
};

// All values of header `name` (lowercase) in a recorded request.
export const headerValues = (rec, name) => rec.headers.filter(([k]) => k === name).map(([, v]) => v);

function send(res, status, body, type = 'application/json') {
  const text = type === 'application/json' ? JSON.stringify(body) : body;
  res.writeHead(status, { 'content-type': `${type}; charset=utf-8`, 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

// Listen on 127.0.0.1:0 with handler(req, res, rec); onUpgrade(req, socket, head, rec) when given.
async function listen(name, handler, onUpgrade) {
  const requests = [];
  const upgrades = [];
  const server = http.createServer(async (req, res) => {
    const rec = { method: req.method, url: req.url, headers: rawHeaders(req) };
    requests.push(rec);
    for await (const _ of req) { /* drain */ }
    try {
      await handler(req, res, rec);
    } catch (err) {
      send(res, 500, { error: `${name}: ${err.message}` });
    }
  });
  server.on('upgrade', (req, socket, head) => {
    const rec = { method: req.method, url: req.url, headers: rawHeaders(req) };
    upgrades.push(rec);
    if (!onUpgrade) {
      socket.end('HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
      return;
    }
    onUpgrade(req, socket, head, rec);
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address();
  return {
    name,
    port,
    url: `http://127.0.0.1:${port}`,
    requests,
    upgrades,
    server,
    reset() {
      requests.length = 0;
      upgrades.length = 0;
    },
    stop: () => new Promise((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}

const esc = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

// ----------------------------------------------------------------------------------------------
// Grafana-like: auth.proxy with header_name = X-Forwarded-Email (header_property = email),
// headers = Name:X-Forwarded-Preferred-Username Groups:X-Forwarded-Groups.

export async function startGrafanaLike({ headerName = 'x-forwarded-email' } = {}) {
  const userOf = (req) => {
    const v = req.headers[headerName];
    return typeof v === 'string' && v !== '' ? v : undefined;
  };
  const wss = new WebSocketServer({ noServer: true });
  const app = await listen('grafana-like', (req, res) => {
    const email = userOf(req);
    const path = new URL(req.url, 'http://x').pathname;
    if (!email) return send(res, 401, { message: 'Unauthorized', missing: headerName });
    const who = {
      email, login: email, name: req.headers['x-forwarded-preferred-username'] ?? null,
      groups: req.headers['x-forwarded-groups']?.split(',') ?? [],
    };
    if (path === '/api/user') return send(res, 200, who);
    // Any other path: the "dashboard" page, whose script opens Grafana Live's WebSocket, sends a
    // random token, and checks the echo (same token, same user); the verdict goes into the page.
    return send(res, 200, `<!doctype html>
<html><head><title>Grafana-like</title></head><body>
<h1>Grafana-like</h1>
<p>Signed in as <b id="user">${esc(email)}</b></p>
<p>Live: <span id="live" data-result="pending">connecting</span></p>
<script>
  const live = document.getElementById('live');
  const token = Math.random().toString(36).slice(2);
  const ws = new WebSocket(location.origin.replace(/^http/, 'ws') + '/api/live/ws');
  ws.onopen = () => ws.send(token);
  ws.onmessage = (ev) => {
    const m = JSON.parse(ev.data);
    const ok = m.echo === token && m.user === document.getElementById('user').textContent;
    live.dataset.result = ok ? 'pass' : 'fail';
    live.textContent = ev.data;
    ws.close();
  };
  ws.onerror = () => { live.dataset.result = 'error'; live.textContent = 'websocket error'; };
</script>
</body></html>
`, 'text/html');
  }, (req, socket, head) => {
    const email = userOf(req);
    if (new URL(req.url, 'http://x').pathname !== '/api/live/ws') {
      socket.end('HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
      return;
    }
    if (!email) {
      socket.end('HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nContent-Length: 26\r\nConnection: close\r\n\r\n{"message":"Unauthorized"}');
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      ws.on('message', (data) => ws.send(JSON.stringify({ echo: data.toString(), user: email })));
    });
  });
  const stop = app.stop;
  app.stop = async () => {
    for (const c of wss.clients) c.terminate();
    wss.close();
    await stop();
  };
  return app;
}

// ----------------------------------------------------------------------------------------------
// Jaeger-like: the query service's UI and JSON API, without any login.

export async function startJaegerLike() {
  return listen('jaeger-like', (req, res) => {
    const u = new URL(req.url, 'http://x');
    if (u.pathname === '/api/services') return send(res, 200, { data: ['frontend', 'driver'], total: 2, errors: null });
    if (u.pathname === '/api/traces') {
      return send(res, 200, {
        data: [{ traceID: '4bf92f3577b34da6', spans: [{ operationName: 'HTTP GET /dispatch' }], processes: {} }],
        total: 1, limit: Number(u.searchParams.get('limit') ?? 20), errors: null,
      });
    }
    if (u.pathname.startsWith('/api/')) return send(res, 404, { data: null, errors: [{ code: 404, msg: 'not found' }] });
    return send(res, 200, '<!doctype html><html><head><title>Jaeger UI</title></head><body><div id="jaeger-ui-root">Jaeger UI</div></body></html>\n', 'text/html');
  });
}

// ----------------------------------------------------------------------------------------------
// Kiali-like: the `header` strategy. issuer and clientId are what the Kubernetes API server was
// told (--oidc-issuer-url, --oidc-client-id); jwks() returns the provider's key set.

export async function startKialiLike({ issuer, clientId, jwks }) {
  const check = async (req) => {
    const auth = req.headers.authorization;
    const m = /^Bearer ([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+)$/.exec(auth ?? '');
    if (!m) return { error: auth ? 'Authorization is not a Bearer JWT' : 'no Authorization header' };
    let payload;
    try {
      ({ payload } = verifyJwt(m[1], await jwks(), { algs: ['RS256', 'PS256', 'ES256'] }));
    } catch (err) {
      return { error: `token refused: ${err.message}` };
    }
    const aud = Array.isArray(payload.aud) ? payload.aud : [payload.aud];
    if (payload.iss !== issuer) return { error: `iss ${payload.iss} is not ${issuer}` };
    if (!aud.includes(clientId)) return { error: `aud ${JSON.stringify(payload.aud)} lacks ${clientId}` };
    if (typeof payload.exp !== 'number' || payload.exp * 1000 < Date.now()) return { error: 'token expired' };
    return { claims: payload };
  };
  return listen('kiali-like', async (req, res) => {
    const u = new URL(req.url, 'http://x');
    if (!u.pathname.startsWith('/api/')) return send(res, 200, '<!doctype html><title>Kiali</title><div id="root">Kiali</div>\n', 'text/html');
    const r = await check(req);
    if (r.error) return send(res, 401, { error: r.error });
    if (u.pathname === '/api/namespaces') {
      return send(res, 200, {
        namespaces: [{ name: 'bookinfo' }, { name: 'istio-system' }],
        user: { sub: r.claims.sub, email: r.claims.email ?? null, iss: r.claims.iss, aud: r.claims.aud },
        verified: true,
      });
    }
    return send(res, 404, { error: 'not found' });
  });
}

export { decodeJwt };
