/* SPDX-License-Identifier: Apache-2.0
 * Identity headers for allowed checks. Values are ours (from the sealed session), never the client's:
 * a client-sent X-Auth-Request-* header is never read or echoed. */
#include <stdlib.h>
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

/* The identity headers apps are configured to trust, as bases for every spelling. */
static const char *const identity_bases[] = {
    "x-auth-request-user",
    "x-auth-request-email",
    "x-auth-request-groups",
    "x-auth-request-preferred-username",
    "x-auth-request-access-token",
    "x-forwarded-user",
    "x-forwarded-email",
    "x-forwarded-groups",
    "x-forwarded-preferred-username",
    "x-forwarded-access-token",
};

/* Append every spelling of `base` (lowercase) with a '_' at one separator or more to buf at *o (NULL
 * buf: only count), each followed by ", ". Returns the bytes it takes. */
static size_t spellings(const char *base, char *buf, size_t o)
{
    size_t len = strlen(base), pos[AG_MAX_CLAIM_HEADER_SEPARATORS + 8], k = 0, start = o;
    for (size_t i = 0; i < len && k < AG_ARRAY_LEN(pos); i++)
        if (base[i] == '-' || base[i] == '_')
            pos[k++] = i;
    for (unsigned long mask = 1; mask < (1UL << k); mask++) {
        if (buf != NULL) {
            for (size_t i = 0; i < len; i++)
                buf[o + i] = header_char(base[i]);
            for (size_t j = 0; j < k; j++)
                buf[o + pos[j]] = (mask >> j) & 1 ? '_' : '-';
            memcpy(buf + o + len, ", ", 2);
        }
        o += len + 2;
    }
    return o - start;
}

void ag_identity_strip_clear(struct ag_identity_strip *st)
{
    for (size_t i = 0; i < st->nplain; i++)
        free(st->plain[i]);
    free(st->plain);
    free(st->spelled);
    free(st->all);
    memset(st, 0, sizeof(*st));
}

enum ag_rc ag_identity_strip_init(struct ag_identity_strip *out, const struct ag_config *cfg)
{
    size_t n = AG_ARRAY_LEN(identity_bases) + cfg->claim_headers.n, size = 0, plain = 0, o = 0;

    memset(out, 0, sizeof(*out));
    out->plain = calloc(n, sizeof(*out->plain));
    if (out->plain == NULL)
        return AG_ERR_NOMEM;
    for (size_t i = 0; i < n; i++) {
        const char *src = i < AG_ARRAY_LEN(identity_bases)
                              ? identity_bases[i]
                              : cfg->claim_headers.v[i - AG_ARRAY_LEN(identity_bases)];
        size_t len = i < AG_ARRAY_LEN(identity_bases) ? strlen(src) : strcspn(src, "=");
        char *p = malloc(len + 1);
        if (p == NULL)
            goto nomem;
        for (size_t j = 0; j < len; j++)
            p[j] = header_char(src[j]);
        p[len] = '\0';
        out->plain[out->nplain++] = p;
        size += spellings(p, NULL, 0);
        plain += len + 2;
    }
    out->spelled = malloc(size + 1);
    out->all = malloc(size + plain + 1);
    if (out->spelled == NULL || out->all == NULL)
        goto nomem;
    for (size_t i = 0; i < out->nplain; i++)
        o += spellings(out->plain[i], out->spelled, o);
    memcpy(out->all, out->spelled, o);
    for (size_t i = 0; i < out->nplain; i++) {
        size_t len = strlen(out->plain[i]);
        memcpy(out->all + o, out->plain[i], len);
        memcpy(out->all + o + len, ", ", 2);
        o += len + 2;
    }
    /* drop the last ", " */
    out->all[o > 2 ? o - 2 : 0] = '\0';
    out->spelled_len = size > 2 ? size - 2 : 0;
    out->spelled[out->spelled_len] = '\0';
    return AG_OK;
nomem:
    ag_identity_strip_clear(out);
    return AG_ERR_NOMEM;
}

enum ag_rc ag_identity_headers(struct ag_request *rq, const struct ag_session *s, struct ag_reply *reply)
{
    static const char *const ours[] = {"X-Auth-Request-User", "X-Auth-Request-Email", "X-Auth-Request-Groups",
                                       "X-Auth-Request-Preferred-Username", "X-Auth-Request-Access-Token"};
    const struct ag_config *cfg = rq->app->cfg;
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

    /* Envoy keeps a client's copy of any header the check answer does not set: name every spelling of
     * every identity header, except the plain names this answer sets (Envoy replaces those with ours
     * through headersToUpstreamOnAllow), in x-envoy-auth-headers-to-remove. (nginx and Caddy set or
     * drop exactly the headers their config copies.) */
    const struct ag_identity_strip *st = &rq->app->strip;
    bool set[AG_ARRAY_LEN(identity_bases) + AG_MAX_CLAIM_HEADERS] = {false};
    size_t len = st->spelled_len, o = len;
    char *list = NULL;
    for (size_t i = 0; i < st->nplain && i < AG_ARRAY_LEN(set); i++) {
        set[i] = ag_reply_has_header(reply, st->plain[i]);
        if (!set[i])
            len += strlen(st->plain[i]) + 2;
    }
    if (len == o)
        return ag_reply_header(reply, "X-Envoy-Auth-Headers-To-Remove", st->spelled);
    list = ag_request_alloc(rq, len + 1);
    if (list == NULL)
        return AG_ERR_NOMEM;
    memcpy(list, st->spelled, o);
    for (size_t i = 0; i < st->nplain && i < AG_ARRAY_LEN(set); i++) {
        if (set[i])
            continue;
        size_t l = strlen(st->plain[i]);
        if (o > 0) {
            memcpy(list + o, ", ", 2);
            o += 2;
        }
        memcpy(list + o, st->plain[i], l);
        o += l;
    }
    list[o] = '\0';
    return ag_reply_header(reply, "X-Envoy-Auth-Headers-To-Remove", list);
}
