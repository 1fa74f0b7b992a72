// SPDX-License-Identifier: Apache-2.0
// Relying-party side helpers for tests that talk to the provider themselves: PKCE, authorization
// URLs, token requests, JWT decoding / verification / forging (node:crypto only), and a fake
// relying party that records the callbacks it receives.

import { createHash, createHmac, createPublicKey, randomBytes, sign, verify } from 'node:crypto';
import http from 'node:http';

export const b64url = (buf) => Buffer.from(buf).toString('base64url');
export const randomToken = (n = 16) => randomBytes(n).toString('base64url');

// A PKCE pair: { verifier, challenge, method: 'S256' }.
export function pkce() {
  const verifier = randomToken(32);
  return { verifier, challenge: b64url(createHash('sha256').update(verifier).digest()), method: 'S256' };
}

// The provider's authorization URL for a code flow.
export function authorizationUrl(endpoint, {
  clientId = 'authgate', redirectUri, scope = 'openid email profile groups', state, nonce,
  codeChallenge, extra = {},
}) {
  const u = new URL(endpoint);
  const p = {
    response_type: 'code', client_id: clientId, redirect_uri: redirectUri, scope, state, nonce,
    ...(codeChallenge ? { code_challenge: codeChallenge, code_challenge_method: 'S256' } : {}),
    ...extra,
  };
  for (const [k, v] of Object.entries(p)) if (v !== undefined) u.searchParams.set(k, v);
  return u.href;
}

// POST to the token endpoint. auth: 'basic' (client_secret_basic) or 'post' (client_secret_post).
// Resolves { status, json }.
export async function tokenRequest(endpoint, params, {
  clientId = 'authgate', clientSecret = 'authgate-secret', auth = 'basic',
} = {}) {
  const headers = { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' };
  const body = new URLSearchParams(params);
  if (auth === 'basic') {
    // RFC 6749 2.3.1: form-encode both parts before base64.
    const enc = (s) => encodeURIComponent(s).replace(/%20/g, '+');
    headers.authorization = `Basic ${Buffer.from(`${enc(clientId)}:${enc(clientSecret)}`).toString('base64')}`;
  } else {
    body.set('client_id', clientId);
    body.set('client_secret', clientSecret);
  }
  const res = await fetch(endpoint, { method: 'POST', headers, body, signal: AbortSignal.timeout(10000) });
  const text = await res.text();
  let json;
  try { json = JSON.parse(text); } catch { json = { raw: text }; }
  return { status: res.status, json };
}

// Split a compact JWS: { header, payload, signingInput, signature (Buffer) }. No verification.
export function decodeJwt(jwt) {
  const parts = String(jwt).split('.');
  if (parts.length !== 3) throw new Error(`not a compact JWS (${parts.length} parts)`);
  const json = (s) => JSON.parse(Buffer.from(s, 'base64url').toString('utf8'));
  return {
    header: json(parts[0]),
    payload: json(parts[1]),
    signingInput: `${parts[0]}.${parts[1]}`,
    signature: Buffer.from(parts[2], 'base64url'),
  };
}

const ALGS = {
  RS256: { hash: 'sha256' },
  PS256: { hash: 'sha256', opts: { padding: 6 /* RSA_PKCS1_PSS_PADDING */, saltLength: 32 } },
  ES256: { hash: 'sha256', opts: { dsaEncoding: 'ieee-p1363' } },
  EdDSA: { hash: null },
};

// Verify a JWS against a JWKS ({keys:[...]}) by kid, with an alg allow-list; returns
// { header, payload }. Throws on a bad signature, an unknown kid or a disallowed alg.
// Claims (exp, aud, iss ...) are left to the caller.
export function verifyJwt(jwt, jwks, { algs = ['RS256'] } = {}) {
  const { header, payload, signingInput, signature } = decodeJwt(jwt);
  if (!algs.includes(header.alg) || !ALGS[header.alg]) throw new Error(`alg ${header.alg} not allowed`);
  const jwk = jwks.keys.find((k) => k.kid === header.kid);
  if (!jwk) throw new Error(`no key with kid ${header.kid} in the JWKS`);
  const { hash, opts = {} } = ALGS[header.alg];
  const key = createPublicKey({ key: jwk, format: 'jwk' });
  if (!verify(hash, Buffer.from(signingInput), { key, ...opts }, signature)) {
    throw new Error('bad signature');
  }
  return { header, payload };
}

// Make a JWS for negative tests: alg RS256/PS256/ES256/EdDSA with a KeyObject or PEM private
// key, HS256 with a secret string/Buffer, or 'none'.
export function signJwt(payload, { alg = 'RS256', kid, key, header = {} } = {}) {
  const h = { alg, typ: 'JWT', ...(kid ? { kid } : {}), ...header };
  const input = `${b64url(JSON.stringify(h))}.${b64url(JSON.stringify(payload))}`;
  let sig;
  if (alg === 'none') sig = Buffer.alloc(0);
  else if (alg === 'HS256') sig = createHmac('sha256', key).update(input).digest();
  else if (ALGS[alg]) sig = sign(ALGS[alg].hash, Buffer.from(input), { key, ...(ALGS[alg].opts ?? {}) });
  else throw new Error(`signJwt: unsupported alg ${alg}`);
  return `${input}.${b64url(sig)}`;
}

// A relying party stand-in on 127.0.0.1:0 that answers 200 and records every request:
// { url, callbackUrl (url + path), calls: [{ method, path, query (URLSearchParams), headers }],
//   waitForCall(ms), stop() }.
export async function startFakeRp({ path = '/oauth2/callback' } = {}) {
  const calls = [];
  const waiters = [];
  const server = http.createServer((req, res) => {
    const u = new URL(req.url, 'http://rp');
    const call = { method: req.method, path: u.pathname, query: u.searchParams, headers: req.headers };
    calls.push(call);
    waiters.splice(0).forEach((w) => w(call));
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end('callback received\n');
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const url = `http://127.0.0.1:${server.address().port}`;
  return {
    url,
    callbackUrl: url + path,
    calls,
    waitForCall(timeoutMs = 5000) {
      if (calls.length) return Promise.resolve(calls[calls.length - 1]);
      return new Promise((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`fake RP: no request within ${timeoutMs} ms`)), timeoutMs);
        waiters.push((c) => { clearTimeout(t); resolve(c); });
      });
    },
    stop: () => new Promise((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}
