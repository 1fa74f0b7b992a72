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
// Path normalisation (off unless asked for: `pathNormalization` or `hcm`): what Envoy's
// HttpConnectionManager does to :path before any filter, so both the check and the upstream see the
// normalised path; see envoyNormalizePath() below for the steps and their sources.
//
//   const envoy = await startEnvoyEmulator({ authz: 'http://127.0.0.1:4180', upstream: echo.url,
//     pathPrefix: '/ext-authz', includeRequestHeadersInCheck: ['cookie'], pathNormalization: 'BASE', ... });
//   envoy.url, envoy.checks (each check request and its answer), envoy.authz (settable),
//   envoy.local (the requests the emulated connection manager answered itself: 400/404/307), envoy.stop()

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

function expand(template, req, reqPath = req.url, authority = req.headers.host) {
  if (typeof template === 'function') return template(req);
  return String(template)
    .replaceAll('%REQ(:authority)%', authority ?? '')
    .replaceAll('%REQ(:path)%', reqPath)
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

// ----------------------------------------------------------------------------------------------
// Path normalisation, as Envoy's HttpConnectionManager (HCM) does it and as Istio configures it.
// An EMULATION written from these sources (read on GitHub, envoyproxy/envoy, googleurl, istio/istio):
//
//   - Envoy's HTTP/1 codec (source/common/http/http1/codec_impl.cc, handlePath) with
//     allow_absolute_url (true unless configured: source/common/http/http1/settings.cc): an absolute-form
//     target "http(s)://authority/path" becomes :authority = authority, :path = /path (and its query).
//   - Envoy source/common/http/conn_manager_impl.cc (ActiveStream::decodeHeaders): a :path that does
//     not start with '/' gets 404 (AbsolutePath); then maybeNormalizePath(): Reject -> 400 with no
//     filter run (so no ext_authz check), Redirect -> 307 with `location: <the new path>`, Continue ->
//     the filters (ext_authz) and the router see the normalised :path.
//   - Envoy source/common/http/conn_manager_utility.cc (maybeNormalizePath), in this order:
//       1. a '#' in :path: 400 (runtime guard http_reject_path_with_fragment, on by default);
//       2. path_with_escaped_slashes_action != KEEP_UNCHANGED: PathUtil::unescapeSlashes();
//          if it changed anything: REJECT_REQUEST -> 400, UNESCAPE_AND_REDIRECT -> 307 (after the
//          steps below), UNESCAPE_AND_FORWARD -> go on with the unescaped path;
//       3. normalize_path: PathUtil::canonicalPath(); failure -> 400;
//       4. merge_slashes: PathUtil::mergeSlashes() (after 3: "to catch potential edge cases with
//          percent encoding").
//   - Envoy source/common/http/path_utility.cc:
//       unescapeSlashes: %2F %2f -> '/', %5C %5c -> '\\' in the part before the first '?';
//       canonicalPath: on the part before the first '?' (query kept as is): first, with the runtime
//         guard strip_dotdot_segments_with_parameters (on; Envoy 1.39.1 / CVE-2026-73551), a segment
//         starting with "..;" becomes ".." and one starting with ".;" becomes "." (literal dots only);
//         then googleurl's url::CanonicalizePath (googleurl url/url_canon_path.cc, the Chromium URL
//         library Envoy links): see canonicalizePath() below;
//       mergeSlashes: when the part before '?' has "//": '/' + the non-empty segments joined by '/'
//         + '/' if it ended with one, then the query.
//     Envoy's tests of these (test/common/http/path_utility_test.cc) give e.g. /a/..\\c -> /c,
//     /%5c%25 unchanged, /a/b/%2E%2E/c -> /a/c, /xyz/.%00../abc -> rejected, /a/%2F%2f/c unchanged.
//   - Istio pilot (the listener builder that fills the HCM), meshConfig.pathNormalization.normalization:
//       NONE                      normalize_path false
//       BASE (default)            normalize_path true
//       MERGE_SLASHES             normalize_path true, merge_slashes true
//       DECODE_AND_MERGE_SLASHES  normalize_path true, merge_slashes true,
//                                 path_with_escaped_slashes_action UNESCAPE_AND_FORWARD
//     and path_with_escaped_slashes_action KEEP_UNCHANGED for the first three. Istio documents the
//     result in "Authorization Policy Normalization" (istio.io/latest/docs/reference/config/security/
//     normalization) and checks it in its integration test (tests/integration/security/
//     normalization_test.go), whose expectations the e2e suite paths.test.js replays against this code.
//   Not emulated: the HTTP/1 codec's own refusals beyond what node:http refuses itself (this server
//   answers 400 to a request line with control characters, bytes above 0x7e or a relative target,
//   before any of this).

// googleurl's kPathCharLookup (url/url_canon_path.cc), per byte: what the canonical path does with it.
const PASS = 0;
const SPECIAL = 1;
const ESCAPE = 2 | SPECIAL; // written as %XX (upper-case hex)
const UNESCAPE = 4; // an escape of it is decoded (%41 -> A)
const INVALID = 8 | SPECIAL; // NUL: written escaped and the canonicalisation fails (Envoy: 400)
const PATH_CHAR = (() => {
  const t = new Uint8Array(256).fill(ESCAPE); // controls and every byte >= 0x7f
  t[0] = INVALID;
  for (let c = 0x21; c < 0x7f; c++) t[c] = PASS;
  for (const c of ' "#%<>?\\^`{|}') t[c.charCodeAt(0)] = ESCAPE;
  for (let c = 0x30; c <= 0x39; c++) t[c] = UNESCAPE;
  for (let c = 0x41; c <= 0x5a; c++) t[c] = UNESCAPE;
  for (let c = 0x61; c <= 0x7a; c++) t[c] = UNESCAPE;
  for (const c of '-_~') t[c.charCodeAt(0)] = UNESCAPE;
  t[0x2e] = SPECIAL; // '.': dot segments (IsDot also takes %2e / %2E)
  return t;
})();

const isHex = (c) => /^[0-9A-Fa-f]$/.test(c ?? '');
const HEX = '0123456789ABCDEF';
const escaped = (code) => `%${HEX[code >> 4]}${HEX[code & 15]}`;
const isUrlSlash = (c) => c === '/' || c === '\\';
// googleurl IsDot: '.' (1 character) or %2e / %2E (3), else 0.
const dotLength = (s, i) => {
  if (s[i] === '.') return 1;
  if (s[i] === '%' && s[i + 1] === '2' && (s[i + 2] === 'e' || s[i + 2] === 'E')) return 3;
  return 0;
};

// googleurl url::CanonicalizePath (DoPath + DoPartialPath) on a path without its query, read as bytes
// (node gives the request-target as latin1). Returns { path, ok }: ok false where googleurl reports
// failure (an escaped or raw NUL), which Envoy answers with 400.
export function canonicalizePath(input) {
  if (input.length === 0) return { path: '/', ok: true };
  let out = isUrlSlash(input[0]) ? '' : '/';
  let ok = true;
  let lastInvalidPercent = -1; // index in `out` of a '%' that did not start a valid escape
  const end = input.length;
  for (let i = 0; i < end; i++) {
    const ch = input[i];
    const code = ch.charCodeAt(0) & 0xff;
    const flags = PATH_CHAR[code];
    if (!(flags & SPECIAL)) {
      out += ch;
      continue;
    }
    const dl = dotLength(input, i);
    if (dl > 0) {
      if (out.length > 0 && out.endsWith('/')) {
        // ClassifyAfterDot: "." or ".." as a whole segment (ended by '/', '\\' or the end)
        const after = i + dl;
        let kind = 'name';
        let consumed = 0;
        if (after === end) kind = 'cur';
        else if (isUrlSlash(input[after])) { kind = 'cur'; consumed = 1; } else {
          const dl2 = dotLength(input, after);
          if (dl2 > 0 && (after + dl2 === end || isUrlSlash(input[after + dl2]))) {
            kind = 'up';
            consumed = dl2 + (after + dl2 === end ? 0 : 1);
          }
        }
        if (kind === 'name') {
          out += '.';
          i += dl - 1;
        } else {
          if (kind === 'up') {
            // BackUpToPreviousSlash: drop the last segment, never above the first '/'
            if (out.length > 1) out = out.slice(0, out.lastIndexOf('/', out.length - 2) + 1);
            if (lastInvalidPercent >= out.length) lastInvalidPercent = -1;
          }
          i += dl + consumed - 1;
        }
      } else {
        out += '.';
        i += dl - 1;
      }
    } else if (ch === '\\') {
      out += '/';
    } else if (ch === '%') {
      if (i + 3 <= end && isHex(input[i + 1]) && isHex(input[i + 2])) {
        const value = parseInt(input.slice(i + 1, i + 3), 16);
        const f = PATH_CHAR[value];
        if (f & UNESCAPE) {
          out += String.fromCharCode(value);
          if (lastInvalidPercent >= 0 && lastInvalidPercent + 3 >= out.length) {
            out = nestedEscapes(input, i + 3, out, lastInvalidPercent);
          }
        } else {
          out += input.slice(i, i + 3); // kept as written (hex case too)
          if (f === INVALID) ok = false;
        }
        i += 2;
      } else {
        lastInvalidPercent = out.length;
        out += '%';
      }
    } else if (flags === INVALID) {
      out += escaped(code);
      ok = false;
    } else {
      out += escaped(code);
    }
  }
  return { path: out, ok };
}

// googleurl CheckForNestedEscapes: after decoding an escape right behind a '%' that began no valid
// escape, make sure the output cannot be read as a new escape ("%%32e" must not become "%2e"): that
// '%' is written as "%25".
function nestedEscapes(input, next, out, pct) {
  let probe = out;
  if (pct === out.length - 2) {
    if (next === input.length || input.charCodeAt(next) >= 0x80) return out;
    probe = out + input[next];
  }
  if (!isHex(probe[pct + 1]) || !isHex(probe[pct + 2])) return out;
  return `${out.slice(0, pct)}%25${out.slice(pct + 1)}`;
}

// PathUtil::unescapeSlashes: %2F %2f -> '/', %5C %5c -> '\\' before the first '?'.
function unescapeSlashes(p) {
  const q = p.indexOf('?');
  const path = q < 0 ? p : p.slice(0, q);
  const out = path.replace(/%2f/gi, '/').replace(/%5c/gi, '\\');
  return { path: out + (q < 0 ? '' : p.slice(q)), found: out !== path };
}

// PathUtil::stripParametersFromDotSegments (before the first '?' or '#'): "..;x" -> "..", ".;x" -> ".".
function stripDotParameters(p) {
  const q = p.search(/[?#]/);
  const path = q < 0 ? p : p.slice(0, q);
  if (!path.includes('.;')) return p;
  const segs = path.split('/').map((s) => {
    if (s.startsWith('..;')) return '..';
    if (s.startsWith('.;')) return '.';
    return s;
  });
  return segs.join('/') + (q < 0 ? '' : p.slice(q));
}

// PathUtil::mergeSlashes.
function mergeSlashes(p) {
  const q = p.indexOf('?');
  const path = q < 0 ? p : p.slice(0, q);
  if (!path.includes('//')) return p;
  const joined = path.split('/').filter(Boolean).join('/');
  return `${path.startsWith('/') ? '/' : ''}${joined}${path.endsWith('/') ? '/' : ''}${q < 0 ? '' : p.slice(q)}`;
}

export const ESCAPED_SLASHES_ACTIONS = Object.freeze(['KEEP_UNCHANGED', 'REJECT_REQUEST', 'UNESCAPE_AND_REDIRECT', 'UNESCAPE_AND_FORWARD']);

// Istio meshConfig.pathNormalization.normalization -> the HCM fields Istio sets.
export const ISTIO_PATH_NORMALIZATION = Object.freeze({
  NONE: Object.freeze({ normalizePath: false, mergeSlashes: false, pathWithEscapedSlashesAction: 'KEEP_UNCHANGED' }),
  BASE: Object.freeze({ normalizePath: true, mergeSlashes: false, pathWithEscapedSlashesAction: 'KEEP_UNCHANGED' }),
  MERGE_SLASHES: Object.freeze({ normalizePath: true, mergeSlashes: true, pathWithEscapedSlashesAction: 'KEEP_UNCHANGED' }),
  DECODE_AND_MERGE_SLASHES: Object.freeze({ normalizePath: true, mergeSlashes: true, pathWithEscapedSlashesAction: 'UNESCAPE_AND_FORWARD' }),
});

// What the HTTP/1 codec and the HCM do with the request-target `target` under `hcm` = { normalizePath,
// mergeSlashes, pathWithEscapedSlashesAction, stripDotSegmentParameters (default true: Envoy >= 1.39.1;
// false: the older releases) }. Returns { action: 'continue' | 'reject' (400) | 'redirect' (307) |
// 'not-found' (404), path, authority (only for an absolute-form target) }: the path the check and the
// upstream get, or the redirect's location.
export function envoyNormalizePath(target, {
  normalizePath = false, mergeSlashes: merge = false, pathWithEscapedSlashesAction = 'KEEP_UNCHANGED',
  stripDotSegmentParameters = true,
} = {}) {
  if (!ESCAPED_SLASHES_ACTIONS.includes(pathWithEscapedSlashesAction)) {
    throw new Error(`pathWithEscapedSlashesAction: ${pathWithEscapedSlashesAction} is none of ${ESCAPED_SLASHES_ACTIONS.join(', ')}`);
  }
  const absolute = /^https?:\/\/([^/?#]*)/i.exec(target);
  const authority = absolute ? { authority: absolute[1] } : {};
  let p = absolute ? target.slice(absolute[0].length) || '/' : target;
  if (!p.startsWith('/')) return { action: 'not-found', path: p, ...authority };
  if (p.includes('#')) return { action: 'reject', path: p, ...authority };
  let action = 'continue';
  if (pathWithEscapedSlashesAction !== 'KEEP_UNCHANGED') {
    const u = unescapeSlashes(p);
    p = u.path;
    if (u.found && pathWithEscapedSlashesAction === 'REJECT_REQUEST') return { action: 'reject', path: p, ...authority };
    if (u.found && pathWithEscapedSlashesAction === 'UNESCAPE_AND_REDIRECT') action = 'redirect';
  }
  if (normalizePath) {
    if (stripDotSegmentParameters) p = stripDotParameters(p);
    const q = p.indexOf('?');
    const c = canonicalizePath(q < 0 ? p : p.slice(0, q));
    if (!c.ok) return { action: 'reject', path: p, ...authority };
    p = c.path + (q < 0 ? '' : p.slice(q));
  }
  if (merge) p = mergeSlashes(p);
  return { action, path: p, ...authority };
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
  // Path normalisation (see envoyNormalizePath): an Istio level ('NONE', 'BASE', 'MERGE_SLASHES',
  // 'DECODE_AND_MERGE_SLASHES') and/or HCM fields that override it. Neither: the path is passed on
  // untouched, as before (no HCM behaviour emulated at all).
  pathNormalization,
  hcm,
} = {}) {
  const routeRemoves = matcher(requestHeadersToRemove);
  if (pathNormalization !== undefined && !ISTIO_PATH_NORMALIZATION[pathNormalization]) {
    throw new Error(`pathNormalization: ${pathNormalization} is none of ${Object.keys(ISTIO_PATH_NORMALIZATION).join(', ')}`);
  }
  const normalization = pathNormalization === undefined && hcm === undefined
    ? undefined
    : { ...ISTIO_PATH_NORMALIZATION[pathNormalization ?? 'NONE'], ...hcm };
  const local = [];
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
    // ---- the connection manager's own answers, before any filter (no check)
    let reqPath = req.url;
    let authority;
    if (normalization) {
      const n = envoyNormalizePath(req.url, normalization);
      authority = n.authority;
      if (n.action !== 'continue') {
        const status = { reject: 400, redirect: 307, 'not-found': 404 }[n.action];
        local.push({ method: req.method, url: req.url, status, path: n.path });
        res.writeHead(status, { 'content-length': '0', ...(status === 307 ? { location: n.path } : {}) });
        return res.end();
      }
      reqPath = n.path;
    }
    const client = headerLists(req.rawHeaders);
    // The ingress gateway's own x-forwarded-for / x-request-id (Envoy HCM, use_remote_address).
    const xff = [...(client.get('x-forwarded-for') ?? []), remoteAddr(req)].join(', ');
    const requestId = client.get('x-request-id')?.[0] ?? randomUUID();

    // ---- the check request
    const check = { host: authority ?? req.headers.host ?? '' };
    for (const [k, vs] of client) {
      if (k === 'host' || k === 'content-length' || k === 'x-forwarded-for' || HOP_BY_HOP.has(k)) continue;
      if (inCheck(k)) check[k] = vs.join(',');
    }
    // Envoy appends the downstream address to x-forwarded-for (the client's value is kept only when
    // allow-listed), marks the request internal and announces its timeout.
    check['x-forwarded-for'] = inCheck('x-forwarded-for') ? xff : remoteAddr(req);
    check['x-envoy-internal'] = 'true';
    check['x-envoy-expected-rq-timeout-ms'] = String(timeoutMs);
    for (const [k, t] of Object.entries(includeAdditionalHeadersInCheck)) check[k.toLowerCase()] = expand(t, req, reqPath, authority ?? req.headers.host);
    check['x-request-id'] = requestId;
    check['content-length'] = '0';
    const path = pathPrefix + reqPath;
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
    if (authority !== undefined) up.set('host', [authority]);
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
      upstreamAnswer = await exchange(upstream, { method: req.method, path: reqPath, headers: upHeaders, body, timeoutMs: 10000 });
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
    local,
    // The ext_authz service's base URL (may be set after start, e.g. once authgate's port is known).
    get authz() { return authz; },
    set authz(u) { authz = u; },
    stop: () => new Promise((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}
