/* SPDX-License-Identifier: Apache-2.0
 * Result codes to HTTP, common response headers, queueing. */
#include <string.h>
#include <strings.h>

#include "log.h"
#include "router.h"
#include "response.h"

void ag_reply_text(struct ag_reply *out, unsigned status, const char *body)
{
    memset(out, 0, sizeof(*out));
    out->status = status;
    out->body = body;
    out->body_len = strlen(body);
    out->body_static = true;
}

enum ag_rc ag_reply_header(struct ag_reply *out, const char *name, const char *value)
{
    if (out->nheaders >= AG_REPLY_MAX_HEADERS)
        return AG_ERR_TOO_LARGE;
    out->headers[out->nheaders].name = name;
    out->headers[out->nheaders].value = value;
    out->nheaders++;
    return AG_OK;
}

unsigned ag_response_status(enum ag_rc rc)
{
    switch (rc) {
    case AG_OK:
        return 200;
    case AG_ERR_INVALID:
        return 400;
    case AG_ERR_UNAUTHENTICATED:
        return 401;
    case AG_ERR_DENIED:
        return 403;
    case AG_ERR_NOT_FOUND:
        return 404;
    case AG_ERR_TOO_LARGE:
        return 413;
    case AG_ERR_UNAVAILABLE:
        return 503;
    case AG_ERR_NOMEM:
    case AG_ERR_IO:
    case AG_ERR_INTERNAL:
        return 500;
    }
    return 500;
}

static bool wants_json(const struct ag_request *rq)
{
    const char *accept = ag_request_header(rq, MHD_HTTP_HEADER_ACCEPT);
    if (rq->app->cfg->force_json_errors)
        return true;
    return accept != NULL && strcasestr(accept, "application/json") != NULL;
}

void ag_response_error(const struct ag_request *rq, enum ag_rc rc, struct ag_reply *out)
{
    /* Literal bodies per status, so an error reply never allocates. */
    static const struct {
        unsigned status;
        const char *text, *json;
    } bodies[] = {
        {400, "Bad Request\n", "{\"error\":\"bad_request\"}\n"},
        {401, "Unauthorized\n", "{\"error\":\"unauthorized\"}\n"},
        {403, "Forbidden\n", "{\"error\":\"forbidden\"}\n"},
        {404, "Not Found\n", "{\"error\":\"not_found\"}\n"},
        {413, "Payload Too Large\n", "{\"error\":\"payload_too_large\"}\n"},
        {503, "Service Unavailable\n", "{\"error\":\"service_unavailable\"}\n"},
        {500, "Internal Server Error\n", "{\"error\":\"internal_server_error\"}\n"},
    };
    unsigned status = ag_response_status(rc);
    size_t i = AG_ARRAY_LEN(bodies) - 1;
    for (size_t k = 0; k < AG_ARRAY_LEN(bodies); k++)
        if (bodies[k].status == status)
            i = k;
    bool json = wants_json(rq);
    ag_reply_text(out, status, json ? bodies[i].json : bodies[i].text);
    if (json)
        out->content_type = "application/json";
}

bool ag_reply_has_header(const struct ag_reply *reply, const char *name)
{
    for (size_t i = 0; i < reply->nheaders; i++)
        if (strcasecmp(reply->headers[i].name, name) == 0)
            return true;
    return false;
}

enum MHD_Result ag_response_send(struct ag_request *rq, const struct ag_reply *reply)
{
    struct MHD_Response *resp;
    enum MHD_Result ret;
    const struct ag_config *cfg = rq->app->cfg;
    unsigned status = reply->status;
    bool own = rq->route_id >= 0 && rq->route_id != AG_ROUTE_DEFAULT;

    resp =
        MHD_create_response_from_buffer(reply->body_len, (void *)(reply->body ? reply->body : ""),
                                        reply->body_static ? MHD_RESPMEM_PERSISTENT : MHD_RESPMEM_MUST_COPY);
    if (resp == NULL) {
        ag_log_rq(AG_LOG_ERROR, rq->request_id, "cannot create a response (out of memory)");
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                            reply->content_type ? reply->content_type : "text/plain; charset=utf-8");
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache, no-store, must-revalidate");
    MHD_add_response_header(resp, cfg->request_id_header, rq->request_id);
    for (size_t i = 0; i < reply->nheaders; i++)
        MHD_add_response_header(resp, reply->headers[i].name, reply->headers[i].value);
    if (own && status == 200) {
        /* Envoy forwards the request to the app on exactly 200. An own endpoint's 200 to a check request
         * (under --check-path-prefix) goes out as 203, so Envoy hands it to the client instead; and every
         * own 200 names the identity headers for Envoy to remove, for the setups without a check prefix
         * where Envoy asks about /ping or /robots.txt and forwards them to the app. */
        if (rq->via_check)
            status = 203;
        if (rq->app->strip.all != NULL && !ag_reply_has_header(reply, "X-Envoy-Auth-Headers-To-Remove"))
            MHD_add_response_header(resp, "X-Envoy-Auth-Headers-To-Remove", rq->app->strip.all);
    }
    if (reply->close || atomic_load(&rq->app->draining))
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    ret = MHD_queue_response(rq->conn, status, resp);
    MHD_destroy_response(resp);
    if (ret == MHD_YES) {
        rq->answered = true;
        rq->status = status;
        rq->resp_size = reply->body_len;
    }
    return ret;
}
