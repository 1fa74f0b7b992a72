/* SPDX-License-Identifier: Apache-2.0
 * Upgrade tunnels on the event loops (net/loop.h). The loop connects (libcurl, connect only: its
 * resolver and timeouts), adds TLS itself for https (OpenSSL, non-blocking), sends the upgrade request
 * and reads the upstream's head, while the worker keeps the client's connection suspended. The worker
 * then answers; after a 101 libmicrohttpd hands over the client's socket and the loop copies bytes both
 * ways. An idle tunnel holds no buffer: bytes go through the loop's scratch buffer, and only what a
 * socket does not take at once is kept (and that side is not read until it is gone). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "handle/pages.h"
#include "handle/proxy.h"
#include "handle/tunnel.h"
#include "log.h"
#include "net/loop.h"

#define HEAD_MAX   (64 * 1024) /* the upstream's response headers */
#define MAX_HEADER 64

enum state {
    T_CONNECTING, /* libcurl connects */
    T_TLS,        /* the TLS handshake with an https upstream */
    T_SENDING,    /* the upgrade request goes upstream */
    T_READING,    /* the upstream's head comes back */
    T_ANSWERED,   /* the worker answers the client; after a 101 it hands over the socket */
    T_SPLICING,   /* bytes flow both ways */
    T_CLOSED
};

/* Bytes one side did not take yet. */
struct pend {
    char *buf;
    size_t len, off;
};

struct ag_tunnel {
    pthread_mutex_t mu;
    unsigned refs;                 /* the request's, and the loop's until it closes the tunnel */
    struct ag_tunnel *prev, *next; /* the loop's list (loop) */
    struct ag_loop *loop;
    struct MHD_Connection *conn;
    atomic_bool *draining;
    char request_id[AG_REQUEST_ID_MAX + 1];
    int64_t timeout_ms;
    struct ag_loop_task t_start, t_splice, t_close;
    struct ag_loop_timer timer;

    /* the loop's */
    enum state state;
    struct ag_loop_xfer x; /* connect only */
    char *connect_url, *unix_path, *tls_host;
    bool tls, verify, want_out;
    SSL *ssl;
    struct ag_loop_io up, client;
    char *req;
    size_t req_len, req_off;
    struct pend to_up, to_client;

    /* under mu */
    bool parked, ready, closed, splicing;
    enum ag_rc result; /* once ready: AG_OK (head holds the answer), AG_ERR_IO (timeout), other (502) */
    const char *why;
    char *head; /* the upstream's head and any bytes after it; the worker reads it once ready */
    size_t head_len, body_off;
    struct MHD_UpgradeResponseHandle *urh;
    int client_fd;
};

static SSL_CTX *tls_ctx;
static pthread_once_t tls_once = PTHREAD_ONCE_INIT;

static void tls_init(void)
{
    tls_ctx = SSL_CTX_new(TLS_client_method());
    if (tls_ctx == NULL)
        return;
    SSL_CTX_set_min_proto_version(tls_ctx, TLS1_2_VERSION);
    SSL_CTX_set_mode(tls_ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    if (SSL_CTX_set_default_verify_paths(tls_ctx) != 1)
        ERR_clear_error();
    /* what libcurl uses: Debian's bundle */
    if (SSL_CTX_load_verify_locations(tls_ctx, "/etc/ssl/certs/ca-certificates.crt", NULL) != 1)
        ERR_clear_error();
}

bool ag_tunnel_wanted(const struct ag_request *rq)
{
    const char *up = ag_request_header(rq, "Upgrade");
    return up != NULL && up[0] != '\0' &&
           ag_proxy_header_has(ag_request_header(rq, MHD_HTTP_HEADER_CONNECTION), "upgrade");
}

/* ------------------------------------------------------------------------------------------------
 * References. */

static void tunnel_free(void *p)
{
    struct ag_tunnel *t = p;
    if (t->x.h != NULL)
        curl_easy_cleanup(t->x.h);
    if (t->ssl != NULL)
        SSL_free(t->ssl);
    free(t->connect_url);
    free(t->unix_path);
    free(t->tls_host);
    free(t->req);
    free(t->to_up.buf);
    free(t->to_client.buf);
    free(t->head);
    pthread_mutex_destroy(&t->mu);
    free(t);
}

/* Let go of a reference. On the loop's thread the memory goes after the current batch of events (one
 * of them may still name this tunnel's sockets). */
static void release(struct ag_tunnel *t, struct ag_loop *on_loop)
{
    pthread_mutex_lock(&t->mu);
    bool last = --t->refs == 0;
    pthread_mutex_unlock(&t->mu);
    if (!last)
        return;
    if (on_loop != NULL)
        ag_loop_later(on_loop, tunnel_free, t);
    else
        tunnel_free(t);
}

/* ------------------------------------------------------------------------------------------------
 * The loop's side. */

/* Resume the parked (or upgraded) connection; the loop runs its daemon before it waits again. */
static void resume(struct ag_tunnel *t)
{
    MHD_resume_connection(t->conn);
    ag_loop_kick(t->loop);
}

/* Under mu: the worker's answer can be made; resume its connection after unlocking. */
static bool settle(struct ag_tunnel *t, enum ag_rc result, const char *why)
{
    bool was = t->parked;
    if (!t->ready) {
        t->ready = true;
        t->result = result;
        t->why = why;
    }
    t->parked = false;
    return was;
}

/* End the tunnel: both sockets (the client's back to libmicrohttpd), the timer, the list, the loop's
 * reference. A worker still waiting for the head gets `result` (a 502 or 504). */
static void close_tunnel(struct ag_loop *loop, struct ag_tunnel *t, enum ag_rc result, const char *why)
{
    void **head = ag_loop_slot(loop, AG_LOOP_SLOT_TUNNEL);
    struct MHD_UpgradeResponseHandle *urh = NULL;
    bool unparked;

    if (t->state == T_CLOSED)
        return;
    if (t->state == T_SPLICING)
        ag_log_rq(AG_LOG_INFO, t->request_id, "upgraded connection closed");
    t->state = T_CLOSED;
    ag_loop_timer_disarm(loop, &t->timer);
    if (t->x.h != NULL) {
        ag_loop_remove(loop, &t->x);
        curl_easy_cleanup(t->x.h);
        t->x.h = NULL;
    }
    if (t->up.fd >= 0) {
        ag_loop_watch(loop, &t->up, 0);
        if (t->ssl != NULL && SSL_is_init_finished(t->ssl))
            SSL_shutdown(t->ssl); /* a close_notify, best effort */
        close(t->up.fd);
        t->up.fd = -1;
    }
    if (t->client.fd >= 0) {
        ag_loop_watch(loop, &t->client, 0);
        t->client.fd = -1; /* libmicrohttpd closes it */
    }
    if (t->prev != NULL)
        t->prev->next = t->next;
    else if (*head == t)
        *head = t->next;
    if (t->next != NULL)
        t->next->prev = t->prev;
    t->prev = t->next = NULL;
    pthread_mutex_lock(&t->mu);
    t->closed = true;
    if (t->splicing)
        urh = t->urh;
    unparked = settle(t, result, why);
    pthread_mutex_unlock(&t->mu);
    if (urh != NULL) {
        MHD_upgrade_action(urh, MHD_UPGRADE_ACTION_CLOSE);
        ag_loop_kick(loop);
    }
    if (unparked)
        resume(t);
    release(t, loop);
}

/* Send to / receive from the upstream (TLS or not): bytes moved, 0 when it would block (t->want_out
 * says whether TLS waits to write), -1 when the upstream is gone. */
static ssize_t up_send(struct ag_tunnel *t, const char *buf, size_t len)
{
    if (t->ssl == NULL) {
        ssize_t n = send(t->up.fd, buf, len, MSG_NOSIGNAL);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
            return 0;
        return n > 0 ? n : -1;
    }
    size_t n = 0;
    if (SSL_write_ex(t->ssl, buf, len, &n) == 1)
        return (ssize_t)n;
    int e = SSL_get_error(t->ssl, 0);
    ERR_clear_error();
    if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) {
        t->want_out = e == SSL_ERROR_WANT_WRITE;
        return 0;
    }
    return -1;
}

static ssize_t up_recv(struct ag_tunnel *t, char *buf, size_t len)
{
    if (t->ssl == NULL) {
        ssize_t n = recv(t->up.fd, buf, len, 0);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
            return 0;
        return n > 0 ? n : -1;
    }
    size_t n = 0;
    if (SSL_read_ex(t->ssl, buf, len, &n) == 1)
        return (ssize_t)n;
    int e = SSL_get_error(t->ssl, 0);
    ERR_clear_error();
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        t->want_out = e == SSL_ERROR_WANT_WRITE;
        return 0;
    }
    return -1;
}

static ssize_t client_send(struct ag_tunnel *t, const char *buf, size_t len)
{
    ssize_t n = send(t->client.fd, buf, len, MSG_NOSIGNAL);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return 0;
    return n > 0 ? n : -1;
}

/* Keep what a side did not take (p must be empty). */
static bool keep(struct pend *p, const char *buf, size_t len)
{
    p->buf = malloc(len);
    if (p->buf == NULL)
        return false;
    memcpy(p->buf, buf, len);
    p->len = len;
    p->off = 0;
    return true;
}

/* Send what p holds; false when the side is gone. p is emptied (and freed) when all went. */
static bool flush(struct ag_tunnel *t, struct pend *p, bool to_up)
{
    while (p->off < p->len) {
        ssize_t n = to_up ? up_send(t, p->buf + p->off, p->len - p->off)
                          : client_send(t, p->buf + p->off, p->len - p->off);
        if (n < 0)
            return false;
        if (n == 0)
            return true;
        p->off += (size_t)n;
    }
    free(p->buf);
    p->buf = NULL;
    p->len = p->off = 0;
    return true;
}

/* The events each socket waits for: a side is read only while the other has taken everything. */
static bool rewatch(struct ag_loop *loop, struct ag_tunnel *t)
{
    uint32_t up = 0, client = 0;

    if (t->to_client.len == 0)
        up |= EPOLLIN;
    if (t->to_up.len > 0 || t->want_out)
        up |= EPOLLOUT;
    if (t->to_up.len == 0)
        client |= EPOLLIN;
    if (t->to_client.len > 0)
        client |= EPOLLOUT;
    return ag_loop_watch(loop, &t->up, up) == AG_OK && ag_loop_watch(loop, &t->client, client) == AG_OK;
}

/* Move bytes from the upstream to the client until one of them would block. */
static bool pump_down(struct ag_tunnel *t, char *buf)
{
    while (t->to_client.len == 0) {
        ssize_t n = up_recv(t, buf, AG_LOOP_SCRATCH), m;
        if (n < 0)
            return false;
        if (n == 0)
            return true;
        m = client_send(t, buf, (size_t)n);
        if (m < 0)
            return false;
        if (m < n && !keep(&t->to_client, buf + m, (size_t)(n - m)))
            return false;
        if (t->ssl == NULL && n < AG_LOOP_SCRATCH)
            return true; /* the socket is drained for now (TLS may hold more: read until it says so) */
    }
    return true;
}

static bool pump_up(struct ag_tunnel *t, char *buf)
{
    if (t->to_up.len > 0)
        return true;
    ssize_t n = recv(t->client.fd, buf, AG_LOOP_SCRATCH, 0), m;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return true;
    if (n <= 0)
        return false;
    m = up_send(t, buf, (size_t)n);
    if (m < 0)
        return false;
    return m == n || keep(&t->to_up, buf + m, (size_t)(n - m));
}

static void on_splice(struct ag_loop *loop, struct ag_tunnel *t, bool up_side, uint32_t events)
{
    char *buf = ag_loop_scratch(loop);
    bool ok = true, out = events & EPOLLOUT;

    if (up_side) {
        t->want_out = false;
        if (out)
            ok = flush(t, &t->to_up, true);
        /* TLS may have waited to write in order to read, too */
        if (ok && (out || (events & (EPOLLIN | EPOLLHUP | EPOLLERR))))
            ok = pump_down(t, buf);
        /* what was held back has gone: the client can be read again */
        if (ok && out && t->to_up.len == 0)
            ok = pump_up(t, buf);
    } else {
        if (out)
            ok = flush(t, &t->to_client, false);
        if (ok && (events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
            ok = pump_up(t, buf);
        if (ok && out && t->to_client.len == 0)
            ok = pump_down(t, buf);
    }
    if (!ok || !rewatch(loop, t))
        close_tunnel(loop, t, AG_OK, NULL);
}

static void on_client_io(struct ag_loop *loop, struct ag_loop_io *io, uint32_t events)
{
    on_splice(loop, (struct ag_tunnel *)((char *)io - offsetof(struct ag_tunnel, client)), false, events);
}

/* The handshake with the upstream, one step per event: TLS, the request, the head. */
static void handshake(struct ag_loop *loop, struct ag_tunnel *t)
{
    if (t->state == T_TLS) {
        if (SSL_connect(t->ssl) != 1) {
            int e = SSL_get_error(t->ssl, 0);
            unsigned long detail = ERR_peek_last_error();
            ERR_clear_error();
            if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
                ag_loop_watch(loop, &t->up, e == SSL_ERROR_WANT_READ ? EPOLLIN : EPOLLOUT);
                return;
            }
            ag_log_rq(AG_LOG_WARN, t->request_id, "upgrade: TLS with the upstream failed: %s",
                      detail ? ERR_reason_error_string(detail) : "closed");
            close_tunnel(loop, t, AG_ERR_UNAVAILABLE, "The application cannot be reached.");
            return;
        }
        t->state = T_SENDING;
    }
    if (t->state == T_SENDING) {
        while (t->req_off < t->req_len) {
            ssize_t n = up_send(t, t->req + t->req_off, t->req_len - t->req_off);
            if (n < 0) {
                close_tunnel(loop, t, AG_ERR_UNAVAILABLE, "The application closed the connection.");
                return;
            }
            if (n == 0) {
                ag_loop_watch(loop, &t->up, t->ssl != NULL && !t->want_out ? EPOLLIN : EPOLLOUT);
                return;
            }
            t->req_off += (size_t)n;
        }
        free(t->req); /* sent: a tunnel keeps nothing it does not need */
        t->req = NULL;
        t->state = T_READING;
        t->head = malloc(HEAD_MAX + 1);
        if (t->head == NULL) {
            close_tunnel(loop, t, AG_ERR_NOMEM, "Out of memory.");
            return;
        }
    }
    /* T_READING: until the blank line */
    for (;;) {
        ssize_t n = up_recv(t, t->head + t->head_len, HEAD_MAX - t->head_len);
        if (n == 0) {
            ag_loop_watch(loop, &t->up, t->want_out ? EPOLLOUT : EPOLLIN);
            return;
        }
        if (n < 0) {
            ag_log_rq(AG_LOG_WARN, t->request_id, "upgrade: no answer from the upstream (closed)");
            close_tunnel(loop, t, AG_ERR_UNAVAILABLE, "The application's answer is unusable.");
            return;
        }
        t->head_len += (size_t)n;
        t->head[t->head_len] = '\0';
        char *end = strstr(t->head, "\r\n\r\n");
        if (end != NULL) {
            t->body_off = (size_t)(end - t->head) + 4;
            break;
        }
        if (t->head_len == HEAD_MAX) {
            ag_log_rq(AG_LOG_WARN, t->request_id, "upgrade: the upstream's head is over %d bytes", HEAD_MAX);
            close_tunnel(loop, t, AG_ERR_UNAVAILABLE, "The application's answer is unusable.");
            return;
        }
    }
    /* The head is in: the worker answers; the upstream waits, unwatched, until the client's socket
     * arrives (bytes it sends meanwhile stay in its socket). */
    t->state = T_ANSWERED;
    char *fit = realloc(t->head, t->head_len + 1); /* the read buffer was HEAD_MAX */
    if (fit != NULL)
        t->head = fit;
    ag_loop_timer_disarm(loop, &t->timer);
    ag_loop_watch(loop, &t->up, 0);
    pthread_mutex_lock(&t->mu);
    bool unparked = settle(t, AG_OK, NULL);
    pthread_mutex_unlock(&t->mu);
    if (unparked)
        resume(t);
}

static void on_up_io(struct ag_loop *loop, struct ag_loop_io *io, uint32_t events)
{
    struct ag_tunnel *t = (struct ag_tunnel *)((char *)io - offsetof(struct ag_tunnel, up));

    if (t->state == T_SPLICING)
        on_splice(loop, t, true, events);
    else if (t->state >= T_TLS && t->state <= T_READING)
        handshake(loop, t);
}

static void on_timeout(struct ag_loop *loop, struct ag_loop_timer *timer)
{
    struct ag_tunnel *t = (struct ag_tunnel *)((char *)timer - offsetof(struct ag_tunnel, timer));
    ag_log_rq(AG_LOG_WARN, t->request_id,
              "upgrade: no answer from the upstream within %lld ms (upstream_timeout)",
              (long long)t->timeout_ms);
    close_tunnel(loop, t, AG_ERR_IO, "The application did not answer in time.");
}

/* Connected (libcurl): take the socket over and start the handshake. */
static void on_connected(struct ag_loop *loop, struct ag_loop_xfer *x, CURLcode result)
{
    struct ag_tunnel *t = (struct ag_tunnel *)((char *)x - offsetof(struct ag_tunnel, x));
    t->up.fd = x->sock;
    curl_easy_cleanup(x->h); /* closes libcurl's descriptor; ours (a duplicate) stays */
    x->h = NULL;
    if (t->up.fd < 0) {
        ag_log_rq(AG_LOG_WARN, t->request_id, "upgrade: cannot connect to the upstream (%s)",
                  result != CURLE_OK ? curl_easy_strerror(result) : "no socket");
        close_tunnel(loop, t, result == CURLE_OPERATION_TIMEDOUT ? AG_ERR_IO : AG_ERR_UNAVAILABLE,
                     result == CURLE_OPERATION_TIMEDOUT ? "The application did not answer in time."
                                                        : "The application cannot be reached.");
        return;
    }
    t->state = T_SENDING;
    if (t->tls) {
        pthread_once(&tls_once, tls_init);
        t->ssl = tls_ctx != NULL ? SSL_new(tls_ctx) : NULL;
        unsigned char ip[16];
        bool literal = inet_pton(AF_INET, t->tls_host, ip) == 1 || inet_pton(AF_INET6, t->tls_host, ip) == 1;
        /* the name is checked as libcurl does: DNS names by name (and sent as SNI), addresses by IP SAN */
        if (t->ssl == NULL || SSL_set_fd(t->ssl, t->up.fd) != 1 ||
            (!literal && SSL_set_tlsext_host_name(t->ssl, t->tls_host) != 1) ||
            (t->verify && !literal && SSL_set1_host(t->ssl, t->tls_host) != 1) ||
            (t->verify && literal &&
             X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(t->ssl), t->tls_host) != 1)) {
            ERR_clear_error();
            close_tunnel(loop, t, AG_ERR_NOMEM, "Out of memory.");
            return;
        }
        SSL_set_verify(t->ssl, t->verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, NULL);
        t->state = T_TLS;
    }
    handshake(loop, t);
}

static void task_start(struct ag_loop *loop, struct ag_loop_task *task)
{
    struct ag_tunnel *t = (struct ag_tunnel *)((char *)task - offsetof(struct ag_tunnel, t_start));
    void **head = ag_loop_slot(loop, AG_LOOP_SLOT_TUNNEL);

    /* the loop's reference came with this task */
    t->next = *head;
    if (t->next != NULL)
        t->next->prev = t;
    *head = t;
    ag_loop_timer_arm(loop, &t->timer, t->timeout_ms);
    if (atomic_load(t->draining)) {
        close_tunnel(loop, t, AG_ERR_UNAVAILABLE, "The server is stopping.");
    } else if (ag_loop_add(loop, &t->x) != AG_OK) {
        ag_log_rq(AG_LOG_ERROR, t->request_id, "upgrade: cannot start connecting to the upstream");
        close_tunnel(loop, t, AG_ERR_UNAVAILABLE, "The application cannot be reached.");
    }
}

/* The worker answered 101 and libmicrohttpd handed over the client's socket: splice. */
static void task_splice(struct ag_loop *loop, struct ag_loop_task *task)
{
    struct ag_tunnel *t = (struct ag_tunnel *)((char *)task - offsetof(struct ag_tunnel, t_splice));
    struct MHD_UpgradeResponseHandle *urh = NULL;

    pthread_mutex_lock(&t->mu);
    if (t->closed)
        urh = t->urh; /* closed meanwhile: the socket goes back at once */
    else
        t->splicing = true;
    pthread_mutex_unlock(&t->mu);
    if (urh != NULL) {
        MHD_upgrade_action(urh, MHD_UPGRADE_ACTION_CLOSE);
        ag_loop_kick(loop);
    } else {
        t->state = T_SPLICING;
        t->client.fd = t->client_fd;
        ag_log_rq(AG_LOG_INFO, t->request_id, "upgraded connection open");
        /* bytes that came with the handshakes: the upstream's after its head, the client's after its own */
        bool ok = !atomic_load(t->draining) &&
                  (t->head_len == t->body_off ||
                   keep(&t->to_client, t->head + t->body_off, t->head_len - t->body_off));
        ok = ok && flush(t, &t->to_up, true) && flush(t, &t->to_client, false) && rewatch(loop, t);
        if (!ok)
            close_tunnel(loop, t, AG_OK, NULL);
    }
    release(t, loop);
}

/* The request is over (answered, refused or gone) before any splicing: the upstream connection goes. A
 * spliced tunnel's request ends only after the loop closed it. */
static void task_close(struct ag_loop *loop, struct ag_loop_task *task)
{
    struct ag_tunnel *t = (struct ag_tunnel *)((char *)task - offsetof(struct ag_tunnel, t_close));

    if (t->state < T_SPLICING)
        close_tunnel(loop, t, AG_ERR_UNAVAILABLE, NULL);
    release(t, loop);
}

void ag_tunnel_stop_loop(struct ag_loop *loop)
{
    void **head = ag_loop_slot(loop, AG_LOOP_SLOT_TUNNEL);

    while (*head != NULL)
        close_tunnel(loop, *head, AG_ERR_UNAVAILABLE, "The server is stopping.");
}

/* ------------------------------------------------------------------------------------------------
 * The worker's side. */

/* host of host[:port] or [v6]:port, and whether a port is given. */
static char *host_of(const char *authority, bool *has_port)
{
    const char *end;
    if (authority[0] == '[') {
        end = strchr(authority, ']');
        if (end == NULL)
            return NULL;
        *has_port = end[1] == ':';
        return strndup(authority + 1, (size_t)(end - authority - 1));
    }
    end = strchr(authority, ':');
    *has_port = end != NULL;
    return end != NULL ? strndup(authority, (size_t)(end - authority)) : strdup(authority);
}

struct ag_tunnel *ag_tunnel_new(struct ag_request *rq, struct ag_loop *loop, const struct ag_upstream *up,
                                const struct curl_slist *hdrs, int64_t timeout_ms)
{
    const struct ag_config *cfg = rq->app->cfg;
    struct ag_tunnel *t = calloc(1, sizeof(*t));
    const char *upgrade = ag_request_header(rq, "Upgrade");
    bool has_port = false;
    size_t cap;

    if (t == NULL)
        return NULL;
    pthread_mutex_init(&t->mu, NULL);
    t->refs = 1; /* the request's */
    t->loop = loop;
    t->conn = rq->conn;
    t->draining = &rq->app->draining;
    t->timeout_ms = timeout_ms;
    t->up.fd = t->client.fd = t->client_fd = -1;
    t->up.fn = on_up_io;
    t->client.fn = on_client_io;
    t->t_start.fn = task_start;
    t->t_splice.fn = task_splice;
    t->t_close.fn = task_close;
    t->timer.fn = on_timeout;
    t->x.done = on_connected;
    t->x.take_socket = true;
    t->x.sock = -1;
    snprintf(t->request_id, sizeof(t->request_id), "%s", rq->request_id);
    t->tls = strncmp(up->origin, "https:", 6) == 0;
    t->verify = !cfg->ssl_upstream_insecure_skip_verify;
    t->tls_host = host_of(up->authority, &has_port);
    if (t->tls_host == NULL)
        goto fail;
    /* libcurl only connects (plain TCP or the unix socket); TLS is ours */
    cap = strlen(up->authority) + 16;
    t->connect_url = malloc(cap);
    if (t->connect_url == NULL)
        goto fail;
    snprintf(t->connect_url, cap, "http://%s%s/", up->authority, has_port ? "" : t->tls ? ":443" : ":80");
    if (up->unix_path != NULL && (t->unix_path = strdup(up->unix_path)) == NULL)
        goto fail;

    /* The request: as received, with the headers the proxy passes and the upgrade itself. */
    cap = strlen(rq->method) + strlen(rq->raw_uri) + 64 + strlen(upgrade);
    for (const struct curl_slist *l = hdrs; l != NULL; l = l->next)
        cap += strlen(l->data) + 2;
    t->req = malloc(cap);
    if (t->req == NULL)
        goto fail;
    size_t o = (size_t)snprintf(t->req, cap, "%s %s HTTP/1.1\r\n", rq->method, rq->raw_uri);
    for (const struct curl_slist *l = hdrs; l != NULL; l = l->next) {
        const char *colon = strchr(l->data, ':');
        if (colon == NULL || colon[1] == '\0') /* libcurl's "Name:" (remove) and "Name;" forms */
            continue;
        o += (size_t)snprintf(t->req + o, cap - o, "%s\r\n", l->data);
    }
    o += (size_t)snprintf(t->req + o, cap - o, "Connection: Upgrade\r\nUpgrade: %s\r\n\r\n", upgrade);
    t->req_len = o;

    t->x.h = curl_easy_init();
    if (t->x.h == NULL)
        goto fail;
    curl_easy_setopt(t->x.h, CURLOPT_URL, t->connect_url);
    curl_easy_setopt(t->x.h, CURLOPT_PROTOCOLS_STR, "http");
    curl_easy_setopt(t->x.h, CURLOPT_CONNECT_ONLY, 1L);
    curl_easy_setopt(t->x.h, CURLOPT_FRESH_CONNECT, 1L);
    if (t->unix_path != NULL)
        curl_easy_setopt(t->x.h, CURLOPT_UNIX_SOCKET_PATH, t->unix_path);
    curl_easy_setopt(t->x.h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(t->x.h, CURLOPT_CONNECTTIMEOUT_MS, (long)timeout_ms);

    t->refs++; /* the loop's, carried by t_start */
    if (ag_loop_post(loop, &t->t_start) != AG_LOOP_QUEUED) {
        t->refs--;
        goto fail;
    }
    return t;
fail:
    tunnel_free(t);
    return NULL;
}

/* The tunnel's life: libmicrohttpd hands over the client's socket here (on the worker's thread). */
static void on_upgraded(void *cls, struct MHD_Connection *conn, void *con_cls, const char *extra_in,
                        size_t extra_in_size, MHD_socket sock, struct MHD_UpgradeResponseHandle *urh)
{
    struct ag_tunnel *t = cls; /* alive: the request's reference goes only after the socket is back */
    bool closed;

    AG_UNUSED(conn);
    AG_UNUSED(con_cls);
    pthread_mutex_lock(&t->mu);
    closed = t->closed;
    t->urh = urh;
    t->client_fd = sock;
    pthread_mutex_unlock(&t->mu);
    /* the bytes the client sent after its handshake: the loop sends them first */
    if (closed || (extra_in_size > 0 && !keep(&t->to_up, extra_in, extra_in_size))) {
        MHD_upgrade_action(urh, MHD_UPGRADE_ACTION_CLOSE);
        return;
    }
    pthread_mutex_lock(&t->mu);
    t->refs++;
    pthread_mutex_unlock(&t->mu);
    if (ag_loop_post(t->loop, &t->t_splice) != AG_LOOP_QUEUED) {
        release(t, NULL);
        MHD_upgrade_action(urh, MHD_UPGRADE_ACTION_CLOSE);
    }
}

static bool hop_by_hop(const char *name, size_t n)
{
    static const char *const names[] = {"connection",     "keep-alive", "transfer-encoding", "te", "trailer",
                                        "content-length", "date",       "proxy-connection"};
    for (size_t i = 0; i < AG_ARRAY_LEN(names); i++)
        if (strlen(names[i]) == n && strncasecmp(name, names[i], n) == 0)
            return true;
    return false;
}

enum MHD_Result ag_tunnel_answer(struct ag_tunnel *t, struct ag_request *rq)
{
    struct MHD_Response *resp;
    enum MHD_Result ret;
    long status = 0;

    pthread_mutex_lock(&t->mu);
    if (!t->ready) {
        t->parked = true; /* until the loop has the upstream's head (or gave up) */
        MHD_suspend_connection(t->conn);
        pthread_mutex_unlock(&t->mu);
        return MHD_YES;
    }
    pthread_mutex_unlock(&t->mu);
    /* ready is final, and the loop no longer touches the head */
    if (t->result != AG_OK)
        return t->result == AG_ERR_IO
                   ? ag_page_send(rq, 504, "gateway_timeout", t->why)
                   : ag_page_send(rq, 502, "bad_gateway",
                                  t->why != NULL ? t->why : "The application cannot be reached.");
    if (strncmp(t->head, "HTTP/1.", 7) == 0 && t->body_off > 12)
        status = strtol(t->head + 9, NULL, 10);
    if (status < 101 || status > 599)
        return ag_page_send(rq, 502, "bad_gateway", "The application's answer is unusable.");
    resp = status == 101 ? MHD_create_response_for_upgrade(on_upgraded, t)
                         : MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    if (resp == NULL)
        return MHD_NO;
    char *line = strstr(t->head, "\r\n") + 2;
    size_t count = 0;
    while (line < t->head + t->body_off - 2 && count++ < MAX_HEADER) {
        char *eol = strstr(line, "\r\n"), *colon = memchr(line, ':', (size_t)(eol - line));
        if (colon != NULL && colon > line && !hop_by_hop(line, (size_t)(colon - line))) {
            char *v = colon + 1;
            *colon = '\0';
            *eol = '\0';
            while (*v == ' ' || *v == '\t')
                v++;
            MHD_add_response_header(resp, line, v);
            *colon = ':';
            *eol = '\r';
        }
        line = eol + 2;
    }
    ret = MHD_queue_response(rq->conn, (unsigned)status, resp);
    MHD_destroy_response(resp);
    if (ret == MHD_YES) {
        rq->answered = true;
        rq->status = (unsigned)status;
    }
    return ret;
}

void ag_tunnel_release(struct ag_tunnel *t)
{
    if (t == NULL)
        return;
    pthread_mutex_lock(&t->mu);
    bool open = !t->closed;
    if (open)
        t->refs++; /* the close task's */
    pthread_mutex_unlock(&t->mu);
    if (open && ag_loop_post(t->loop, &t->t_close) != AG_LOOP_QUEUED)
        release(t, NULL);
    release(t, NULL);
}
