// SPDX-License-Identifier: Apache-2.0
//
//   *** EMULATION, NOT ENVOY ***
//
// A small Node.js HTTP proxy that behaves like Envoy's external authorization HTTP filter
// (envoy.filters.http.ext_authz with an http_service), configured the way Istio's
// `envoyExtAuthzHttp` extension provider configures it. Envoy itself cannot run on this machine,
// so this reproduces its documented behaviour (the design notes, section 3 "Envoy ext_authz HTTP
// contract"; Envoy's ext_authz HTTP filter documentation; Istio's
// MeshConfig.ExtensionProvider.EnvoyExternalAuthorizationHttpProvider):
//
// Check request, for every client request:
//   - the client's method; path = pathPrefix + the client's path with its query; no body and
//     `content-length: 0`; `host` = the client's Host (:authority);
//   - client headers copied only when allow-listed (includeRequestHeadersInCheck; `authorization`
//     always), names lowercased, repeated headers merged into one value joined with ',';
//   - includeAdditionalHeadersInCheck (fixed values, templates %REQ(:authority)%, %REQ(:path)%,
//     %REQ(:scheme)%, %DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%) override client values;
//   - Envoy's own: `x-envoy-internal: true`, the client address appended to `x-forwarded-for`,
//     `x-envoy-expected-rq-timeout-ms`.
// Decision:
//   - exactly 200 allows: the check response's headers named in headersToUpstreamOnAllow
//     replace those of the upstream request (none when the list is empty); the request headers
//     listed in the check response's `x-envoy-auth-headers-to-remove` are dropped; the headers
//     named in headersToDownstreamOnAllow are added to the client's response (every Set-Cookie
//     kept);
//   - any other status (201, 202, 302, 401, 403 ...) denies: that status and body go to the
//     client, with the check response's headers named in headersToDownstreamOnDeny plus
//     `location`, `www-authenticate` and `content-length` (every header but Host when that list is
//     empty);
//   - a 5xx answer, a timeout or a failed connection: statusOnError (403) with an empty body, or
//     the request passes untouched when failOpen.
// Route level (the router filter, after every HTTP filter, ext_authz included, has run):
//   - requestHeadersToRemove: the route's request_headers_to_remove (Istio: VirtualService
//     `headers.request.remove`), applied to the upstream request last, so it also removes a header
//     the check answer set;
//   - honorAuthHeadersToRemove = false models a gateway that ignores the check answer's
//     `x-envoy-auth-headers-to-remove` (to test a recipe that drops forged headers by itself).
// Header name lists accept exact names (any case), `prefix*` and `*suffix`.
// The upstream request carries the client's headers (minus hop-by-hop ones) plus
// x-forwarded-for / x-forwarded-proto / x-request-id, like an Istio ingress gateway.
//
//   const envoy = await startEnvoyEmulator({ authz: 'http://127.0.0.1:4180', upstream: echo.url,
//     pathPrefix: '/ext-authz', includeRequestHeadersInCheck: ['cookie'], ... });
//   envoy.url, envoy.checks (each check request and its answer), envoy.authz (settable), envoy.stop()

import http from 'node:http';
import { randomUUID } from 'node:crypto';

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te', 'trailer']);

// Istio's oauth2-proxy example (extensionProviders[].envoyExtAuthzHttp).
export const ISTIO_OAUTH2_PROXY_EXAMPLE = Object.freeze({
  includeRequestHeadersInCheck: ['authorization', 'cookie', 'x-forwarded-for'],
  headersToUpstreamOnAllow: ['authorization', 'cookie', 'x-auth-request-*'],
  headersToDownstreamOnAllow: ['set-cookie'],
  headersToDownstreamOnDeny: ['content-type', 'set-cookie', 'location'],
});

function matcher(list) {
  const rules = (list ?? []).map((p) => p.toLowerCase());
  return (name) => {
    const n = name.toLowerCase();
    return rules.some((r) => {
      if (r.endsWith('*')) return n.startsWith(r.slice(0, -1));
      if (r.startsWith('*')) return n.endsWith(r.slice(1));
      return n === r;
    });
  };
}

// Headers of an IncomingMessage / response as lowercase name -> [values], arrival order.
function headerLists(rawHeaders) {
  const out = new Map();
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const k = rawHeaders[i].toLowerCase();
    if (!out.has(k)) out.set(k, []);
    out.get(k).push(rawHeaders[i + 1]);
  }
  return out;
}

const remoteAddr = (req) => (req.socket.remoteAddress ?? '').replace(/^::ffff:/, '');

function expand(template, req) {
  if (typeof template === 'function') return template(req);
  return String(template)
    .replaceAll('%REQ(:authority)%', req.headers.host ?? '')
    .replaceAll('%REQ(:path)%', req.url)
    .replaceAll('%REQ(:method)%', req.method)
    .replaceAll('%REQ(:scheme)%', 'http')
    .replaceAll('%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%', remoteAddr(req));
}

// One HTTP exchange; resolves { status, rawHeaders, body (Buffer) } or rejects on network error
// / timeout.
function exchange(target, { method, path, headers, body, timeoutMs }) {
  const u = new URL(target);
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: u.hostname, port: u.port, method, path, headers, setHost: false, agent: false,
    }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, rawHeaders: res.rawHeaders, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`timeout after ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end(body);
  });
}

export async function startEnvoyEmulator({
  authz: authzUrl,
  upstream,
  pathPrefix = '',
  includeRequestHeadersInCheck = ISTIO_OAUTH2_PROXY_EXAMPLE.includeRequestHeadersInCheck,
  includeAdditionalHeadersInCheck = {},
  headersToUpstreamOnAllow = ISTIO_OAUTH2_PROXY_EXAMPLE.headersToUpstreamOnAllow,
  headersToDownstreamOnAllow = ISTIO_OAUTH2_PROXY_EXAMPLE.headersToDownstreamOnAllow,
  headersToDownstreamOnDeny = ISTIO_OAUTH2_PROXY_EXAMPLE.headersToDownstreamOnDeny,
  timeoutMs = 2000,
  statusOnError = 403,
  failOpen = false,
  requestHeadersToRemove = [],
  honorAuthHeadersToRemove = true,
  port = 0,
} = {}) {
  const routeRemoves = matcher(requestHeadersToRemove);
  const inCheck = matcher(['authorization', ...includeRequestHeadersInCheck]);
  const toUpstream = matcher(headersToUpstreamOnAllow);
  const toClientOnAllow = matcher(headersToDownstreamOnAllow);
  const denyList = headersToDownstreamOnDeny ?? [];
  const toClientOnDeny = denyList.length
    ? matcher([...denyList, 'location', 'www-authenticate', 'content-length'])
    : (n) => n.toLowerCase() !== 'host';
  const checks = [];
  let authz = authzUrl;

  const server = http.createServer(async (req, res) => {
    const body = await new Promise((resolve) => {
      const chunks = [];
      req.on('data', (c) => chunks.push(c));
      req.on('end', () => resolve(Buffer.concat(chunks)));
    });
    const client = headerLists(req.rawHeaders);
    // The ingress gateway's own x-forwarded-for / x-request-id (Envoy HCM, use_remote_address).
    const xff = [...(client.get('x-forwarded-for') ?? []), remoteAddr(req)].join(', ');
    const requestId = client.get('x-request-id')?.[0] ?? randomUUID();

    // ---- the check request
    const check = { host: req.headers.host ?? '' };
    for (const [k, vs] of client) {
      if (k === 'host' || k === 'content-length' || k === 'x-forwarded-for' || HOP_BY_HOP.has(k)) continue;
      if (inCheck(k)) check[k] = vs.join(',');
    }
    // Envoy appends the downstream address to x-forwarded-for (the client's value is kept only when
    // allow-listed), marks the request internal and announces its timeout.
    check['x-forwarded-for'] = inCheck('x-forwarded-for') ? xff : remoteAddr(req);
    check['x-envoy-internal'] = 'true';
    check['x-envoy-expected-rq-timeout-ms'] = String(timeoutMs);
    for (const [k, t] of Object.entries(includeAdditionalHeadersInCheck)) check[k.toLowerCase()] = expand(t, req);
    check['x-request-id'] = requestId;
    check['content-length'] = '0';
    const path = pathPrefix + req.url;
    const record = { method: req.method, path, headers: { ...check }, status: undefined, error: undefined };
    checks.push(record);

    let answer;
    try {
      answer = await exchange(authz, { method: req.method, path, headers: check, timeoutMs });
      record.status = answer.status;
      record.responseHeaders = headerLists(answer.rawHeaders);
    } catch (err) {
      record.error = err.message;
    }

    if (!answer || answer.status >= 500) {
      if (!failOpen) {
        res.writeHead(statusOnError, { 'content-length': '0', date: new Date().toUTCString() });
        return res.end();
      }
      answer = undefined; // fail open: forward untouched
    } else if (answer.status !== 200) {
      // ---- denied: the check's status and body go to the client
      const out = [];
      for (let i = 0; i < answer.rawHeaders.length; i += 2) {
        const k = answer.rawHeaders[i].toLowerCase();
        if (HOP_BY_HOP.has(k) || k === 'content-length' || !toClientOnDeny(k)) continue;
        out.push(answer.rawHeaders[i], answer.rawHeaders[i + 1]);
      }
      out.push('content-length', String(answer.body.length));
      res.writeHead(answer.status, out);
      return res.end(answer.body);
    }

    // ---- allowed: build the upstream request
    const up = new Map();
    for (const [k, vs] of client) {
      if (HOP_BY_HOP.has(k) || k === 'content-length') continue;
      up.set(k, [...vs]);
    }
    up.set('x-forwarded-for', [xff]);
    up.set('x-forwarded-proto', ['http']);
    up.set('x-request-id', [requestId]);
    up.set('x-envoy-external-address', [remoteAddr(req)]);
    const clientExtra = [];
    if (answer) {
      const a = headerLists(answer.rawHeaders);
      for (const [k, vs] of a) {
        if (k === 'x-envoy-auth-headers-to-remove' || HOP_BY_HOP.has(k) || k === 'content-length') continue;
        if (toUpstream(k)) up.set(k, [...vs]); // replaces the client's value
        if (toClientOnAllow(k)) for (const v of vs) clientExtra.push(k, v);
      }
      for (const v of honorAuthHeadersToRemove ? a.get('x-envoy-auth-headers-to-remove') ?? [] : []) {
        for (const name of v.split(',').map((s) => s.trim().toLowerCase()).filter(Boolean)) {
          if (name !== 'host' && !name.startsWith(':')) up.delete(name);
        }
      }
    }
    for (const k of [...up.keys()]) if (k !== 'host' && routeRemoves(k)) up.delete(k);
    const upHeaders = [];
    for (const [k, vs] of up) for (const v of vs) upHeaders.push(k, v);
    if (body.length) upHeaders.push('content-length', String(body.length));
    let upstreamAnswer;
    try {
      upstreamAnswer = await exchange(upstream, { method: req.method, path: req.url, headers: upHeaders, body, timeoutMs: 10000 });
    } catch (err) {
      res.writeHead(503, { 'content-type': 'text/plain' });
      return res.end(`upstream connect error: ${err.message}`);
    }
    const out = [];
    for (let i = 0; i < upstreamAnswer.rawHeaders.length; i += 2) {
      const k = upstreamAnswer.rawHeaders[i].toLowerCase();
      if (HOP_BY_HOP.has(k) || k === 'content-length') continue;
      out.push(upstreamAnswer.rawHeaders[i], upstreamAnswer.rawHeaders[i + 1]);
    }
    out.push(...clientExtra, 'content-length', String(upstreamAnswer.body.length));
    res.writeHead(upstreamAnswer.status, out);
    res.end(upstreamAnswer.body);
  });

  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', resolve);
  });
  const actual = server.address().port;
  return {
    url: `http://127.0.0.1:${actual}`,
    port: actual,
    checks,
    // The ext_authz service's base URL (may be set after start, e.g. once authgate's port is known).
    get authz() { return authz; },
    set authz(u) { authz = u; },
    stop: () => new Promise((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}
