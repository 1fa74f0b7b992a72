/* SPDX-License-Identifier: Apache-2.0
 * Sign-in and error pages. */
#include <string.h>
#include <strings.h>

#include "auth/rules.h"
#include "handle/pages.h"

const char *ag_html_escape(struct ag_request *rq, const char *s)
{
    size_t n = 0;
    char *out, *o;

    if (s == NULL)
        return NULL;
    for (const char *p = s; *p; p++)
        n += strchr("<>&\"'", *p) ? 6 : 1;
    out = ag_request_alloc(rq, n + 1);
    if (out == NULL)
        return NULL;
    o = out;
    for (const char *p = s; *p; p++) {
        const char *e = NULL;
        switch (*p) {
        case '<':
            e = "&lt;";
            break;
        case '>':
            e = "&gt;";
            break;
        case '&':
            e = "&amp;";
            break;
        case '"':
            e = "&quot;";
            break;
        case '\'':
            e = "&#39;";
            break;
        default:
            *o++ = *p;
            continue;
        }
        size_t l = strlen(e);
        memcpy(o, e, l);
        o += l;
    }
    *o = '\0';
    return out;
}

/* JSON string escaping for the few values we put in error bodies. */
static const char *json_escape(struct ag_request *rq, const char *s)
{
    size_t n = 0;
    char *out, *o;
    static const char hex[] = "0123456789abcdef";

    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        n += (*p < 0x20 || *p == '"' || *p == '\\' || *p >= 0x7f) ? 6 : 1;
    out = ag_request_alloc(rq, n + 1);
    if (out == NULL)
        return NULL;
    o = out;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p < 0x20 || *p == '"' || *p == '\\' || *p >= 0x7f) {
            /* bytes >= 0x7f escaped one by one keep the body ASCII and valid whatever the input */
            *o++ = '\\';
            *o++ = 'u';
            *o++ = '0';
            *o++ = '0';
            *o++ = hex[*p >> 4];
            *o++ = hex[*p & 15];
        } else {
            *o++ = (char)*p;
        }
    }
    *o = '\0';
    return out;
}

bool ag_wants_json(const struct ag_request *rq)
{
    const char *accept = ag_request_header(rq, MHD_HTTP_HEADER_ACCEPT);
    if (rq->app->cfg->force_json_errors)
        return true;
    if (accept != NULL && strcasestr(accept, "application/json") != NULL)
        return true;
    return ag_rules_match(rq->app->api_rules, rq->method, ag_request_target(rq));
}

static const char style[] = "<style>body{font-family:sans-serif;max-width:32em;margin:4em auto;color:#222}"
                            "button{font-size:1.1em;padding:.5em 1.5em}</style>";

enum MHD_Result ag_page_send(struct ag_request *rq, unsigned status, const char *code, const char *message)
{
    struct ag_reply reply;
    enum ag_rc rc;

    memset(&reply, 0, sizeof(reply));
    rc = ag_page_error(rq, &reply, status, code, message);
    if (rc != AG_OK)
        ag_response_error(rq, rc, &reply);
    return ag_response_send(rq, &reply);
}

enum ag_rc ag_page_error(struct ag_request *rq, struct ag_reply *reply, unsigned status, const char *code,
                         const char *message)
{
    const char *body;

    memset(reply, 0, sizeof(*reply));
    reply->status = status;
    if (ag_wants_json(rq)) {
        body = ag_request_printf(rq, "{\"error\":\"%s\",\"error_description\":\"%s\"}\n",
                                 json_escape(rq, code), json_escape(rq, message));
        reply->content_type = "application/json";
    } else {
        body = ag_request_printf(rq,
                                 "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>%u %s</title>%s"
                                 "</head><body><h1>%s</h1><p>%s</p><p>Request id: %s</p></body></html>\n",
                                 status, ag_html_escape(rq, code), style, ag_html_escape(rq, code),
                                 ag_html_escape(rq, message), rq->request_id);
        reply->content_type = "text/html; charset=utf-8";
    }
    if (body == NULL)
        return AG_ERR_NOMEM;
    reply->body = body;
    reply->body_len = strlen(body);
    return AG_OK;
}

enum ag_rc ag_page_sign_in(struct ag_request *rq, struct ag_reply *reply, const char *rd)
{
    const struct ag_config *cfg = rq->app->cfg;
    const char *href =
        ag_request_printf(rq, "%s/start?rd=%s", cfg->proxy_prefix, ag_request_url_escape(rq, rd ? rd : "/"));
    const char *body;

    if (href == NULL)
        return AG_ERR_NOMEM;
    if (ag_wants_json(rq))
        return ag_page_error(rq, reply, 401, "unauthorized", "authentication required");
    memset(reply, 0, sizeof(*reply));
    body =
        ag_request_printf(rq,
                          "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>Sign in</title>%s</head>"
                          "<body><h1>Sign in</h1><p>You need to sign in to continue.</p>"
                          "<form method=\"GET\" action=\"%s/start\"><input type=\"hidden\" name=\"rd\" "
                          "value=\"%s\"><button type=\"submit\">Sign in with %s</button></form>"
                          "</body></html>\n",
                          style, ag_html_escape(rq, cfg->proxy_prefix), ag_html_escape(rq, rd ? rd : "/"),
                          ag_html_escape(rq, cfg->provider_display_name));
    if (body == NULL)
        return AG_ERR_NOMEM;
    reply->status = 403;
    reply->content_type = "text/html; charset=utf-8";
    reply->body = body;
    reply->body_len = strlen(body);
    return AG_OK;
}
