/* SPDX-License-Identifier: Apache-2.0
 * The --upstream table for reverse-proxy mode: http:// and https:// URLs, unix:///socket (plain
 * HTTP over a local socket) and file:///dir (static files, handle/files.c); for the last two "#/path"
 * routes like a URL's path. The URL's path routes:
 * ending in '/' it is a prefix, otherwise an exact path; no path is "/". A leading "host=" makes the
 * upstream serve only requests for that Host (any port, any case): one instance can front several
 * apps. For a request, upstreams naming its host come first, then the rest; the longest path wins.
 * The request's own path and query go upstream unchanged (the URL's path only chooses the upstream). */
#ifndef AG_NET_UPSTREAM_H
#define AG_NET_UPSTREAM_H

#include "common.h"

struct ag_upstream {
    char *host;      /* "grafana.example.com=..." : only for that Host (lowercase); NULL = any */
    char *unix_path; /* unix:///run/app.sock: the socket; NULL for TCP */
    char *file_dir;  /* file:///srv/www#/static/: the directory (or file) served; NULL otherwise */
    char *origin;    /* scheme://authority as configured, e.g. "http://127.0.0.1:3000" */
    char *authority; /* host[:port], the Host header when --pass-host-header=false */
    char *path;      /* routing path: "/" when the URL has none */
    size_t path_len;
    bool exact; /* path does not end in '/': only that path */
};

struct ag_upstreams {
    struct ag_upstream *v;
    size_t n;
};

/* Parse one upstream into *u (owned strings; free with ag_upstream_clear). AG_ERR_INVALID with a reason in
 * err for anything but [host=]http(s)://host[:port][/path] without userinfo, query or fragment, or
 * [host=]unix:///socket[#/path] or [host=]file:///dir[#/path]; on any error *u holds nothing to free. */
enum ag_rc ag_upstream_parse(const char *url, struct ag_upstream *u, char *err, size_t errlen);

void ag_upstream_clear(struct ag_upstream *u);

/* The upstream for a request to `host` (its Host, a port is ignored; NULL = none) and the raw request path
 * (path_len bytes, before any '?'), or NULL when none matches. */
const struct ag_upstream *ag_upstreams_match(const struct ag_upstreams *t, const char *host, const char *path,
                                             size_t path_len);

#endif
