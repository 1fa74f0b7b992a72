/* SPDX-License-Identifier: Apache-2.0
 * The login endpoints under --proxy-prefix: /start, /callback, /sign_in, /sign_out, /userinfo. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "handle/handlers.h"
#include "handle/identity.h"
#include "handle/pages.h"
#include "log.h"
#include "net/http_client.h"
#include "oidc/flow.h"
#include "session/web.h"

enum ag_rc ag_handle_start(struct ag_request *rq, struct ag_reply *reply)
{
    return ag_flow_begin(rq, ag_flow_redirect_target(rq), reply);
}

enum ag_rc ag_handle_callback(struct ag_request *rq, struct ag_reply *reply)
{
    return ag_flow_callback(rq, reply);
}

/* /sign_in: any existing session is ended first (oauth2-proxy CVE-2026-34454: a sign-in page must not
 * keep a session alive), then the sign-in page, with the check's 403: through Envoy a 200 would let
 * the request through to the app. */
enum ag_rc ag_handle_sign_in(struct ag_request *rq, struct ag_reply *reply)
{
    const char *rd = ag_flow_redirect_target(rq);
    enum ag_rc rc = ag_page_sign_in(rq, reply, rd);
    if (rc != AG_OK)
        return rc;
    ag_session_destroy(rq, reply);
    return AG_OK;
}

/* --backend-logout-url: tell the provider, server to server, that this login ended ({id_token} in the
 * URL becomes the session's ID token). Best effort: the local sign-out happens whatever it answers. */
static void backend_logout(struct ag_request *rq)
{
    const struct ag_config *cfg = rq->app->cfg;
    struct ag_session s;
    struct ag_ticket t;
    struct ag_http_response resp;
    struct ag_http_opts opts = {cfg->provider_timeout, cfg->provider_timeout, cfg->provider_ca_file, NULL};
    const char *mark, *url;

    if (cfg->backend_logout_url == NULL || cfg->backend_logout_url[0] == '\0')
        return;
    if (ag_session_load(rq, &s, &t, NULL) != AG_OK)
        return;
    ag_ticket_clear(&t);
    mark = strstr(cfg->backend_logout_url, "{id_token}");
    url = mark == NULL
              ? cfg->backend_logout_url
              : ag_request_printf(rq, "%.*s%s%s", (int)(mark - cfg->backend_logout_url),
                                  cfg->backend_logout_url,
                                  ag_request_url_escape(rq, s.id_token ? s.id_token : ""), mark + 10);
    memset(&resp, 0, sizeof(resp));
    if (url != NULL && ag_http_get(&opts, url, NULL, &resp) == AG_OK)
        ag_log_rq(resp.status >= 200 && resp.status < 300 ? AG_LOG_INFO : AG_LOG_WARN, rq->request_id,
                  "backend logout answered %ld", resp.status);
    ag_http_response_clear(&resp);
    ag_session_clear(&s);
}

/* /sign_out: delete the session everywhere (it lives in Redis), clear the cookie, go to a validated rd. */
enum ag_rc ag_handle_sign_out(struct ag_request *rq, struct ag_reply *reply)
{
    const char *rd = ag_flow_redirect_target(rq);
    enum ag_rc rc;

    backend_logout(rq);
    memset(reply, 0, sizeof(*reply));
    ag_reply_text(reply, 302, "Found\n");
    rc = ag_session_destroy(rq, reply);
    if (rc == AG_ERR_UNAVAILABLE)
        return ag_page_error(
            rq, reply, 503, "session_store_unavailable",
            "The session store cannot be reached, so the session could not be ended. Try again.");
    if (rc != AG_OK)
        return rc;
    ag_reply_header(reply, MHD_HTTP_HEADER_LOCATION, rd);
    return AG_OK;
}

/* /userinfo: the session's user as JSON, judged like the check (policy and scope demands) and carrying the
 * same identity headers, or 401/403. */
enum ag_rc ag_handle_userinfo(struct ag_request *rq, struct ag_reply *reply)
{
    struct ag_session s;
    struct ag_ticket t;
    json_t *o = NULL, *groups = NULL;
    char *text = NULL;
    const char *why = "ok";
    enum ag_rc rc = ag_session_load(rq, &s, &t, NULL);

    ag_ticket_clear(&t);
    if (rc == AG_ERR_UNAUTHENTICATED)
        return ag_page_error(rq, reply, 401, "unauthorized", "authentication required");
    if (rc != AG_OK)
        return rc;
    rq->user = ag_request_strdup(rq, s.email ? s.email : s.sub);
    if (ag_check_identity_allowed(rq, &s, &why) != AG_OK) {
        ag_session_clear(&s);
        return ag_page_error(rq, reply, 403, "forbidden", why);
    }
    rc = AG_ERR_NOMEM;
    groups = json_array();
    for (size_t i = 0; groups != NULL && i < s.groups.n; i++)
        json_array_append_new(groups, json_string(s.groups.v[i]));
    o = json_pack("{s:s?, s:s?, s:O, s:s?}", "user", s.sub, "email", s.email, "groups", groups,
                  "preferredUsername", s.preferred_username);
    if (o != NULL)
        text = json_dumps(o, JSON_COMPACT);
    if (text != NULL) {
        memset(reply, 0, sizeof(*reply));
        reply->status = 200;
        reply->content_type = "application/json";
        reply->body = ag_request_strdup(rq, text);
        reply->body_len = strlen(text);
        rc = reply->body ? ag_identity_headers(rq, &s, reply) : AG_ERR_NOMEM;
    }
    free(text);
    json_decref(o);
    json_decref(groups);
    ag_session_clear(&s);
    return rc;
}
