/* SPDX-License-Identifier: Apache-2.0
 * Reverse proxy: one libcurl transfer per request on its own thread, fed and drained through two
 * bounded buffers under one mutex. */
#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "handle/files.h"
#include "handle/handlers.h"
#include "handle/identity.h"
#include "handle/pages.h"
#include "handle/proxy.h"
#include "handle/tunnel.h"
#include "log.h"
#include "net/cookie.h"
#include "router.h"

#define RING_BYTES        (64 * 1024) /* each direction: what one request may hold in memory */
#define MAX_RESP_HEADERS  128
#define MAX_RESP_HDR_SIZE (64 * 1024)

struct ag_proxy_shared {
    CURLSH *share;
    pthread_mutex_t lock[CURL_LOCK_DATA_LAST];
    pthread_mutex_t mu; /* guards running */
    pthread_cond_t idle;
    unsigned running; /* transfer threads alive: freeing waits for them */
};

/* A bounded byte queue. */
struct ring {
    unsigned char buf[RING_BYTES];
    size_t head, len;
};

/* Append as much of data[0..len) as fits; returns how much did. */
static size_t ring_put(struct ring *r, const char *data, size_t len)
{
    size_t n = 0;
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
    return n;
}

struct ag_proxy {
    struct ag_proxy_shared *ps;
    unsigned refs; /* the request and the transfer thread: the last to let go frees it */
    const struct ag_upstream *up;
    bool tunnel; /* an Upgrade: handle/tunnel.c does the rest */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t thread;
    CURL *h;
    struct curl_slist *hdrs;
    char *url;
    char errbuf[CURL_ERROR_SIZE];
    int64_t timeout_ms;

    struct ring req; /* client -> upstream */
    bool req_eof;
    struct ring resp; /* upstream -> client */

    bool headers_done; /* the upstream's final status and headers are in */
    bool done;         /* the transfer ended (result says how) */
    bool aborted;      /* the client went away: stop */
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
 * Shared connection cache. */

static void share_lock(CURL *h, curl_lock_data data, curl_lock_access access, void *cls)
{
    struct ag_proxy_shared *ps = cls;
    AG_UNUSED(h);
    AG_UNUSED(access);
    pthread_mutex_lock(&ps->lock[data]);
}

static void share_unlock(CURL *h, curl_lock_data data, void *cls)
{
    struct ag_proxy_shared *ps = cls;
    AG_UNUSED(h);
    pthread_mutex_unlock(&ps->lock[data]);
}

enum ag_rc ag_proxy_shared_new(struct ag_proxy_shared **out)
{
    struct ag_proxy_shared *ps = calloc(1, sizeof(*ps));

    *out = NULL;
    if (ps == NULL)
        return AG_ERR_NOMEM;
    for (size_t i = 0; i < CURL_LOCK_DATA_LAST; i++)
        pthread_mutex_init(&ps->lock[i], NULL);
    pthread_mutex_init(&ps->mu, NULL);
    pthread_cond_init(&ps->idle, NULL);
    ps->share = curl_share_init();
    if (ps->share == NULL || curl_share_setopt(ps->share, CURLSHOPT_LOCKFUNC, share_lock) != CURLSHE_OK ||
        curl_share_setopt(ps->share, CURLSHOPT_UNLOCKFUNC, share_unlock) != CURLSHE_OK ||
        curl_share_setopt(ps->share, CURLSHOPT_USERDATA, ps) != CURLSHE_OK ||
        curl_share_setopt(ps->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT) != CURLSHE_OK ||
        curl_share_setopt(ps->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS) != CURLSHE_OK ||
        curl_share_setopt(ps->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION) != CURLSHE_OK) {
        ag_proxy_shared_free(ps);
        return AG_ERR_INTERNAL;
    }
    *out = ps;
    return AG_OK;
}

void ag_proxy_shared_free(struct ag_proxy_shared *ps)
{
    if (ps == NULL)
        return;
    /* transfers of finished requests stop within about a second (their progress callback) */
    pthread_mutex_lock(&ps->mu);
    while (ps->running > 0)
        pthread_cond_wait(&ps->idle, &ps->mu);
    pthread_mutex_unlock(&ps->mu);
    pthread_mutex_destroy(&ps->mu);
    pthread_cond_destroy(&ps->idle);
    if (ps->share != NULL)
        curl_share_cleanup(ps->share);
    for (size_t i = 0; i < CURL_LOCK_DATA_LAST; i++)
        pthread_mutex_destroy(&ps->lock[i]);
    free(ps);
}

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
 * The transfer thread's callbacks (libcurl calls them on that thread). */

static size_t on_read(char *buf, size_t size, size_t nitems, void *cls)
{
    struct ag_proxy *px = cls;
    size_t want = size * nitems, n = 0;

    pthread_mutex_lock(&px->mu);
    while (px->req.len == 0 && !px->req_eof && !px->aborted)
        pthread_cond_wait(&px->cv, &px->mu);
    if (px->aborted) {
        pthread_mutex_unlock(&px->mu);
        return CURL_READFUNC_ABORT;
    }
    n = ring_take(&px->req, buf, want);
    pthread_cond_broadcast(&px->cv);
    pthread_mutex_unlock(&px->mu);
    return n; /* 0 at the end of the body */
}

static size_t on_write(char *data, size_t size, size_t nmemb, void *cls)
{
    struct ag_proxy *px = cls;
    size_t total = size * nmemb, n = 0;

    pthread_mutex_lock(&px->mu);
    px->headers_done = true;
    while (n < total) {
        while (px->resp.len == RING_BYTES && !px->aborted)
            pthread_cond_wait(&px->cv, &px->mu);
        if (px->aborted)
            break;
        n += ring_put(&px->resp, data + n, total - n);
        pthread_cond_broadcast(&px->cv);
    }
    pthread_mutex_unlock(&px->mu);
    return n; /* short: libcurl stops the transfer */
}

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

static size_t on_header(char *line, size_t size, size_t nitems, void *cls)
{
    struct ag_proxy *px = cls;
    size_t len = size * nitems, n = len, colon;
    size_t ret = len;

    while (n > 0 && (line[n - 1] == '\r' || line[n - 1] == '\n'))
        n--;
    pthread_mutex_lock(&px->mu);
    if (n >= 5 && strncmp(line, "HTTP/", 5) == 0) {
        /* a status line: a new (possibly final) response starts */
        const char *sp = memchr(line, ' ', n);
        clear_resp_headers(px);
        px->status = sp != NULL ? strtol(sp + 1, NULL, 10) : 0;
    } else if (n == 0) {
        if (px->status >= 200) {
            px->headers_done = true;
            pthread_cond_broadcast(&px->cv);
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
                char *joined = px->resp_connection == NULL ? strndup(v, vl)
                                                           : malloc(strlen(px->resp_connection) + vl + 2);
                if (joined != NULL && px->resp_connection != NULL) {
                    sprintf(joined, "%s,%.*s", px->resp_connection, (int)vl, v);
                    free(px->resp_connection);
                }
                px->resp_connection = joined;
                if (joined == NULL)
                    ret = 0;
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
    return ret;
}

static int on_progress(void *cls, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow)
{
    struct ag_proxy *px = cls;
    int stop = 0;

    AG_UNUSED(dltotal);
    AG_UNUSED(dlnow);
    AG_UNUSED(ultotal);
    AG_UNUSED(ulnow);
    pthread_mutex_lock(&px->mu);
    stop = px->aborted ? 1 : 0;
    pthread_mutex_unlock(&px->mu);
    return stop;
}

static void proxy_free(struct ag_proxy *px)
{
    if (px->h != NULL)
        curl_easy_cleanup(px->h);
    curl_slist_free_all(px->hdrs);
    clear_resp_headers(px);
    free(px->url);
    pthread_cond_destroy(&px->cv);
    pthread_mutex_destroy(&px->mu);
    free(px);
}

/* Let go of px; the last holder frees it. */
static void release(struct ag_proxy *px)
{
    pthread_mutex_lock(&px->mu);
    bool last = --px->refs == 0;
    pthread_mutex_unlock(&px->mu);
    if (last)
        proxy_free(px);
}

static void *run(void *cls)
{
    struct ag_proxy *px = cls;
    struct ag_proxy_shared *ps = px->ps;
    CURLcode r = curl_easy_perform(px->h);

    pthread_mutex_lock(&px->mu);
    px->result = r;
    px->done = true;
    pthread_cond_broadcast(&px->cv);
    pthread_mutex_unlock(&px->mu);
    release(px);
    pthread_mutex_lock(&ps->mu);
    if (--ps->running == 0)
        pthread_cond_broadcast(&ps->idle);
    pthread_mutex_unlock(&ps->mu);
    return NULL;
}

/* ------------------------------------------------------------------------------------------------
 * The request side (the connection's own thread). */

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

static struct ag_proxy *proxy_new(void)
{
    struct ag_proxy *px = calloc(1, sizeof(*px));
    if (px == NULL)
        return NULL;
    px->refs = 1;
    pthread_mutex_init(&px->mu, NULL);
    pthread_cond_init(&px->cv, NULL);
    px->content_length = -1;
    return px;
}

/* Build the transfer for an allowed request with identity s; AG_OK once its thread runs. */
static enum ag_rc start(struct ag_request *rq, const struct ag_upstream *up, const struct ag_session *s,
                        bool tunnel)
{
    const struct ag_config *cfg = rq->app->cfg;
    struct ag_proxy *px = proxy_new();
    struct collect c = {rq, NULL, ag_request_header(rq, MHD_HTTP_HEADER_CONNECTION), false};
    const char *xff = ag_request_from_trusted_proxy(rq) ? ag_request_header(rq, "X-Forwarded-For") : NULL;
    const char *host = ag_request_header(rq, MHD_HTTP_HEADER_HOST);
    int64_t length;
    bool body = has_body(rq, &length);

    if (px == NULL)
        return AG_ERR_NOMEM;
    rq->proxy = px;
    px->timeout_ms = cfg->upstream_timeout > 0 ? cfg->upstream_timeout : 30000;
    MHD_get_connection_values(rq->conn, MHD_HEADER_KIND, collect_header, &c);
    /* Cookie as authgate read it to find the session, without its own cookies (net/cookie.h) */
    bool failed = false;
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
    px->hdrs = c.list;
    px->up = up;
    if (tunnel && !c.failed) {
        px->tunnel = true;
        return AG_OK;
    }
    px->url = malloc(strlen(up->origin) + strlen(rq->raw_uri) + 1);
    px->h = curl_easy_init();
    if (c.failed || px->url == NULL || px->h == NULL)
        return AG_ERR_NOMEM;
    strcpy(px->url, up->origin);
    strcat(px->url, rq->raw_uri);

    CURL *h = px->h;
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
    curl_easy_setopt(h, CURLOPT_SHARE, rq->app->proxy->share);
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
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, px);
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
    px->ps = rq->app->proxy;
    pthread_mutex_lock(&px->ps->mu);
    px->ps->running++;
    pthread_mutex_unlock(&px->ps->mu);
    px->refs = 2;
    if (pthread_create(&px->thread, NULL, run, px) != 0) {
        px->refs = 1;
        pthread_mutex_lock(&px->ps->mu);
        px->ps->running--;
        pthread_mutex_unlock(&px->ps->mu);
        return AG_ERR_INTERNAL;
    }
    pthread_detach(px->thread); /* the request never waits for it: see release() */
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

enum MHD_Result ag_proxy_body(struct ag_request *rq, const char *data, size_t len)
{
    struct ag_proxy *px = rq->proxy;
    size_t n = 0;

    if (px == NULL || px->tunnel)
        return MHD_YES; /* refused (or an upgrade, which has no body): read and dropped */
    pthread_mutex_lock(&px->mu);
    while (n < len && !px->done && !px->aborted) {
        while (px->req.len == RING_BYTES && !px->done && !px->aborted)
            pthread_cond_wait(&px->cv, &px->mu);
        n += ring_put(&px->req, data + n, len - n);
        pthread_cond_broadcast(&px->cv);
    }
    pthread_mutex_unlock(&px->mu);
    return MHD_YES;
}

static ssize_t read_response(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct ag_request *rq = cls;
    struct ag_proxy *px = rq->proxy;
    size_t n = 0;

    AG_UNUSED(pos);
    pthread_mutex_lock(&px->mu);
    while (px->resp.len == 0 && !px->done && !px->aborted)
        pthread_cond_wait(&px->cv, &px->mu);
    n = ring_take(&px->resp, buf, max);
    if (n > 0)
        pthread_cond_broadcast(&px->cv);
    bool ok = px->done && px->result == CURLE_OK;
    pthread_mutex_unlock(&px->mu);
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

enum MHD_Result ag_proxy_finish(struct ag_request *rq)
{
    struct ag_proxy *px = rq->proxy;
    struct MHD_Response *resp;
    enum MHD_Result ret;
    bool no_body;

    if (rq->files != NULL)
        return ag_files_serve(rq, rq->files);
    if (px == NULL)
        return ag_response_send(rq, rq->pending);
    if (px->tunnel)
        return ag_tunnel_open(rq, px->up, px->hdrs);
    /* the body is sent: --upstream-timeout now bounds the wait for the response's headers */
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += (time_t)(px->timeout_ms / 1000);
    deadline.tv_nsec += (long)(px->timeout_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&px->mu);
    px->req_eof = true;
    pthread_cond_broadcast(&px->cv);
    while (!px->headers_done && !px->done)
        if (pthread_cond_timedwait(&px->cv, &px->mu, &deadline) != 0 && !px->headers_done && !px->done) {
            px->timed_out = px->aborted = true; /* the transfer thread stops within about a second */
            pthread_cond_broadcast(&px->cv);
            break;
        }
    bool headers = px->headers_done && !px->timed_out;
    pthread_mutex_unlock(&px->mu);
    if (!headers)
        return gateway_error(rq);

    no_body = px->status == 204 || px->status == 304 || (px->status >= 100 && px->status < 200);
    resp = no_body ? MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT)
                   : MHD_create_response_from_callback(px->content_length >= 0 ? (uint64_t)px->content_length
                                                                               : MHD_SIZE_UNKNOWN,
                                                       RING_BYTES, read_response, rq, NULL);
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

void ag_proxy_end(struct ag_request *rq)
{
    struct ag_proxy *px = rq->proxy;

    if (px == NULL)
        return;
    pthread_mutex_lock(&px->mu);
    px->aborted = true; /* a transfer still running stops at its next callback */
    pthread_cond_broadcast(&px->cv);
    pthread_mutex_unlock(&px->mu);
    rq->proxy = NULL;
    release(px);
}
