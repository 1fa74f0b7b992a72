// SPDX-License-Identifier: Apache-2.0
// The path forms of the "verify by difference" table (paths.test.js, issue 11 items 1 and 2):
// request-targets around a public prefix (/public/, a skip-auth route) and a protected one (/admin/,
// a required-scope route), generated from parts rather than listed, so that every spelling of a
// separator, of a dot segment and of the protected name meets every other in at least one row.
// Each is sent exactly as written (raw request line, no client normalisation).
//
//   pathForms() -> [{ path, family, issue }]   issue: one of the issue's own examples
//
// Families:
//   traverse   /FROM <sep> <dot-dot> <sep> TO/x in both directions (public -> admin, admin -> public),
//              every dot-dot spelling with plain separators, every separator with a plain "..",
//              a cross product of the nastiest of both, deeper and mixed chains
//   lead       something before /admin/x or /public/x: empty, dot, ';' and encoded segments
//   name       the protected name spelled otherwise: case, escapes of letters, ';' parameters,
//              trailing dots, controls, '#', '?', double escapes
//   tail       /admin and /public followed by encoded or raw separators, dot segments at the end
//   query      '?' and '#' raw or encoded between the public prefix and a traversal
//   nested     invalid, nested and overlong escapes (Chromium's "%%32e", UTF-8 overlong dots/slashes)
//   own        authgate's own endpoints (/oauth2/..., /ping ...) as the start of a traversal
//   absolute   absolute-form request-targets (http://host/...)
//   control    canonical paths that every reading agrees on (must behave as the rules say)

const FROM_TO = [['public', 'admin'], ['admin', 'public']];

// ".." in every spelling a front end or an app might read as "..": escaped dots in any case,
// ';' parameters (Tomcat strips them, Envoy strips them from dot segments since 1.39.1), an escaped
// ';', NUL and space after the dots.
const DOTDOT = [
  '..', '%2e%2e', '%2E%2E', '%2e%2E', '.%2e', '%2e.', '.%2E', '%2E.',
  '..;', '..;x', '..;jsessionid=1', '%2e%2e;x', '.%2e;', '..%3b', '..%3Bx', '..%00', '..%20', '..%09',
];
// "." likewise (a no-op segment to some readers, a name to others).
const DOT = ['.', '%2e', '%2E', '.;', '.;x', '%2e;', '.%3b'];
// A separator, as written: raw, doubled, escaped in both cases, backslash raw and escaped,
// a "." or ";" segment in between, a doubled escaped slash.
const SEP = ['/', '//', '///', '%2f', '%2F', '\\', '%5c', '%5C', '/./', '/.;/', '/;/', '/;x/', '%2f%2f', '/%2f', '\\/', '/\\'];

// The protected (and public) name in other spellings.
const ADMIN_NAMES = [
  'ADMIN', 'Admin', 'aDmIn', '%61dmin', '%41DMIN', '%41dmin', 'adm%69n', 'adm%49n', '%61%64%6d%69%6e', '%61%64%6D%69%6E',
  'admin;', 'admin;x', 'admin;jsessionid=1', 'admin%3b', 'admin%3B', 'admin%3bx', 'admin.', 'admin%2e', 'admin%2E',
  'admin%20', 'admin%09', 'admin%00', 'admin%0a', 'admin%7f', 'admin%2500', '%2561dmin', 'admin%23', 'admin%3f', 'admin%3F',
  'admin~', 'admin%7e', '%2e/admin', '.;/admin', ';/admin', 'adm;x/in',
];
const PUBLIC_NAMES = ['PUBLIC', 'Public', '%70ublic', 'public;', 'public;x', 'public%3b', 'public.', 'public%2e', 'public%20'];

const uniq = (rows) => {
  const seen = new Map();
  for (const r of rows) if (!seen.has(r.path)) seen.set(r.path, r);
  return [...seen.values()];
};

export function pathForms() {
  const rows = [];
  const add = (family, path, issue = false) => rows.push({ path, family, issue });

  // ---- controls: canonical paths every reading agrees on
  for (const p of ['/public/x', '/public/', '/admin/x', '/admin/', '/x', '/private/x', '/public/x/y', '/public/a-b_c~d', '/public/%61']) {
    add('control', p);
  }

  // The issue's own examples (items 1 and 2).
  add('traverse', '/public//../admin/x', true);
  add('traverse', '/admin/..;/public/x', true);
  add('lead', '//admin/x', true);

  // ---- traverse
  for (const [from, to] of FROM_TO) {
    for (const dd of DOTDOT) add('traverse', `/${from}/${dd}/${to}/x`);
    for (const s of SEP) {
      add('traverse', `/${from}${s}../${to}/x`);
      add('traverse', `/${from}/..${s}${to}/x`);
      add('traverse', `/${from}${s}..${s}${to}/x`);
    }
    for (const dd of ['%2e%2e', '%2E%2E', '..;', '..;x', '.%2e', '%2e.']) {
      for (const s of ['//', '%2f', '%2F', '\\', '%5c', '%5C', '/./', '/;/']) add('traverse', `/${from}${s}${dd}${s}${to}/x`);
    }
    for (const d of DOT) add('traverse', `/${from}/x/${d}/../../${to}/x`);
    // deeper, and empty segments that a resolver without merging keeps as a level
    add('traverse', `/${from}/x/../../${to}/x`);
    add('traverse', `/${from}/x/y/../../../${to}/x`);
    add('traverse', `/${from}/x/..//../${to}/x`);
    add('traverse', `/${from}/x//..//../${to}/x`);
    add('traverse', `/${from}//x/../../${to}/x`);
    add('traverse', `/${from}/x/%2e%2e/..;/${to}/x`);
    add('traverse', `/${from}/x/..;/%2e%2e/${to}/x`);
    add('traverse', `/${from}/x/..%2f..%2f${to}/x`);
    add('traverse', `/${from}/x%2f..%2f..%2f${to}/x`);
    add('traverse', `/${from}%2f..%2f${to}%2fx`);
    add('traverse', `/${from}/..%2f..%2f..%2f${to}/x`);
    add('traverse', `/${from}/../../../${to}/x`);
    add('traverse', `/${from}/%2e%2e%2f${to}/x`);
    add('traverse', `/${from}/%2e%2e%5c${to}/x`);
    add('traverse', `/${from}/.../${to}/x`);
    add('traverse', `/${from}/..../${to}/x`);
    add('traverse', `/${from}/..x/../${to}/x`);
    add('traverse', `/${from}/x/..;/..;/${to}/x`);
    add('traverse', `/${from};x/../${to}/x`);
    add('traverse', `/${from}%3b/../${to}/x`);
    add('traverse', `/${from}/;/../${to}/x`);
  }

  // ---- lead: before the protected (and the public) prefix
  const LEADS = [
    '//', '///', '////', '/./', '/.//', '/.;/', '/;/', '/;x/', '/%2f', '/%2F', '/%2f/', '/\\', '/%5c', '/%5C', '\\', '/.%2f',
    '/%2e/', '/%2E/', '/%2e%2f', '/x/../', '/x/..;/', '/x/%2e%2e/', '/x/%2E./', '/%2e%2e/', '/../', '/..;/', '/x;/../', '/./../',
    '/%20/../', '/%00/../', '/x//../',
  ];
  for (const l of LEADS) {
    add('lead', `${l}admin/x`);
    add('lead', `${l}public/x`);
  }

  // ---- name: the protected name (and the public one) spelled otherwise
  for (const n of ADMIN_NAMES) add('name', `/${n}/x`);
  for (const n of PUBLIC_NAMES) add('name', `/${n}/x`);
  add('name', '/%2561dmin/%2e%2e/admin/x');

  // ---- tail: /admin and /public followed by encoded or raw separators and trailing dot segments
  const TAILS = [
    '', '/', '//', '/x/', '%2fx', '%2Fx', '%5cx', '\\x', ';/x', '%3b/x', '%00/x', '/x%00', '/x%2f', '/x/.', '/x/./', '/x/..',
    '/x/../', '/.', '/./', '/..', '/%2e', '/%2e%2e', '/x/%2e', '/x/%2e%2e', '/x/.;', '/x/..;', '/.;', '/..;', '/x//', '/x;/..',
  ];
  for (const t of TAILS) {
    add('tail', `/admin${t}`);
    add('tail', `/public${t}`);
  }
  add('tail', '/public/..');
  add('tail', '/public/x/../..');
  add('tail', '/public/x/../../private');

  // ---- query: '?' and '#' between the public prefix and a traversal
  for (const q of ['?', '%3f', '%3F', '#', '%23', '%3f/', '%23/']) {
    add('query', `/public/x${q}/../../admin/x`);
    add('query', `/public/x${q}/..%2f..%2fadmin/x`);
  }
  add('query', '/public/x?/../../admin/x'); // the query is not the path: public to every reading
  add('query', '/public/x?next=/admin/x');
  add('query', '/admin/x?/../../public/x');

  // ---- nested, invalid and overlong escapes
  for (const [from, to] of FROM_TO) {
    for (const dd of ['%252e%252e', '%%32e%%32e', '%%32%65%%32%65', '%2%65%2%65', '%u002e%u002e', '%c0%ae%c0%ae', '%e0%80%ae%e0%80%ae']) {
      add('nested', `/${from}/${dd}/${to}/x`);
    }
    for (const s of ['%252f', '%c0%af', '%e0%80%af', '%c1%9c', '%25%32%66']) add('nested', `/${from}/..${s}${to}/x`);
    add('nested', `/${from}/%zz/../${to}/x`);
    add('nested', `/${from}/%/../${to}/x`);
    add('nested', `/${from}/%4/../${to}/x`);
  }

  // ---- authgate's own endpoints as the start of a traversal (own routing versus the app's reading)
  for (const own of ['/oauth2', '/oauth2/auth', '/oauth2/start', '/oauth2/sign_in', '/oauth2/userinfo', '/oauth2/static', '/ping', '/ready', '/robots.txt']) {
    add('own', `${own}/../admin/x`);
    add('own', `${own}/%2e%2e/admin/x`);
    add('own', `${own}/..;/admin/x`);
    add('own', `${own}//../admin/x`);
  }
  add('own', '/oauth2/../../admin/x');
  add('own', '/oauth2;/../admin/x');
  add('own', '//oauth2/../admin/x');
  add('own', '/public/../oauth2/../admin/x');

  // ---- absolute-form targets
  for (const p of ['/admin/x', '/public/x', '/public/../admin/x', '//admin/x', '/public/%2e%2e/admin/x', '/admin/..;/public/x']) {
    add('absolute', `http://app.test${p}`);
  }

  return uniq(rows);
}
