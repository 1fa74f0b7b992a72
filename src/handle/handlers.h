/* SPDX-License-Identifier: Apache-2.0
 * authgate's endpoints, one file each under src/handle/. Each has the ag_handler_fn signature. */
#ifndef AG_HANDLE_HANDLERS_H
#define AG_HANDLE_HANDLERS_H

#include "response.h"
#include "session/session.h"

/* --ping-path: 200 "OK" while the process runs (liveness). */
enum ag_rc ag_handle_ping(struct ag_request *rq, struct ag_reply *reply);
/* --ready-path: 200 "OK" when authgate can serve, 503 while draining (readiness). */
enum ag_rc ag_handle_ready(struct ag_request *rq, struct ag_reply *reply);
/* /robots.txt: disallow all crawling, as oauth2-proxy does. */
enum ag_rc ag_handle_robots(struct ag_request *rq, struct ag_reply *reply);
/* An unknown path under --proxy-prefix: 404. */
enum ag_rc ag_handle_not_found(struct ag_request *rq, struct ag_reply *reply);
/* Every other path: the authorization check (Istio ext_authz, --upstream=static://N). */
enum ag_rc ag_handle_check(struct ag_request *rq, struct ag_reply *reply);

/* The catch-all's decision, shared by the check and the reverse proxy. *allowed: s holds the identity
 * (empty on a skip-auth route; free with ag_session_clear()) and *set_cookie a re-issued session cookie
 * or NULL. Not allowed: reply holds the answer (a login redirect, 401, 403, 503) and the return value is
 * what a handler returns. */
enum ag_rc ag_check_authorize(struct ag_request *rq, struct ag_reply *reply, struct ag_session *s,
                              const char **set_cookie, bool *allowed);
/* Whether the identity in s (a session or a token) passes the policy now (email domains, authenticated
 * emails, allowed groups) and this request's scope demands (--required-scope, --required-scope-route):
 * AG_OK, or AG_ERR_DENIED with *why. */
enum ag_rc ag_check_identity_allowed(struct ag_request *rq, const struct ag_session *s, const char **why);
/* /oauth2/auth: 202 with identity headers, 401 without a session, 403 when not allowed; never 3xx. */
enum ag_rc ag_handle_auth(struct ag_request *rq, struct ag_reply *reply);
/* /oauth2/start: redirect to the provider. */
enum ag_rc ag_handle_start(struct ag_request *rq, struct ag_reply *reply);
/* /oauth2/callback: finish the login. */
enum ag_rc ag_handle_callback(struct ag_request *rq, struct ag_reply *reply);
/* /oauth2/sign_in: end any session, show the sign-in page (403, like the check's: never a 200 that
 * Envoy would take for "allowed"). */
enum ag_rc ag_handle_sign_in(struct ag_request *rq, struct ag_reply *reply);
/* /oauth2/sign_out: end the session, redirect to a validated rd. */
enum ag_rc ag_handle_sign_out(struct ag_request *rq, struct ag_reply *reply);
/* /oauth2/userinfo: the user as JSON with the identity headers, 401 without a session, 403 when the user
 * is no longer allowed or lacks a required scope. */
enum ag_rc ag_handle_userinfo(struct ag_request *rq, struct ag_reply *reply);

#endif
