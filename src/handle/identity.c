/* SPDX-License-Identifier: Apache-2.0
 * Identity headers for allowed checks. Values are ours (from the sealed session), never the client's:
 * a client-sent X-Auth-Request-* header is never read or echoed. */
#include <string.h>

#include "handle/identity.h"

static enum ag_rc add(struct ag_request *rq, struct ag_reply *reply, const char *name, const char *value)
{
    if (value == NULL || value[0] == '\0')
        return AG_OK;
    /* a value with CR or LF would split the header: never the case for our own data, but be sure */
    if (strpbrk(value, "\r\n") != NULL)
        return AG_ERR_INVALID;
    return ag_reply_header(reply, name, ag_request_strdup(rq, value));
}

enum ag_rc ag_identity_headers(struct ag_request *rq, const struct ag_session *s, struct ag_reply *reply)
{
    const struct ag_config *cfg = rq->app->cfg;
    enum ag_rc rc = AG_OK;

    if (cfg->set_xauthrequest) {
        size_t len = 0;
        char *groups = NULL;
        for (size_t i = 0; i < s->groups.n; i++)
            len += strlen(s->groups.v[i]) + 1;
        if (len > 0) {
            groups = ag_request_alloc(rq, len);
            if (groups == NULL)
                return AG_ERR_NOMEM;
            groups[0] = '\0';
            for (size_t i = 0, o = 0; i < s->groups.n; i++) {
                size_t l = strlen(s->groups.v[i]);
                if (i > 0)
                    groups[o++] = ',';
                memcpy(groups + o, s->groups.v[i], l + 1);
                o += l;
            }
        }
        const char *const headers[][2] = {
            {"X-Auth-Request-User", s->sub},
            {"X-Auth-Request-Email", s->email},
            {"X-Auth-Request-Groups", groups},
            {"X-Auth-Request-Preferred-Username", s->preferred_username},
        };
        for (size_t i = 0; i < AG_ARRAY_LEN(headers); i++) {
            rc = add(rq, reply, headers[i][0], headers[i][1]);
            if (rc != AG_OK)
                return rc;
        }
        if (cfg->pass_access_token)
            rc = add(rq, reply, "X-Auth-Request-Access-Token", s->access_token);
    }
    if (rc == AG_OK && cfg->set_authorization_header && s->id_token != NULL)
        rc = ag_reply_header(reply, "Authorization", ag_request_printf(rq, "Bearer %s", s->id_token));
    return rc;
}
