/* SPDX-License-Identifier: Apache-2.0
 * Cookies: reading one from the request, and building Set-Cookie values with the configured
 * attributes (--cookie-path, --cookie-domain (longest match with the request host), --cookie-secure,
 * --cookie-httponly, --cookie-samesite). */
#ifndef AG_NET_COOKIE_H
#define AG_NET_COOKIE_H

#include "request.h"

/* The value of cookie `name`, borrowed, or NULL. */
const char *ag_cookie_get(const struct ag_request *rq, const char *name);

/* A Set-Cookie value in the request arena; max_age_s > 0 sets Max-Age and Expires, 0 makes a session
 * cookie, < 0 deletes the cookie. NULL on ENOMEM. */
const char *ag_cookie_make(struct ag_request *rq, const char *name, const char *value, int64_t max_age_s);

/* The --cookie-domain entry for this request's host (the longest that matches), or NULL. */
const char *ag_cookie_domain(const struct ag_request *rq);

#endif
