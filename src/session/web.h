/* SPDX-License-Identifier: Apache-2.0
 * Sessions as a request sees them: the ticket cookie in, the sealed session from Redis, a refresh when
 * --cookie-refresh says it is due (one per session across every instance, under a Redis lock), and
 * the Set-Cookie going out. */
#ifndef AG_SESSION_WEB_H
#define AG_SESSION_WEB_H

#include "response.h"
#include "session/session.h"

/* Load the request's session into *s (clear it with ag_session_clear()). AG_OK; AG_ERR_UNAUTHENTICATED
 * when there is no valid cookie or the session is gone, expired or was refused at refresh;
 * AG_ERR_UNAVAILABLE when Redis cannot be reached. When set_cookie is not NULL a due refresh happens
 * here, and *set_cookie is then the re-issued session cookie (arena) the answer must carry, else NULL;
 * with set_cookie NULL no refresh is attempted. */
enum ag_rc ag_session_load(struct ag_request *rq, struct ag_session *s, struct ag_ticket *t,
                           const char **set_cookie);

/* Store a new session for s (fresh ticket) and add its Set-Cookie to reply. */
enum ag_rc ag_session_create(struct ag_request *rq, const struct ag_session *s, struct ag_reply *reply);

/* Delete the request's session from Redis (if any) and add a Set-Cookie that clears the cookie. */
enum ag_rc ag_session_destroy(struct ag_request *rq, struct ag_reply *reply);

#endif
