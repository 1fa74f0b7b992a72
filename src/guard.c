/* SPDX-License-Identifier: Apache-2.0
 * The connection guard (guard.h): a registry of open connections, each with the time it started
 * waiting for a request head and its deadline, a thread that closes those past their deadline, and
 * eviction when the server is full.
 *
 * Cost on the request path: three atomic stores per request, no lock. The lock is taken when a
 * connection opens or closes, and by the thread a few times a second; eviction scans the registry,
 * which only happens while more than --max-connections are open. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>

#include "guard.h"
#include "log.h"

struct ag_guard_conn {
    struct ag_guard_conn *prev, *next;
    int fd;
    atomic_bool shut;         /* the guard has shut it down: it only waits for libmicrohttpd now */
    _Atomic int64_t deadline; /* monotonic ms by which its head must be complete; 0: not waiting */
    _Atomic int64_t since;    /* when it started waiting for a head */
    int64_t header_ms, idle_ms;
};

struct ag_guard {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct ag_guard_conn all; /* sentinel of the registry, oldest connection first */
    size_t open, shut, max;
    int64_t header_ms, idle_ms, tick_ms;
    uint64_t expired, evicted;
    pthread_t thread;
    bool running, stop;
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Close c's connection (g->mu held, so its socket is still libmicrohttpd's and open). */
static void shut(struct ag_guard *g, struct ag_guard_conn *c)
{
    shutdown(c->fd, SHUT_RDWR);
    atomic_store(&c->shut, true);
    atomic_store(&c->deadline, 0);
    g->shut++;
}

static void *reaper(void *cls)
{
    struct ag_guard *g = cls;
    struct timespec wake;

    pthread_mutex_lock(&g->mu);
    while (!g->stop) {
        int64_t now = now_ms();
        for (struct ag_guard_conn *c = g->all.next; c != &g->all; c = c->next) {
            int64_t d = atomic_load(&c->deadline);
            if (d != 0 && d <= now && !atomic_load(&c->shut)) {
                shut(g, c);
                g->expired++;
            }
        }
        clock_gettime(CLOCK_MONOTONIC, &wake);
        wake.tv_sec += g->tick_ms / 1000;
        wake.tv_nsec += (g->tick_ms % 1000) * 1000000L;
        if (wake.tv_nsec >= 1000000000L) {
            wake.tv_sec++;
            wake.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&g->cv, &g->mu, &wake);
    }
    pthread_mutex_unlock(&g->mu);
    return NULL;
}

enum ag_rc ag_guard_new(size_t max_conns, int64_t header_ms, int64_t idle_ms, struct ag_guard **out)
{
    struct ag_guard *g = calloc(1, sizeof(*g));
    pthread_condattr_t ca;

    *out = NULL;
    if (g == NULL)
        return AG_ERR_NOMEM;
    g->all.next = g->all.prev = &g->all;
    g->max = max_conns;
    g->header_ms = header_ms;
    g->idle_ms = idle_ms;
    /* a deadline is kept to within a quarter of the timeout, checked at most every second */
    g->tick_ms = header_ms / 4 < 50 ? 50 : header_ms / 4 > 1000 ? 1000 : header_ms / 4;
    pthread_mutex_init(&g->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&g->cv, &ca);
    pthread_condattr_destroy(&ca);
    if (pthread_create(&g->thread, NULL, reaper, g) != 0) {
        ag_guard_free(g);
        return AG_ERR_INTERNAL;
    }
    g->running = true;
    *out = g;
    return AG_OK;
}

void ag_guard_free(struct ag_guard *g)
{
    if (g == NULL)
        return;
    if (g->running) {
        pthread_mutex_lock(&g->mu);
        g->stop = true;
        pthread_cond_signal(&g->cv);
        pthread_mutex_unlock(&g->mu);
        pthread_join(g->thread, NULL);
    }
    while (g->all.next != &g->all) { /* only if libmicrohttpd did not report every close */
        struct ag_guard_conn *c = g->all.next;
        g->all.next = c->next;
        free(c);
    }
    pthread_cond_destroy(&g->cv);
    pthread_mutex_destroy(&g->mu);
    free(g);
}

struct ag_guard_conn *ag_guard_opened(struct ag_guard *g, int fd)
{
    struct ag_guard_conn *c = calloc(1, sizeof(*c)), *victim = NULL;
    int64_t now = now_ms();

    if (c == NULL) {
        shutdown(fd, SHUT_RDWR);
        return NULL;
    }
    c->fd = fd;
    atomic_init(&c->shut, false);
    c->header_ms = g->header_ms;
    c->idle_ms = g->idle_ms;
    atomic_init(&c->since, now);
    atomic_init(&c->deadline, now + g->header_ms);
    pthread_mutex_lock(&g->mu);
    c->prev = g->all.prev;
    c->next = &g->all;
    g->all.prev->next = c;
    g->all.prev = c;
    g->open++;
    if (g->open - g->shut > g->max) {
        /* full: the connection that has waited longest for a head goes, else this new one */
        int64_t oldest = INT64_MAX;
        for (struct ag_guard_conn *o = g->all.next; o != c; o = o->next) {
            int64_t since = atomic_load(&o->since);
            if (!atomic_load(&o->shut) && atomic_load(&o->deadline) != 0 && since < oldest) {
                oldest = since;
                victim = o;
            }
        }
        shut(g, victim != NULL ? victim : c);
        g->evicted++;
    }
    bool refused = victim == NULL && atomic_load(&c->shut);
    pthread_mutex_unlock(&g->mu);
    if (refused)
        ag_log_warn(
            "%zu connections open (max_connections) and none waiting for a request: a new one refused",
            g->max);
    return c;
}

void ag_guard_request_line(struct ag_guard_conn *c)
{
    int64_t d, limit;

    if (c == NULL)
        return;
    d = atomic_load(&c->deadline);
    limit = now_ms() + c->header_ms;
    if (d != 0 && limit < d)
        atomic_store(&c->deadline, limit);
}

void ag_guard_head_done(struct ag_guard_conn *c)
{
    if (c != NULL)
        atomic_store(&c->deadline, 0);
}

void ag_guard_request_done(struct ag_guard_conn *c)
{
    int64_t now;

    if (c == NULL || atomic_load(&c->shut))
        return;
    now = now_ms();
    atomic_store(&c->since, now);
    atomic_store(&c->deadline, now + c->idle_ms + c->header_ms);
}

void ag_guard_closed(struct ag_guard *g, struct ag_guard_conn *c)
{
    if (c == NULL)
        return;
    pthread_mutex_lock(&g->mu);
    c->prev->next = c->next;
    c->next->prev = c->prev;
    g->open--;
    if (atomic_load(&c->shut))
        g->shut--;
    pthread_mutex_unlock(&g->mu);
    free(c);
}

void ag_guard_counts(struct ag_guard *g, uint64_t *expired, uint64_t *evicted)
{
    pthread_mutex_lock(&g->mu);
    *expired = g->expired;
    *evicted = g->evicted;
    pthread_mutex_unlock(&g->mu);
}
