// SPDX-License-Identifier: Apache-2.0
// The upstream applications of the path table (paths.test.js): each serves a PUBLIC page under
// /public/, an ADMIN page under /admin/ and a PRIVATE page (a protected page of the app) anywhere
// else, and says so in its body, so that the test sees which resource a front end's request really
// reached.
//
// 1. nginxAppSite(): a real Debian nginx (server block for frontends.js startNginx) whose prefix
//    locations pick the page; nginx matches locations on its own normalised URI (escapes decoded,
//    "." and ".." resolved, and with merge_slashes on, its default, "//" merged). Body:
//    "<MARKER> nginx-app <$uri>".
//
// 2. startPathApp(): a node:http app that reads every request-target the way several common
//    frameworks would and answers, for each of those readings, which page it would serve:
//      200 JSON { app: 'path-app', row, target, readings: { raw, router, url, tomcat } }
//    with each reading one of 'public' | 'admin' | 'private' | 'refused' (that framework would answer
//    400/404 and serve nothing). The readings are EMULATIONS, each written from the framework's
//    documented behaviour, not the framework itself:
//      raw     the request-target up to '?' or '#' as received: a router that matches the raw path
//              case-sensitively (Go's ServeMux on r.URL.RawPath, a hand-written `startsWith`);
//      router  Express 4's Router with its defaults: the undecoded pathname (parseurl, also of an
//              absolute-form target) matched case-insensitively (`caseSensitive: false`);
//      url     decodeURIComponent(new URL(target, base).pathname): the WHATWG URL parser ('.'/'..'
//              segments resolved, also "%2e" forms, '\\' read as '/', "//" kept), then decoded once,
//              as Node handlers that serve files or route on the decoded path do; a malformed escape
//              or invalid UTF-8 refuses;
//      tomcat  Tomcat's mapping (CoyoteAdapter): ';' path parameters removed from every segment of the
//              undecoded path, %2F refused (encodedSolidusHandling=reject, the default), decoded once
//              (malformed or invalid UTF-8: refused), '\\' and NUL refused (ALLOW_BACKSLASH off), "//"
//              merged, "." and ".." resolved, ".." above the root refused; matched case-sensitively
//              (Spring MVC's default).
//    Every request is recorded with its X-Paths-Row header: app.hits.get(row) -> [{ target, readings }].

import http from 'node:http';

export const MARKERS = Object.freeze({ public: 'PUBLIC-PAGE', admin: 'ADMIN-PAGE', private: 'PRIVATE-PAGE' });
export const ROW_HEADER = 'X-Paths-Row';

// The page a path reads as, for one reading (null: that reading refuses the request).
export function page(p, { caseless = false } = {}) {
  if (p === null) return 'refused';
  const q = caseless ? p.toLowerCase() : p;
  if (q.startsWith('/public/')) return 'public';
  if (q.startsWith('/admin/')) return 'admin';
  return 'private';
}

const ABSOLUTE = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/[^/?#]*/;
// The path of a request-target up to '?' or '#'; for an absolute-form target, its path part.
function pathname(target) {
  const m = ABSOLUTE.exec(target);
  const t = m ? target.slice(m[0].length) || '/' : target;
  return t.split(/[?#]/)[0];
}

const decodeOnce = (p) => {
  try {
    return decodeURIComponent(p);
  } catch {
    return null;
  }
};

// RFC 3986 5.2.4 remove_dot_segments on an already merged path ("//" gone): "." and ".." resolved;
// null when ".." would climb above the root (Tomcat refuses that).
function resolveDots(p) {
  const out = [];
  const segs = p.split('/').slice(1);
  for (let i = 0; i < segs.length; i++) {
    const s = segs[i];
    const last = i === segs.length - 1;
    if (s === '.') {
      if (last) out.push('');
    } else if (s === '..') {
      if (out.length === 0) return null;
      out.pop();
      if (last) out.push('');
    } else {
      out.push(s);
    }
  }
  return `/${out.join('/')}`;
}

export function readings(target) {
  const raw = target.split(/[?#]/)[0];
  const path = pathname(target);
  let url = null;
  try {
    url = decodeOnce(new URL(target, 'http://app.test').pathname);
  } catch { /* not a URL: refused */ }
  let tomcat = null;
  {
    const noParams = path.replace(/;[^/]*/g, '');
    const d = /%2f/i.test(noParams) ? null : decodeOnce(noParams);
    if (d !== null && d.startsWith('/') && !d.includes('\\') && !d.includes('\0')) {
      tomcat = resolveDots(d.replace(/\/{2,}/g, '/'));
    }
  }
  return {
    raw: page(raw),
    router: page(path, { caseless: true }),
    url: page(url),
    tomcat: page(tomcat),
  };
}

export async function startPathApp() {
  const hits = new Map();
  let count = 0;
  const server = http.createServer((req, res) => {
    req.resume();
    const row = req.headers[ROW_HEADER.toLowerCase()] ?? '';
    const r = readings(req.url);
    count += 1;
    if (!hits.has(row)) hits.set(row, []);
    hits.get(row).push({ target: req.url, readings: r });
    const text = JSON.stringify({ app: 'path-app', row, target: req.url, readings: r });
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
    res.end(text);
  });
  server.keepAliveTimeout = 30000;
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address();
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    hits,
    get count() { return count; },
    stop: () => new Promise((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}

// The nginx app: a server block for startNginx (frontends.js).
export function nginxAppSite({ port }) {
  return `# generated by tests/e2e/path-apps.js: the nginx app of the path table
server {
    listen 127.0.0.1:${port};
    default_type text/plain;
    # merge_slashes on (nginx's default) is what the table is about: say it
    merge_slashes on;
    location /public/ { return 200 "${MARKERS.public} nginx-app $uri\\n"; }
    location /admin/ { return 200 "${MARKERS.admin} nginx-app $uri\\n"; }
    location / { return 200 "${MARKERS.private} nginx-app $uri\\n"; }
}
`;
}
