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

/* Add the configured identity headers for s to reply (values copied into the request arena). */
enum ag_rc ag_identity_headers(struct ag_request *rq, const struct ag_session *s, struct ag_reply *reply);

#endif
