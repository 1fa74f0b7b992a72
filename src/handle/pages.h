/* SPDX-License-Identifier: Apache-2.0
 * The few HTML pages authgate shows (sign-in, errors), every dynamic value HTML-escaped, and their
 * JSON twins for API clients. */
#ifndef AG_HANDLE_PAGES_H
#define AG_HANDLE_PAGES_H

#include "response.h"

/* HTML-escape s into the request arena (NULL stays NULL). */
const char *ag_html_escape(struct ag_request *rq, const char *s);

/* Whether this request wants JSON errors: Accept: application/json, an --api-route, or
 * --force-json-errors. */
bool ag_wants_json(const struct ag_request *rq);

/* An error page (or JSON {"error":code,"error_description":message}) with status. */
enum ag_rc ag_page_error(struct ag_request *rq, struct ag_reply *reply, unsigned status, const char *code,
                         const char *message);

/* ag_page_error() sent at once (for code that answers outside a handler's reply); when the page cannot be
 * built, the plain error answer for that failure goes instead. */
enum MHD_Result ag_page_send(struct ag_request *rq, unsigned status, const char *code, const char *message);

/* The 403 sign-in page with a button to /oauth2/start?rd=<rd>. */
enum ag_rc ag_page_sign_in(struct ag_request *rq, struct ag_reply *reply, const char *rd);

#endif
