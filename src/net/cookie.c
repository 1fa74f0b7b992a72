/* SPDX-License-Identifier: Apache-2.0
 * Cookie reading and Set-Cookie building (RFC 6265). */
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "net/cookie.h"

const char *ag_cookie_get(const struct ag_request *rq, const char *name)
{
    return MHD_lookup_connection_value(rq->conn, MHD_COOKIE_KIND, name);
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
