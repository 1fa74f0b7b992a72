/* SPDX-License-Identifier: Apache-2.0
 * Redis client: URL parsing, a connection per thread (pthread key with destructor), one retry on a
 * fresh connection after an I/O error, and a short back-off so a dead Redis costs each request a
 * failed check, not a connect timeout. */
#include <hiredis/hiredis.h>
#include <openssl/crypto.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "session/redis.h"

#define BACKOFF_MS 250 /* after a failed connect, a thread waits this long before trying again */

struct ag_redis {
    char host[256];
    int port;
    char unix_path[108];
    int db;
    char user[128];
    char *password;
    struct timeval timeout;
    pthread_key_t key; /* this thread's struct conn */

    /* Client-side caching (ag_redis_tracking_start): the subscriber thread and what it shares. */
    bool tracking;
    pthread_t sub_thread;
    atomic_bool sub_stop;
    atomic_llong track_id; /* the subscriber's CLIENT ID while it is subscribed, else 0 */
    atomic_int sub_fd;     /* its socket, -1 while down */
    atomic_int sub_busy;   /* 1 from before it reads its socket until what it read is applied */
    atomic_llong heard_ms; /* when it last heard from Redis (replies to its PINGs count) */
    atomic_bool tracking_refused;
    void (*on_invalidate)(void *cls, const char *key, size_t len);
    void (*on_reset)(void *cls);
    void *cls;
};

struct conn {
    redisContext *ctx;
    int64_t retry_after_ms; /* monotonic ms before which no reconnect is tried */
    long long track_id;     /* the subscriber id this connection's CLIENT TRACKING redirects to; 0: none */
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void conn_free(void *p)
{
    struct conn *c = p;
    if (c == NULL)
        return;
    if (c->ctx != NULL)
        redisFree(c->ctx);
    free(c);
}

static enum ag_rc bad(char *err, size_t errlen, const char *msg)
{
    snprintf(err, errlen, "%s", msg);
    return AG_ERR_INVALID;
}

/* Percent-decoding is not supported in the userinfo; passwords with '@' or ':' go in --redis-password. */
static enum ag_rc parse_url(struct ag_redis *r, const char *url, char *err, size_t errlen)
{
    const char *p, *at, *slash, *colon, *hostend;
    size_t n;

    if (strncmp(url, "unix://", 7) == 0) {
        n = strlen(url + 7);
        if (url[7] != '/' || n >= sizeof(r->unix_path))
            return bad(err, errlen, "expected unix:///absolute/path/to/redis.sock");
        memcpy(r->unix_path, url + 7, n + 1);
        return AG_OK;
    }
    if (strncmp(url, "rediss://", 9) == 0)
        return bad(err, errlen, "rediss:// (TLS) is not supported by this build's hiredis; use redis://");
    if (strncmp(url, "redis://", 8) != 0)
        return bad(err, errlen, "expected redis://[user:password@]host[:port][/db] or unix:///path");
    p = url + 8;
    slash = strchr(p, '/');
    hostend = slash ? slash : p + strlen(p);
    at = memchr(p, '@', (size_t)(hostend - p));
    if (at != NULL) {
        const char *c = memchr(p, ':', (size_t)(at - p));
        const char *uend = c ? c : at;
        if ((size_t)(uend - p) >= sizeof(r->user))
            return bad(err, errlen, "user name too long");
        memcpy(r->user, p, (size_t)(uend - p));
        r->user[uend - p] = '\0';
        if (c != NULL && r->password == NULL) {
            r->password = strndup(c + 1, (size_t)(at - c - 1));
            if (r->password == NULL)
                return AG_ERR_NOMEM;
        }
        p = at + 1;
    }
    colon = memchr(p, ':', (size_t)(hostend - p));
    n = (size_t)((colon ? colon : hostend) - p);
    if (n == 0 || n >= sizeof(r->host))
        return bad(err, errlen, "missing or too long host");
    memcpy(r->host, p, n);
    r->host[n] = '\0';
    r->port = 6379;
    if (colon != NULL) {
        long v = 0;
        const char *q = colon + 1;
        if (q == hostend)
            return bad(err, errlen, "empty port");
        for (; q < hostend; q++) {
            if (*q < '0' || *q > '9' || v > 65535)
                return bad(err, errlen, "port must be a number from 1 to 65535");
            v = v * 10 + (*q - '0');
        }
        if (v < 1 || v > 65535)
            return bad(err, errlen, "port must be a number from 1 to 65535");
        r->port = (int)v;
    }
    if (slash != NULL && slash[1] != '\0') {
        long v = 0;
        for (const char *q = slash + 1; *q; q++) {
            if (*q < '0' || *q > '9' || v > 1000000)
                return bad(err, errlen, "database must be a number (redis://host:port/0)");
            v = v * 10 + (*q - '0');
        }
        r->db = (int)v;
    }
    return AG_OK;
}

enum ag_rc ag_redis_new(const char *url, const char *password, int64_t timeout_ms, struct ag_redis **out,
                        char *err, size_t errlen)
{
    struct ag_redis *r = calloc(1, sizeof(*r));
    enum ag_rc rc;

    *out = NULL;
    if (r == NULL)
        return AG_ERR_NOMEM;
    if (password != NULL && *password != '\0') {
        r->password = strdup(password);
        if (r->password == NULL) {
            free(r);
            return AG_ERR_NOMEM;
        }
    }
    rc = url ? parse_url(r, url, err, errlen) : bad(err, errlen, "no URL");
    if (rc != AG_OK)
        goto fail;
    r->timeout.tv_sec = timeout_ms / 1000;
    r->timeout.tv_usec = (timeout_ms % 1000) * 1000;
    if (pthread_key_create(&r->key, conn_free) != 0) {
        rc = AG_ERR_INTERNAL;
        goto fail;
    }
    *out = r;
    return AG_OK;
fail:
    if (r->password != NULL) {
        OPENSSL_cleanse(r->password, strlen(r->password));
        free(r->password);
    }
    free(r);
    return rc;
}

void ag_redis_free(struct ag_redis *r)
{
    if (r == NULL)
        return;
    if (r->tracking) {
        atomic_store(&r->sub_stop, true);
        pthread_join(r->sub_thread, NULL);
    }
    conn_free(pthread_getspecific(r->key));
    pthread_setspecific(r->key, NULL);
    pthread_key_delete(r->key);
    if (r->password != NULL) {
        OPENSSL_cleanse(r->password, strlen(r->password));
        free(r->password);
    }
    free(r);
}

static const char *where(const struct ag_redis *r, char *buf, size_t cap)
{
    if (r->unix_path[0])
        snprintf(buf, cap, "unix://%s", r->unix_path);
    else
        snprintf(buf, cap, "%s:%d", r->host, r->port);
    return buf;
}

/* Run one command on ctx; returns the reply or NULL on an I/O error. */
static redisReply *run(redisContext *ctx, int argc, const char **argv, const size_t *lens)
{
    return redisCommandArgv(ctx, argc, argv, lens);
}

/* Connect, authenticate and select the database. */
static redisContext *dial(struct ag_redis *r)
{
    redisContext *ctx;
    redisReply *rep;
    char buf[300];

    ctx = r->unix_path[0] ? redisConnectUnixWithTimeout(r->unix_path, r->timeout)
                          : redisConnectWithTimeout(r->host, r->port, r->timeout);
    if (ctx == NULL || ctx->err) {
        ag_log_warn("redis %s: cannot connect: %s", where(r, buf, sizeof(buf)),
                    ctx ? ctx->errstr : "out of memory");
        goto fail;
    }
    redisSetTimeout(ctx, r->timeout);
    if (r->password != NULL) {
        const char *argv[3] = {"AUTH", r->user[0] ? r->user : r->password, r->password};
        size_t lens[3] = {4, strlen(argv[1]), strlen(r->password)};
        rep = run(ctx, r->user[0] ? 3 : 2, argv, lens);
        if (rep == NULL || rep->type == REDIS_REPLY_ERROR) {
            /* Redis' error text does not contain the password. */
            ag_log_warn("redis %s: AUTH failed: %s", where(r, buf, sizeof(buf)),
                        rep ? rep->str : ctx->errstr);
            if (rep)
                freeReplyObject(rep);
            goto fail;
        }
        freeReplyObject(rep);
    }
    if (r->db != 0) {
        char db[16];
        snprintf(db, sizeof(db), "%d", r->db);
        const char *argv[2] = {"SELECT", db};
        size_t lens[2] = {6, strlen(db)};
        rep = run(ctx, 2, argv, lens);
        if (rep == NULL || rep->type == REDIS_REPLY_ERROR) {
            ag_log_warn("redis %s: SELECT %d failed: %s", where(r, buf, sizeof(buf)), r->db,
                        rep ? rep->str : ctx->errstr);
            if (rep)
                freeReplyObject(rep);
            goto fail;
        }
        freeReplyObject(rep);
    }
    return ctx;
fail:
    if (ctx != NULL)
        redisFree(ctx);
    return NULL;
}

/* The calling thread's connection, connecting when needed; NULL while Redis is unreachable. */
static struct conn *conn_get(struct ag_redis *r)
{
    struct conn *c = pthread_getspecific(r->key);

    if (c == NULL) {
        c = calloc(1, sizeof(*c));
        if (c == NULL || pthread_setspecific(r->key, c) != 0) {
            free(c);
            return NULL;
        }
    }
    if (c->ctx == NULL) {
        if (now_ms() < c->retry_after_ms)
            return NULL;
        c->ctx = dial(r);
        c->track_id = 0;
        if (c->ctx == NULL) {
            c->retry_after_ms = now_ms() + BACKOFF_MS;
            return NULL;
        }
    }
    return c;
}

/* Run a command with one retry on a fresh connection after an I/O error (a connection that Redis
 * closed while idle, or a Redis that restarted). Returns the reply (caller frees) or NULL. */
/* With client-side caching on: make c's connection track the keys it reads, its invalidations going to
 * the subscriber's current connection. False when the connection failed (the caller reconnects). */
static bool ensure_tracking(struct ag_redis *r, struct conn *c)
{
    long long id = atomic_load(&r->track_id);
    char idtext[24];

    if (!r->tracking || id == 0 || c->track_id == id || atomic_load(&r->tracking_refused))
        return true;
    snprintf(idtext, sizeof(idtext), "%lld", id);
    const char *argv[5] = {"CLIENT", "TRACKING", "ON", "REDIRECT", idtext};
    size_t lens[5] = {6, 8, 2, 8, strlen(idtext)};
    redisReply *rep = run(c->ctx, 5, argv, lens);
    if (rep == NULL)
        return false;
    if (rep->type == REDIS_REPLY_ERROR) {
        /* Redis before 6 (or a proxy that does not pass it): no caching, sessions are read every time.
         * Any other error (the subscriber just went away: "redirect ... does not exist") leaves this
         * connection untracked for now; its reads are then not cached. */
        if (strcasestr(rep->str, "unknown") != NULL && !atomic_exchange(&r->tracking_refused, true))
            ag_log_warn("redis: CLIENT TRACKING refused (%s): the session cache stays off", rep->str);
    } else {
        c->track_id = id;
    }
    freeReplyObject(rep);
    return true;
}

static redisReply *command_tracked(struct ag_redis *r, int argc, const char **argv, const size_t *lens,
                                   bool *tracked)
{
    char buf[300];
    if (tracked != NULL)
        *tracked = false;
    for (int attempt = 0; attempt < 2; attempt++) {
        struct conn *c = conn_get(r);
        if (c == NULL)
            return NULL;
        redisReply *rep = tracked != NULL && !ensure_tracking(r, c) ? NULL : run(c->ctx, argc, argv, lens);
        if (rep != NULL && tracked != NULL)
            *tracked = c->track_id != 0 && c->track_id == atomic_load(&r->track_id);
        if (rep != NULL) {
            if (rep->type == REDIS_REPLY_ERROR) {
                ag_log_warn("redis %s: %s: %s", where(r, buf, sizeof(buf)), argv[0], rep->str);
                freeReplyObject(rep);
                return NULL;
            }
            return rep;
        }
        ag_log_warn("redis %s: %s: %s", where(r, buf, sizeof(buf)), argv[0], c->ctx->errstr);
        redisFree(c->ctx);
        c->ctx = NULL;
    }
    return NULL;
}

static redisReply *command(struct ag_redis *r, int argc, const char **argv, const size_t *lens)
{
    return command_tracked(r, argc, argv, lens, NULL);
}

/* After a write, with client-side caching on: one more round trip on the same connection. Redis queues
 * the invalidations of a write before that write's reply and writes them out before it reads another
 * command, so once this PING is answered every other instance has its invalidation in its socket, where
 * ag_redis_cache_usable() looks before any cached session is used: a sign-out is over everywhere before
 * the browser learns of it. */
static void barrier(struct ag_redis *r)
{
    if (!r->tracking)
        return;
    const char *argv[1] = {"PING"};
    size_t lens[1] = {4};
    redisReply *rep = command(r, 1, argv, lens);
    if (rep != NULL)
        freeReplyObject(rep);
}

enum ag_rc ag_redis_set(struct ag_redis *r, const char *key, const void *val, size_t len, int64_t ttl_ms)
{
    char ttl[24];
    snprintf(ttl, sizeof(ttl), "%lld", (long long)(ttl_ms > 0 ? ttl_ms : 1));
    const char *argv[5] = {"SET", key, val, "PX", ttl};
    size_t lens[5] = {3, strlen(key), len, 2, strlen(ttl)};
    redisReply *rep = command(r, 5, argv, lens);
    if (rep == NULL)
        return AG_ERR_UNAVAILABLE;
    freeReplyObject(rep);
    barrier(r);
    return AG_OK;
}

enum ag_rc ag_redis_get(struct ag_redis *r, const char *key, unsigned char **val, size_t *len)
{
    return ag_redis_get_tracked(r, key, val, len, NULL);
}

enum ag_rc ag_redis_get_tracked(struct ag_redis *r, const char *key, unsigned char **val, size_t *len,
                                bool *tracked)
{
    const char *argv[2] = {"GET", key};
    size_t lens[2] = {3, strlen(key)};
    enum ag_rc rc = AG_ERR_UNAVAILABLE;
    redisReply *rep = command_tracked(r, 2, argv, lens, tracked);

    *val = NULL;
    if (rep == NULL)
        return AG_ERR_UNAVAILABLE;
    if (rep->type == REDIS_REPLY_NIL) {
        rc = AG_ERR_NOT_FOUND;
    } else if (rep->type == REDIS_REPLY_STRING) {
        *val = malloc(rep->len + 1);
        rc = AG_ERR_NOMEM;
        if (*val != NULL) {
            memcpy(*val, rep->str, rep->len);
            (*val)[rep->len] = '\0';
            *len = rep->len;
            rc = AG_OK;
        }
    }
    freeReplyObject(rep);
    return rc;
}

enum ag_rc ag_redis_del(struct ag_redis *r, const char *key)
{
    const char *argv[2] = {"DEL", key};
    size_t lens[2] = {3, strlen(key)};
    redisReply *rep = command(r, 2, argv, lens);
    if (rep == NULL)
        return AG_ERR_UNAVAILABLE;
    freeReplyObject(rep);
    barrier(r);
    return AG_OK;
}

enum ag_rc ag_redis_lock(struct ag_redis *r, const char *key, const char *token, int64_t ttl_ms,
                         bool *acquired)
{
    char ttl[24];
    snprintf(ttl, sizeof(ttl), "%lld", (long long)(ttl_ms > 0 ? ttl_ms : 1));
    const char *argv[6] = {"SET", key, token, "NX", "PX", ttl};
    size_t lens[6] = {3, strlen(key), strlen(token), 2, 2, strlen(ttl)};
    redisReply *rep = command(r, 6, argv, lens);

    *acquired = false;
    if (rep == NULL)
        return AG_ERR_UNAVAILABLE;
    *acquired = rep->type == REDIS_REPLY_STATUS;
    freeReplyObject(rep);
    return AG_OK;
}

enum ag_rc ag_redis_unlock(struct ag_redis *r, const char *key, const char *token)
{
    static const char script[] =
        "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end";
    const char *argv[5] = {"EVAL", script, "1", key, token};
    size_t lens[5] = {4, sizeof(script) - 1, 1, strlen(key), strlen(token)};
    redisReply *rep = command(r, 5, argv, lens);
    if (rep == NULL)
        return AG_ERR_UNAVAILABLE;
    freeReplyObject(rep);
    return AG_OK;
}

enum ag_rc ag_redis_ping(struct ag_redis *r)
{
    const char *argv[1] = {"PING"};
    size_t lens[1] = {4};
    redisReply *rep = command(r, 1, argv, lens);
    if (rep == NULL)
        return AG_ERR_UNAVAILABLE;
    freeReplyObject(rep);
    return AG_OK;
}

/* ------------------------------------------------------------------------------------------------
 * Client-side caching: the subscriber. */

#define SUB_PING_MS  300  /* how often it asks Redis for a sign of life */
#define SUB_FRESH_MS 1000 /* without one for this long, cached values are not used */

/* One message on the subscriber connection: an invalidation (keys, or nil for "everything"), or the
 * answer to a PING. */
static void sub_handle(struct ag_redis *r, redisReply *rep)
{
    atomic_store(&r->heard_ms, now_ms());
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 3 || rep->element[0]->type != REDIS_REPLY_STRING ||
        strcmp(rep->element[0]->str, "message") != 0)
        return;
    redisReply *keys = rep->element[2];
    if (keys->type == REDIS_REPLY_ARRAY) {
        for (size_t i = 0; i < keys->elements; i++)
            if (keys->element[i]->type == REDIS_REPLY_STRING)
                r->on_invalidate(r->cls, keys->element[i]->str, keys->element[i]->len);
    } else if (keys->type == REDIS_REPLY_STRING) {
        r->on_invalidate(r->cls, keys->str, keys->len);
    } else {
        r->on_reset(r->cls); /* nil: FLUSHALL / FLUSHDB */
    }
}

/* The reply to a command when it is of type `want`, else NULL (a reply of another type is freed). */
static redisReply *run_want(redisContext *ctx, int argc, const char **argv, const size_t *lens, int want)
{
    redisReply *rep = run(ctx, argc, argv, lens);
    if (rep != NULL && rep->type != want) {
        freeReplyObject(rep);
        rep = NULL;
    }
    return rep;
}

/* Connect, learn our id, subscribe; NULL on failure. */
static redisContext *sub_dial(struct ag_redis *r, long long *id)
{
    static const char *cid[2] = {"CLIENT", "ID"}, *sub[2] = {"SUBSCRIBE", "__redis__:invalidate"};
    static const size_t cidl[2] = {6, 2}, subl[2] = {9, 20};
    redisContext *ctx = dial(r);
    redisReply *rep;

    if (ctx == NULL)
        return NULL;
    rep = run_want(ctx, 2, cid, cidl, REDIS_REPLY_INTEGER);
    if (rep == NULL)
        goto fail;
    *id = rep->integer;
    freeReplyObject(rep);
    rep = run_want(ctx, 2, sub, subl, REDIS_REPLY_ARRAY);
    if (rep == NULL)
        goto fail;
    freeReplyObject(rep);
    return ctx;
fail:
    redisFree(ctx);
    return NULL;
}

static void *sub_main(void *arg)
{
    struct ag_redis *r = arg;

    while (!atomic_load(&r->sub_stop)) {
        long long id = 0;
        redisContext *ctx = sub_dial(r, &id);
        if (ctx == NULL) {
            for (int i = 0; i < 10 && !atomic_load(&r->sub_stop); i++) /* a second between tries */
                nanosleep(&(struct timespec){0, 100 * 1000000L}, NULL);
            continue;
        }
        atomic_store(&r->heard_ms, now_ms());
        atomic_store(&r->sub_fd, ctx->fd);
        atomic_store(&r->track_id, id); /* worker connections now turn tracking on, redirected here */
        int64_t last_ping = now_ms();
        bool ok = true;
        while (ok && !atomic_load(&r->sub_stop)) {
            struct pollfd p = {ctx->fd, POLLIN, 0};
            int pr = poll(&p, 1, 100);
            if (pr < 0)
                continue;
            if (pr > 0) {
                void *rep = NULL;
                atomic_store(&r->sub_busy, 1); /* before the bytes leave the socket: see cache_usable */
                if (redisBufferRead(ctx) != REDIS_OK)
                    ok = false;
                while (ok && redisGetReplyFromReader(ctx, &rep) == REDIS_OK && rep != NULL) {
                    sub_handle(r, rep);
                    freeReplyObject(rep);
                    rep = NULL;
                }
                if (ctx->err)
                    ok = false;
                atomic_store(&r->sub_busy, 0);
            }
            if (ok && now_ms() - last_ping >= SUB_PING_MS) {
                int done = 0;
                ok = redisAppendCommand(ctx, "PING") == REDIS_OK;
                while (ok && !done)
                    ok = redisBufferWrite(ctx, &done) == REDIS_OK;
                last_ping = now_ms();
            }
        }
        /* lost (or stopping): nothing cached may be trusted any more */
        atomic_store(&r->track_id, 0);
        atomic_store(&r->sub_fd, -1);
        r->on_reset(r->cls);
        if (!atomic_load(&r->sub_stop))
            ag_log_warn("redis: the invalidation channel was lost (%s); the session cache is emptied",
                        ctx->errstr[0] ? ctx->errstr : "closed");
        redisFree(ctx);
    }
    return NULL;
}

enum ag_rc ag_redis_tracking_start(struct ag_redis *r,
                                   void (*on_invalidate)(void *cls, const char *key, size_t len),
                                   void (*on_reset)(void *cls), void *cls)
{
    r->on_invalidate = on_invalidate;
    r->on_reset = on_reset;
    r->cls = cls;
    atomic_store(&r->sub_fd, -1);
    if (pthread_create(&r->sub_thread, NULL, sub_main, r) != 0)
        return AG_ERR_INTERNAL;
    r->tracking = true;
    return AG_OK;
}

bool ag_redis_cache_usable(struct ag_redis *r)
{
    int fd;

    if (!r->tracking || atomic_load(&r->tracking_refused) || atomic_load(&r->track_id) == 0 ||
        now_ms() - atomic_load(&r->heard_ms) > SUB_FRESH_MS)
        return false;
    /* No invalidation may be waiting: first unread bytes on the socket, then bytes read but not yet applied
     * (the subscriber marks itself busy before it reads). */
    fd = atomic_load(&r->sub_fd);
    struct pollfd p = {fd, POLLIN, 0};
    if (fd < 0 || poll(&p, 1, 0) != 0)
        return false;
    return atomic_load(&r->sub_busy) == 0;
}
