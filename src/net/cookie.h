/* SPDX-License-Identifier: Apache-2.0
 * Cookies: the Cookie request header read one way for every purpose (finding the session and the
 * CSRF cookie, and what goes on to an upstream), and Set-Cookie values built with the configured
 * attributes (--cookie-path, --cookie-domain (longest match with the request host),
 * --cookie-secure, --cookie-httponly, --cookie-samesite).
 *
 * Reading (RFC 6265 5.4 as browsers write it, made strict where servers disagree): each Cookie
 * header is a list of pairs separated by ';'; whitespace around a pair, its name and its value is
 * dropped; the name ends at the first '=' (no '=': a name with an empty value). Commas separate
 * nothing: some servers split on them, so a pair that hides one of authgate's cookies behind a comma
 * (`a=1,_oauth2_proxy=...`) is never a session and never goes upstream. */
#ifndef AG_NET_COOKIE_H
#define AG_NET_COOKIE_H

#include "request.h"

/* One pair of a Cookie header, pointing into it (not NUL-terminated). */
struct ag_cookie_pair {
    const char *name, *value;
    size_t name_len, value_len;
    const char *text; /* the whole pair, trimmed */
    size_t text_len;
};

/* The next pair of the Cookie header text [*pos, end): true with *out filled and *pos moved past it,
 * false when none is left. Empty pairs (";;") are skipped. */
bool ag_cookie_next(const char **pos, const char *end, struct ag_cookie_pair *out);

/* Whether a pair is one of the cookies authgate sets under --cookie-name `ours`: the session cookie,
 * `<ours>_csrf` or `<ours>_csrf_<id>`; `hidden` also counts one behind a comma inside the pair. */
bool ag_cookie_is_ours(const struct ag_cookie_pair *pair, const char *ours, bool hidden);

/* The value of the first cookie named exactly `name` in the request's Cookie headers, in the arena,
 * or NULL (absent, or out of memory). */
const char *ag_cookie_get(struct ag_request *rq, const char *name);

/* The request's Cookie headers joined with "; " without authgate's own cookies (ag_cookie_is_ours, with
 * hidden ones), in the arena; NULL when nothing is left. *failed is set when memory ran out. */
const char *ag_cookie_forwarded(struct ag_request *rq, bool *failed);

/* A Set-Cookie value in the request arena; max_age_s > 0 sets Max-Age and Expires, 0 makes a session
 * cookie, < 0 deletes the cookie. NULL on ENOMEM. */
const char *ag_cookie_make(struct ag_request *rq, const char *name, const char *value, int64_t max_age_s);

/* The --cookie-domain entry for this request's host (the longest that matches), or NULL. */
const char *ag_cookie_domain(const struct ag_request *rq);

#endif
