/* SPDX-License-Identifier: Apache-2.0
 * Upstream URLs and path routing. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "net/upstream.h"

void ag_upstream_clear(struct ag_upstream *u)
{
    if (u == NULL)
        return;
    free(u->host);
    free(u->unix_path);
    free(u->file_dir);
    free(u->origin);
    free(u->authority);
    free(u->path);
    memset(u, 0, sizeof(*u));
}

static bool host_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '-' || c == '_' || c == ':' || c == '[' || c == ']';
}

/* "[host=]unix:///socket[#/path]" or "[host=]file:///dir[#/path]" into u (after any host). */
static enum ag_rc parse_local(const char *url, struct ag_upstream *u, char *err, size_t errlen)
{
    bool file = strncmp(url, "file://", 7) == 0;
    const char *loc = url + 7, *hash = strchr(loc, '#');
    size_t n = hash ? (size_t)(hash - loc) : strlen(loc);
    const char *path = hash ? hash + 1 : "/";

    if (loc[0] != '/' || n < 2 || n > (file ? 1024u : 107u)) {
        snprintf(err, errlen,
                 file ? "expected file:///absolute/directory"
                      : "expected unix:///absolute/socket/path "
                        "(at most 107 bytes)");
        return AG_ERR_INVALID;
    }
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)loc[i] < 0x20 || loc[i] == 0x7f) {
            snprintf(err, errlen, "expected a path without control characters");
            return AG_ERR_INVALID;
        }
    if (path[0] != '/' || strpbrk(path, "?# ") != NULL) {
        snprintf(err, errlen, "expected #/path after the %s, like %s", file ? "directory" : "socket",
                 file ? "file:///srv/www#/static/" : "unix:///run/app.sock#/app/");
        return AG_ERR_INVALID;
    }
    while (file && n > 1 && loc[n - 1] == '/')
        n--;
    if (file)
        u->file_dir = strndup(loc, n);
    else
        u->unix_path = strndup(loc, n);
    u->origin = strdup(file ? "file://" : "http://localhost");
    u->authority = strdup("localhost");
    u->path = strdup(path);
    return (u->file_dir || u->unix_path) && u->origin && u->authority && u->path ? AG_OK : AG_ERR_NOMEM;
}

/* Every failure goes through `done`, which frees whatever was already taken (the host of "host=URL" is
 * copied before the URL is read): a refused upstream must not leak, also when the config check parses
 * every --upstream once more. */
enum ag_rc ag_upstream_parse(const char *url, struct ag_upstream *u, char *err, size_t errlen)
{
    size_t scheme_len, auth_len;
    const char *auth, *path, *eq = strchr(url, '='), *sep = strstr(url, "://");
    enum ag_rc rc = AG_ERR_INVALID;

    memset(u, 0, sizeof(*u));
    if (eq != NULL && sep != NULL && eq < sep) {
        /* host=URL */
        if (eq == url || (size_t)(eq - url) > 253) {
            snprintf(err, errlen, "expected host=URL with a host name before the =");
            goto done;
        }
        for (const char *p = url; p < eq; p++)
            if (!host_char((unsigned char)*p) || *p == ':' || *p == '[' || *p == ']') {
                snprintf(err, errlen, "expected host=URL with a plain host name (no port) before the =");
                goto done;
            }
        u->host = strndup(url, (size_t)(eq - url));
        if (u->host == NULL) {
            rc = AG_ERR_NOMEM;
            goto done;
        }
        for (char *p = u->host; *p; p++)
            *p = (char)((*p >= 'A' && *p <= 'Z') ? *p + 32 : *p);
        url = eq + 1;
    }
    if (strncmp(url, "unix://", 7) == 0 || strncmp(url, "file://", 7) == 0) {
        rc = parse_local(url, u, err, errlen);
        goto done;
    }
    if (strncmp(url, "http://", 7) == 0)
        scheme_len = 7;
    else if (strncmp(url, "https://", 8) == 0)
        scheme_len = 8;
    else {
        snprintf(err, errlen, "expected http://, https://, unix://, file:// or static://CODE");
        goto done;
    }
    auth = url + scheme_len;
    auth_len = strcspn(auth, "/?#");
    path = auth + auth_len;
    if (auth_len == 0 || auth_len > 255) {
        snprintf(err, errlen, "expected a host after the scheme");
        goto done;
    }
    for (size_t i = 0; i < auth_len; i++)
        if (!host_char((unsigned char)auth[i])) {
            snprintf(err, errlen, "expected host[:port] without user info or unusual characters");
            goto done;
        }
    if (strpbrk(path, "?#") != NULL) {
        snprintf(err, errlen, "expected no query or fragment (the request's own go upstream)");
        goto done;
    }
    for (const char *p = path; *p != '\0'; p++)
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f) {
            snprintf(err, errlen, "expected a path without spaces or control characters");
            goto done;
        }
    u->origin = strndup(url, scheme_len + auth_len);
    u->authority = strndup(auth, auth_len);
    u->path = strdup(path[0] != '\0' ? path : "/");
    rc = u->origin && u->authority && u->path ? AG_OK : AG_ERR_NOMEM;
done:
    if (rc != AG_OK) {
        ag_upstream_clear(u);
        return rc;
    }
    u->path_len = strlen(u->path);
    u->exact = u->path[u->path_len - 1] != '/';
    return AG_OK;
}

/* Whether `host` (a Host value, maybe with a port) names h. */
static bool same_host(const char *h, const char *host)
{
    size_t n;
    if (host == NULL)
        return false;
    n = host[0] == '[' ? strcspn(host, "]") + 1 : strcspn(host, ":");
    return strlen(h) == n && strncasecmp(h, host, n) == 0;
}

const struct ag_upstream *ag_upstreams_match(const struct ag_upstreams *t, const char *host, const char *path,
                                             size_t path_len)
{
    const struct ag_upstream *best = NULL;

    for (int pass = 0; pass < 2 && best == NULL; pass++) /* upstreams for this host, then the rest */
        for (size_t i = 0; t != NULL && i < t->n; i++) {
            const struct ag_upstream *u = &t->v[i];
            bool eligible = pass == 0 ? u->host != NULL && same_host(u->host, host) : u->host == NULL;
            if (!eligible)
                continue;
            bool hit = u->exact ? path_len == u->path_len && memcmp(path, u->path, path_len) == 0
                                : path_len >= u->path_len && memcmp(path, u->path, u->path_len) == 0;
            if (hit && (best == NULL || u->path_len > best->path_len))
                best = u;
        }
    return best;
}
