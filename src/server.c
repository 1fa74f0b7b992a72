/* SPDX-License-Identifier: Apache-2.0
 * libmicrohttpd glue: daemon options, the access handler that walks a request through the router
 * to a handler and a response, the completion callback that logs and frees it, and draining. */
#include <errno.h>
#include <malloc.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "guard.h"
#include "handle/proxy.h"
#include "log.h"
#include "net/loop.h"
#include "net/addr.h"
#include "net/head.h"
#include "request.h"
#include "response.h"
#include "router.h"
#include "server.h"

#define LISTEN_BACKLOG 4096

struct ag_server {
    struct MHD_Daemon *mhd;   /* checks: one daemon with its own threads */
    struct MHD_Daemon **mhds; /* reverse proxy: one daemon per event loop, sharing the listening socket */
    unsigned nmhds;
    struct ag_guard *guard; /* head deadlines and eviction when full (guard.h) */
    struct ag_app *app;
    struct ag_addr addr;
    int listen_fd;
    char url[320];
    atomic_ulong open_conns, peak_conns; /* connections open now, and the most since the last trim */
};

/* Memory back after a crowd of connections has gone: libmicrohttpd gives each connection a pool of
 * --max-header-bytes from malloc, and glibc keeps freed pools for reuse, so 10,000 connections that
 * came and went would leave their 330 MiB resident for good. When the open connections fall to a
 * quarter of a peak of TRIM_PEAK or more, the heap is trimmed once (malloc_trim: a few milliseconds,
 * only after such a crowd). */
#define TRIM_PEAK 512

/* The guard's record of the connection a request arrived on. */
static struct ag_guard_conn *guarded(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci != NULL ? ci->socket_context : NULL;
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_ctx,
                          enum MHD_ConnectionNotificationCode code)
{
    struct ag_server *s = cls;
    unsigned long n, peak;

    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        *socket_ctx = ci != NULL ? ag_guard_opened(s->guard, ci->connect_fd) : NULL;
        n = atomic_fetch_add(&s->open_conns, 1) + 1;
        peak = atomic_load(&s->peak_conns);
        while (n > peak && !atomic_compare_exchange_weak(&s->peak_conns, &peak, n))
            ;
        return;
    }
    ag_guard_closed(s->guard, *socket_ctx);
    *socket_ctx = NULL;
    n = atomic_fetch_sub(&s->open_conns, 1) - 1;
    peak = atomic_load(&s->peak_conns);
    if (peak >= TRIM_PEAK && n <= peak / 4 && atomic_compare_exchange_strong(&s->peak_conns, &peak, n))
        malloc_trim(0);
}

/* libmicrohttpd calls this once the request line is parsed: the request context is born here, so
 * it exists (and is freed in on_completed) even when the request fails before the handler runs. */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
    struct ag_server *s = cls;
    ag_guard_request_line(guarded(conn));
    return ag_request_new(s->app, conn, uri);
}

static enum MHD_Result answer(struct ag_request *rq)
{
    const struct ag_route *route = ag_router_match(rq->app->cfg, rq->raw_uri, rq->path_len);
    struct ag_reply reply;
    enum ag_rc rc;

    memset(&reply, 0, sizeof(reply));
    rq->route_id = route->id;
    rc = route->handler(rq, &reply);
    if (rc != AG_OK)
        ag_response_error(rq, rc, &reply);
    return ag_response_send(rq, &reply);
}

/* Whether the declared Content-Length exceeds what authgate's own endpoints accept. */
static bool body_too_large(const struct ag_request *rq)
{
    const char *cl = ag_request_header(rq, MHD_HTTP_HEADER_CONTENT_LENGTH);
    size_t n = 0;

    if (cl == NULL)
        return false;
    for (; *cl >= '0' && *cl <= '9'; cl++) {
        if (n > AG_OWN_BODY_MAX)
            return true;
        n = n * 10 + (size_t)(*cl - '0');
    }
    return n > AG_OWN_BODY_MAX;
}

struct fields {
    struct ag_head_field *v;
    size_t n, cap;
};

static enum MHD_Result collect_field(void *cls, enum MHD_ValueKind kind, const char *key, size_t key_size,
                                     const char *value, size_t value_size)
{
    struct fields *f = cls;

    AG_UNUSED(kind);
    if (f->n < f->cap && key != NULL && value != NULL)
        f->v[f->n++] = (struct ag_head_field){key, value, key_size, value_size};
    return MHD_YES;
}

/* Why this request's head must be refused (net/head.h), or NULL. `url` is libmicrohttpd's own copy of
 * the target, in its read buffer. */
static const char *head_refusal(struct ag_request *rq, const char *method, const char *url,
                                const char *version)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(rq->conn, MHD_CONNECTION_INFO_REQUEST_HEADER_SIZE);
    struct ag_head_line line = {method, rq->raw_uri, version, url,
                                ci != NULL ? method + ci->header_size : NULL};
    struct fields f = {NULL, 0, 0};
    int n = MHD_get_connection_values_n(rq->conn, MHD_HEADER_KIND, NULL, NULL);

    if (n > 0) {
        f.cap = (size_t)n;
        f.v = ag_request_alloc(rq, f.cap * sizeof(*f.v));
        if (f.v == NULL)
            return "out of memory";
        MHD_get_connection_values_n(rq->conn, MHD_HEADER_KIND, collect_field, &f);
    }
    return ag_head_refusal(&line, f.v, f.n);
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                 const char *version, const char *upload_data, size_t *upload_data_size,
                                 void **con_cls)
{
    struct ag_server *s = cls;
    struct ag_request *rq = *con_cls;

    if (rq == NULL) { /* on_uri failed to allocate */
        rq = ag_request_new(s->app, conn, url);
        if (rq == NULL)
            return MHD_NO;
        *con_cls = rq;
    }
    if (!rq->started) {
        /* Headers are complete. Answer on a later call: a response queued on the first call makes
         * libmicrohttpd 0.9.75 close the connection (no keep-alive). */
        rq->started = true;
        ag_guard_head_done(guarded(conn));
        rq->method = method;
        rq->version = version;
        ag_request_set_id(rq, ag_request_header(rq, s->app->cfg->request_id_header));
        atomic_fetch_add(&s->app->inflight, 1);
        rq->counted = true;
        const char *why = head_refusal(rq, method, url, version);
        if (why != NULL) {
            /* before any decision: the front end, authgate and the upstream could read it differently */
            struct ag_reply reply;
            ag_log_rq(AG_LOG_WARN, rq->request_id, "request refused: %s", why);
            ag_response_error(rq, AG_ERR_INVALID, &reply);
            reply.close = true;
            return ag_response_send(rq, &reply);
        }
        rq->route_id = ag_router_match(s->app->cfg, rq->raw_uri, rq->path_len)->id;
        rq->forwarding = ag_proxy_wanted(rq);
        if (rq->forwarding)
            return ag_proxy_begin(rq); /* the body, of any size, streams upstream */
        if (body_too_large(rq)) {
            /* Refuse before reading the body; the client sees 413, the connection closes. */
            struct ag_reply reply;
            ag_log_rq(AG_LOG_WARN, rq->request_id, "request body over %d bytes refused", AG_OWN_BODY_MAX);
            ag_response_error(rq, AG_ERR_TOO_LARGE, &reply);
            return ag_response_send(rq, &reply);
        }
        return MHD_YES;
    }
    if (ag_proxy_wanted(rq)) {
        if (rq->answered)
            return MHD_YES; /* refused early: the rest of the body is dropped */
        if (*upload_data_size == 0)
            return ag_proxy_finish(rq);
        size_t offered = *upload_data_size;
        enum MHD_Result r = ag_proxy_body(rq, upload_data, upload_data_size);
        rq->body_bytes += offered - *upload_data_size;
        return r;
    }
    if (*upload_data_size != 0) {
        rq->body_bytes += *upload_data_size;
        *upload_data_size = 0;
        if (rq->body_bytes > AG_OWN_BODY_MAX && !rq->answered) {
            /* A chunked body without a length grew past the bound: drop the connection. */
            ag_log_rq(AG_LOG_WARN, rq->request_id, "request body over %d bytes: closing the connection",
                      AG_OWN_BODY_MAX);
            return MHD_NO;
        }
        return MHD_YES;
    }
    if (rq->answered)
        return MHD_YES;
    return answer(rq);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct ag_server *s = cls;
    struct ag_request *rq = *con_cls;
    const struct ag_config *cfg = s->app->cfg;

    if (toe == MHD_REQUEST_TERMINATED_COMPLETED_OK && (rq == NULL || rq->status != 101))
        ag_guard_request_done(guarded(conn)); /* keep-alive: the next head is on the clock (not a tunnel) */
    if (rq == NULL)
        return;
    bool quiet =
        cfg->silence_ping_logging && (rq->route_id == AG_ROUTE_PING || rq->route_id == AG_ROUTE_READY);
    if (rq->answered && !quiet) {
        struct ag_log_request lr = {
            .client = rq->client,
            .request_id = rq->request_id,
            .user = rq->user,
            .host = ag_request_header(rq, MHD_HTTP_HEADER_HOST),
            .method = rq->method,
            .uri = rq->raw_uri,
            .proto = rq->version,
            .user_agent = ag_request_header(rq, MHD_HTTP_HEADER_USER_AGENT),
            .status = rq->status,
            .size = rq->resp_size,
            .duration_s = ag_request_elapsed(rq),
        };
        ag_log_request(&lr);
    }
    ag_proxy_end(rq); /* before the log line: the transfer's byte count is final then */
    if (rq->counted)
        atomic_fetch_sub(&s->app->inflight, 1);
    ag_request_free(rq);
    *con_cls = NULL;
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    char msg[512];
    size_t n;

    AG_UNUSED(cls);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = '\0';
    ag_log_warn("libmicrohttpd: %s", msg);
}

/* Workers block while Redis or the provider answers, so by default there are more of them than CPUs:
 * four per CPU doubled the session-check rate over one per CPU in bench/run.sh, and more did not help. */
static unsigned worker_count(const struct ag_config *cfg)
{
    long n = cfg->workers > 0 ? (long)cfg->workers : 4 * sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (unsigned)n : 4;
}

/* Reverse proxy: a daemon per event loop (handle/proxy.c), each without a thread of its own: its loop
 * runs it, and the same loop runs the upstream transfers of its connections, so a request never
 * changes threads. The daemons share the listening socket (as libmicrohttpd's own thread pool does)
 * and split the connection limit. A connection waiting for its upstream is suspended; an upgraded one
 * is spliced by the loop. */
static enum ag_rc start_loops(struct ag_server *s, struct MHD_OptionItem *opts, size_t nopts, int64_t limit,
                              char *err, size_t errlen)
{
    unsigned n = ag_proxy_loop_count(s->app->proxy);

    s->mhds = calloc(n, sizeof(*s->mhds));
    if (s->mhds == NULL)
        return AG_ERR_NOMEM;
    for (size_t i = 0; i < nopts; i++) {
        if (opts[i].option == MHD_OPTION_THREAD_POOL_SIZE)
            opts[i].option = MHD_OPTION_END;
        if (opts[i].option == MHD_OPTION_CONNECTION_LIMIT)
            opts[i].value = (intptr_t)(limit / n + 1);
    }
    for (s->nmhds = 0; s->nmhds < n; s->nmhds++) {
        s->mhds[s->nmhds] =
            MHD_start_daemon(MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_ALLOW_UPGRADE | MHD_USE_ERROR_LOG,
                             0, NULL, NULL, on_access, s, MHD_OPTION_ARRAY, opts, MHD_OPTION_END);
        if (s->mhds[s->nmhds] == NULL) {
            snprintf(err, errlen, "libmicrohttpd could not start on %s", s->url);
            return AG_ERR_INTERNAL;
        }
    }
    if (ag_proxy_start(s->app->proxy, s->mhds) != AG_OK) {
        snprintf(err, errlen, "cannot start the event loops");
        return AG_ERR_INTERNAL;
    }
    return AG_OK; /* the listening socket stays ours: closed once, after every daemon let go of it */
}

enum ag_rc ag_server_start(struct ag_app *app, struct ag_server **out, char *err, size_t errlen)
{
    const struct ag_config *cfg = app->cfg;
    struct ag_server *s = NULL;
    enum ag_rc rc;
    unsigned workers = worker_count(cfg);
    unsigned timeout_s = (unsigned)((cfg->connection_timeout + 999) / 1000);

    *out = NULL;
    /* glibc returns freed memory at the top of a thread's heap at once (trim) and serves blocks of
     * 128 KiB and more with mmap: in the proxy, where buffers are taken on one thread and freed on
     * another, every request paid page faults and TLB flushes for it (a fifth of its CPU in perf).
     * Memory goes back after a crowd instead (on_connection's malloc_trim). */
    mallopt(M_TRIM_THRESHOLD, 64 * 1024 * 1024);
    mallopt(M_MMAP_THRESHOLD, 1024 * 1024);
    s = calloc(1, sizeof(*s));
    if (s == NULL)
        return AG_ERR_NOMEM;
    s->listen_fd = -1;
    s->app = app;
    rc = ag_addr_parse(cfg->http_address, &s->addr, err, errlen);
    if (rc != AG_OK)
        goto out;
    rc = ag_addr_listen(&s->addr, LISTEN_BACKLOG, &s->listen_fd, err, errlen);
    if (rc != AG_OK)
        goto out;
    ag_addr_describe(s->listen_fd, &s->addr, s->url, sizeof(s->url));

    /* libmicrohttpd splits the connection limit between pool threads: keep at least one each. */
    if ((int64_t)workers > cfg->max_connections)
        workers = (unsigned)cfg->max_connections;
    /* libmicrohttpd's own limit leaves room above --max-connections, so a new connection can still be
     * accepted when the server is full: the guard then closes the one waiting longest for its head (or
     * the new one), which keeps /ping answering during a slow-header flood. The room is shared by the
     * pool threads (each at least one). */
    rc = ag_guard_new((size_t)cfg->max_connections, cfg->read_header_timeout, cfg->connection_timeout,
                      &s->guard);
    if (rc != AG_OK)
        goto out;
    int64_t hard_limit = cfg->max_connections + cfg->max_connections / 16 + 2 * (int64_t)workers;
    struct MHD_OptionItem opts[] = {
        {MHD_OPTION_EXTERNAL_LOGGER, (intptr_t)on_mhd_log, NULL}, /* first, so every message goes here */
        {MHD_OPTION_LISTEN_SOCKET, s->listen_fd, NULL},
        {MHD_OPTION_URI_LOG_CALLBACK, (intptr_t)on_uri, s},
        {MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)on_completed, s},
        {MHD_OPTION_NOTIFY_CONNECTION, (intptr_t)on_connection, s},
        {MHD_OPTION_CONNECTION_LIMIT, (intptr_t)hard_limit, NULL},
        {MHD_OPTION_CONNECTION_MEMORY_LIMIT, (intptr_t)cfg->max_header_bytes, NULL},
        {MHD_OPTION_CONNECTION_TIMEOUT, (intptr_t)timeout_s, NULL},
        {cfg->max_connections_per_ip > 0 ? MHD_OPTION_PER_IP_CONNECTION_LIMIT : MHD_OPTION_END,
         (intptr_t)cfg->max_connections_per_ip, NULL},
        {MHD_OPTION_END, 0, NULL},
        {MHD_OPTION_END, 0, NULL},
    };
    if (workers > 1) {
        /* Put the pool size where the optional per-IP limit would end the list, or after it. */
        size_t i = opts[8].option == MHD_OPTION_END ? 8 : 9;
        opts[i].option = MHD_OPTION_THREAD_POOL_SIZE;
        opts[i].value = (intptr_t)workers;
    }
    if (app->upstreams.n > 0) {
        rc = start_loops(s, opts, AG_ARRAY_LEN(opts), hard_limit, err, errlen);
        if (rc != AG_OK)
            goto out;
        ag_log_info("proxying to %zu upstream%s on %u event loop%s, up to %lld connections", app->upstreams.n,
                    app->upstreams.n == 1 ? "" : "s", s->nmhds, s->nmhds == 1 ? "" : "s",
                    (long long)cfg->max_connections);
        *out = s;
        return AG_OK;
    }
    s->mhd = MHD_start_daemon(MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_ITC | MHD_USE_ERROR_LOG, 0, NULL, NULL,
                              on_access, s, MHD_OPTION_ARRAY, opts, MHD_OPTION_END);
    if (s->mhd == NULL) {
        snprintf(err, errlen, "libmicrohttpd could not start on %s", s->url);
        rc = AG_ERR_INTERNAL;
        goto out;
    }
    s->listen_fd = -1; /* libmicrohttpd owns and closes it now (or hands it back when quiesced) */
    ag_log_info("serving with %u worker thread%s, up to %lld connections", workers, workers == 1 ? "" : "s",
                (long long)cfg->max_connections);
    *out = s;
    s = NULL;
    rc = AG_OK;
out:
    ag_server_free(s);
    return rc;
}

const char *ag_server_url(const struct ag_server *s)
{
    return s->url;
}

/* Draining the loops' daemons: each stops accepting on its own thread; the last closes the socket, so
 * new connections are refused, not left waiting in the backlog. */
static atomic_uint quiesce_left;
static int quiesce_fd = -1;

static void quiesce_loop(struct ag_loop *loop)
{
    MHD_quiesce_daemon(ag_loop_mhd(loop));
    if (atomic_fetch_sub(&quiesce_left, 1) == 1 && quiesce_fd >= 0) {
        close(quiesce_fd);
        quiesce_fd = -1;
    }
}

unsigned ag_server_drain(struct ag_server *s, int64_t timeout_ms)
{
    struct timespec start, now, tick = {0, 10 * 1000 * 1000};
    MHD_socket lfd;

    atomic_store(&s->app->draining, true);
    if (s->mhds != NULL) {
        ag_proxy_drain(s->app->proxy); /* WebSocket tunnels close now; transfers finish */
        quiesce_left = s->nmhds;
        quiesce_fd = s->listen_fd;
        s->listen_fd = -1;
        ag_proxy_each_loop(s->app->proxy, quiesce_loop);
    } else {
        lfd = MHD_quiesce_daemon(s->mhd);
        if (lfd != MHD_INVALID_SOCKET)
            close(lfd); /* new connections are now refused, not left waiting in the backlog */
    }
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        unsigned n = atomic_load(&s->app->inflight);
        if (n == 0)
            return 0;
        clock_gettime(CLOCK_MONOTONIC, &now);
        int64_t waited =
            (int64_t)(now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000;
        if (waited >= timeout_ms)
            return n;
        nanosleep(&tick, NULL);
    }
}

void ag_server_free(struct ag_server *s)
{
    if (s == NULL)
        return;
    if (s->mhd != NULL)
        MHD_stop_daemon(s->mhd);
    if (s->mhds != NULL) {
        /* transfers and tunnels end first: a daemon must not hold suspended connections when it stops */
        ag_proxy_stop(s->app->proxy);
        for (unsigned i = 0; i < s->nmhds; i++) {
            MHD_quiesce_daemon(s->mhds[i]); /* then it leaves the shared socket open */
            MHD_stop_daemon(s->mhds[i]);
        }
        free(s->mhds);
        s->mhds = NULL;
        if (quiesce_fd >= 0 && atomic_load(&quiesce_left) > 0) {
            close(quiesce_fd); /* the loops stopped before every one of them quiesced */
            quiesce_fd = -1;
        }
    }
    ag_guard_free(s->guard); /* after the daemon: every connection has been reported closed */
    s->mhd = NULL;
    if (s->listen_fd >= 0) /* only when the daemon never started */
        close(s->listen_fd);
    if (s->addr.kind == AG_ADDR_UNIX && s->addr.path[0] != '\0')
        unlink(s->addr.path);
    free(s);
}
