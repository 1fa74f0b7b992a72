/* SPDX-License-Identifier: Apache-2.0
 * Upgrade tunnels: the handshake with the upstream over a libcurl CONNECT_ONLY connection, then a
 * poll loop copying bytes between the client's socket and the upstream's. */
#include <errno.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include "handle/pages.h"
#include "handle/proxy.h"
#include "handle/tunnel.h"
#include "log.h"

#define HEAD_MAX   (64 * 1024) /* the upstream's response headers */
#define CHUNK      (16 * 1024)
#define TICK_MS    500 /* how often a quiet tunnel looks at the stop flag */
#define MAX_HEADER 64

static atomic_bool stopping;

void ag_tunnel_stop_all(void)
{
    atomic_store(&stopping, true);
}

bool ag_tunnel_wanted(const struct ag_request *rq)
{
    const char *up = ag_request_header(rq, "Upgrade");
    return up != NULL && up[0] != '\0' &&
           ag_proxy_header_has(ag_request_header(rq, MHD_HTTP_HEADER_CONNECTION), "upgrade");
}

struct tunnel {
    CURL *h;
    curl_socket_t up_fd;
    MHD_socket client;
    struct MHD_UpgradeResponseHandle *urh;
    char *early; /* bytes the upstream sent right after its 101 headers, for the client */
    size_t early_len;
    char *request_id;
    atomic_bool *draining; /* the app's: a tunnel ends when the server drains (SIGTERM) */
};

/* Wait until fd is ready for `events` or ms pass; false on timeout, error or stop. */
static bool wait_fd(int fd, short events, int ms)
{
    struct pollfd p = {fd, events, 0};
    int r;
    do
        r = poll(&p, 1, ms);
    while (r < 0 && errno == EINTR);
    return r > 0;
}

static int64_t now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* Send all of buf upstream (TLS-aware through libcurl); false when the upstream is gone. */
static bool up_send(struct tunnel *t, const char *buf, size_t len)
{
    while (len > 0) {
        size_t n = 0;
        CURLcode r = curl_easy_send(t->h, buf, len, &n);
        if (r == CURLE_AGAIN) {
            if (atomic_load(&stopping) || !wait_fd((int)t->up_fd, POLLOUT, TICK_MS * 20))
                return false;
            continue;
        }
        if (r != CURLE_OK)
            return false;
        buf += n;
        len -= n;
    }
    return true;
}

/* Send all of buf to the client; false when the client is gone. */
static bool client_send(struct tunnel *t, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = send(t->client, buf, len, MSG_NOSIGNAL);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
            if (atomic_load(&stopping) || !wait_fd(t->client, POLLOUT, TICK_MS * 20))
                return false;
            continue;
        }
        if (n <= 0)
            return false;
        buf += n;
        len -= (size_t)n;
    }
    return true;
}

/* The tunnel's life: libmicrohttpd hands over the client's socket here (in the connection's thread). */
static void on_upgraded(void *cls, struct MHD_Connection *conn, void *con_cls, const char *extra_in,
                        size_t extra_in_size, MHD_socket sock, struct MHD_UpgradeResponseHandle *urh)
{
    struct tunnel *t = cls;
    char buf[CHUNK];
    bool open = true;

    AG_UNUSED(conn);
    AG_UNUSED(con_cls); /* the request may already be freed: nothing of it is used here */
    t->client = sock;
    t->urh = urh;
    if ((extra_in_size > 0 && !up_send(t, extra_in, extra_in_size)) ||
        (t->early_len > 0 && !client_send(t, t->early, t->early_len)))
        open = false;
    while (open && !atomic_load(&stopping) && !atomic_load(t->draining)) {
        struct pollfd p[2] = {{t->client, POLLIN, 0}, {(int)t->up_fd, POLLIN, 0}};
        int r = poll(p, 2, TICK_MS);
        if (r < 0 && errno != EINTR)
            break;
        if (r <= 0)
            continue;
        if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
            ssize_t n = recv(t->client, buf, sizeof(buf), 0);
            if (n > 0)
                open = up_send(t, buf, (size_t)n);
            else if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
                open = false;
        }
        /* TLS may hold decrypted bytes the socket no longer shows: read until libcurl says AGAIN */
        while (open && (p[1].revents & (POLLIN | POLLHUP | POLLERR))) {
            size_t n = 0;
            CURLcode c = curl_easy_recv(t->h, buf, sizeof(buf), &n);
            if (c == CURLE_AGAIN)
                break;
            if (c != CURLE_OK || n == 0)
                open = false;
            else
                open = client_send(t, buf, n);
        }
    }
    ag_log_rq(AG_LOG_INFO, t->request_id, "upgraded connection closed");
    MHD_upgrade_action(urh, MHD_UPGRADE_ACTION_CLOSE);
    curl_easy_cleanup(t->h);
    free(t->early);
    free(t->request_id);
    free(t);
}

/* The upstream's status line and headers: read until the blank line. *head is malloc'd with everything
 * read (headers and any early body bytes), *head_len its length, *body_off where the body starts. */
static enum ag_rc read_head(CURL *h, curl_socket_t fd, int64_t timeout_ms, char **head, size_t *head_len,
                            size_t *body_off)
{
    char *buf = malloc(HEAD_MAX + 1);
    size_t len = 0;
    int64_t deadline = now_ms() + timeout_ms;

    *head = NULL;
    if (buf == NULL)
        return AG_ERR_NOMEM;
    for (;;) {
        size_t n = 0;
        CURLcode c = curl_easy_recv(h, buf + len, HEAD_MAX - len, &n);
        if (c == CURLE_AGAIN) {
            int64_t left = deadline - now_ms();
            if (left <= 0 || !wait_fd((int)fd, POLLIN, (int)left)) {
                free(buf);
                return AG_ERR_IO; /* timed out */
            }
            continue;
        }
        if (c != CURLE_OK || n == 0) {
            free(buf);
            return AG_ERR_UNAVAILABLE;
        }
        len += n;
        buf[len] = '\0';
        char *end = strstr(buf, "\r\n\r\n");
        if (end != NULL) {
            *head = buf;
            *head_len = len;
            *body_off = (size_t)(end - buf) + 4;
            return AG_OK;
        }
        if (len == HEAD_MAX) {
            free(buf);
            return AG_ERR_TOO_LARGE;
        }
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

enum MHD_Result ag_tunnel_open(struct ag_request *rq, const struct ag_upstream *up,
                               const struct curl_slist *hdrs)
{
    const struct ag_config *cfg = rq->app->cfg;
    int64_t timeout = cfg->upstream_timeout > 0 ? cfg->upstream_timeout : 30000;
    struct tunnel *t = calloc(1, sizeof(*t));
    char *url = ag_request_printf(rq, "%s%s", up->origin, rq->raw_uri), *head = NULL, *req;
    size_t head_len = 0, body_off = 0, reqlen;
    long status = 0;
    struct MHD_Response *resp = NULL;
    enum MHD_Result ret;
    enum ag_rc rc;

    if (t == NULL || url == NULL || (t->h = curl_easy_init()) == NULL) {
        free(t);
        return MHD_NO;
    }
    t->request_id = strdup(rq->request_id);
    t->draining = &rq->app->draining;
    curl_easy_setopt(t->h, CURLOPT_URL, url);
    curl_easy_setopt(t->h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(t->h, CURLOPT_CONNECT_ONLY, 1L);
    if (up->unix_path != NULL)
        curl_easy_setopt(t->h, CURLOPT_UNIX_SOCKET_PATH, up->unix_path);
    curl_easy_setopt(t->h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(t->h, CURLOPT_CONNECTTIMEOUT_MS, (long)timeout);
    curl_easy_setopt(t->h, CURLOPT_SSL_VERIFYPEER, cfg->ssl_upstream_insecure_skip_verify ? 0L : 1L);
    curl_easy_setopt(t->h, CURLOPT_SSL_VERIFYHOST, cfg->ssl_upstream_insecure_skip_verify ? 0L : 2L);
    if (curl_easy_perform(t->h) != CURLE_OK ||
        curl_easy_getinfo(t->h, CURLINFO_ACTIVESOCKET, &t->up_fd) != CURLE_OK ||
        t->up_fd == CURL_SOCKET_BAD) {
        ag_log_rq(AG_LOG_WARN, rq->request_id, "upgrade: cannot connect to the upstream");
        ret = ag_page_send(rq, 502, "bad_gateway", "The application cannot be reached.");
        goto out;
    }

    /* The request: as received, with the headers the proxy passes and the upgrade itself. */
    reqlen = strlen(rq->method) + strlen(rq->raw_uri) + 64 + strlen(ag_request_header(rq, "Upgrade"));
    for (const struct curl_slist *l = hdrs; l != NULL; l = l->next)
        reqlen += strlen(l->data) + 2;
    req = ag_request_alloc(rq, reqlen);
    if (req == NULL) {
        ret = MHD_NO;
        goto out;
    }
    size_t o = (size_t)snprintf(req, reqlen, "%s %s HTTP/1.1\r\n", rq->method, rq->raw_uri);
    for (const struct curl_slist *l = hdrs; l != NULL; l = l->next) {
        const char *colon = strchr(l->data, ':');
        if (colon == NULL || colon[1] == '\0') /* libcurl's "Name:" (remove) and "Name;" forms */
            continue;
        o += (size_t)snprintf(req + o, reqlen - o, "%s\r\n", l->data);
    }
    o += (size_t)snprintf(req + o, reqlen - o, "Connection: Upgrade\r\nUpgrade: %s\r\n\r\n",
                          ag_request_header(rq, "Upgrade"));
    if (!up_send(t, req, o)) {
        ret = ag_page_send(rq, 502, "bad_gateway", "The application closed the connection.");
        goto out;
    }
    rc = read_head(t->h, t->up_fd, timeout, &head, &head_len, &body_off);
    if (rc != AG_OK) {
        ag_log_rq(AG_LOG_WARN, rq->request_id, "upgrade: no answer from the upstream (%s)",
                  rc == AG_ERR_IO ? "timeout" : "closed or too large");
        ret = rc == AG_ERR_IO
                  ? ag_page_send(rq, 504, "gateway_timeout", "The application did not answer in time.")
                  : ag_page_send(rq, 502, "bad_gateway", "The application's answer is unusable.");
        goto out;
    }
    if (strncmp(head, "HTTP/1.", 7) == 0 && strlen(head) > 12)
        status = strtol(head + 9, NULL, 10);
    if (status < 101 || status > 599) {
        ret = ag_page_send(rq, 502, "bad_gateway", "The application's answer is unusable.");
        goto out;
    }
    if (status == 101) {
        resp = MHD_create_response_for_upgrade(on_upgraded, t);
        t->early_len = head_len - body_off;
        if (t->early_len > 0 && (t->early = malloc(t->early_len)) != NULL)
            memcpy(t->early, head + body_off, t->early_len);
        else
            t->early_len = 0;
    } else {
        /* refused: its status and headers, without a body */
        resp = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    }
    if (resp == NULL) {
        ret = MHD_NO;
        goto out;
    }
    {
        char *line = strstr(head, "\r\n") + 2;
        size_t count = 0;
        while (line < head + body_off - 2 && count++ < MAX_HEADER) {
            char *eol = strstr(line, "\r\n"), *colon = memchr(line, ':', (size_t)(eol - line));
            if (colon != NULL && colon > line && !hop_by_hop(line, (size_t)(colon - line))) {
                char *v = colon + 1;
                *colon = '\0';
                *eol = '\0';
                while (*v == ' ' || *v == '\t')
                    v++;
                MHD_add_response_header(resp, line, v);
            }
            line = eol + 2;
        }
    }
    ret = MHD_queue_response(rq->conn, (unsigned)status, resp);
    MHD_destroy_response(resp);
    if (ret == MHD_YES) {
        rq->answered = true;
        rq->status = (unsigned)status;
        if (status == 101)
            t = NULL; /* on_upgraded owns it now */
    }
out:
    free(head);
    if (t != NULL) {
        curl_easy_cleanup(t->h);
        free(t->early);
        free(t->request_id);
        free(t);
    }
    return ret;
}
