/* SPDX-License-Identifier: Apache-2.0
 * Event loops (net/loop.h): epoll, a mailbox woken through an eventfd, a sorted timer list, and a curl
 * multi handle whose sockets and timeout live in the same epoll set. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "net/loop.h"

#define MAX_EVENTS 256

struct ag_loop {
    pthread_t thread;
    bool started;
    int epfd;
    struct ag_loop_io wake; /* the mailbox's eventfd */
    CURLM *multi;
    int64_t curl_at; /* when libcurl wants its timeout action; -1: never */
    struct ag_loop_timer *timers_head, *timers_tail;
    struct later {
        void (*fn)(void *);
        void *arg;
    } * later; /* run after the current batch of events (callbacks may free each other's io) */
    size_t nlater, caplater;
    char *scratch;
    void *slots[AG_LOOP_SLOTS];
    bool stop; /* the loop's own: leave after this batch */
    struct MHD_Daemon *mhd;
    struct ag_loop_io mhd_io; /* the daemon's epoll fd */
    bool mhd_ready, kicked, self_posted;

    pthread_mutex_t mu; /* the mailbox */
    struct ag_loop_task *head, *tail;
    bool closed; /* no more posts */
    void (*on_stop)(struct ag_loop *);
};

struct ag_loops {
    struct ag_loop *v;
    unsigned n;
    atomic_uint next;
    bool stopped;
};

/* A socket libcurl asked us to watch. */
struct curl_sock {
    struct ag_loop_io io;
    struct ag_loop *loop;
};

static _Thread_local struct ag_loop *current;

struct ag_loop *ag_loop_current(void)
{
    return current;
}

struct MHD_Daemon *ag_loop_mhd(struct ag_loop *loop)
{
    return loop->mhd;
}

void ag_loop_kick(struct ag_loop *loop)
{
    loop->kicked = true;
}

unsigned ag_loops_count(const struct ag_loops *ls)
{
    return ls->n;
}

struct ag_loop *ag_loops_at(struct ag_loops *ls, unsigned i)
{
    return &ls->v[i];
}

static void on_mhd_io(struct ag_loop *loop, struct ag_loop_io *io, uint32_t events)
{
    AG_UNUSED(io);
    AG_UNUSED(events);
    loop->mhd_ready = true;
}

int64_t ag_loop_now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

char *ag_loop_scratch(struct ag_loop *loop)
{
    return loop->scratch;
}

void **ag_loop_slot(struct ag_loop *loop, unsigned slot)
{
    return &loop->slots[slot < AG_LOOP_SLOTS ? slot : 0];
}

void ag_loop_later(struct ag_loop *loop, void (*fn)(void *), void *arg)
{
    if (loop->nlater == loop->caplater) {
        size_t cap = loop->caplater ? loop->caplater * 2 : 64;
        struct later *l = realloc(loop->later, cap * sizeof(*l));
        if (l == NULL) {
            /* cannot defer: leaking is safer than a use after free */
            ag_log_error("out of memory: a socket record is leaked");
            return;
        }
        loop->later = l;
        loop->caplater = cap;
    }
    loop->later[loop->nlater++] = (struct later){fn, arg};
}

static void run_later(struct ag_loop *loop)
{
    /* fn may defer more: those run in this pass too */
    for (size_t i = 0; i < loop->nlater; i++)
        loop->later[i].fn(loop->later[i].arg);
    loop->nlater = 0;
}

enum ag_rc ag_loop_watch(struct ag_loop *loop, struct ag_loop_io *io, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.ptr = io};
    int op = io->events == 0 ? EPOLL_CTL_ADD : events == 0 ? EPOLL_CTL_DEL : EPOLL_CTL_MOD;

    if (io->events == events)
        return AG_OK;
    if (epoll_ctl(loop->epfd, op, io->fd, &ev) != 0 &&
        !(op == EPOLL_CTL_DEL && (errno == EBADF || errno == ENOENT)))
        return AG_ERR_IO;
    io->events = events;
    return AG_OK;
}

/* ------------------------------------------------------------------------------------------------
 * Timers: a list sorted by deadline. Most users arm with the same duration, so an insert walks from
 * the tail and stops at once. */

void ag_loop_timer_disarm(struct ag_loop *loop, struct ag_loop_timer *t)
{
    if (t->at == 0)
        return;
    if (t->prev != NULL)
        t->prev->next = t->next;
    else
        loop->timers_head = t->next;
    if (t->next != NULL)
        t->next->prev = t->prev;
    else
        loop->timers_tail = t->prev;
    t->prev = t->next = NULL;
    t->at = 0;
}

void ag_loop_timer_arm(struct ag_loop *loop, struct ag_loop_timer *t, int64_t ms)
{
    struct ag_loop_timer *p;

    ag_loop_timer_disarm(loop, t);
    t->at = ag_loop_now_ms() + (ms > 0 ? ms : 0);
    if (t->at == 0)
        t->at = 1;
    for (p = loop->timers_tail; p != NULL && p->at > t->at; p = p->prev)
        ;
    t->prev = p;
    t->next = p != NULL ? p->next : loop->timers_head;
    if (t->next != NULL)
        t->next->prev = t;
    else
        loop->timers_tail = t;
    if (p != NULL)
        p->next = t;
    else
        loop->timers_head = t;
}

static void run_timers(struct ag_loop *loop, int64_t now)
{
    struct ag_loop_timer *t;

    while ((t = loop->timers_head) != NULL && t->at <= now) {
        ag_loop_timer_disarm(loop, t);
        t->fn(loop, t);
    }
}

/* ------------------------------------------------------------------------------------------------
 * libcurl's side. */

static void curl_done(struct ag_loop *loop)
{
    CURLMsg *m;
    int left;

    while ((m = curl_multi_info_read(loop->multi, &left)) != NULL) {
        struct ag_loop_xfer *x = NULL;
        CURLcode result = m->data.result;
        CURL *h = m->easy_handle;
        if (m->msg != CURLMSG_DONE)
            continue;
        curl_easy_getinfo(h, CURLINFO_PRIVATE, (char **)&x);
        if (x != NULL && x->take_socket) {
            curl_socket_t fd = CURL_SOCKET_BAD;
            x->sock = -1;
            if (result == CURLE_OK && curl_easy_getinfo(h, CURLINFO_ACTIVESOCKET, &fd) == CURLE_OK &&
                fd != CURL_SOCKET_BAD)
                x->sock = fcntl(fd, F_DUPFD_CLOEXEC, 0);
        }
        curl_multi_remove_handle(loop->multi, h);
        if (x != NULL)
            x->done(loop, x, result);
    }
}

static void on_curl_io(struct ag_loop *loop, struct ag_loop_io *io, uint32_t events)
{
    int running, flags = 0;

    if (events & (EPOLLIN | EPOLLHUP))
        flags |= CURL_CSELECT_IN;
    if (events & EPOLLOUT)
        flags |= CURL_CSELECT_OUT;
    if (events & EPOLLERR)
        flags |= CURL_CSELECT_ERR;
    curl_multi_socket_action(loop->multi, io->fd, flags, &running);
    curl_done(loop);
}

static int on_curl_socket(CURL *h, curl_socket_t s, int what, void *cls, void *socketp)
{
    struct ag_loop *loop = cls;
    struct curl_sock *cs = socketp;
    uint32_t events = 0;

    AG_UNUSED(h);
    if (what == CURL_POLL_REMOVE) {
        if (cs != NULL) {
            ag_loop_watch(loop, &cs->io, 0);
            cs->io.fd = -1;
            curl_multi_assign(loop->multi, s, NULL);
            ag_loop_later(loop, free, cs);
        }
        return 0;
    }
    if (cs == NULL) {
        cs = calloc(1, sizeof(*cs));
        if (cs == NULL)
            return -1;
        cs->io.fd = s;
        cs->io.fn = on_curl_io;
        cs->loop = loop;
        curl_multi_assign(loop->multi, s, cs);
    }
    if (what == CURL_POLL_IN || what == CURL_POLL_INOUT)
        events |= EPOLLIN;
    if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT)
        events |= EPOLLOUT;
    return ag_loop_watch(loop, &cs->io, events) == AG_OK ? 0 : -1;
}

static int on_curl_timer(CURLM *multi, long ms, void *cls)
{
    struct ag_loop *loop = cls;

    AG_UNUSED(multi);
    loop->curl_at = ms < 0 ? -1 : ag_loop_now_ms() + ms;
    return 0;
}

enum ag_rc ag_loop_add(struct ag_loop *loop, struct ag_loop_xfer *x)
{
    curl_easy_setopt(x->h, CURLOPT_PRIVATE, x);
    return curl_multi_add_handle(loop->multi, x->h) == CURLM_OK ? AG_OK : AG_ERR_INTERNAL;
}

void ag_loop_remove(struct ag_loop *loop, struct ag_loop_xfer *x)
{
    if (x->h != NULL)
        curl_multi_remove_handle(loop->multi, x->h); /* a handle not in it is refused: harmless */
}

/* ------------------------------------------------------------------------------------------------
 * The mailbox. */

enum ag_loop_post_rc ag_loop_post(struct ag_loop *loop, struct ag_loop_task *task)
{
    bool wake;
    uint64_t one = 1;

    pthread_mutex_lock(&loop->mu);
    if (loop->closed) {
        pthread_mutex_unlock(&loop->mu);
        return AG_LOOP_CLOSED;
    }
    if (task->queued) {
        pthread_mutex_unlock(&loop->mu);
        return AG_LOOP_ALREADY;
    }
    task->queued = true;
    task->next = NULL;
    wake = loop->head == NULL && loop != current;
    if (loop == current)
        loop->self_posted = true; /* run after the current step: no wake-up needed */
    if (loop->tail != NULL)
        loop->tail->next = task;
    else
        loop->head = task;
    loop->tail = task;
    pthread_mutex_unlock(&loop->mu);
    if (wake && write(loop->wake.fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
        ag_log_error("event loop: cannot wake (%s)", strerror(errno));
    return AG_LOOP_QUEUED;
}

static void run_tasks(struct ag_loop *loop)
{
    struct ag_loop_task *t;
    bool closing;

    pthread_mutex_lock(&loop->mu);
    t = loop->head;
    loop->head = loop->tail = NULL;
    closing = loop->closed;
    pthread_mutex_unlock(&loop->mu);
    while (t != NULL) {
        struct ag_loop_task *next = t->next;
        pthread_mutex_lock(&loop->mu);
        t->queued = false; /* before fn: fn may post it again */
        pthread_mutex_unlock(&loop->mu);
        t->fn(loop, t);
        t = next;
    }
    if (closing) {
        /* every task posted before the close has run: now the owner's stop, then leave */
        if (loop->on_stop != NULL)
            loop->on_stop(loop);
        loop->stop = true;
    }
}

static void on_wake(struct ag_loop *loop, struct ag_loop_io *io, uint32_t events)
{
    uint64_t n;

    AG_UNUSED(events);
    if (read(io->fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
        ag_log_error("event loop: cannot read its wake-up (%s)", strerror(errno));
    run_tasks(loop);
}

/* ------------------------------------------------------------------------------------------------
 * The thread. */

static int wait_ms(struct ag_loop *loop, int64_t now)
{
    int64_t at = loop->curl_at;
    MHD_UNSIGNED_LONG_LONG mhd_ms;

    if (loop->self_posted || loop->kicked || loop->mhd_ready)
        return 0;
    if (loop->timers_head != NULL && (at < 0 || loop->timers_head->at < at))
        at = loop->timers_head->at;
    if (loop->mhd != NULL && MHD_get_timeout(loop->mhd, &mhd_ms) == MHD_YES) {
        int64_t m = now + (mhd_ms > 60000 ? 60000 : (int64_t)mhd_ms);
        if (at < 0 || m < at)
            at = m;
    }
    if (at < 0)
        return -1;
    return at <= now ? 0 : at - now > 60000 ? 60000 : (int)(at - now);
}

static void *run(void *cls)
{
    struct ag_loop *loop = cls;
    struct epoll_event ev[MAX_EVENTS];

    current = loop;
    while (!loop->stop) {
        int n = epoll_wait(loop->epfd, ev, MAX_EVENTS, wait_ms(loop, ag_loop_now_ms()));
        if (n < 0 && errno != EINTR) {
            ag_log_error("event loop: epoll_wait failed (%s)", strerror(errno));
            break;
        }
        for (int i = 0; i < n; i++) {
            struct ag_loop_io *io = ev[i].data.ptr;
            if (io->fd >= 0)
                io->fn(loop, io, ev[i].events);
        }
        int64_t now = ag_loop_now_ms();
        if (loop->curl_at >= 0 && loop->curl_at <= now) {
            int running;
            loop->curl_at = -1;
            curl_multi_socket_action(loop->multi, CURL_SOCKET_TIMEOUT, 0, &running);
            curl_done(loop);
        }
        run_timers(loop, now);
        /* the daemon: when its socket is ready, its timeout passed, or a connection was resumed; tasks it
         * posts (and the resumptions they cause) are handled before waiting again */
        if (loop->mhd != NULL && n == 0)
            loop->mhd_ready = true; /* its timeout, or work it left pending */
        while (!loop->stop && (loop->mhd_ready || loop->kicked || loop->self_posted)) {
            if (loop->mhd != NULL && (loop->mhd_ready || loop->kicked)) {
                loop->mhd_ready = loop->kicked = false;
                MHD_run(loop->mhd);
            }
            loop->kicked = loop->mhd == NULL ? false : loop->kicked;
            if (loop->self_posted) {
                loop->self_posted = false;
                run_tasks(loop);
            }
        }
        run_later(loop);
    }
    return NULL;
}

static void loop_fini(struct ag_loop *loop)
{
    if (loop->multi != NULL)
        curl_multi_cleanup(loop->multi);
    if (loop->epfd >= 0)
        close(loop->epfd);
    if (loop->wake.fd >= 0)
        close(loop->wake.fd);
    run_later(loop);
    free(loop->later);
    free(loop->scratch);
    pthread_mutex_destroy(&loop->mu);
}

static enum ag_rc loop_init(struct ag_loop *loop, const struct ag_loops_conf *conf)
{
    loop->epfd = -1;
    loop->wake.fd = -1;
    loop->curl_at = -1;
    pthread_mutex_init(&loop->mu, NULL);
    loop->epfd = epoll_create1(EPOLL_CLOEXEC);
    loop->wake.fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    loop->wake.fn = on_wake;
    loop->scratch = malloc(AG_LOOP_SCRATCH);
    loop->multi = curl_multi_init();
    if (loop->epfd < 0 || loop->wake.fd < 0 || loop->scratch == NULL || loop->multi == NULL ||
        ag_loop_watch(loop, &loop->wake, EPOLLIN) != AG_OK)
        return AG_ERR_INTERNAL;
    curl_multi_setopt(loop->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
    curl_multi_setopt(loop->multi, CURLMOPT_SOCKETDATA, loop);
    curl_multi_setopt(loop->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
    curl_multi_setopt(loop->multi, CURLMOPT_TIMERDATA, loop);
    if (conf->max_host_conns > 0)
        curl_multi_setopt(loop->multi, CURLMOPT_MAX_HOST_CONNECTIONS, conf->max_host_conns);
    if (conf->max_conns > 0)
        curl_multi_setopt(loop->multi, CURLMOPT_MAXCONNECTS, conf->max_conns);
    return AG_OK;
}

static enum ag_rc attach_mhd(struct ag_loop *loop, struct MHD_Daemon *d)
{
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(d, MHD_DAEMON_INFO_EPOLL_FD);

    if (di == NULL || di->epoll_fd < 0)
        return AG_ERR_INTERNAL;
    loop->mhd = d;
    loop->mhd_io.fd = di->epoll_fd;
    loop->mhd_io.fn = on_mhd_io;
    loop->mhd_ready = true; /* a first run: connections may be waiting already */
    return ag_loop_watch(loop, &loop->mhd_io, EPOLLIN);
}

enum ag_rc ag_loops_start(const struct ag_loops_conf *conf, struct ag_loops **out)
{
    struct ag_loops *ls = calloc(1, sizeof(*ls));
    unsigned n = conf->count > 0 ? conf->count : 1;

    *out = NULL;
    if (ls == NULL || (ls->v = calloc(n, sizeof(*ls->v))) == NULL) {
        free(ls);
        return AG_ERR_NOMEM;
    }
    ls->n = n;
    for (unsigned i = 0; i < n; i++) {
        struct ag_loop *loop = &ls->v[i];
        if (loop_init(loop, conf) != AG_OK ||
            (conf->mhd != NULL && attach_mhd(loop, conf->mhd[i]) != AG_OK) ||
            pthread_create(&loop->thread, NULL, run, loop) != 0) {
            ls->n = i + 1; /* this one is initialised: free it too */
            ag_loops_free(ls);
            return AG_ERR_INTERNAL;
        }
        loop->started = true;
    }
    *out = ls;
    return AG_OK;
}

struct ag_loop *ag_loops_pick(struct ag_loops *ls)
{
    return &ls->v[atomic_fetch_add(&ls->next, 1) % ls->n];
}

/* A broadcast's task: one per loop and call, freed once it has run. */
struct bcast {
    struct ag_loop_task task;
    void (*fn)(struct ag_loop *);
};

static void bcast_run(struct ag_loop *loop, struct ag_loop_task *task)
{
    struct bcast *b = (struct bcast *)task;
    b->fn(loop);
    free(b);
}

void ag_loops_broadcast(struct ag_loops *ls, void (*fn)(struct ag_loop *loop))
{
    for (unsigned i = 0; ls != NULL && i < ls->n; i++) {
        struct bcast *b = calloc(1, sizeof(*b));
        if (b == NULL) {
            ag_log_error("out of memory: an event loop misses a broadcast");
            continue;
        }
        b->fn = fn;
        b->task.fn = bcast_run;
        if (ag_loop_post(&ls->v[i], &b->task) != AG_LOOP_QUEUED)
            free(b);
    }
}

void ag_loops_stop(struct ag_loops *ls, void (*stop)(struct ag_loop *loop))
{
    uint64_t one = 1;

    if (ls == NULL || ls->stopped)
        return;
    ls->stopped = true;
    for (unsigned i = 0; i < ls->n; i++) {
        struct ag_loop *loop = &ls->v[i];
        if (!loop->started)
            continue;
        pthread_mutex_lock(&loop->mu);
        loop->closed = true;
        loop->on_stop = stop;
        pthread_mutex_unlock(&loop->mu);
        if (write(loop->wake.fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
            ag_log_error("event loop: cannot wake it to stop (%s)", strerror(errno));
    }
    for (unsigned i = 0; i < ls->n; i++)
        if (ls->v[i].started)
            pthread_join(ls->v[i].thread, NULL);
}

void ag_loops_free(struct ag_loops *ls)
{
    if (ls == NULL)
        return;
    ag_loops_stop(ls, NULL);
    for (unsigned i = 0; i < ls->n; i++)
        loop_fini(&ls->v[i]);
    free(ls->v);
    free(ls);
}
