/* SPDX-License-Identifier: Apache-2.0
 * The identity headers an allowed check answers with (DESIGN.md section 2): X-Auth-Request-User,
 * -Email, -Groups, -Preferred-Username and -Access-Token with --set-xauthrequest (the last with
 * --pass-access-token), Authorization: Bearer <id_token> with --set-authorization-header. */
#ifndef AG_HANDLE_IDENTITY_H
#define AG_HANDLE_IDENTITY_H

#include "response.h"
#include "session/session.h"

/* s's groups comma-joined, in the arena; NULL when it has none (or memory ran out). */
const char *ag_identity_groups(struct ag_request *rq, const struct ag_session *s);

/* Whether the --claim-header map names header `name` (any case, '_' read as '-', as a client may
 * disguise a header). */
bool ag_identity_claim_header(const struct ag_config *cfg, const char *name);

/* Build the identity strip lists (struct ag_identity_strip, app.h) for cfg into *out (zeroed on
 * failure). */
enum ag_rc ag_identity_strip_init(struct ag_identity_strip *out, const struct ag_config *cfg);
/* Free what ag_identity_strip_init() built (zeroed or half-built is fine). */
void ag_identity_strip_clear(struct ag_identity_strip *st);

/* Add the configured identity headers for s to reply (values copied into the request arena), and
 * X-Envoy-Auth-Headers-To-Remove naming every identity header this answer does not set itself, so no
 * client-sent copy, in any spelling, reaches the app behind Envoy. */
enum ag_rc ag_identity_headers(struct ag_request *rq, const struct ag_session *s, struct ag_reply *reply);

#endif
