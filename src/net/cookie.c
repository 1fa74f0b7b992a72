/* SPDX-License-Identifier: Apache-2.0
 * Cookie reading and Set-Cookie building (RFC 6265; net/cookie.h says how a Cookie header is read). */
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "net/cookie.h"

static bool ows(char c)
{
    return c == ' ' || c == '\t';
}

bool ag_cookie_next(const char **pos, const char *end, struct ag_cookie_pair *out)
{
    const char *p = *pos;

    for (;;) {
        while (p < end && (ows(*p) || *p == ';'))
            p++;
        if (p >= end) {
            *pos = end;
            return false;
        }
        const char *semi = memchr(p, ';', (size_t)(end - p)), *stop = semi ? semi : end, *last = stop;
        while (last > p && ows(last[-1]))
            last--;
        *pos = stop;
        if (last == p)
            continue;
        const char *eq = memchr(p, '=', (size_t)(last - p)), *ne = eq ? eq : last, *v = eq ? eq + 1 : last;
        while (ne > p && ows(ne[-1]))
            ne--;
        while (v < last && ows(*v))
            v++;
        *out = (struct ag_cookie_pair){p, v, (size_t)(ne - p), (size_t)(last - v), p, (size_t)(last - p)};
        return true;
    }
}

static bool ours_named(const char *name, size_t len, const char *ours)
{
    size_t n = strlen(ours);
    return len >= n && memcmp(name, ours, n) == 0 &&
           (len == n || (len >= n + 5 && memcmp(name + n, "_csrf", 5) == 0));
}

bool ag_cookie_is_ours(const struct ag_cookie_pair *pair, const char *ours, bool hidden)
{
    if (ours_named(pair->name, pair->name_len, ours))
        return true;
    if (!hidden)
        return false;
    /* what a server that splits on commas too would find: every comma-separated piece, trimmed */
    const char *end = pair->text + pair->text_len;
    for (const char *p = pair->text; p != NULL && p < end;) {
        const char *ne, *comma = memchr(p, ',', (size_t)(end - p));
        while (p < end && ows(*p))
            p++;
        ne = p;
        while (ne < end && *ne != '=' && *ne != ',')
            ne++;
        while (ne > p && ows(ne[-1]))
            ne--;
        if (ours_named(p, (size_t)(ne - p), ours))
            return true;
        p = comma != NULL ? comma + 1 : NULL;
    }
    return false;
}

struct cookie_walk {
    struct ag_request *rq;
    const char *want; /* ag_cookie_get: the name; NULL: ag_cookie_forwarded */
    const char *found;
    char *out; /* ag_cookie_forwarded: the kept pairs */
    size_t o, cap;
    bool failed;
};

static enum MHD_Result walk_header(void *cls, enum MHD_ValueKind kind, const char *key, size_t key_size,
                                   const char *value, size_t value_size)
{
    struct cookie_walk *w = cls;
    const char *pos = value, *end = value + value_size;
    const char *ours = w->rq->app->cfg->cookie_name;
    struct ag_cookie_pair pair;

    AG_UNUSED(kind);
    if (key == NULL || value == NULL || key_size != 6 || strncasecmp(key, "Cookie", 6) != 0)
        return MHD_YES;
    while (ag_cookie_next(&pos, end, &pair)) {
        if (w->want != NULL) {
            if (pair.name_len == strlen(w->want) && memcmp(pair.name, w->want, pair.name_len) == 0) {
                w->found = ag_request_strndup(w->rq, pair.value, pair.value_len);
                w->failed = w->found == NULL;
                return MHD_NO;
            }
        } else if (!ag_cookie_is_ours(&pair, ours, true)) {
            if (w->out == NULL) {
                w->out = ag_request_alloc(w->rq, w->cap);
                if (w->out == NULL) {
                    w->failed = true;
                    return MHD_NO;
                }
            }
            if (w->o > 0) {
                w->out[w->o++] = ';';
                w->out[w->o++] = ' ';
            }
            memcpy(w->out + w->o, pair.text, pair.text_len);
            w->o += pair.text_len;
        }
    }
    return MHD_YES;
}

static enum MHD_Result cookie_bytes(void *cls, enum MHD_ValueKind kind, const char *key, size_t key_size,
                                    const char *value, size_t value_size)
{
    size_t *n = cls;
    AG_UNUSED(kind);
    AG_UNUSED(value);
    if (key != NULL && key_size == 6 && strncasecmp(key, "Cookie", 6) == 0)
        *n += 2 * value_size + 2; /* every ";" may become "; " */
    return MHD_YES;
}

const char *ag_cookie_get(struct ag_request *rq, const char *name)
{
    struct cookie_walk w = {rq, name, NULL, NULL, 0, 0, false};
    MHD_get_connection_values_n(rq->conn, MHD_HEADER_KIND, walk_header, &w);
    return w.found;
}

const char *ag_cookie_forwarded(struct ag_request *rq, bool *failed)
{
    struct cookie_walk w = {rq, NULL, NULL, NULL, 0, 1, false};
    MHD_get_connection_values_n(rq->conn, MHD_HEADER_KIND, cookie_bytes, &w.cap);
    MHD_get_connection_values_n(rq->conn, MHD_HEADER_KIND, walk_header, &w);
    *failed = w.failed;
    if (w.failed || w.o == 0)
        return NULL;
    w.out[w.o] = '\0';
    return w.out;
}

const char *ag_cookie_domain(const struct ag_request *rq)
{
    const struct ag_config *cfg = rq->app->cfg;
    const char *host = ag_request_host(rq), *best = NULL;
    size_t hlen, blen = 0;

    if (host == NULL || cfg->cookie_domains.n == 0)
        return NULL;
    hlen = strcspn(host, ":");
    if (host[0] == '[')
        return NULL; /* an IP literal has no domain */
    for (size_t i = 0; i < cfg->cookie_domains.n; i++) {
        const char *d = cfg->cookie_domains.v[i];
        const char *bare = d[0] == '.' ? d + 1 : d;
        size_t dl = strlen(bare);
        bool match =
            (hlen == dl && strncasecmp(host, bare, dl) == 0) ||
            (hlen > dl && host[hlen - dl - 1] == '.' && strncasecmp(host + hlen - dl, bare, dl) == 0);
        if (match && dl > blen) {
            best = d;
            blen = dl;
        }
    }
    return best;
}

const char *ag_cookie_make(struct ag_request *rq, const char *name, const char *value, int64_t max_age_s)
{
    const struct ag_config *cfg = rq->app->cfg;
    const char *domain = ag_cookie_domain(rq);
    char expires[128] = "", samesite[32] = "";
    const char *ss = cfg->cookie_samesite;

    if (max_age_s != 0) {
        time_t t = max_age_s > 0 ? time(NULL) + (time_t)max_age_s : 0;
        struct tm tm;
        char date[64];
        gmtime_r(&t, &tm);
        strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
        snprintf(expires, sizeof(expires), "; Max-Age=%lld; Expires=%s",
                 (long long)(max_age_s > 0 ? max_age_s : 0), date);
    }
    if (ss != NULL && ss[0] != '\0')
        snprintf(samesite, sizeof(samesite), "; SameSite=%c%s", ss[0] - 'a' + 'A', ss + 1);
    return ag_request_printf(rq, "%s=%s; Path=%s%s%s%s%s%s%s", name, max_age_s < 0 ? "" : value,
                             cfg->cookie_path, domain ? "; Domain=" : "", domain ? domain : "", expires,
                             cfg->cookie_httponly ? "; HttpOnly" : "", cfg->cookie_secure ? "; Secure" : "",
                             samesite);
}
