// SPDX-License-Identifier: Apache-2.0
// Headless login without a browser: a minimal cookie jar and a redirect follower that fills the
// provider's login form (provider.js renders it: inputs `login` and `password`).
//
//   const jar = new CookieJar();
//   const r = await login(authUrl, { jar, username: 'alice', password: 'alice-pw',
//                                    stopAt: (u) => u.pathname === '/oauth2/callback' });
//   r.url      -> URL where it stopped (not fetched when stopAt matched) or the final page
//   r.stopped  -> true when stopAt matched
//   r.response -> the last Response fetched (body unread unless r.body is set)
//   r.body     -> text of the final page when the chain ended on a non-redirect
//   r.history  -> [{ method, url, status, location }] for every request made
// A refused login (the form comes back after submitting) throws a LoginError with .page.

// ----------------------------------------------------------------------------------------------
// Cookie jar. Follows RFC 6265 where it matters for these servers: cookies belong to a host, not
// to a port (as in browsers: the provider and authgate on 127.0.0.1 share one cookie space);
// host-only vs Domain, Path (default-path and path-match), Expires / Max-Age (deletion too),
// Secure (sent over https, and to loopback hosts, which browsers treat as secure contexts).

const LOOPBACK = new Set(['localhost', '127.0.0.1', '[::1]', '::1']);
const isIp = (h) => /^[\d.]+$/.test(h) || h.startsWith('[');

function defaultPath(pathname) {
  if (!pathname.startsWith('/') || pathname.lastIndexOf('/') === 0) return '/';
  return pathname.slice(0, pathname.lastIndexOf('/'));
}

function pathMatches(reqPath, cookiePath) {
  if (reqPath === cookiePath) return true;
  if (!reqPath.startsWith(cookiePath)) return false;
  return cookiePath.endsWith('/') || reqPath[cookiePath.length] === '/';
}

export class CookieJar {
  #cookies = []; // { name, value, domain, hostOnly, path, expires (ms or Infinity), secure, httpOnly, sameSite }

  // Store the cookies of the Set-Cookie header values (array) received from url.
  setFrom(url, setCookies, now = Date.now()) {
    const u = new URL(url);
    for (const line of setCookies) this.#parse(u, line, now);
  }

  // Store the Set-Cookie headers of a fetch Response.
  storeResponse(url, response) {
    this.setFrom(url, response.headers.getSetCookie());
  }

  #parse(u, line, now) {
    const [pair, ...attrs] = line.split(';');
    const eq = pair.indexOf('=');
    if (eq < 1) return; // no name: ignored, like browsers do for these cases
    const c = {
      name: pair.slice(0, eq).trim(), value: pair.slice(eq + 1).trim(),
      domain: u.hostname, hostOnly: true, path: defaultPath(u.pathname),
      expires: Infinity, secure: false, httpOnly: false, sameSite: undefined,
    };
    let maxAge;
    for (const a of attrs) {
      const i = a.indexOf('=');
      const key = (i < 0 ? a : a.slice(0, i)).trim().toLowerCase();
      const val = i < 0 ? '' : a.slice(i + 1).trim();
      if (key === 'expires') {
        const t = Date.parse(val);
        if (!Number.isNaN(t)) c.expires = t;
      } else if (key === 'max-age') {
        if (/^-?\d+$/.test(val)) maxAge = Number(val);
      } else if (key === 'domain' && val) {
        const d = val.replace(/^\./, '').toLowerCase();
        const host = u.hostname.toLowerCase();
        const ok = host === d || (!isIp(host) && host.endsWith(`.${d}`));
        if (!ok) return; // a Domain the host does not belong to: the whole cookie is rejected
        c.domain = d;
        c.hostOnly = false;
      } else if (key === 'path') {
        c.path = val.startsWith('/') ? val : defaultPath(u.pathname);
      } else if (key === 'secure') {
        c.secure = true;
      } else if (key === 'httponly') {
        c.httpOnly = true;
      } else if (key === 'samesite') {
        c.sameSite = val;
      }
    }
    if (maxAge !== undefined) c.expires = maxAge <= 0 ? 0 : now + maxAge * 1000;
    if (c.secure && !this.#secureOrigin(u)) return; // browsers refuse this
    this.#cookies = this.#cookies.filter(
      (o) => !(o.name === c.name && o.domain === c.domain && o.path === c.path));
    if (c.expires > now) this.#cookies.push(c);
  }

  #secureOrigin(u) {
    return u.protocol === 'https:' || LOOPBACK.has(u.hostname);
  }

  // Cookies that a request to url would carry, longest path first.
  matching(url, now = Date.now()) {
    const u = new URL(url);
    const host = u.hostname.toLowerCase();
    this.#cookies = this.#cookies.filter((c) => c.expires > now);
    return this.#cookies
      .filter((c) => (c.hostOnly ? host === c.domain : host === c.domain || host.endsWith(`.${c.domain}`)))
      .filter((c) => pathMatches(u.pathname, c.path))
      .filter((c) => !c.secure || this.#secureOrigin(u))
      .sort((a, b) => b.path.length - a.path.length);
  }

  // The Cookie header value for url ('' when none).
  header(url) {
    return this.matching(url).map((c) => `${c.name}=${c.value}`).join('; ');
  }

  // The value of cookie `name` that would be sent to url (undefined when none).
  get(name, url) {
    return this.matching(url).find((c) => c.name === name)?.value;
  }

  // Every stored cookie (copies), e.g. to inspect attributes.
  all() {
    return this.#cookies.map((c) => ({ ...c }));
  }

  // Set a cookie by hand, e.g. to replay or tamper with a session cookie.
  set(url, name, value, attrs = '') {
    this.setFrom(url, [`${name}=${value}${attrs ? `; ${attrs}` : ''}`]);
  }

  delete(name) {
    this.#cookies = this.#cookies.filter((c) => c.name !== name);
  }

  clear() {
    this.#cookies = [];
  }
}

// ----------------------------------------------------------------------------------------------
// Fetch with the jar

// One request with the jar's cookies; redirects are never followed. Throws a clear error when
// the server does not answer within timeoutMs.
export async function request(url, { jar, method = 'GET', headers = {}, body, timeoutMs = 10000 } = {}) {
  const h = new Headers(headers);
  const cookie = jar?.header(url);
  if (cookie && !h.has('cookie')) h.set('cookie', cookie);
  let res;
  try {
    res = await fetch(url, {
      method, headers: h, body, redirect: 'manual', signal: AbortSignal.timeout(timeoutMs),
    });
  } catch (err) {
    const why = err.name === 'TimeoutError' ? `no answer within ${timeoutMs} ms` : (err.cause?.message ?? err.message);
    throw new Error(`${method} ${url} failed: ${why}`, { cause: err });
  }
  jar?.storeResponse(url, res);
  return res;
}

// ----------------------------------------------------------------------------------------------
// Minimal HTML form reading (enough for provider.js's pages)

function attr(tag, name) {
  const m = new RegExp(`\\s${name}\\s*=\\s*(?:"([^"]*)"|'([^']*)'|([^\\s>]+))`, 'i').exec(tag);
  return m ? decodeEntities(m[1] ?? m[2] ?? m[3]) : undefined;
}

function decodeEntities(s) {
  return s.replace(/&(#x[\da-f]+|#\d+|amp|lt|gt|quot|apos);/gi, (_, e) => {
    const named = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" }[e.toLowerCase()];
    if (named) return named;
    return String.fromCodePoint(e[1].toLowerCase() === 'x' ? parseInt(e.slice(2), 16) : Number(e.slice(1)));
  });
}

// The first <form> holding a password input: { action (absolute), method, fields }.
export function findLoginForm(html, baseUrl) {
  for (const m of html.matchAll(/<form\b([^>]*)>([\s\S]*?)<\/form>/gi)) {
    const inputs = [...m[2].matchAll(/<input\b[^>]*>/gi)].map((i) => i[0]);
    if (!inputs.some((i) => attr(i, 'type')?.toLowerCase() === 'password')) continue;
    const fields = {};
    for (const i of inputs) {
      const name = attr(i, 'name');
      if (name) fields[name] = attr(i, 'value') ?? '';
    }
    return {
      action: new URL(attr(m[1], 'action') ?? baseUrl, baseUrl).href,
      method: (attr(m[1], 'method') ?? 'GET').toUpperCase(),
      fields,
    };
  }
  return undefined;
}

export class LoginError extends Error {
  constructor(message, { page, history, status } = {}) {
    super(message);
    this.name = 'LoginError';
    this.page = page;
    this.history = history;
    this.status = status;
  }
}

// ----------------------------------------------------------------------------------------------
// The login walk

export async function login(startUrl, {
  jar = new CookieJar(),
  username,
  password,
  stopAt = () => false,
  maxSteps = 25,
  headers = {},
  timeoutMs = 10000,
} = {}) {
  const history = [];
  let url = new URL(startUrl);
  let method = 'GET';
  let body;
  let reqHeaders = headers;
  let submitted = false;

  for (let step = 0; step < maxSteps; step++) {
    const res = await request(url.href, { jar, method, headers: reqHeaders, body, timeoutMs });
    const location = res.headers.get('location');
    history.push({ method, url: url.href, status: res.status, location: location ?? undefined });

    if (res.status >= 300 && res.status < 400 && location) {
      await res.body?.cancel();
      const next = new URL(location, url);
      if (stopAt(next, res)) return { url: next, stopped: true, response: res, history, jar };
      // 307/308 keep method and body; the others turn into GET (what browsers do).
      if (res.status !== 307 && res.status !== 308) {
        method = 'GET';
        body = undefined;
        reqHeaders = headers;
      }
      url = next;
      continue;
    }

    const text = await res.text();
    const form = res.headers.get('content-type')?.includes('html') ? findLoginForm(text, url.href) : undefined;
    if (!form) return { url, stopped: false, response: res, body: text, history, jar };

    if (submitted) {
      const why = /id="error"[^>]*>([^<]*)</.exec(text)?.[1] ?? 'the login form came back';
      throw new LoginError(`login refused for ${JSON.stringify(username)}: ${decodeEntities(why)}`,
        { page: text, history, status: res.status });
    }
    if (username === undefined || password === undefined) {
      throw new LoginError('the provider asks for a login but no username/password was given',
        { page: text, history, status: res.status });
    }
    const fields = { ...form.fields, login: username, password };
    submitted = true;
    if (form.method === 'POST') {
      method = 'POST';
      body = new URLSearchParams(fields).toString();
      reqHeaders = { ...headers, 'content-type': 'application/x-www-form-urlencoded' };
      url = new URL(form.action);
    } else {
      method = 'GET';
      body = undefined;
      url = new URL(form.action);
      for (const [k, v] of Object.entries(fields)) url.searchParams.set(k, v);
    }
  }
  throw new LoginError(`no end after ${maxSteps} requests (redirect loop?): `
    + history.map((h) => `${h.status} ${h.url}`).join(' -> '), { history });
}
