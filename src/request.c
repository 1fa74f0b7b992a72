/* SPDX-License-Identifier: Apache-2.0
 * Request context life cycle and small accessors. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/rand.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "net/cidr.h"
#include "request.h"

/* The request arena: blocks of ARENA_BLOCK bytes (or one of its own for a larger allocation), bumped
 * through, all freed with the request. A request usually needs one block, so one malloc. */
#define ARENA_BLOCK 2048
#define ARENA_ALIGN _Alignof(max_align_t)

struct ag_rq_block {
    struct ag_rq_block *next;
    size_t used, cap;
    max_align_t data[];
};

/* Where the next allocation in the head block would start, and how much room is left there. */
static char *arena_room(const struct ag_request *rq, size_t *room)
{
    const struct ag_rq_block *b = rq->arena;
    size_t at;

    *room = 0;
    if (b == NULL)
        return NULL;
    at = (b->used + ARENA_ALIGN - 1) & ~(ARENA_ALIGN - 1);
    if (at >= b->cap)
        return NULL;
    *room = b->cap - at;
    return (char *)b->data + at;
}

static void client_address(struct ag_request *rq)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(rq->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    const struct sockaddr *sa = ci ? ci->client_addr : NULL;

    snprintf(rq->client, sizeof(rq->client), "-");
    if (sa == NULL)
        return;
    if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, rq->client, sizeof(rq->client));
    else if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, rq->client, sizeof(rq->client));
    else if (sa->sa_family == AF_UNIX)
        snprintf(rq->client, sizeof(rq->client), "unix");
}

struct ag_request *ag_request_new(struct ag_app *app, struct MHD_Connection *conn, const char *uri)
{
    struct ag_request *rq = calloc(1, sizeof(*rq));
    if (rq == NULL)
        return NULL;
    rq->app = app;
    rq->conn = conn;
    rq->route_id = -1;
    rq->raw_uri = strdup(uri ? uri : "");
    if (rq->raw_uri == NULL) {
        free(rq);
        return NULL;
    }
    rq->path_len = strcspn(rq->raw_uri, "?#");
    const char *prefix = app->cfg->check_path_prefix;
    size_t plen = prefix ? strlen(prefix) : 0;
    rq->via_check = plen > 0 && strncmp(rq->raw_uri, prefix, plen) == 0 && rq->raw_uri[plen] == '/';
    clock_gettime(CLOCK_MONOTONIC, &rq->start);
    client_address(rq);
    return rq;
}

void ag_request_free(struct ag_request *rq)
{
    if (rq == NULL)
        return;
    while (rq->arena != NULL) {
        struct ag_rq_block *next = rq->arena->next;
        free(rq->arena);
        rq->arena = next;
    }
    free(rq->raw_uri);
    free(rq);
}

const char *ag_request_header(const struct ag_request *rq, const char *name)
{
    return MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, name);
}

static bool id_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == ':' || c == '+' || c == '/' || c == '=' || c == '-';
}

void ag_request_set_id(struct ag_request *rq, const char *v)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char raw[16];
    size_t n = 0;

    if (v != NULL) {
        while (n <= AG_REQUEST_ID_MAX && v[n] != '\0' && id_char((unsigned char)v[n]))
            n++;
        if (n > 0 && n <= AG_REQUEST_ID_MAX && v[n] == '\0') {
            memcpy(rq->request_id, v, n + 1);
            return;
        }
    }
    /* A random per-thread prefix and a counter: unique, and one RAND_bytes per thread instead of one
     * per request (OpenSSL 3 checks the pid on every call: 6% of a check's time in bench/). An id is
     * for correlation, not a secret. */
    static _Thread_local unsigned char prefix[8];
    static _Thread_local uint64_t seq;
    static _Thread_local bool seeded;
    if (!seeded) {
        static atomic_ulong fallback;
        if (RAND_bytes(prefix, sizeof(prefix)) != 1) {
            unsigned long f = atomic_fetch_add(&fallback, 1) + 1;
            memcpy(prefix, &f, sizeof(f) < sizeof(prefix) ? sizeof(f) : sizeof(prefix));
        }
        seeded = true;
    }
    uint64_t n64 = ++seq;
    memcpy(raw, prefix, sizeof(prefix));
    for (size_t i = 0; i < 8; i++)
        raw[8 + i] = (unsigned char)(n64 >> (56 - 8 * i));
    for (size_t i = 0; i < sizeof(raw); i++) {
        rq->request_id[2 * i] = hex[raw[i] >> 4];
        rq->request_id[2 * i + 1] = hex[raw[i] & 15];
    }
    rq->request_id[2 * sizeof(raw)] = '\0';
}

double ag_request_elapsed(const struct ag_request *rq)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - rq->start.tv_sec) + (double)(now.tv_nsec - rq->start.tv_nsec) / 1e9;
}

void *ag_request_alloc(struct ag_request *rq, size_t n)
{
    struct ag_rq_block *b;
    size_t room, cap = n > ARENA_BLOCK ? n : ARENA_BLOCK;
    char *p = arena_room(rq, &room);

    if (p != NULL && n <= room) {
        rq->arena->used = (size_t)(p - (char *)rq->arena->data) + n;
        return p;
    }
    if (cap > SIZE_MAX - sizeof(*b))
        return NULL;
    b = malloc(sizeof(*b) + cap);
    if (b == NULL)
        return NULL;
    b->cap = cap;
    b->used = n;
    if (cap > ARENA_BLOCK && rq->arena != NULL) { /* a block of its own: the head keeps its room */
        b->next = rq->arena->next;
        rq->arena->next = b;
    } else {
        b->next = rq->arena;
        rq->arena = b;
    }
    return b->data;
}

char *ag_request_strndup(struct ag_request *rq, const char *s, size_t n)
{
    char *d = ag_request_alloc(rq, n + 1);
    if (d == NULL)
        return NULL;
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

char *ag_request_strdup(struct ag_request *rq, const char *s)
{
    return s ? ag_request_strndup(rq, s, strlen(s)) : NULL;
}

char *ag_request_printf(struct ag_request *rq, const char *fmt, ...)
{
    va_list ap;
    int n;
    size_t room;
    char *d = arena_room(rq, &room);

    /* straight into the head block's room when it fits there (one formatting pass), else measured */
    va_start(ap, fmt);
    n = d != NULL ? vsnprintf(d, room, fmt, ap) : vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return NULL;
    if (d != NULL && (size_t)n < room)
        return ag_request_alloc(rq, (size_t)n + 1); /* claims exactly the bytes just written */
    d = ag_request_alloc(rq, (size_t)n + 1);
    if (d == NULL)
        return NULL;
    va_start(ap, fmt);
    vsnprintf(d, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return d;
}

const char *ag_request_url_escape(struct ag_request *rq, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = strlen(s);
    char *out, *o;

    if (n > (SIZE_MAX - 1) / 3)
        return NULL;
    out = ag_request_alloc(rq, n * 3 + 1);
    if (out == NULL)
        return NULL;
    o = out;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '-' ||
            *p == '.' || *p == '_' || *p == '~') {
            *o++ = (char)*p;
        } else {
            *o++ = '%';
            *o++ = hex[*p >> 4];
            *o++ = hex[*p & 15];
        }
    }
    *o = '\0';
    return out;
}

const char *ag_request_arg(const struct ag_request *rq, const char *name)
{
    return MHD_lookup_connection_value(rq->conn, MHD_GET_ARGUMENT_KIND, name);
}

struct arg_count {
    const char *name;
    unsigned n;
};

static enum MHD_Result count_arg(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    struct arg_count *c = cls;
    AG_UNUSED(kind);
    AG_UNUSED(value);
    if (key != NULL && strcmp(key, c->name) == 0)
        c->n++;
    return MHD_YES;
}

unsigned ag_request_arg_count(const struct ag_request *rq, const char *name)
{
    struct arg_count c = {name, 0};
    MHD_get_connection_values(rq->conn, MHD_GET_ARGUMENT_KIND, count_arg, &c);
    return c.n;
}

bool ag_request_from_trusted_proxy(const struct ag_request *rq)
{
    const union MHD_ConnectionInfo *ci;
    if (!rq->app->cfg->reverse_proxy || rq->app->trusted == NULL)
        return false;
    ci = MHD_get_connection_info(rq->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    return ci != NULL && ci->client_addr != NULL && ag_cidrs_match_sa(rq->app->trusted, ci->client_addr);
}

/* host[:port] with only the characters a host name, an IPv4 or a bracketed IPv6 literal can have. */
static bool plausible_host(const char *h)
{
    size_t n = h ? strlen(h) : 0;
    if (n == 0 || n > 300)
        return false;
    return strspn(h, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-:[]_") == n;
}

const char *ag_request_host(const struct ag_request *rq)
{
    const char *h = NULL;
    if (ag_request_from_trusted_proxy(rq))
        h = ag_request_header(rq, "X-Forwarded-Host");
    if (h == NULL)
        h = ag_request_header(rq, MHD_HTTP_HEADER_HOST);
    return plausible_host(h) ? h : NULL;
}

const char *ag_request_scheme(const struct ag_request *rq)
{
    const char *p = ag_request_from_trusted_proxy(rq) ? ag_request_header(rq, "X-Forwarded-Proto") : NULL;
    return p != NULL && strcasecmp(p, "https") == 0 ? "https" : "http";
}

const char *ag_request_original_url(struct ag_request *rq)
{
    const char *host = ag_request_host(rq);

    if (ag_request_from_trusted_proxy(rq)) {
        const char *fwd = ag_request_header(rq, "X-Forwarded-Uri");
        if (fwd != NULL && (strncmp(fwd, "http://", 7) == 0 || strncmp(fwd, "https://", 8) == 0))
            return fwd;
    }
    if (host == NULL)
        return NULL;
    return ag_request_printf(rq, "%s://%s%s", ag_request_scheme(rq), host, ag_request_target(rq));
}

const char *ag_request_target(const struct ag_request *rq)
{
    const char *fwd;

    if (!rq->forwarding && ag_request_from_trusted_proxy(rq)) {
        fwd = ag_request_header(rq, "X-Forwarded-Uri");
        if (fwd != NULL && fwd[0] == '/')
            return fwd;
    }
    return rq->via_check ? rq->raw_uri + strlen(rq->app->cfg->check_path_prefix) : rq->raw_uri;
}
