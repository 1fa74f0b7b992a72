/* SPDX-License-Identifier: Apache-2.0
 * Identity headers for allowed checks. Values are ours (from the sealed session), never the client's:
 * a client-sent X-Auth-Request-* header is never read or echoed. */
#include <string.h>
#include <strings.h>

#include "handle/identity.h"

/* Add name: value (value copied into the arena; name must outlive the reply). Nothing for no value. */
static enum ag_rc add(struct ag_request *rq, struct ag_reply *reply, const char *name, const char *value)
{
    if (value == NULL || value[0] == '\0')
        return AG_OK;
    if (name == NULL)
        return AG_ERR_NOMEM;
    /* a value with CR or LF would split the header: never the case for our own data, but be sure */
    if (strpbrk(value, "\r\n") != NULL)
        return AG_ERR_INVALID;
    return ag_reply_header(reply, name, ag_request_strdup(rq, value));
}

static char header_char(char c)
{
    return c == '_' ? '-' : (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
}

bool ag_identity_claim_header(const struct ag_config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->claim_headers.n; i++) {
        const char *e = cfg->claim_headers.v[i], *n = name;
        while (*e != '=' && *n != '\0' && header_char(*e) == header_char(*n))
            e++, n++;
        if (*e == '=' && *n == '\0')
            return true;
    }
    return false;
}

const char *ag_identity_groups(struct ag_request *rq, const struct ag_session *s)
{
    size_t len = 0;
    char *groups;

    for (size_t i = 0; i < s->groups.n; i++)
        len += strlen(s->groups.v[i]) + 1;
    if (len == 0 || (groups = ag_request_alloc(rq, len)) == NULL)
        return NULL;
    for (size_t i = 0, o = 0; i < s->groups.n; i++) {
        size_t l = strlen(s->groups.v[i]);
        if (i > 0)
            groups[o++] = ',';
        memcpy(groups + o, s->groups.v[i], l + 1);
        o += l;
    }
    return groups;
}

/* Whether reply already carries header `name`. */
static bool has_header(const struct ag_reply *reply, const char *name)
{
    for (size_t i = 0; i < reply->nheaders; i++)
        if (strcasecmp(reply->headers[i].name, name) == 0)
            return true;
    return false;
}

/* Append `name` to the comma-separated list *list (in the arena). */
static void list_add(struct ag_request *rq, const char **list, const char *name, size_t len)
{
    *list = *list == NULL ? ag_request_strndup(rq, name, len)
                          : ag_request_printf(rq, "%s, %.*s", *list, (int)len, name);
}

enum ag_rc ag_identity_headers(struct ag_request *rq, const struct ag_session *s, struct ag_reply *reply)
{
    static const char *const ours[] = {"X-Auth-Request-User", "X-Auth-Request-Email", "X-Auth-Request-Groups",
                                       "X-Auth-Request-Preferred-Username", "X-Auth-Request-Access-Token"};
    const struct ag_config *cfg = rq->app->cfg;
    const char *remove = NULL;
    enum ag_rc rc = AG_OK;

    if (cfg->set_xauthrequest) {
        const char *groups = ag_identity_groups(rq, s);
        if (groups == NULL && s->groups.n > 0)
            return AG_ERR_NOMEM;
        const char *const headers[][2] = {
            {ours[0], s->sub},
            {ours[1], s->email},
            {ours[2], groups},
            {ours[3], s->preferred_username},
            {ours[4], cfg->pass_access_token ? s->access_token : NULL},
        };
        for (size_t i = 0; i < AG_ARRAY_LEN(headers); i++) {
            rc = add(rq, reply, headers[i][0], headers[i][1]);
            if (rc != AG_OK)
                return rc;
        }
    }
    if (cfg->set_authorization_header && s->id_token != NULL)
        rc = ag_reply_header(reply, "Authorization", ag_request_printf(rq, "Bearer %s", s->id_token));
    for (size_t i = 0; rc == AG_OK && i + 1 < s->claims.n; i += 2)
        if (ag_identity_claim_header(cfg, s->claims.v[i]))
            rc = add(rq, reply, ag_request_strdup(rq, s->claims.v[i]), s->claims.v[i + 1]);
    if (rc != AG_OK)
        return rc;

    /* Envoy keeps a client's copy of a header the check answer does not set: name the ones we own but
     * leave out this time in x-envoy-auth-headers-to-remove, so a forged copy never reaches the app.
     * (nginx and Caddy set or drop exactly the headers their config copies.) */
    for (size_t i = 0; cfg->set_xauthrequest && i < AG_ARRAY_LEN(ours); i++)
        if (!has_header(reply, ours[i]))
            list_add(rq, &remove, ours[i], strlen(ours[i]));
    for (size_t i = 0; i < cfg->claim_headers.n; i++) {
        const char *v = cfg->claim_headers.v[i];
        size_t n = strcspn(v, "=");
        char name[128];
        if (n >= sizeof(name))
            continue;
        memcpy(name, v, n);
        name[n] = '\0';
        if (!has_header(reply, name))
            list_add(rq, &remove, v, n);
    }
    return remove != NULL ? ag_reply_header(reply, "X-Envoy-Auth-Headers-To-Remove", remove) : AG_OK;
}
