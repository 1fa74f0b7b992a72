/* SPDX-License-Identifier: Apache-2.0
 * The OpenID Connect authorization-code flow (OIDC Core 3.1, PKCE RFC 7636): the redirect to the
 * provider with state, nonce and an S256 code challenge kept in a sealed CSRF cookie, and the callback
 * that checks them, redeems the code, verifies the ID token, authorizes the user and creates the
 * session. */
#ifndef AG_OIDC_FLOW_H
#define AG_OIDC_FLOW_H

#include <jansson.h>

#include "response.h"
#include "session/session.h"

/* Fill reply with a 302 to the provider that returns to `rd` (already validated) after login. */
enum ag_rc ag_flow_begin(struct ag_request *rq, const char *rd, struct ag_reply *reply);

/* Handle the provider's redirect back (/oauth2/callback): on success a 302 to the original URL with
 * the session cookie; otherwise an error page (403 for anything the client or provider got wrong,
 * 503 when Redis or the provider cannot be reached). */
enum ag_rc ag_flow_callback(struct ag_request *rq, struct ag_reply *reply);

/* The redirect target for this request: `rd`, else X-Auth-Request-Redirect, checked against
 * --whitelist-domain; "/" when absent or refused. In the arena or static. */
const char *ag_flow_redirect_target(struct ag_request *rq);

/* Whether target may be redirected to: --whitelist-domain, relative paths, or this request's own host. */
enum ag_rc ag_flow_redirect_allowed(struct ag_request *rq, const char *target);

/* Who a verified token's claims name (--user-id-claim, --oidc-email-claim, preferred_username,
 * --oidc-groups-claim) into the identity fields of *s (cleared first; free with ag_session_clear()).
 * The same rule for every source of identity (ID token, bearer JWT, introspection answer, refreshed ID
 * token): AG_ERR_DENIED with *why when the claims say email_verified false (a boolean or the string),
 * unless --insecure-oidc-allow-unverified-email. */
enum ag_rc ag_flow_identity(const struct ag_config *cfg, json_t *claims, struct ag_session *s,
                            const char **why);

/* What the CSRF cookie carries from /oauth2/start to the callback. */
struct ag_csrf {
    const char *state, *nonce, *verifier, *uri, *rd; /* verifier: NULL without PKCE */
    int64_t expires_at;
};

/* Longest return target (`rd`, X-Auth-Request-Redirect, the original URL) a login keeps: it travels in
 * the CSRF cookie, which must stay within what a browser stores. A longer one is replaced by "/". */
#define AG_FLOW_RD_MAX 2048

/* The CSRF cookie's value for c: c sealed under the cookie secret's CSRF key and bound to the cookie's
 * `name`, as base64url in the request's arena. A return target over AG_FLOW_RD_MAX is written as "/"
 * (and logged); the value then fits a browser cookie (at most 3,792 bytes). NULL only on ENOMEM or when
 * the other fields alone (a configured redirect URL of kilobytes) do not fit. (Exported for the unit tests
 * and the fuzz targets; the flow is its only caller.) */
const char *ag_flow_csrf_seal(struct ag_request *rq, const char *name, const struct ag_csrf *c);

/* Open a CSRF cookie `value` made for `name`: true with *c filled (strings in the arena), false for
 * anything that does not authenticate or parse (*c is then zeroed). */
bool ag_flow_csrf_open(struct ag_request *rq, const char *name, const char *value, struct ag_csrf *c);

#endif
