/* SPDX-License-Identifier: Apache-2.0
 * Reverse proxy on the event loops of net/loop.h: the connection's worker decides and builds the
 * transfer, a loop runs it in its curl multi handle, and the two meet in two bounded buffers under the
 * transfer's lock. Whoever waits for the other parks: the worker suspends its connection (libmicrohttpd
 * stops watching it), the loop pauses the curl transfer; whoever makes progress wakes the other. */
#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "handle/files.h"
#include "handle/handlers.h"
#include "handle/identity.h"
#include "handle/pages.h"
#include "handle/proxy.h"
#include "handle/tunnel.h"
#include "log.h"
#include "net/cookie.h"
#include "net/loop.h"
#include "router.h"

#define RING_BYTES        (64 * 1024) /* each direction: what one request may hold in memory */
#define WAKE_ROOM         (16 * 1024) /* a paused download resumes once this much is free (> one write) */
#define READER_BLOCK      (32 * 1024) /* libmicrohttpd's send buffer for a streamed answer */
#define MAX_RESP_HEADERS  128
#define MAX_RESP_HDR_SIZE (64 * 1024)

struct ag_proxy_shared {
    struct ag_loops *loops;
    struct ag_loops_conf lc;
};

/* A bounded byte queue; its buffer is allocated on first use (most requests have no body). */
struct ring {
    char *buf;
    size_t head, len;
};

/* Append as much of data[0..len) as fits; returns how much did (0 when the buffer cannot be had). */
static size_t ring_put(struct ring *r, const char *data, size_t len)
{
    size_t n = 0;
    if (r->buf == NULL && len > 0 && (r->buf = malloc(RING_BYTES)) == NULL)
        return 0;
    while (n < len && r->len < RING_BYTES) {
        size_t tail = (r->head + r->len) % RING_BYTES, chunk = RING_BYTES - tail;
        if (chunk > RING_BYTES - r->len)
            chunk = RING_BYTES - r->len;
        if (chunk > len - n)
            chunk = len - n;
        memcpy(r->buf + tail, data + n, chunk);
        r->len += chunk;
        n += chunk;
    }
    return n;
}

/* Take up to max bytes into buf; returns how many. */
static size_t ring_take(struct ring *r, char *buf, size_t max)
{
    size_t n = 0;
    while (n < max && r->len > 0) {
        size_t chunk = RING_BYTES - r->head;
        if (chunk > r->len)
            chunk = r->len;
        if (chunk > max - n)
            chunk = max - n;
        memcpy(buf + n, r->buf + r->head, chunk);
        r->head = (r->head + chunk) % RING_BYTES;
        r->len -= chunk;
        n += chunk;
    }
    if (r->len == 0)
        r->head = 0;
    return n;
}

/* One proxied request. Three parties hold references: the request (until it completes), the transfer
 * (while its loop runs it), and each task queued on the loop; the last to let go frees it. Fields under
 * "mu" are shared; the rest belong to one side, as marked. */
struct ag_proxy {
    pthread_mutex_t mu;
    unsigned refs;
    struct ag_proxy *prev, *next; /* the loop's list of transfers it runs (loop) */
    struct ag_loop *loop;
    struct MHD_Connection *conn;
    const struct ag_upstream *up;
    struct ag_tunnel *tunnel; /* an Upgrade: handle/tunnel.c does the rest (worker) */
    struct ag_loop_xfer x;    /* the curl handle; in the loop's multi while in_multi */
    struct ag_loop_task t_start, t_wake, t_abort;
    struct ag_loop_timer timer; /* --upstream-timeout for the response headers (loop) */
    bool in_multi;              /* (loop) */
    bool timer_armed;           /* (loop) */
    struct curl_slist *hdrs;
    char *url;
    char errbuf[CURL_ERROR_SIZE];
    int64_t timeout_ms;

    /* under mu */
    struct ring req;   /* client -> upstream */
    bool req_eof;      /* the client's body is all in req */
    struct ring resp;  /* upstream -> client */
    bool parked;       /* the worker suspended the connection: the loop resumes it */
    bool send_paused;  /* the upload waits for the client's bytes */
    bool recv_paused;  /* the download waits for room in resp */
    bool headers_done; /* the upstream's final status and headers are in */
    bool done;         /* the transfer ended (result says how) */
    bool aborted;      /* the client went away or the server stops: stop */
    bool timed_out;    /* no response headers within --upstream-timeout */
    CURLcode result;
    long status;
    size_t nresp;
    char *resp_name[MAX_RESP_HEADERS], *resp_value[MAX_RESP_HEADERS];
    size_t resp_bytes;
    char *resp_connection;  /* the upstream's Connection header: the headers it names are hop-by-hop */
    int64_t content_length; /* -1: unknown (chunked or until close) */
};

/* ------------------------------------------------------------------------------------------------
 * Header rules. */

/* The header name lowercased with '_' read as '-' (how a client may disguise X-Forwarded-User). */
static void canon(const char *name, char *out, size_t cap)
{
    size_t i = 0;
    for (; name[i] != '\0' && i + 1 < cap; i++) {
        char c = name[i];
        out[i] = c == '_' ? '-' : (char)((c >= 'A' && c <= 'Z') ? c + 32 : c);
    }
    out[i] = '\0';
}

static bool in_list(const char *canon_name, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(canon_name, list[i]) == 0)
            return true;
    return false;
}

static const char *const hop_by_hop[] = {"connection",         "keep-alive", "proxy-connection",
                                         "proxy-authenticate", "te",         "trailer",
                                         "transfer-encoding",  "upgrade",    "proxy-authorization"};

bool ag_proxy_header_has(const char *connection, const char *canon_name)
{
    char tok[128];
    while (connection != NULL && *connection != '\0') {
        size_t n;
        connection += strspn(connection, " \t,");
        n = strcspn(connection, " \t,");
        if (n > 0 && n < sizeof(tok)) {
            memcpy(tok, connection, n);
            tok[n] = '\0';
            char c[128];
            canon(tok, c, sizeof(c));
            if (strcmp(c, canon_name) == 0)
                return true;
        }
        connection += n;
    }
    return false;
}

/* Request headers authgate sets itself: a client's copy never goes upstream. */
static bool ours(const struct ag_config *cfg, const char *c)
{
    static const char *const set_by_us[] = {
        "x-forwarded-user",
        "x-forwarded-email",
        "x-forwarded-groups",
        "x-forwarded-preferred-username",
        "x-forwarded-access-token",
        "x-forwarded-for",
        "x-forwarded-proto",
        "x-forwarded-host",
        "host",
        "content-length",
        "expect",
        "cookie",
    };
    if (in_list(c, set_by_us, AG_ARRAY_LEN(set_by_us)) || strncmp(c, "x-auth-request-", 15) == 0)
        return true;
    if (cfg->pass_authorization_header && strcmp(c, "authorization") == 0)
        return true;
    return ag_identity_claim_header(cfg, c);
}

struct collect {
    struct ag_request *rq;
    struct curl_slist *list;
    const char *connection;
    bool failed;
};

static void push(struct collect *c, const char *line)
{
    struct curl_slist *l;
    if (line == NULL || c->failed) {
        c->failed = true;
        return;
    }
    l = curl_slist_append(c->list, line);
    if (l == NULL)
        c->failed = true;
    else
        c->list = l;
}

static enum MHD_Result collect_header(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    struct collect *c = cls;
    char cn[128];

    AG_UNUSED(kind);
    if (key == NULL || value == NULL)
        return MHD_YES;
    canon(key, cn, sizeof(cn));
    if (in_list(cn, hop_by_hop, AG_ARRAY_LEN(hop_by_hop)) || ag_proxy_header_has(c->connection, cn) ||
        ours(c->rq->app->cfg, cn))
        return MHD_YES;
    /* "Name:" alone would make libcurl drop the header: an empty value is sent as "Name;" */
    push(c, value[0] != '\0' ? ag_request_printf(c->rq, "%s: %s", key, value)
                             : ag_request_printf(c->rq, "%s;", key));
    return MHD_YES;
}

static void add_identity(struct collect *c, const struct ag_session *s)
{
    const struct ag_config *cfg = c->rq->app->cfg;
    const char *groups = ag_identity_groups(c->rq, s);

    if (groups == NULL && s->groups.n > 0)
        c->failed = true; /* out of memory: no request goes out without the groups */
    const char *const pairs[][2] = {
        {"X-Forwarded-User", cfg->pass_user_headers ? s->sub : NULL},
        {"X-Forwarded-Email", cfg->pass_user_headers ? s->email : NULL},
        {"X-Forwarded-Groups", cfg->pass_user_headers ? groups : NULL},
        {"X-Forwarded-Preferred-Username", cfg->pass_user_headers ? s->preferred_username : NULL},
        {"X-Forwarded-Access-Token", cfg->pass_access_token ? s->access_token : NULL},
        {"X-Auth-Request-User", cfg->set_xauthrequest ? s->sub : NULL},
        {"X-Auth-Request-Email", cfg->set_xauthrequest ? s->email : NULL},
        {"X-Auth-Request-Groups", cfg->set_xauthrequest ? groups : NULL},
        {"X-Auth-Request-Preferred-Username", cfg->set_xauthrequest ? s->preferred_username : NULL},
        {"X-Auth-Request-Access-Token",
         cfg->set_xauthrequest && cfg->pass_access_token ? s->access_token : NULL},
    };
    for (size_t i = 0; i < AG_ARRAY_LEN(pairs); i++)
        if (pairs[i][1] != NULL && pairs[i][1][0] != '\0' && strpbrk(pairs[i][1], "\r\n") == NULL)
            push(c, ag_request_printf(c->rq, "%s: %s", pairs[i][0], pairs[i][1]));
    if (cfg->pass_authorization_header && s->id_token != NULL)
        push(c, ag_request_printf(c->rq, "Authorization: Bearer %s", s->id_token));
    for (size_t i = 0; i + 1 < s->claims.n; i += 2)
        if (ag_identity_claim_header(cfg, s->claims.v[i]))
            push(c, ag_request_printf(c->rq, "%s: %s", s->claims.v[i], s->claims.v[i + 1]));
}

/* ------------------------------------------------------------------------------------------------
 * Easy handles, reused per loop: curl_easy_init and its buffers cost more than the rest of a small
 * transfer's setup (perf), and curl_easy_reset keeps them. */

#define HANDLE_POOL 64

struct handle_pool {
    unsigned n;
    CURL *v[HANDLE_POOL];
};

static CURL *handle_get(struct ag_loop *loop)
{
    struct handle_pool *p = *ag_loop_slot(loop, AG_LOOP_SLOT_HANDLES);

    if (p == NULL || p->n == 0)
        return curl_easy_init();
    CURL *h = p->v[--p->n];
    curl_easy_reset(h);
    return h;
}

/* Back to its loop's pool when on that loop's thread (not in a multi handle any more), else freed. */
static void handle_put(struct ag_loop *loop, CURL *h)
{
    struct handle_pool **pp = loop != NULL && ag_loop_current() == loop
                                  ? (struct handle_pool **)ag_loop_slot(loop, AG_LOOP_SLOT_HANDLES)
                                  : NULL;

    if (pp != NULL && *pp == NULL)
        *pp = calloc(1, sizeof(**pp));
    if (pp == NULL || *pp == NULL || (*pp)->n == HANDLE_POOL) {
        curl_easy_cleanup(h);
        return;
    }
    (*pp)->v[(*pp)->n++] = h;
}

static void handle_pool_free(struct ag_loop *loop)
{
    struct handle_pool **pp = (struct handle_pool **)ag_loop_slot(loop, AG_LOOP_SLOT_HANDLES);

    while (*pp != NULL && (*pp)->n > 0)
        curl_easy_cleanup((*pp)->v[--(*pp)->n]);
    free(*pp);
    *pp = NULL;
}

/* ------------------------------------------------------------------------------------------------
 * References and wake-ups. */

static void clear_resp_headers(struct ag_proxy *px)
{
    for (size_t i = 0; i < px->nresp; i++) {
        free(px->resp_name[i]);
        free(px->resp_value[i]);
    }
    px->nresp = 0;
    px->resp_bytes = 0;
    free(px->resp_connection);
    px->resp_connection = NULL;
    px->content_length = -1;
}

static void proxy_free(struct ag_proxy *px)
{
    if (px->x.h != NULL)
        handle_put(px->loop, px->x.h);
    curl_slist_free_all(px->hdrs);
    clear_resp_headers(px);
    free(px->url);
    free(px->req.buf);
    free(px->resp.buf);
    pthread_mutex_destroy(&px->mu);
    free(px);
}

/* Let go of a reference; the last holder frees px. */
static void release(struct ag_proxy *px)
{
    pthread_mutex_lock(&px->mu);
    bool last = --px->refs == 0;
    pthread_mutex_unlock(&px->mu);
    if (last)
        proxy_free(px);
}

/* Queue task on px's loop with a reference of its own. */
static void post(struct ag_proxy *px, struct ag_loop_task *task)
{
    pthread_mutex_lock(&px->mu);
    px->refs++;
    pthread_mutex_unlock(&px->mu);
    if (ag_loop_post(px->loop, task) != AG_LOOP_QUEUED)
        release(px); /* already queued (it holds one), or the loop has stopped */
}

/* Under mu: the worker parks its connection until the loop has news (libmicrohttpd stops watching it;
 * unpark() resumes it). Only from libmicrohttpd's callbacks for this connection. */
static void park(struct ag_proxy *px)
{
    px->parked = true;
    MHD_suspend_connection(px->conn);
}

/* Under mu: whether the parked connection is to be resumed; the caller calls resume() after unlocking
 * (while parked, libmicrohttpd cannot free the connection, and nobody else resumes it). */
static bool unpark(struct ag_proxy *px)
{
    bool was = px->parked;
    px->parked = false;
    return was;
}

/* Resume the parked connection; the loop runs its daemon before it waits again. */
static void resume(struct ag_proxy *px)
{
    MHD_resume_connection(px->conn);
    ag_loop_kick(px->loop);
}

/* ------------------------------------------------------------------------------------------------
 * The loop's side: libcurl's callbacks and the tasks. */

static size_t on_read(char *buf, size_t size, size_t nitems, void *cls)
{
    struct ag_proxy *px = cls;
    size_t n;
    bool unparked = false;

    pthread_mutex_lock(&px->mu);
    if (px->aborted) {
        pthread_mutex_unlock(&px->mu);
        return CURL_READFUNC_ABORT;
    }
    n = ring_take(&px->req, buf, size * nitems);
    if (n == 0 && !px->req_eof) {
        px->send_paused = true;
        pthread_mutex_unlock(&px->mu);
        return CURL_READFUNC_PAUSE;
    }
    if (n > 0)
        unparked = unpark(px); /* the worker waits for room to put more of the body */
    pthread_mutex_unlock(&px->mu);
    if (unparked)
        resume(px);
    return n; /* 0 at the end of the body */
}

static size_t on_write(char *data, size_t size, size_t nmemb, void *cls)
{
    struct ag_proxy *px = cls;
    size_t total = size * nmemb;
    bool unparked;

    pthread_mutex_lock(&px->mu);
    px->headers_done = true;
    if (px->aborted || total > RING_BYTES) {
        pthread_mutex_unlock(&px->mu);
        return 0; /* libcurl stops the transfer */
    }
    if (RING_BYTES - px->resp.len < total) {
        px->recv_paused = true; /* libcurl keeps this piece and offers it again on unpause */
        pthread_mutex_unlock(&px->mu);
        return CURL_WRITEFUNC_PAUSE;
    }
    if (ring_put(&px->resp, data, total) != total) {
        pthread_mutex_unlock(&px->mu);
        return 0; /* no memory for the buffer */
    }
    unparked = unpark(px);
    pthread_mutex_unlock(&px->mu);
    if (unparked)
        resume(px);
    return total;
}

static size_t on_header(char *line, size_t size, size_t nitems, void *cls)
{
    struct ag_proxy *px = cls;
    size_t len = size * nitems, n = len, colon;
    size_t ret = len;
    bool unparked = false;

    while (n > 0 && (line[n - 1] == '\r' || line[n - 1] == '\n'))
        n--;
    pthread_mutex_lock(&px->mu);
    if (px->headers_done) {
        /* trailers: the worker reads the header fields from now on, and trailers are not passed */
    } else if (n >= 5 && strncmp(line, "HTTP/", 5) == 0) {
        /* a status line: a new (possibly final) response starts */
        const char *sp = memchr(line, ' ', n);
        clear_resp_headers(px);
        px->status = sp != NULL ? strtol(sp + 1, NULL, 10) : 0;
    } else if (n == 0) {
        if (px->status >= 200) {
            px->headers_done = true;
            unparked = unpark(px);
        }
    } else if ((colon = (size_t)((const char *)memchr(line, ':', n) - line)) < n && colon > 0 &&
               line[0] != ' ' && line[0] != '\t') {
        char cn[128], name[128];
        const char *v = line + colon + 1;
        size_t vl = n - colon - 1;
        while (vl > 0 && (*v == ' ' || *v == '\t'))
            v++, vl--;
        if (colon >= sizeof(name) || px->nresp == MAX_RESP_HEADERS ||
            px->resp_bytes + n > MAX_RESP_HDR_SIZE) {
            ret = 0; /* too many or too big: stop, the client gets 502 */
        } else {
            memcpy(name, line, colon);
            name[colon] = '\0';
            canon(name, cn, sizeof(cn));
            if (strcmp(cn, "content-length") == 0) {
                px->content_length = strtoll(v, NULL, 10);
            } else if (strcmp(cn, "connection") == 0) {
                size_t old = px->resp_connection != NULL ? strlen(px->resp_connection) : 0;
                char *joined = realloc(px->resp_connection, old + vl + 2);
                if (joined == NULL) {
                    ret = 0;
                } else {
                    if (old > 0)
                        joined[old++] = ',';
                    memcpy(joined + old, v, vl);
                    joined[old + vl] = '\0';
                    px->resp_connection = joined;
                }
            } else if (!in_list(cn, hop_by_hop, AG_ARRAY_LEN(hop_by_hop)) && strcmp(cn, "date") != 0) {
                px->resp_name[px->nresp] = strndup(line, colon);
                px->resp_value[px->nresp] = strndup(v, vl);
                if (px->resp_name[px->nresp] == NULL || px->resp_value[px->nresp] == NULL) {
                    free(px->resp_name[px->nresp]);
                    free(px->resp_value[px->nresp]);
                    ret = 0;
                } else {
                    px->nresp++;
                    px->resp_bytes += n;
                }
            }
        }
    }
    pthread_mutex_unlock(&px->mu);
    if (unparked)
        resume(px);
    return ret;
}

/* The transfer leaves its loop (ended, timed out, aborted or stopped): tell the worker, drop the
 * transfer's reference. */
static void finished(struct ag_loop *loop, struct ag_proxy *px, CURLcode result, bool timed_out)
{
    void **head = ag_loop_slot(loop, AG_LOOP_SLOT_PROXY);
    bool unparked;

    if (px->in_multi)
        ag_loop_remove(loop, &px->x);
    px->in_multi = false;
    ag_loop_timer_disarm(loop, &px->timer);
    if (px->prev != NULL)
        px->prev->next = px->next;
    else if (*head == px)
        *head = px->next;
    if (px->next != NULL)
        px->next->prev = px->prev;
    px->prev = px->next = NULL;
    pthread_mutex_lock(&px->mu);
    if (!px->done) {
        px->done = true;
        px->result = result;
        px->timed_out = timed_out;
    }
    unparked = unpark(px);
    pthread_mutex_unlock(&px->mu);
    if (unparked)
        resume(px);
    release(px);
}

static void on_done(struct ag_loop *loop, struct ag_loop_xfer *x, CURLcode result)
{
    struct ag_proxy *px = (struct ag_proxy *)((char *)x - offsetof(struct ag_proxy, x));
    px->in_multi = false; /* the loop took it out already */
    finished(loop, px, result, false);
}

static void on_timeout(struct ag_loop *loop, struct ag_loop_timer *t)
{
    struct ag_proxy *px = (struct ag_proxy *)((char *)t - offsetof(struct ag_proxy, timer));

    pthread_mutex_lock(&px->mu);
    bool late = !px->headers_done && !px->done;
    pthread_mutex_unlock(&px->mu);
    if (late)
        finished(loop, px, CURLE_OPERATION_TIMEDOUT, true);
}

/* Once the body is all in, --upstream-timeout bounds the wait for the response's headers. */
static void arm_timer(struct ag_loop *loop, struct ag_proxy *px)
{
    pthread_mutex_lock(&px->mu);
    bool arm = px->req_eof && !px->headers_done && !px->timer_armed;
    pthread_mutex_unlock(&px->mu);
    if (arm) {
        px->timer_armed = true;
        ag_loop_timer_arm(loop, &px->timer, px->timeout_ms);
    }
}

static void task_start(struct ag_loop *loop, struct ag_loop_task *task)
{
    struct ag_proxy *px = (struct ag_proxy *)((char *)task - offsetof(struct ag_proxy, t_start));
    void **head = ag_loop_slot(loop, AG_LOOP_SLOT_PROXY);

    /* the transfer's reference came with this task */
    pthread_mutex_lock(&px->mu);
    bool aborted = px->aborted;
    pthread_mutex_unlock(&px->mu);
    if (aborted) {
        release(px);
        return;
    }
    px->next = *head;
    if (px->next != NULL)
        px->next->prev = px;
    *head = px;
    if (ag_loop_add(loop, &px->x) != AG_OK) {
        finished(loop, px, CURLE_OUT_OF_MEMORY, false);
        return;
    }
    px->in_multi = true;
    arm_timer(loop, px);
}

/* The worker put body bytes in, took answer bytes out, or the body ended: let libcurl go on. */
static void task_wake(struct ag_loop *loop, struct ag_loop_task *task)
{
    struct ag_proxy *px = (struct ag_proxy *)((char *)task - offsetof(struct ag_proxy, t_wake));
    bool changed = false;
    int mask = 0;

    if (px->in_multi) {
        arm_timer(loop, px);
        pthread_mutex_lock(&px->mu);
        if (px->send_paused && (px->req.len > 0 || px->req_eof)) {
            px->send_paused = false;
            changed = true;
        }
        if (px->recv_paused && RING_BYTES - px->resp.len >= WAKE_ROOM) {
            px->recv_paused = false;
            changed = true;
        }
        mask = (px->send_paused ? CURLPAUSE_SEND : 0) | (px->recv_paused ? CURLPAUSE_RECV : 0);
        pthread_mutex_unlock(&px->mu);
        /* may call on_read/on_write at once, which lock mu themselves */
        if (changed && curl_easy_pause(px->x.h, mask) != CURLE_OK)
            finished(loop, px, CURLE_ABORTED_BY_CALLBACK, false);
    }
    release(px);
}

/* The request is gone: stop the transfer if it still runs. */
static void task_abort(struct ag_loop *loop, struct ag_loop_task *task)
{
    struct ag_proxy *px = (struct ag_proxy *)((char *)task - offsetof(struct ag_proxy, t_abort));

    if (px->in_multi)
        finished(loop, px, CURLE_ABORTED_BY_CALLBACK, false);
    release(px);
}

/* The server stops: end every transfer of this loop (their connections are resumed and fail). */
static void stop_loop(struct ag_loop *loop)
{
    void **head = ag_loop_slot(loop, AG_LOOP_SLOT_PROXY);

    while (*head != NULL) {
        struct ag_proxy *px = *head;
        pthread_mutex_lock(&px->mu);
        px->aborted = true;
        pthread_mutex_unlock(&px->mu);
        finished(loop, px, CURLE_ABORTED_BY_CALLBACK, false);
    }
    ag_tunnel_stop_loop(loop);
    handle_pool_free(loop);
}

/* ------------------------------------------------------------------------------------------------
 * Shared: the loops. */

enum ag_rc ag_proxy_shared_new(const struct ag_proxy_conf *conf, struct ag_proxy_shared **out)
{
    struct ag_proxy_shared *ps = calloc(1, sizeof(*ps));
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);

    *out = NULL;
    if (ps == NULL)
        return AG_ERR_NOMEM;
    ps->lc.count = conf->loops > 0 ? conf->loops : ncpu > 0 ? (unsigned)ncpu : 1;
    /* the per-upstream limit is shared out between the loops (each at least one connection) */
    if (conf->max_conns_per_upstream > 0)
        ps->lc.max_host_conns = (long)((conf->max_conns_per_upstream + ps->lc.count - 1) / ps->lc.count);
    ps->lc.max_conns = ps->lc.max_host_conns * (long)(conf->upstreams > 0 ? conf->upstreams : 1);
    *out = ps;
    return AG_OK;
}

unsigned ag_proxy_loop_count(const struct ag_proxy_shared *ps)
{
    return ps->lc.count;
}

enum ag_rc ag_proxy_start(struct ag_proxy_shared *ps, struct MHD_Daemon *const *daemons)
{
    ps->lc.mhd = daemons;
    return ag_loops_start(&ps->lc, &ps->loops);
}

void ag_proxy_each_loop(struct ag_proxy_shared *ps, void (*fn)(struct ag_loop *loop))
{
    if (ps != NULL)
        ag_loops_broadcast(ps->loops, fn);
}

void ag_proxy_drain(struct ag_proxy_shared *ps)
{
    if (ps != NULL)
        ag_loops_broadcast(ps->loops, ag_tunnel_stop_loop);
}

void ag_proxy_stop(struct ag_proxy_shared *ps)
{
    if (ps != NULL)
        ag_loops_stop(ps->loops, stop_loop);
}

void ag_proxy_shared_free(struct ag_proxy_shared *ps)
{
    if (ps == NULL)
        return;
    ag_proxy_stop(ps);
    ag_loops_free(ps->loops);
    free(ps);
}

/* ------------------------------------------------------------------------------------------------
 * The request's side (the connection's worker thread). */

bool ag_proxy_wanted(const struct ag_request *rq)
{
    return rq->app->upstreams.n > 0 && rq->route_id == AG_ROUTE_DEFAULT;
}

/* Whether the request announces a body (Content-Length > 0, or chunked). */
static bool has_body(const struct ag_request *rq, int64_t *length)
{
    const char *cl = ag_request_header(rq, MHD_HTTP_HEADER_CONTENT_LENGTH);
    const char *te = ag_request_header(rq, MHD_HTTP_HEADER_TRANSFER_ENCODING);

    *length = -1;
    if (te != NULL)
        return true;
    if (cl != NULL) {
        *length = strtoll(cl, NULL, 10);
        return *length > 0;
    }
    return false;
}

static struct ag_proxy *proxy_new(struct ag_request *rq)
{
    struct ag_proxy *px = calloc(1, sizeof(*px));
    if (px == NULL)
        return NULL;
    px->refs = 1; /* the request's */
    pthread_mutex_init(&px->mu, NULL);
    px->content_length = -1;
    px->conn = rq->conn;
    px->t_start.fn = task_start;
    px->t_wake.fn = task_wake;
    px->t_abort.fn = task_abort;
    px->timer.fn = on_timeout;
    return px;
}

/* The header lines for the upstream: the client's, filtered, then ours with the identity s. NULL when
 * out of memory (no request goes out without its identity). */
static struct curl_slist *upstream_headers(struct ag_request *rq, const struct ag_upstream *up,
                                           const struct ag_session *s, bool body, int64_t length)
{
    const struct ag_config *cfg = rq->app->cfg;
    struct collect c = {rq, NULL, ag_request_header(rq, MHD_HTTP_HEADER_CONNECTION), false};
    const char *xff = ag_request_from_trusted_proxy(rq) ? ag_request_header(rq, "X-Forwarded-For") : NULL;
    const char *host = ag_request_header(rq, MHD_HTTP_HEADER_HOST);
    bool failed = false;

    MHD_get_connection_values(rq->conn, MHD_HEADER_KIND, collect_header, &c);
    /* Cookie as authgate read it to find the session, without its own cookies (net/cookie.h) */
    const char *cookies = ag_cookie_forwarded(rq, &failed);
    if (failed)
        c.failed = true;
    else if (cookies != NULL)
        push(&c, ag_request_printf(rq, "Cookie: %s", cookies));
    push(&c, ag_request_printf(rq, "Host: %s", cfg->pass_host_header && host != NULL ? host : up->authority));
    push(&c, ag_request_printf(rq, "X-Forwarded-For: %s%s%s", xff ? xff : "", xff ? ", " : "", rq->client));
    push(&c, ag_request_printf(rq, "X-Forwarded-Proto: %s", ag_request_scheme(rq)));
    if (ag_request_host(rq) != NULL)
        push(&c, ag_request_printf(rq, "X-Forwarded-Host: %s", ag_request_host(rq)));
    push(&c, "Expect:"); /* no 100-continue round trip */
    if (!body && length == 0)
        push(&c, "Content-Length: 0");
    add_identity(&c, s);
    if (c.failed) {
        curl_slist_free_all(c.list);
        return NULL;
    }
    return c.list;
}

/* Build the transfer for an allowed request with identity s and hand it to a loop. */
static enum ag_rc start(struct ag_request *rq, const struct ag_upstream *up, const struct ag_session *s,
                        bool tunnel)
{
    const struct ag_config *cfg = rq->app->cfg;
    struct ag_proxy *px = proxy_new(rq);
    int64_t length;
    bool body = has_body(rq, &length);

    if (px == NULL)
        return AG_ERR_NOMEM;
    rq->proxy = px;
    px->up = up;
    px->loop = ag_loop_current(); /* the connection's own: the whole request stays on it */
    if (px->loop == NULL)
        return AG_ERR_INTERNAL;
    px->timeout_ms = cfg->upstream_timeout > 0 ? cfg->upstream_timeout : 30000;
    px->hdrs = upstream_headers(rq, up, s, body, length);
    if (px->hdrs == NULL)
        return AG_ERR_NOMEM;
    if (tunnel) {
        px->tunnel = ag_tunnel_new(rq, px->loop, up, px->hdrs, px->timeout_ms);
        return px->tunnel != NULL ? AG_OK : AG_ERR_NOMEM;
    }
    px->url = malloc(strlen(up->origin) + strlen(rq->raw_uri) + 1);
    px->x.h = handle_get(px->loop);
    if (px->url == NULL || px->x.h == NULL)
        return AG_ERR_NOMEM;
    strcpy(px->url, up->origin);
    strcat(px->url, rq->raw_uri);

    CURL *h = px->x.h;
    px->x.done = on_done;
    curl_easy_setopt(h, CURLOPT_URL, px->url);
    curl_easy_setopt(h, CURLOPT_PATH_AS_IS, 1L); /* the path as received, dots and all */
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(h, CURLOPT_HTTP_CONTENT_DECODING, 0L); /* bodies pass as they are encoded */
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, rq->method);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, px->hdrs);
    curl_easy_setopt(h, CURLOPT_USERAGENT, NULL);
    if (up->unix_path != NULL)
        curl_easy_setopt(h, CURLOPT_UNIX_SOCKET_PATH, up->unix_path);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)px->timeout_ms);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, px->errbuf);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, cfg->ssl_upstream_insecure_skip_verify ? 0L : 1L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, cfg->ssl_upstream_insecure_skip_verify ? 0L : 2L);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, px);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, px);
    if (strcmp(rq->method, "HEAD") == 0)
        curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    if (body) {
        curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read);
        curl_easy_setopt(h, CURLOPT_READDATA, px);
        curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)length); /* -1: chunked */
    } else {
        px->req_eof = true;
    }
    px->refs++; /* the transfer's, carried by t_start */
    if (ag_loop_post(px->loop, &px->t_start) != AG_LOOP_QUEUED) {
        px->refs--;
        return AG_ERR_UNAVAILABLE; /* stopping */
    }
    return AG_OK;
}

enum MHD_Result ag_proxy_begin(struct ag_request *rq)
{
    const struct ag_upstream *up;
    struct ag_session s;
    struct ag_reply *reply = ag_request_alloc(rq, sizeof(*reply));
    const char *set_cookie = NULL;
    bool allowed = false;
    enum ag_rc rc;

    if (reply == NULL)
        return MHD_NO;
    memset(reply, 0, sizeof(*reply));
    rq->pending = reply;
    if (rq->raw_uri[0] != '/') { /* absolute-form or "*": not ours to forward */
        ag_response_error(rq, AG_ERR_INVALID, reply);
        return MHD_YES;
    }
    rc = ag_check_authorize(rq, reply, &s, &set_cookie, &allowed);
    if (!allowed) {
        int64_t length;
        if (rc != AG_OK)
            ag_response_error(rq, rc, reply);
        /* a refused request's body is not read: answer now (the connection then closes) */
        return has_body(rq, &length) ? ag_response_send(rq, reply) : MHD_YES;
    }
    rq->user = ag_request_strdup(rq, s.email ? s.email : s.sub);
    rq->set_cookie = set_cookie;
    up = ag_upstreams_match(&rq->app->upstreams, ag_request_header(rq, MHD_HTTP_HEADER_HOST), rq->raw_uri,
                            rq->path_len);
    if (up == NULL) {
        rc = ag_page_error(rq, reply, 404, "not_found", "No application is configured for this path.");
        if (rc != AG_OK)
            ag_response_error(rq, rc, reply);
    } else if (up->file_dir != NULL) {
        rq->files = up; /* answered from the directory once the request is in */
        rq->pending = NULL;
    } else if ((rc = start(rq, up, &s, rq->app->cfg->proxy_websockets && ag_tunnel_wanted(rq))) != AG_OK) {
        ag_log_rq(AG_LOG_ERROR, rq->request_id, "cannot start the upstream request");
        ag_response_error(rq, rc, reply);
        ag_proxy_end(rq);
    } else {
        rq->pending = NULL;
    }
    ag_session_clear(&s);
    return MHD_YES;
}

enum MHD_Result ag_proxy_body(struct ag_request *rq, const char *data, size_t *len)
{
    struct ag_proxy *px = rq->proxy;
    size_t n;
    bool wake;

    if (px == NULL || px->tunnel != NULL) {
        *len = 0; /* refused (or an upgrade, which has no body): read and dropped */
        return MHD_YES;
    }
    pthread_mutex_lock(&px->mu);
    if (px->done || px->aborted) {
        pthread_mutex_unlock(&px->mu);
        *len = 0; /* the upstream answered or failed already: the rest is dropped */
        return MHD_YES;
    }
    n = ring_put(&px->req, data, *len);
    if (n == 0 && px->req.buf == NULL) {
        pthread_mutex_unlock(&px->mu);
        return MHD_NO; /* out of memory */
    }
    wake = px->send_paused && n > 0;
    *len -= n;
    if (*len > 0)
        park(px); /* the buffer is full: libmicrohttpd keeps the rest until the upstream has read */
    pthread_mutex_unlock(&px->mu);
    if (wake)
        post(px, &px->t_wake);
    return MHD_YES;
}

static ssize_t read_response(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct ag_request *rq = cls;
    struct ag_proxy *px = rq->proxy;
    size_t n;
    bool wake, ok;

    AG_UNUSED(pos);
    pthread_mutex_lock(&px->mu);
    n = ring_take(&px->resp, buf, max);
    if (n == 0 && !px->done) {
        park(px); /* nothing to send yet: on_write resumes the connection */
        pthread_mutex_unlock(&px->mu);
        return 0;
    }
    wake = px->recv_paused && RING_BYTES - px->resp.len >= WAKE_ROOM;
    ok = px->done && px->result == CURLE_OK;
    pthread_mutex_unlock(&px->mu);
    if (wake)
        post(px, &px->t_wake);
    if (n > 0) {
        rq->resp_size += n;
        return (ssize_t)n;
    }
    /* the upstream ended: cleanly, or cut short (then the client must not take it for complete) */
    return ok ? MHD_CONTENT_READER_END_OF_STREAM : MHD_CONTENT_READER_END_WITH_ERROR;
}

/* The answer for a transfer that ended before the upstream's headers: 504 or 502. */
static enum MHD_Result gateway_error(struct ag_request *rq)
{
    struct ag_proxy *px = rq->proxy;
    bool timeout = px->timed_out || px->result == CURLE_OPERATION_TIMEDOUT;

    if (px->timed_out)
        ag_log_rq(AG_LOG_WARN, rq->request_id,
                  "upstream sent no response headers within %lld ms (upstream_timeout)",
                  (long long)px->timeout_ms);
    else
        ag_log_rq(AG_LOG_WARN, rq->request_id, "upstream %s: %s", timeout ? "timed out" : "failed",
                  px->errbuf[0] ? px->errbuf : curl_easy_strerror(px->result));
    return timeout ? ag_page_send(rq, 504, "gateway_timeout", "The application did not answer in time.")
                   : ag_page_send(rq, 502, "bad_gateway", "The application cannot be reached.");
}

/* The upstream's answer, its headers in and its body streamed (or, when it is all here, copied). */
static enum MHD_Result answer(struct ag_request *rq, struct ag_proxy *px)
{
    struct MHD_Response *resp;
    enum MHD_Result ret;
    bool no_body = px->status == 204 || px->status == 304 || (px->status >= 100 && px->status < 200);
    bool whole = px->done && px->result == CURLE_OK && px->resp.head + px->resp.len <= RING_BYTES;

    if (no_body)
        resp = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    else if (whole && (px->content_length < 0 || (uint64_t)px->content_length == px->resp.len) &&
             strcmp(rq->method, "HEAD") != 0) {
        /* the common small answer: it is all here, no need to stream it */
        resp = MHD_create_response_from_buffer(px->resp.len, px->resp.len ? px->resp.buf + px->resp.head : "",
                                               MHD_RESPMEM_MUST_COPY);
        rq->resp_size += px->resp.len;
        px->resp.len = 0;
    } else
        resp = MHD_create_response_from_callback(px->content_length >= 0 ? (uint64_t)px->content_length
                                                                         : MHD_SIZE_UNKNOWN,
                                                 READER_BLOCK, read_response, rq, NULL);
    if (resp == NULL)
        return MHD_NO;
    for (size_t i = 0; i < px->nresp; i++) {
        char cn[128];
        canon(px->resp_name[i], cn, sizeof(cn));
        if (!ag_proxy_header_has(px->resp_connection, cn))
            MHD_add_response_header(resp, px->resp_name[i], px->resp_value[i]);
    }
    if (rq->set_cookie != NULL)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_SET_COOKIE, rq->set_cookie);
    if (atomic_load(&rq->app->draining))
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    ret = MHD_queue_response(rq->conn, (unsigned)px->status, resp);
    MHD_destroy_response(resp);
    if (ret == MHD_YES) {
        rq->answered = true;
        rq->status = (unsigned)px->status;
    }
    return ret;
}

enum MHD_Result ag_proxy_finish(struct ag_request *rq)
{
    struct ag_proxy *px = rq->proxy;
    enum MHD_Result ret;
    bool wake;

    if (rq->files != NULL)
        return ag_files_serve(rq, rq->files);
    if (px == NULL)
        return ag_response_send(rq, rq->pending);
    if (px->tunnel != NULL)
        return ag_tunnel_answer(px->tunnel, rq);
    pthread_mutex_lock(&px->mu);
    wake = !px->req_eof;
    px->req_eof = true; /* the body is sent: --upstream-timeout now bounds the wait for the headers */
    if (!px->headers_done && !px->done) {
        park(px); /* called again when the loop resumes the connection */
        pthread_mutex_unlock(&px->mu);
        if (wake)
            post(px, &px->t_wake);
        return MHD_YES;
    }
    bool failed = !px->headers_done || px->timed_out;
    /* the header fields are final once headers_done (trailers are not kept) */
    ret = failed ? MHD_YES : answer(rq, px);
    pthread_mutex_unlock(&px->mu);
    if (wake)
        post(px, &px->t_wake);
    return failed ? gateway_error(rq) : ret;
}

void ag_proxy_end(struct ag_request *rq)
{
    struct ag_proxy *px = rq->proxy;

    if (px == NULL)
        return;
    rq->proxy = NULL;
    if (px->tunnel != NULL)
        ag_tunnel_release(px->tunnel);
    px->tunnel = NULL;
    pthread_mutex_lock(&px->mu);
    px->aborted = true; /* a transfer still running stops */
    bool running = px->refs > 1;
    pthread_mutex_unlock(&px->mu);
    if (running)
        post(px, &px->t_abort);
    release(px);
}
