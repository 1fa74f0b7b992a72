/* SPDX-License-Identifier: Apache-2.0
 * The authorization checks: /oauth2/auth for nginx auth_request, Caddy forward_auth and Traefik
 * forwardAuth (202 / 401 / 403, never a redirect), and every other path for Istio ext_authz and
 * --upstream=static://N (exactly N, 200 by default, when allowed; a login redirect, a sign-in page or a
 * 401 JSON when not). */
#include <string.h>

#include "auth/policy.h"
#include "auth/rules.h"
#include "handle/handlers.h"
#include "handle/identity.h"
#include "handle/pages.h"
#include "log.h"
#include "oidc/flow.h"
#include "session/web.h"

static const char *forwarded_method(struct ag_request *rq)
{
    const char *m = ag_request_from_trusted_proxy(rq) ? ag_request_header(rq, "X-Forwarded-Method") : NULL;
    return m ? m : rq->method;
}

static bool skipped(struct ag_request *rq)
{
    const struct ag_config *cfg = rq->app->cfg;
    const char *method = forwarded_method(rq);

    if (cfg->skip_auth_preflight && strcmp(method, "OPTIONS") == 0)
        return true;
    return ag_rules_match(rq->app->skip_rules, method, ag_request_target(rq));
}

/* allowed_groups=a,b on /oauth2/auth narrows who passes this one check (oauth2-proxy does the same). */
static bool groups_allowed_here(struct ag_request *rq, const struct ag_session *s)
{
    const char *q = ag_request_arg(rq, "allowed_groups");
    char *copy, *save = NULL;
    const char *list[64];
    size_t n = 0;

    if (q == NULL || q[0] == '\0')
        return true;
    copy = ag_request_strdup(rq, q);
    if (copy == NULL)
        return false;
    for (char *g = strtok_r(copy, ",", &save); g != NULL && n < AG_ARRAY_LEN(list);
         g = strtok_r(NULL, ",", &save))
        list[n++] = g;
    return ag_policy_groups_allowed(&s->groups, list, n);
}

enum ag_rc ag_handle_auth(struct ag_request *rq, struct ag_reply *reply)
{
    struct ag_session s;
    struct ag_ticket t;
    const char *set_cookie = NULL;
    enum ag_rc rc;

    memset(reply, 0, sizeof(*reply));
    if (skipped(rq)) {
        ag_reply_text(reply, 202, "");
        return AG_OK;
    }
    rc = ag_session_load(rq, &s, &t, &set_cookie);
    ag_ticket_clear(&t);
    if (rc == AG_ERR_UNAUTHENTICATED)
        return ag_page_error(rq, reply, 401, "unauthorized", "authentication required");
    if (rc != AG_OK)
        return rc;
    rq->user = ag_request_strdup(rq, s.email ? s.email : s.sub);
    if (!groups_allowed_here(rq, &s)) {
        ag_session_clear(&s);
        return ag_page_error(rq, reply, 403, "forbidden", "not in an allowed group");
    }
    ag_reply_text(reply, 202, "");
    if (set_cookie != NULL)
        ag_reply_header(reply, MHD_HTTP_HEADER_SET_COOKIE, set_cookie);
    rc = ag_identity_headers(rq, &s, reply);
    ag_session_clear(&s);
    return rc;
}

enum ag_rc ag_handle_check(struct ag_request *rq, struct ag_reply *reply)
{
    struct ag_session s;
    struct ag_ticket t;
    const char *back, *set_cookie = NULL;
    enum ag_rc rc;

    memset(reply, 0, sizeof(*reply));
    if (skipped(rq)) {
        ag_reply_text(reply, rq->app->static_status, "Authenticated");
        return AG_OK;
    }
    rc = ag_session_load(rq, &s, &t, &set_cookie);
    ag_ticket_clear(&t);
    if (rc == AG_OK) {
        rq->user = ag_request_strdup(rq, s.email ? s.email : s.sub);
        ag_reply_text(reply, rq->app->static_status, "Authenticated");
        if (set_cookie != NULL)
            ag_reply_header(reply, MHD_HTTP_HEADER_SET_COOKIE, set_cookie);
        rc = ag_identity_headers(rq, &s, reply);
        ag_session_clear(&s);
        return rc;
    }
    if (rc == AG_ERR_UNAVAILABLE)
        return ag_page_error(rq, reply, 503, "session_store_unavailable",
                             "The session store cannot be reached. Try again in a moment.");
    if (rc != AG_ERR_UNAUTHENTICATED)
        return rc;
    if (ag_wants_json(rq))
        return ag_page_error(rq, reply, 401, "unauthorized", "authentication required");
    back = ag_request_original_url(rq);
    if (back == NULL || ag_flow_redirect_allowed(rq, back) != AG_OK)
        back = "/";
    if (rq->app->cfg->skip_provider_button)
        return ag_flow_begin(rq, back, reply);
    return ag_page_sign_in(rq, reply, back);
}
