/* SPDX-License-Identifier: Apache-2.0
 * The request context: born when libmicrohttpd has parsed the request line (URI log callback),
 * freed when it reports the request completed. Everything a handler needs hangs off it; values
 * borrowed from libmicrohttpd (method, headers) live as long as the request. */
#ifndef AG_REQUEST_H
#define AG_REQUEST_H

#include <microhttpd.h>
#include <stdatomic.h>
#include <time.h>

#include "common.h"
#include "app.h"
#include "config.h"

#define AG_REQUEST_ID_MAX 128
/* Bodies sent to authgate's own endpoints are not used; past this they are refused (413). */
#define AG_OWN_BODY_MAX (64 * 1024)

struct ag_rq_block;
struct ag_proxy;
struct ag_upstream;
struct ag_reply;

struct ag_request {
    struct ag_app *app;
    struct MHD_Connection *conn;
    char *raw_uri;       /* request-target exactly as received (owned) */
    size_t path_len;     /* length of its path part, before any '?' or '#' */
    const char *method;  /* borrowed from libmicrohttpd */
    const char *version; /* borrowed */
    char client[64];     /* peer address, "unix" for unix sockets */
    char request_id[AG_REQUEST_ID_MAX + 1];
    struct timespec start;
    uint64_t body_bytes;             /* request body bytes seen */
    int route_id;                    /* enum ag_route_id of the handler that answered, -1 before */
    bool via_check;                  /* the path starts with --check-path-prefix: an Envoy check request */
    bool forwarding;                 /* reverse proxy: this very request goes upstream, so its own method
                                      * and target are what the rules judge, whatever X-Forwarded-* says */
    bool started;                    /* first access-handler call done */
    bool counted;                    /* included in app->inflight */
    bool answered;                   /* a response was queued */
    unsigned status;                 /* status sent, for the request log */
    uint64_t resp_size;              /* body bytes sent, for the request log */
    const char *user;                /* who the request was authenticated as, for the logs (arena) */
    struct ag_rq_block *arena;       /* memory that dies with the request */
    struct ag_proxy *proxy;          /* reverse-proxy mode: the upstream transfer (handle/proxy.c) */
    struct ag_reply *pending;        /* reverse-proxy mode: a refusal to send once the body is in (arena) */
    const char *set_cookie;          /* reverse-proxy mode: a re-issued session cookie (arena) */
    const struct ag_upstream *files; /* reverse-proxy mode: a file:// upstream answers this request */
};

/* Per-request memory: freed all at once when the request completes. NULL on ENOMEM. */
void *ag_request_alloc(struct ag_request *rq, size_t n);
char *ag_request_strdup(struct ag_request *rq, const char *s);
char *ag_request_strndup(struct ag_request *rq, const char *s, size_t n);
char *ag_request_printf(struct ag_request *rq, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* s percent-encoded for a URL query value (RFC 3986 unreserved characters kept), in the arena. */
const char *ag_request_url_escape(struct ag_request *rq, const char *s);

/* Query parameter `name` (percent-decoded by libmicrohttpd), borrowed, or NULL. */
const char *ag_request_arg(const struct ag_request *rq, const char *name);

/* How many query parameters are named `name` (a repeated state or code is refused). */
unsigned ag_request_arg_count(const struct ag_request *rq, const char *name);

/* Whether the peer is one of --trusted-proxy-ip, so its X-Forwarded-* headers count. */
bool ag_request_from_trusted_proxy(const struct ag_request *rq);

/* The host the client asked for: X-Forwarded-Host from a trusted proxy, else Host. NULL when
 * missing or not a plausible host[:port]. */
const char *ag_request_host(const struct ag_request *rq);

/* "https" when a trusted proxy says X-Forwarded-Proto: https, else "http". */
const char *ag_request_scheme(const struct ag_request *rq);

/* The URL the client originally asked for, to return to after login: X-Forwarded-Uri (absolute or a
 * path) from a trusted proxy, else scheme://host + the request-target (with the check path prefix
 * removed). In the arena; NULL when it cannot be formed. */
const char *ag_request_original_url(struct ag_request *rq);

/* The request-target the app was asked for, as the skip-auth and API rules judge it: X-Forwarded-Uri (a
 * path) from a trusted proxy when authgate is asked about another request (a check, /oauth2/auth), else
 * ours with the check path prefix removed (always ours when authgate forwards it). Borrowed. */
const char *ag_request_target(const struct ag_request *rq);

/* New context for a request whose request-target is `uri` (copied). Returns NULL on ENOMEM. */
struct ag_request *ag_request_new(struct ag_app *app, struct MHD_Connection *conn, const char *uri);

/* Free a context (NULL is fine). */
void ag_request_free(struct ag_request *rq);

/* Value of request header `name` (case-insensitive), borrowed, or NULL. With several copies,
 * the first. */
const char *ag_request_header(const struct ag_request *rq, const char *name);

/* Take the client's request id from `header_value` when it is 1..AG_REQUEST_ID_MAX characters of
 * [A-Za-z0-9._:+/=-], otherwise generate 32 hex characters from RAND_bytes. */
void ag_request_set_id(struct ag_request *rq, const char *header_value);

/* Seconds since the context was created. */
double ag_request_elapsed(const struct ag_request *rq);

#endif
