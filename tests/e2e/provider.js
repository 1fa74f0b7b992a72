#!/usr/bin/env node
// SPDX-License-Identifier: Apache-2.0
// A real OpenID Provider for authgate's end-to-end tests, built on the `oidc-provider` package.
//
//   node provider.js --port 0 --issuer-host 127.0.0.1 [--redirect-uri URI]... [--config FILE] [--verbose]
//
// Prints one JSON line on stdout when ready: {"issuer":"http://127.0.0.1:PORT","port":PORT,"pid":N}.
// Configuration (all optional) comes from --config FILE or the environment variable OP_CONFIG
// (inline JSON; the file wins key by key), see DEFAULTS below:
//   clients         client metadata objects, upserted over the defaults by client_id
//   redirectUris    redirect_uris of the default `authgate` client (--redirect-uri adds to them)
//   accounts        { id: { password, ...claims } }, merged over the default users
//   ttl             token lifetimes in seconds, e.g. { "IdToken": 30, "RefreshToken": 600 }
//   signingAlgs     signing keys to create, first is the default ("RS256", "PS256", "ES256", "EdDSA")
//   rotateRefreshToken  true (default): every refresh grant returns a new refresh token and
//                   consumes the old one (reusing a consumed one revokes the whole grant)
//   resourceServers { indicator: { audience, scope, ttl } } for JWT access tokens (RFC 8707)
//   defaultResource the resource indicator used when a client_credentials request names none
//   tokenClaims     extra claims of every access token (JWT and opaque; introspection shows them),
//                   default { org: { tenant: "acme", id: 42 }, "https://authgate.test/roles": [...] }
//
// Besides the OpenID endpoints, the same port serves (loopback test use only, no auth):
//   GET  /interaction/:uid          login form (inputs `login`, `password`), or auto-consent
//   POST /interaction/:uid/login    check the password; bad -> the form again with an error
//   GET  /interaction/:uid/abort    finish with error=access_denied
//   POST /__admin/rotate[?drop=1]   new signing keys first; old ones kept for verification
//                                   (dropped with drop=1). Answers {"kids":[...],"signing":kid}
//   POST /__admin/clients           JSON client metadata (object or array): upsert clients
//   GET  /__admin/state             {"kids":[...],"clients":[client ids],"accounts":[ids],
//                                   "refreshGrants":N,"idTokenRewrites":N,"rewritePending":bool}
//   POST /__admin/accounts          {id: {claims...}}: merge claims into accounts (new ids are created;
//                                   a claim set to null is removed). The next ID token (login or
//                                   refresh) and userinfo answer carry them.
//   POST /__admin/token-claims      {accountId: {claims...} | null}: extra claims of the access tokens
//                                   issued from now on for that account (introspection shows them),
//                                   over tokenClaims; null forgets the account's extras
//   POST /__admin/sign              {payload, header?}: a JWS signed with the provider's current
//                                   signing key (iss, iat, exp default to the issuer, now, now+600).
//                                   Answers {"jwt":"...","kid":"..."}
//   POST /__admin/next-refresh-id-token  {mode?, claims?, drop?}: rewrite the id_token of the NEXT
//                                   refresh_token grant answer only (one shot), see rewriteIdToken():
//                                   mode "resign" (default: claims merged over the real ID token's,
//                                   `drop` names removed, signed again with the provider's own key and
//                                   kid), "bad-signature" (same, then the signature is corrupted),
//                                   "foreign-key" (signed by a fresh key under the provider's kid),
//                                   "alg-none", "remove" (no id_token in the answer)
//
// The provider is quiet by default (only errors, on stderr); --verbose (or OP_VERBOSE=1) logs
// every request and every oidc-provider error event.

import {
  constants as cryptoConstants, createPrivateKey, generateKeyPairSync, randomBytes, sign as cryptoSign,
} from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { parseArgs } from 'node:util';

// ----------------------------------------------------------------------------------------------
// Command line and configuration

const { values: argv } = parseArgs({
  options: {
    port: { type: 'string', default: '0' },
    'issuer-host': { type: 'string', default: '127.0.0.1' },
    bind: { type: 'string', default: '127.0.0.1' },
    'redirect-uri': { type: 'string', multiple: true, default: [] },
    config: { type: 'string' },
    verbose: { type: 'boolean', default: false },
    help: { type: 'boolean', default: false },
  },
  strict: true,
});
if (argv.help) {
  process.stdout.write('usage: node provider.js [--port N] [--issuer-host H] [--bind ADDR] '
    + '[--redirect-uri URI]... [--config FILE] [--verbose]\n(see the comment at the top of provider.js)\n');
  process.exit(0);
}

const verbose = argv.verbose || process.env.OP_VERBOSE === '1';

function loadConfig() {
  const cfg = {};
  if (process.env.OP_CONFIG) Object.assign(cfg, JSON.parse(process.env.OP_CONFIG));
  if (argv.config) Object.assign(cfg, JSON.parse(readFileSync(argv.config, 'utf8')));
  return cfg;
}

const DEFAULT_ACCOUNTS = {
  alice: {
    password: 'alice-pw', email: 'alice@example.com', email_verified: true,
    groups: ['admins', 'devs'], preferred_username: 'alice', name: 'Alice Admin',
  },
  bob: {
    password: 'bob-pw', email: 'bob@other.org', email_verified: true,
    groups: ['devs'], preferred_username: 'bob', name: 'Bob Builder',
  },
  carol: {
    password: 'carol-pw', email: 'carol@example.com', email_verified: false,
    groups: [], preferred_username: 'carol', name: 'Carol Unverified',
  },
  // An address whose last '@' and first '@' give different domains: email-domain checks must use
  // the part after the last '@' (example.com) -- or refuse it -- but never evil.com.
  mallory: {
    password: 'mallory-pw', email: 'attacker@evil.com@example.com', email_verified: true,
    groups: [], preferred_username: 'mallory', name: 'Mallory',
  },
};

const cfg = loadConfig();
const accounts = { ...DEFAULT_ACCOUNTS, ...(cfg.accounts ?? {}) };
const signingAlgs = cfg.signingAlgs ?? ['RS256'];
const rotateRefresh = cfg.rotateRefreshToken ?? true;
const defaultResource = cfg.defaultResource ?? 'urn:authgate:api';
const resourceServers = cfg.resourceServers ?? {};
const tokenClaims = cfg.tokenClaims ?? { org: { tenant: 'acme', id: 42 }, 'https://authgate.test/roles': ['reader', 'writer'] };
// Per-account extra access-token claims set through /__admin/token-claims.
const accountTokenClaims = new Map();

// Clients by id; the admin endpoint upserts into this map and rebuilds the provider.
const clients = new Map();
function upsertClient(meta) {
  if (!meta || typeof meta.client_id !== 'string') throw new Error('client metadata needs a client_id');
  clients.set(meta.client_id, { ...(clients.get(meta.client_id) ?? {}), ...meta });
}
upsertClient({
  client_id: 'authgate',
  client_secret: 'authgate-secret',
  // client_secret_post is accepted too: oidc-provider treats basic and post as one method.
  token_endpoint_auth_method: 'client_secret_basic',
  grant_types: ['authorization_code', 'refresh_token'],
  response_types: ['code'],
  redirect_uris: [...(cfg.redirectUris ?? []), ...argv['redirect-uri']],
});
upsertClient({
  client_id: 'api-client',
  client_secret: 'api-secret',
  token_endpoint_auth_method: 'client_secret_basic',
  grant_types: ['client_credentials'],
  response_types: [],
  redirect_uris: [],
});
for (const c of cfg.clients ?? []) upsertClient(c);
// oidc-provider insists on a redirect URI for a code client; authgate's default address is the
// harmless placeholder until a test registers its real one.
for (const c of clients.values()) {
  if ((c.response_types ?? ['code']).includes('code') && !c.redirect_uris?.length) {
    c.redirect_uris = ['http://127.0.0.1:4180/oauth2/callback'];
  }
}

// ----------------------------------------------------------------------------------------------
// Signing keys

function newKey(alg) {
  const params = {
    RS256: ['rsa', { modulusLength: 2048 }],
    PS256: ['rsa', { modulusLength: 2048 }],
    ES256: ['ec', { namedCurve: 'P-256' }],
    EdDSA: ['ed25519', {}],
  }[alg];
  if (!params) throw new Error(`unsupported signing alg ${alg}`);
  const { privateKey } = generateKeyPairSync(...params);
  const jwk = privateKey.export({ format: 'jwk' });
  // A short unique kid that says which alg it is for, so test failures are readable.
  return { ...jwk, alg, use: 'sig', kid: `${alg.toLowerCase()}-${randomBytes(6).toString('hex')}` };
}

// Newest first: oidc-provider signs with the first key that fits the alg.
let keys = signingAlgs.map(newKey);

// JWS with the provider's own keys (the admin hooks that mint or rewrite tokens).

const SIGN = {
  RS256: { hash: 'sha256' },
  PS256: { hash: 'sha256', opts: { padding: cryptoConstants.RSA_PKCS1_PSS_PADDING, saltLength: 32 } },
  ES256: { hash: 'sha256', opts: { dsaEncoding: 'ieee-p1363' } },
  EdDSA: { hash: null },
};
const b64json = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');

// Sign payload with jwk (a private JWK of `keys`, or another key under its kid).
function signWith(jwk, payload, header = {}) {
  const h = { alg: jwk.alg, typ: 'JWT', kid: jwk.kid, ...header };
  const input = `${b64json(h)}.${b64json(payload)}`;
  if (h.alg === 'none') return `${input}.`;
  const { hash, opts = {} } = SIGN[jwk.alg];
  const key = createPrivateKey({ key: jwk, format: 'jwk' });
  return `${input}.${cryptoSign(hash, Buffer.from(input), { key, ...opts }).toString('base64url')}`;
}

function decodeJws(jws) {
  const [h, p] = String(jws).split('.');
  return { header: JSON.parse(Buffer.from(h, 'base64url')), payload: JSON.parse(Buffer.from(p, 'base64url')) };
}

// The next refresh answer's id_token, rewritten as /__admin/next-refresh-id-token asked.
let pendingRewrite;
let refreshGrants = 0;
let idTokenRewrites = 0;
function rewriteIdToken(idToken, { mode = 'resign', claims = {}, drop = [] }) {
  const { header, payload: real } = decodeJws(idToken);
  const payload = { ...real, ...claims };
  for (const c of drop) delete payload[c];
  const own = keys.find((k) => k.kid === header.kid) ?? keys[0];
  switch (mode) {
    case 'resign':
      return signWith(own, payload);
    case 'bad-signature': {
      const jws = signWith(own, payload);
      const sig = Buffer.from(jws.split('.')[2], 'base64url');
      sig[sig.length >> 1] ^= 0x5a;
      return `${jws.split('.').slice(0, 2).join('.')}.${sig.toString('base64url')}`;
    }
    case 'foreign-key':
      return signWith({ ...newKey(own.alg), kid: own.kid }, payload);
    case 'alg-none':
      return signWith(own, payload, { alg: 'none' });
    default:
      throw new Error(`unknown rewrite mode ${mode}`);
  }
}

// ----------------------------------------------------------------------------------------------
// Storage: one in-memory store for the whole process (oidc-provider's own memory adapter is per
// Provider instance), so sessions, grants, codes and tokens survive the rebuild that key
// rotation and client changes do.

const store = new Map(); // "Model:id" -> { payload, expiresAt (ms) }
const byGrant = new Map(); // grantId -> Set of keys (for revokeByGrantId)
const byUid = new Map(); // session uid -> id
const byUserCode = new Map(); // device flow user code -> id
const CLOCK_TOLERANCE_MS = 15000; // keep expired entries a little, so the provider says "expired"

class SharedMemoryAdapter {
  constructor(model) {
    this.model = model;
  }

  key(id) {
    return `${this.model}:${id}`;
  }

  async upsert(id, payload, expiresIn) {
    const key = this.key(id);
    const expiresAt = expiresIn ? Date.now() + expiresIn * 1000 + CLOCK_TOLERANCE_MS : Infinity;
    store.set(key, { payload, expiresAt });
    if (payload.grantId) {
      if (!byGrant.has(payload.grantId)) byGrant.set(payload.grantId, new Set());
      byGrant.get(payload.grantId).add(key);
    }
    if (payload.uid) byUid.set(payload.uid, id);
    if (payload.userCode) byUserCode.set(payload.userCode, id);
  }

  async find(id) {
    const key = this.key(id);
    const e = store.get(key);
    if (e && e.expiresAt <= Date.now()) store.delete(key);
    return e && e.expiresAt > Date.now() ? e.payload : undefined;
  }

  async findByUid(uid) {
    return byUid.has(uid) ? this.find(byUid.get(uid)) : undefined;
  }

  async findByUserCode(userCode) {
    return byUserCode.has(userCode) ? this.find(byUserCode.get(userCode)) : undefined;
  }

  async consume(id) {
    const e = store.get(this.key(id));
    if (e) e.payload.consumed = Math.floor(Date.now() / 1000);
  }

  async destroy(id) {
    store.delete(this.key(id));
  }

  async revokeByGrantId(grantId) {
    for (const key of byGrant.get(grantId) ?? []) store.delete(key);
    byGrant.delete(grantId);
  }
}

// ----------------------------------------------------------------------------------------------
// The oidc-provider instance

// oidc-provider warns on stderr that it prefers Node 22; keep that expected line out of the
// quiet default so a real error stands out.
const consoleWarn = console.warn.bind(console);
console.warn = (...args) => {
  if (!verbose && /^oidc-provider WARNING: Unsupported runtime/.test(String(args[0] ?? ''))) return;
  consoleWarn(...args);
};
const consoleInfo = console.info.bind(console);
console.info = (...args) => {
  if (verbose) consoleInfo(...args); // oidc-provider NOTICEs (e.g. introspection policy)
};
const { default: Provider, errors: opErrors } = await import('oidc-provider');

const cookieKeys = [randomBytes(32).toString('base64url')];
const log = (...a) => process.stderr.write(`[provider] ${a.join(' ')}\n`);

function claimsOf(id) {
  const { password: _pw, sub, ...claims } = accounts[id];
  return { sub: sub ?? id, ...claims };
}

function buildProvider(issuer) {
  const ttl = {
    AccessToken: 3600, AuthorizationCode: 60, ClientCredentials: 600, IdToken: 3600,
    Interaction: 3600, Session: 14 * 86400, Grant: 14 * 86400, RefreshToken: 14 * 86400,
    ...(cfg.ttl ?? {}),
  };
  const provider = new Provider(issuer, {
    adapter: SharedMemoryAdapter,
    clients: [...clients.values()],
    jwks: { keys },
    cookies: { keys: cookieKeys },
    scopes: ['openid', 'offline_access', 'email', 'profile', 'groups'],
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: ['name', 'preferred_username'],
      groups: ['groups'],
    },
    // Put the scope claims into the ID token too (authgate reads identity from the ID token),
    // not only into the userinfo response.
    conformIdTokenClaims: false,
    async findAccount(_ctx, id) {
      if (!Object.hasOwn(accounts, id)) return undefined;
      return { accountId: id, claims: async () => claimsOf(id) };
    },
    pkce: { required: () => false }, // supported (S256), required only when the RP sends it
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      revocation: { enabled: true },
      introspection: { enabled: true, allowedPolicy: async () => true },
      resourceIndicators: {
        enabled: true,
        defaultResource: async (ctx, client, oneOf) => {
          if (oneOf) return oneOf;
          return ctx.oidc.route === 'token' && ctx.oidc.params.grant_type === 'client_credentials'
            ? defaultResource : undefined;
        },
        useGrantedResource: async () => true,
        getResourceServerInfo: async (_ctx, indicator) => {
          const rs = resourceServers[indicator] ?? {};
          return {
            audience: rs.audience ?? indicator,
            scope: rs.scope ?? 'api:read api:write',
            accessTokenTTL: rs.ttl ?? 600,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg: signingAlgs[0] } },
          };
        },
      },
    },
    extraTokenClaims: async (_ctx, token) => ({ ...tokenClaims, ...(accountTokenClaims.get(token?.accountId) ?? {}) }),
    // Refresh tokens for every client allowed the grant, without the offline_access +
    // prompt=consent dance, and not tied to the provider's browser session.
    issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
    expiresWithSession: async () => false,
    rotateRefreshToken: () => rotateRefresh,
    interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
    ttl,
    renderError: async (ctx, out) => {
      ctx.type = 'html';
      ctx.body = page('Error', `<h1>Error</h1><pre id="error">${esc(JSON.stringify(out, null, 2))}</pre>`);
    },
  });
  provider.on('server_error', (_ctx, err) => log('server_error:', err?.stack ?? err));
  // Post-processing of token answers: count refresh grants and apply a pending ID token rewrite.
  provider.use(async (ctx, next) => {
    await next();
    if (ctx.oidc?.route !== 'token' || ctx.status !== 200 || ctx.oidc.params?.grant_type !== 'refresh_token') return;
    refreshGrants += 1;
    if (pendingRewrite && ctx.body && typeof ctx.body === 'object') {
      const how = pendingRewrite;
      pendingRewrite = undefined;
      ctx.body = { ...ctx.body };
      if (how.mode === 'remove') delete ctx.body.id_token;
      else ctx.body.id_token = rewriteIdToken(ctx.body.id_token, how);
      idTokenRewrites += 1;
      if (verbose) log(`refresh id_token rewritten (${how.mode ?? 'resign'})`);
    }
  });
  if (verbose) {
    for (const ev of ['authorization.error', 'grant.error', 'introspection.error',
      'revocation.error', 'userinfo.error', 'jwks.error', 'discovery.error']) {
      provider.on(ev, (_ctx, err) => log(`${ev}:`, err?.message, err?.error_detail ?? err?.error_description ?? ''));
    }
  }
  return provider;
}

// ----------------------------------------------------------------------------------------------
// Interactions: plain HTML forms a headless client (or a browser) can complete

function esc(s) {
  return String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function page(title, body) {
  return `<!doctype html>\n<html><head><meta charset="utf-8"><title>${esc(title)}</title></head>\n<body>\n${body}\n</body></html>\n`;
}

function loginPage(uid, clientId, { login = '', error } = {}) {
  return page('Sign-in', `<h1>Sign-in to ${esc(clientId)}</h1>
${error ? `<p id="error" class="error">${esc(error)}</p>\n` : ''}<form id="login-form" method="post" action="/interaction/${esc(uid)}/login">
<label>Login <input type="text" name="login" value="${esc(login)}" autocomplete="username" autofocus></label>
<label>Password <input type="password" name="password" autocomplete="current-password"></label>
<button type="submit">Sign in</button>
</form>
<p><a id="abort" href="/interaction/${esc(uid)}/abort">Cancel</a></p>`);
}

function send(res, status, body, type = 'text/html; charset=utf-8') {
  res.writeHead(status, {
    'Content-Type': type, 'Content-Length': Buffer.byteLength(body), 'Cache-Control': 'no-store',
  });
  res.end(body);
}

async function readBody(req, limit = 65536) {
  const chunks = [];
  let size = 0;
  for await (const c of req) {
    size += c.length;
    if (size > limit) throw Object.assign(new Error('request body too large'), { status: 413 });
    chunks.push(c);
  }
  return Buffer.concat(chunks).toString('utf8');
}

// Grant everything the consent prompt says is missing: no second form.
async function autoConsent(provider, details) {
  const { prompt: { details: missing }, params, session, grantId } = details;
  const grant = grantId
    ? await provider.Grant.find(grantId)
    : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
  if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
  if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
  for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes ?? {})) {
    grant.addResourceScope(indicator, scopes.join(' '));
  }
  const id = await grant.save();
  return grantId ? {} : { grantId: id };
}

async function interaction(provider, req, res, uid, action) {
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== uid) return send(res, 400, page('Error', '<p id="error">interaction mismatch</p>'));
  const clientId = details.params.client_id;

  if (action === 'abort') {
    return provider.interactionFinished(req, res, {
      error: 'access_denied', error_description: 'the user cancelled the sign-in',
    }, { mergeWithLastSubmission: false });
  }

  if (details.prompt.name === 'login') {
    if (action === 'login' && req.method === 'POST') {
      const form = new URLSearchParams(await readBody(req));
      const login = form.get('login') ?? '';
      const acct = Object.hasOwn(accounts, login) ? accounts[login] : undefined;
      if (!acct || acct.password !== form.get('password')) {
        if (verbose) log(`login refused for ${JSON.stringify(login)}`);
        return send(res, 200, loginPage(uid, clientId, { login, error: 'Invalid login or password.' }));
      }
      return provider.interactionFinished(req, res, { login: { accountId: login } },
        { mergeWithLastSubmission: false });
    }
    if (req.method !== 'GET') return send(res, 405, page('Error', '<p id="error">method not allowed</p>'));
    return send(res, 200, loginPage(uid, clientId, { login: details.params.login_hint ?? '' }));
  }

  if (details.prompt.name === 'consent') {
    const consent = await autoConsent(provider, details);
    return provider.interactionFinished(req, res, { consent }, { mergeWithLastSubmission: true });
  }

  return send(res, 501, page('Error', `<p id="error">prompt ${esc(details.prompt.name)} not implemented</p>`));
}

// ----------------------------------------------------------------------------------------------
// Admin endpoints

function state() {
  return {
    kids: keys.map((k) => k.kid),
    signing: keys[0].kid,
    clients: [...clients.keys()],
    accounts: Object.keys(accounts),
    refreshGrants,
    idTokenRewrites,
    rewritePending: pendingRewrite !== undefined,
  };
}

async function admin(req, res, url, rebuild) {
  const json = (status, obj) => send(res, status, `${JSON.stringify(obj)}\n`, 'application/json');
  if (url.pathname === '/__admin/state' && req.method === 'GET') return json(200, state());
  if (req.method !== 'POST') return json(405, { error: 'use POST' });
  if (url.pathname === '/__admin/rotate') {
    const fresh = signingAlgs.map(newKey);
    keys = url.searchParams.get('drop') === '1' ? fresh : [...fresh, ...keys];
    await rebuild();
    if (verbose) log(`rotated keys: ${keys.map((k) => k.kid).join(' ')}`);
    return json(200, state());
  }
  if (['/__admin/accounts', '/__admin/token-claims', '/__admin/sign', '/__admin/next-refresh-id-token']
    .includes(url.pathname)) {
    let body;
    try {
      body = JSON.parse(await readBody(req));
      if (!body || typeof body !== 'object' || Array.isArray(body)) throw new Error('expected a JSON object');
    } catch (err) {
      return json(400, { error: `bad JSON: ${err.message}` });
    }
    if (url.pathname === '/__admin/accounts') {
      for (const [id, claims] of Object.entries(body)) {
        const merged = { ...(accounts[id] ?? { password: `${id}-pw` }), ...claims };
        for (const [k, v] of Object.entries(claims ?? {})) if (v === null) delete merged[k];
        accounts[id] = merged;
      }
      return json(200, state());
    }
    if (url.pathname === '/__admin/token-claims') {
      for (const [id, claims] of Object.entries(body)) {
        if (claims === null) accountTokenClaims.delete(id);
        else accountTokenClaims.set(id, claims);
      }
      return json(200, state());
    }
    if (url.pathname === '/__admin/sign') {
      const now = Math.floor(Date.now() / 1000);
      const payload = { iss: issuer, iat: now, exp: now + 600, ...(body.payload ?? {}) };
      return json(200, { jwt: signWith(keys[0], payload, body.header ?? {}), kid: keys[0].kid });
    }
    const mode = body.mode ?? 'resign';
    if (!['resign', 'bad-signature', 'foreign-key', 'alg-none', 'remove'].includes(mode)) {
      return json(400, { error: `unknown mode ${mode}` });
    }
    pendingRewrite = { mode, claims: body.claims ?? {}, drop: body.drop ?? [] };
    return json(200, state());
  }
  if (url.pathname === '/__admin/clients') {
    let body;
    try {
      body = JSON.parse(await readBody(req));
    } catch (err) {
      return json(400, { error: `bad JSON: ${err.message}` });
    }
    const saved = new Map(clients);
    try {
      for (const c of [body].flat()) upsertClient(c);
      await rebuild(); // validates the metadata
    } catch (err) {
      clients.clear();
      for (const [k, v] of saved) clients.set(k, v);
      await rebuild();
      return json(400, { error: String(err.message ?? err) });
    }
    return json(200, state());
  }
  return json(404, { error: 'unknown admin endpoint' });
}

// ----------------------------------------------------------------------------------------------
// Server

let current; // { provider, handler }
const server = http.createServer(async (req, res) => {
  if (verbose) {
    const t0 = Date.now();
    res.on('finish', () => log(`${req.method} ${req.url} -> ${res.statusCode} (${Date.now() - t0} ms)`));
  }
  if (!current) return send(res, 503, 'starting\n', 'text/plain');
  const { provider, handler } = current;
  try {
    const url = new URL(req.url, 'http://x');
    if (url.pathname.startsWith('/__admin/')) {
      return await admin(req, res, url, async () => { current = await make(issuer); });
    }
    const m = /^\/interaction\/([\w-]+)(?:\/(login|abort))?$/.exec(url.pathname);
    if (m) return await interaction(provider, req, res, m[1], m[2]);
    return handler(req, res);
  } catch (err) {
    const expected = err instanceof opErrors.OIDCProviderError;
    if (!expected || verbose) log(`${req.method} ${req.url}: ${expected ? err.message : err.stack}`);
    if (res.headersSent) return res.destroy();
    const status = err.status ?? err.statusCode ?? 500;
    send(res, status, page('Error', `<p id="error">${esc(err.error_description ?? err.message)}</p>`));
  }
});

// Build a provider and check every client's metadata now (oidc-provider checks static clients
// only when they are first used).
async function make(iss) {
  const provider = buildProvider(iss);
  for (const id of clients.keys()) {
    try {
      await provider.Client.find(id);
    } catch (err) {
      throw new Error(`client ${id}: ${err.error_description ?? err.message}`);
    }
  }
  return { provider, handler: provider.callback() };
}

let issuer;
server.listen(Number(argv.port), argv.bind, async () => {
  const { port } = server.address();
  issuer = `http://${argv['issuer-host']}:${port}`;
  try {
    current = await make(issuer);
  } catch (err) {
    log('cannot configure oidc-provider:', err.message ?? err);
    process.exit(1);
  }
  process.stdout.write(`${JSON.stringify({ issuer, port, pid: process.pid })}\n`);
});
server.on('error', (err) => {
  log('listen failed:', err.message);
  process.exit(1);
});

for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, () => {
    server.close();
    server.closeAllConnections();
    process.exit(0);
  });
}
