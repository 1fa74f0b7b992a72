/* SPDX-License-Identifier: Apache-2.0
 * Unit tests for src/net/loop.c: tasks run on the loop's thread in posting order, once however often they
 * are posted while queued, and never after the stop (whose callback comes after every earlier task);
 * broadcasts; timers in deadline order and never early; watched sockets; the "later" queue that lets a
 * callback free another io of the same batch; curl transfers (a whole request to a small server run here,
 * and connect-only ones whose socket is handed over); round robin; scratch buffers and slots.
 * Waits are on a condition variable with a deadline, never fixed sleeps. */
#include <arpa/inet.h>
#include <check.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "net/loop.h"

#define WAIT_MS 3000 /* what a wait gives up after: only reached when a test fails */

/* One lock and condition for everything the loops record and the test thread waits for. */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;

static void lock(void)
{
    pthread_mutex_lock(&mu);
}

static void unlock_signal(void)
{
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

/* With mu held: wait until *v >= want (true) or ms have passed (false). */
static bool wait_locked_ms(const int *v, int want, long ms)
{
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += ms / 1000;
    dl.tv_nsec += (ms % 1000) * 1000000;
    if (dl.tv_nsec >= 1000000000) {
        dl.tv_sec++;
        dl.tv_nsec -= 1000000000;
    }
    while (*v < want)
        if (pthread_cond_timedwait(&cv, &mu, &dl) == ETIMEDOUT)
            break;
    return *v >= want;
}

static bool wait_locked(const int *v, int want)
{
    return wait_locked_ms(v, want, WAIT_MS);
}

static bool wait_for_ms(const int *v, int want, long ms)
{
    lock();
    bool ok = wait_locked_ms(v, want, ms);
    pthread_mutex_unlock(&mu);
    return ok;
}

static bool wait_for(const int *v, int want)
{
    return wait_for_ms(v, want, WAIT_MS);
}

/* Run fn(loop, arg) on the loop's thread and wait until it has run. */
struct call {
    struct ag_loop_task task;
    void (*fn)(struct ag_loop *loop, void *arg);
    void *arg;
    int done;
};

static void call_run(struct ag_loop *loop, struct ag_loop_task *task)
{
    struct call *c = (struct call *)task;
    c->fn(loop, c->arg);
    lock();
    c->done = 1;
    unlock_signal();
}

static void run_on(struct ag_loop *loop, void (*fn)(struct ag_loop *loop, void *arg), void *arg)
{
    struct call c = {.task.fn = call_run, .fn = fn, .arg = arg};
    ck_assert_int_eq(ag_loop_post(loop, &c.task), AG_LOOP_QUEUED);
    ck_assert_msg(wait_for(&c.done, 1), "a task posted to the loop did not run");
}

static void nop(struct ag_loop *loop, void *arg)
{
    AG_UNUSED(loop);
    AG_UNUSED(arg);
}

/* A round trip through the loop: whatever it was to do in the batch that ran this is done. */
static void sync_loop(struct ag_loop *loop)
{
    run_on(loop, nop, NULL);
}

static void get_thread(struct ag_loop *loop, void *arg)
{
    AG_UNUSED(loop);
    *(pthread_t *)arg = pthread_self();
}

static pthread_t thread_of(struct ag_loop *loop)
{
    pthread_t t;
    run_on(loop, get_thread, &t);
    ck_assert(!pthread_equal(t, pthread_self()));
    return t;
}

static struct ag_loops *start(unsigned count)
{
    struct ag_loops_conf conf = {.count = count};
    struct ag_loops *ls = NULL;
    ck_assert_int_eq(ag_loops_start(&conf, &ls), AG_OK);
    ck_assert_ptr_nonnull(ls);
    return ls;
}

/* ------------------------------------------------------------------------------------------------
 * Tasks. */

/* A task that records where and when it ran. */
struct rec {
    struct ag_loop_task task;
    int id;
};

#define MAXREC 64
static struct {
    int id;
    pthread_t thread;
    struct ag_loop *loop;
} recs[MAXREC];
static int nrec;

static void rec_fn(struct ag_loop *loop, struct ag_loop_task *task)
{
    struct rec *r = (struct rec *)task;
    lock();
    if (nrec < MAXREC) {
        recs[nrec].id = r->id;
        recs[nrec].thread = pthread_self();
        recs[nrec].loop = loop;
    }
    nrec++;
    unlock_signal();
}

/* A task that holds its loop until the gate opens: what is posted meanwhile stays queued. */
static int blocked, gate;

static void block_fn(struct ag_loop *loop, struct ag_loop_task *task)
{
    AG_UNUSED(loop);
    AG_UNUSED(task);
    lock();
    blocked++;
    pthread_cond_broadcast(&cv);
    wait_locked(&gate, 1);
    pthread_mutex_unlock(&mu);
}

static void open_gate(void)
{
    lock();
    gate = 1;
    unlock_signal();
}

START_TEST(tasks_run_in_order_on_loop_thread)
{
    struct ag_loops *ls = start(1);
    struct ag_loop *loop = ag_loops_pick(ls);
    pthread_t lt = thread_of(loop);
    static struct rec r[8];
    struct ag_loop_task blocker = {.fn = block_fn};

    /* some posted to an idle loop, the rest while it is busy (they run in one batch) */
    for (int i = 0; i < 3; i++) {
        r[i] = (struct rec){.task.fn = rec_fn, .id = i};
        ck_assert_int_eq(ag_loop_post(loop, &r[i].task), AG_LOOP_QUEUED);
    }
    ck_assert_int_eq(ag_loop_post(loop, &blocker), AG_LOOP_QUEUED);
    ck_assert(wait_for(&blocked, 1));
    for (int i = 3; i < 8; i++) {
        r[i] = (struct rec){.task.fn = rec_fn, .id = i};
        ck_assert_int_eq(ag_loop_post(loop, &r[i].task), AG_LOOP_QUEUED);
    }
    open_gate();
    ck_assert(wait_for(&nrec, 8));
    sync_loop(loop);
    lock();
    ck_assert_int_eq(nrec, 8);
    for (int i = 0; i < 8; i++) {
        ck_assert_msg(recs[i].id == i, "task %d ran in place %d", recs[i].id, i);
        ck_assert(pthread_equal(recs[i].thread, lt));
        ck_assert_ptr_eq(recs[i].loop, loop);
    }
    pthread_mutex_unlock(&mu);
    ag_loops_free(ls);
}
END_TEST

/* A task that posts itself again from its fn, twice. */
static int reposts;
static enum ag_loop_post_rc repost_rc[3];

static void repost_fn(struct ag_loop *loop, struct ag_loop_task *task)
{
    enum ag_loop_post_rc rc = AG_LOOP_CLOSED;
    lock();
    int n = ++reposts;
    pthread_mutex_unlock(&mu);
    if (n < 3)
        rc = ag_loop_post(loop, task);
    lock();
    repost_rc[n - 1] = rc;
    unlock_signal();
}

START_TEST(post_while_queued_runs_once)
{
    struct ag_loops *ls = start(1);
    struct ag_loop *loop = ag_loops_pick(ls);
    static struct rec t = {.task.fn = rec_fn, .id = 7};
    struct ag_loop_task blocker = {.fn = block_fn};
    static struct ag_loop_task self = {.fn = repost_fn};

    ck_assert_int_eq(ag_loop_post(loop, &blocker), AG_LOOP_QUEUED);
    ck_assert(wait_for(&blocked, 1));
    ck_assert_int_eq(ag_loop_post(loop, &t.task), AG_LOOP_QUEUED);
    ck_assert_int_eq(ag_loop_post(loop, &t.task), AG_LOOP_ALREADY);
    ck_assert_int_eq(ag_loop_post(loop, &t.task), AG_LOOP_ALREADY);
    open_gate();
    ck_assert(wait_for(&nrec, 1));
    sync_loop(loop);
    lock();
    ck_assert_int_eq(nrec, 1);
    pthread_mutex_unlock(&mu);

    /* once it has run it can be posted again */
    ck_assert_int_eq(ag_loop_post(loop, &t.task), AG_LOOP_QUEUED);
    ck_assert(wait_for(&nrec, 2));
    sync_loop(loop);
    lock();
    ck_assert_int_eq(nrec, 2);
    pthread_mutex_unlock(&mu);

    /* also from its own fn: it is no longer queued by then */
    ck_assert_int_eq(ag_loop_post(loop, &self), AG_LOOP_QUEUED);
    ck_assert(wait_for(&reposts, 3));
    sync_loop(loop);
    lock();
    ck_assert_int_eq(reposts, 3);
    ck_assert_int_eq(repost_rc[0], AG_LOOP_QUEUED);
    ck_assert_int_eq(repost_rc[1], AG_LOOP_QUEUED);
    pthread_mutex_unlock(&mu);
    ag_loops_free(ls);
}
END_TEST

/* The stop test: two loops, each held by a blocker with four tasks queued behind it while
 * ag_loops_stop closes the mailboxes; a helper thread opens the gate once both refuse posts. */
static struct ag_loop *stop_loops[2];
static struct rec probes[2];
static int probe_queued[2], probe_closed;

static struct {
    struct ag_loop *loop;
    pthread_t thread;
    int tasks_before; /* tasks that had run on that loop when its stop callback ran */
} stops[4];
static int nstops;

static void on_stop(struct ag_loop *loop)
{
    lock();
    int n = 0;
    for (int i = 0; i < nrec && i < MAXREC; i++)
        n += recs[i].loop == loop;
    if (nstops < 4) {
        stops[nstops].loop = loop;
        stops[nstops].thread = pthread_self();
        stops[nstops].tasks_before = n;
    }
    nstops++;
    unlock_signal();
}

static void *opener(void *arg)
{
    AG_UNUSED(arg);
    for (int i = 0; i < 2; i++) {
        for (int tries = 0; tries < 3000; tries++) {
            enum ag_loop_post_rc rc = ag_loop_post(stop_loops[i], &probes[i].task);
            lock();
            probe_queued[i] |= rc == AG_LOOP_QUEUED; /* then it is one more task before the stop */
            probe_closed += rc == AG_LOOP_CLOSED;
            pthread_mutex_unlock(&mu);
            if (rc == AG_LOOP_CLOSED)
                break;
            struct timespec ms = {0, 1000000};
            nanosleep(&ms, NULL);
        }
    }
    open_gate();
    return NULL;
}

START_TEST(stop_after_queued_tasks_then_closed)
{
    struct ag_loops *ls = start(2);
    pthread_t th[2], helper;
    struct ag_loop_task blockers[2] = {{.fn = block_fn}, {.fn = block_fn}};
    static struct rec t[2][4], late = {.task.fn = rec_fn, .id = 999};
    bool seen[2] = {false, false};

    for (int i = 0; i < 2; i++) {
        stop_loops[i] = ag_loops_pick(ls);
        th[i] = thread_of(stop_loops[i]);
    }
    ck_assert_ptr_ne(stop_loops[0], stop_loops[1]);
    ck_assert(!pthread_equal(th[0], th[1]));
    for (int i = 0; i < 2; i++)
        ck_assert_int_eq(ag_loop_post(stop_loops[i], &blockers[i]), AG_LOOP_QUEUED);
    ck_assert(wait_for(&blocked, 2));
    for (int i = 0; i < 2; i++) {
        for (int j = 0; j < 4; j++) {
            t[i][j] = (struct rec){.task.fn = rec_fn, .id = i * 10 + j};
            ck_assert_int_eq(ag_loop_post(stop_loops[i], &t[i][j].task), AG_LOOP_QUEUED);
        }
        probes[i] = (struct rec){.task.fn = rec_fn, .id = 100 + i};
    }
    ck_assert_int_eq(pthread_create(&helper, NULL, opener, NULL), 0);
    ag_loops_stop(ls, on_stop); /* returns once both threads are joined */
    ck_assert_int_eq(pthread_join(helper, NULL), 0);

    lock();
    ck_assert_int_eq(probe_closed, 2);
    ck_assert_int_eq(nstops, 2);
    for (int k = 0; k < 2; k++) {
        int i = stops[k].loop == stop_loops[0] ? 0 : stops[k].loop == stop_loops[1] ? 1 : -1;
        ck_assert_int_ge(i, 0);
        ck_assert_msg(!seen[i], "the stop callback ran twice on loop %d", i);
        seen[i] = true;
        ck_assert_msg(pthread_equal(stops[k].thread, th[i]), "loop %d's stop ran on another thread", i);
        ck_assert_int_eq(stops[k].tasks_before, 4 + probe_queued[i]);
    }
    /* each loop's tasks in posting order */
    for (int i = 0; i < 2; i++) {
        int next = 0;
        for (int k = 0; k < nrec; k++) {
            if (recs[k].loop != stop_loops[i])
                continue;
            ck_assert(pthread_equal(recs[k].thread, th[i]));
            ck_assert_int_eq(recs[k].id, next < 4 ? i * 10 + next : 100 + i);
            next++;
        }
        ck_assert_int_eq(next, 4 + probe_queued[i]);
    }
    int before = nrec;
    pthread_mutex_unlock(&mu);

    /* closed: refused, never run; a second stop does nothing */
    ck_assert_int_eq(ag_loop_post(stop_loops[0], &late.task), AG_LOOP_CLOSED);
    ck_assert_int_eq(ag_loop_post(stop_loops[1], &late.task), AG_LOOP_CLOSED);
    ag_loops_stop(ls, on_stop);
    ag_loops_stop(NULL, on_stop);
    ag_loops_free(ls);
    lock();
    ck_assert_int_eq(nrec, before);
    ck_assert_int_eq(nstops, 2);
    pthread_mutex_unlock(&mu);
}
END_TEST

static struct {
    struct ag_loop *loop;
    pthread_t thread;
} bc[8];
static int nbc;

static void bc_fn(struct ag_loop *loop)
{
    lock();
    if (nbc < 8) {
        bc[nbc].loop = loop;
        bc[nbc].thread = pthread_self();
    }
    nbc++;
    unlock_signal();
}

START_TEST(broadcast_once_per_loop)
{
    struct ag_loops *ls = start(3);
    struct ag_loop *l[3];
    pthread_t th[3];
    bool seen[3] = {false, false, false};

    for (int i = 0; i < 3; i++) {
        l[i] = ag_loops_pick(ls);
        th[i] = thread_of(l[i]);
    }
    for (int i = 0; i < 3; i++)
        for (int j = i + 1; j < 3; j++)
            ck_assert(!pthread_equal(th[i], th[j]));
    ag_loops_broadcast(ls, bc_fn);
    ck_assert(wait_for(&nbc, 3));
    ag_loops_stop(ls, NULL); /* anything still queued runs before this returns */
    lock();
    ck_assert_int_eq(nbc, 3);
    for (int k = 0; k < 3; k++) {
        int i = 0;
        while (i < 3 && l[i] != bc[k].loop)
            i++;
        ck_assert_int_lt(i, 3);
        ck_assert_msg(!seen[i], "loop %d got the broadcast twice", i);
        seen[i] = true;
        ck_assert_msg(pthread_equal(bc[k].thread, th[i]), "a broadcast ran off its loop's thread");
    }
    pthread_mutex_unlock(&mu);
    /* stopped: nobody gets it (and the tasks are freed: ASan) */
    ag_loops_broadcast(ls, bc_fn);
    ag_loops_broadcast(NULL, bc_fn);
    ag_loops_free(ls);
    ag_loops_free(NULL);
    ck_assert_int_eq(nbc, 3);
}
END_TEST

/* ------------------------------------------------------------------------------------------------
 * Timers. */

enum { T_A, T_B, T_C, T_D, T_F, T_G, T_H, T_I, NT };
static const char tnames[] = "ABCDFGHI";
static struct ttimer {
    struct ag_loop_timer t;
    int id;
    int fired;
    int64_t deadline; /* t.at once armed for the last time */
    int64_t at;       /* when it fired */
    pthread_t thread;
} tms[NT];
static int fired_order[NT], nfired;
static int64_t t0;

static void timer_fn(struct ag_loop *loop, struct ag_loop_timer *t)
{
    struct ttimer *tt = (struct ttimer *)t;
    int64_t now = ag_loop_now_ms();
    if (tt->id == T_B)
        ag_loop_timer_disarm(loop, &tms[T_H].t); /* taken out while timers are being run */
    lock();
    tt->fired++;
    tt->at = now;
    tt->thread = pthread_self();
    if (nfired < NT)
        fired_order[nfired] = tt->id;
    nfired++;
    unlock_signal();
}

static void arm_timers(struct ag_loop *loop, void *arg)
{
    AG_UNUSED(arg);
    for (int i = 0; i < NT; i++)
        tms[i] = (struct ttimer){.t.fn = timer_fn, .id = i};
    t0 = ag_loop_now_ms();
    ag_loop_timer_arm(loop, &tms[T_A].t, 30);
    ag_loop_timer_arm(loop, &tms[T_B].t, 10);
    ag_loop_timer_arm(loop, &tms[T_C].t, 20);
    ag_loop_timer_arm(loop, &tms[T_F].t, 1000);
    ag_loop_timer_arm(loop, &tms[T_F].t, 25); /* moved earlier */
    ag_loop_timer_arm(loop, &tms[T_G].t, 5);
    ag_loop_timer_arm(loop, &tms[T_G].t, 35); /* moved later */
    ag_loop_timer_arm(loop, &tms[T_D].t, 5);
    ag_loop_timer_disarm(loop, &tms[T_D].t);
    ag_loop_timer_disarm(loop, &tms[T_D].t);  /* twice: a no-op */
    ag_loop_timer_arm(loop, &tms[T_H].t, 22); /* B disarms it */
    ag_loop_timer_disarm(loop, &tms[T_I].t);  /* never armed: a no-op */
    for (int i = 0; i < NT; i++)
        tms[i].deadline = tms[i].t.at;
}

START_TEST(timers_in_deadline_order_never_early)
{
    /* in the order of their last arming, which breaks ties between equal deadlines */
    int order[] = {T_A, T_B, T_C, T_F, T_G};
    static const int64_t after[NT] = {[T_A] = 30, [T_B] = 10, [T_C] = 20, [T_F] = 25, [T_G] = 35};
    struct ag_loops *ls = start(1);
    struct ag_loop *loop = ag_loops_pick(ls);
    pthread_t lt = thread_of(loop);

    run_on(loop, arm_timers, NULL);
    ck_assert(wait_for(&nfired, 5));
    ag_loops_stop(ls, NULL); /* D and H were due before G: had they fired, it would show now */
    lock();
    ck_assert_int_eq(nfired, 5);
    for (int k = 0; k < 5; k++) {
        struct ttimer *tt = &tms[order[k]];
        ck_assert_int_ge(tt->deadline - t0, after[tt->id]);
        ck_assert_int_eq(tt->fired, 1);
        ck_assert_msg(tt->at >= tt->deadline, "timer %c fired after %lld ms, armed for %lld", tnames[tt->id],
                      (long long)(tt->at - t0), (long long)after[tt->id]);
        ck_assert(pthread_equal(tt->thread, lt));
        ck_assert_int_eq(tt->t.at, 0); /* fired: no longer armed */
    }
    /* the expected order: by deadline (B 10, C 20, F 25, A 30, G 35 unless the arming took over 5 ms) */
    for (int k = 1; k < 5; k++)
        for (int j = k; j > 0 && tms[order[j - 1]].deadline > tms[order[j]].deadline; j--) {
            int x = order[j];
            order[j] = order[j - 1];
            order[j - 1] = x;
        }
    for (int k = 0; k < 5; k++)
        ck_assert_msg(fired_order[k] == order[k], "timer %c fired in place %d, want %c",
                      tnames[fired_order[k]], k, tnames[order[k]]);
    ck_assert_msg(tms[T_F].at - t0 < 500, "a timer moved from 1000 to 25 ms fired after %lld ms",
                  (long long)(tms[T_F].at - t0));
    ck_assert_int_eq(tms[T_D].fired, 0);
    ck_assert_int_eq(tms[T_D].deadline, 0);
    ck_assert_int_eq(tms[T_H].fired, 0);
    ck_assert_int_eq(tms[T_I].fired, 0);
    pthread_mutex_unlock(&mu);
    ag_loops_free(ls);
}
END_TEST

/* ------------------------------------------------------------------------------------------------
 * Watched sockets and the "later" queue. */

struct watch_req {
    struct ag_loop_io *io;
    uint32_t events;
    enum ag_rc rc;
};

static void do_watch(struct ag_loop *loop, void *arg)
{
    struct watch_req *w = arg;
    w->rc = ag_loop_watch(loop, w->io, w->events);
}

static enum ag_rc watch_on(struct ag_loop *loop, struct ag_loop_io *io, uint32_t events)
{
    struct watch_req w = {io, events, AG_ERR_INTERNAL};
    run_on(loop, do_watch, &w);
    return w.rc;
}

static int win, wout, wbytes;
static pthread_t wthread;

static void watch_fn(struct ag_loop *loop, struct ag_loop_io *io, uint32_t events)
{
    char buf[16];
    ssize_t n = 0;
    if (events & EPOLLIN)
        n = read(io->fd, buf, sizeof(buf));
    if (events & EPOLLOUT)
        ag_loop_watch(loop, io, 0); /* once is enough: stop watching from inside */
    lock();
    if (events & EPOLLIN) {
        win++;
        wbytes += n > 0 ? (int)n : 0;
    }
    if (events & EPOLLOUT)
        wout++;
    wthread = pthread_self();
    unlock_signal();
}

/* The byte waiting in fd, or -1. */
static int pending_byte(int fd)
{
    unsigned char c;
    return recv(fd, &c, 1, MSG_DONTWAIT) == 1 ? c : -1;
}

START_TEST(watch_socketpair)
{
    struct ag_loops *ls = start(1);
    struct ag_loop *loop = ag_loops_pick(ls);
    pthread_t lt = thread_of(loop);
    int sv[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    static struct ag_loop_io io, bad;
    io = (struct ag_loop_io){.fd = sv[0], .fn = watch_fn};

    ck_assert_int_eq(watch_on(loop, &io, EPOLLIN), AG_OK);
    ck_assert_uint_eq(io.events, EPOLLIN);
    ck_assert_int_eq(write(sv[1], "a", 1), 1);
    ck_assert(wait_for(&win, 1));
    lock();
    ck_assert_int_eq(wbytes, 1);
    ck_assert_int_eq(wout, 0);
    ck_assert(pthread_equal(wthread, lt));
    pthread_mutex_unlock(&mu);

    /* now for writing too: called with EPOLLOUT, and it stops watching from inside its fn */
    ck_assert_int_eq(watch_on(loop, &io, EPOLLIN | EPOLLOUT), AG_OK);
    ck_assert(wait_for(&wout, 1));
    sync_loop(loop);
    sync_loop(loop);
    lock();
    ck_assert_int_eq(wout, 1); /* level-triggered: a socket still watched would be reported again */
    pthread_mutex_unlock(&mu);
    ck_assert_uint_eq(io.events, 0);

    /* not watched: a byte written now stays unread */
    ck_assert_int_eq(write(sv[1], "b", 1), 1);
    sync_loop(loop);
    sync_loop(loop);
    lock();
    ck_assert_int_eq(win, 1);
    pthread_mutex_unlock(&mu);
    ck_assert_int_eq(pending_byte(sv[0]), 'b');

    /* watched again */
    ck_assert_int_eq(watch_on(loop, &io, EPOLLIN), AG_OK);
    ck_assert_int_eq(write(sv[1], "c", 1), 1);
    ck_assert(wait_for(&win, 2));
    lock();
    ck_assert_int_eq(wbytes, 2);
    pthread_mutex_unlock(&mu);

    /* changed to 0 from another task: no more calls */
    ck_assert_int_eq(watch_on(loop, &io, 0), AG_OK);
    ck_assert_uint_eq(io.events, 0);
    ck_assert_int_eq(watch_on(loop, &io, 0), AG_OK); /* twice: a no-op */
    ck_assert_int_eq(write(sv[1], "d", 1), 1);
    sync_loop(loop);
    sync_loop(loop);
    lock();
    ck_assert_int_eq(win, 2);
    pthread_mutex_unlock(&mu);
    ck_assert_int_eq(pending_byte(sv[0]), 'd');

    /* a descriptor that cannot be watched */
    bad = (struct ag_loop_io){.fd = -1, .fn = watch_fn};
    ck_assert_int_eq(watch_on(loop, &bad, EPOLLIN), AG_ERR_IO);
    ck_assert_uint_eq(bad.events, 0);

    ag_loops_free(ls);
    close(sv[0]);
    close(sv[1]);
}
END_TEST

/* Two watched sockets readable in the same batch; whichever callback runs first closes the other, sets
 * its fd to -1 and frees it with ag_loop_later: the other's event, still in the batch, must be skipped
 * (else dcalls is 2) and the free must wait for the batch's end (else ASan reports a use after free). */
struct dio {
    struct ag_loop_io io;
    struct dio *other;
    struct ag_loop *loop;
};

static int dcalls, dlater, dnested, dcalls_at_later, dother_ready;
static struct dio *dsurvivor;
static pthread_t dlater_thread;

static void nested_later(void *arg)
{
    AG_UNUSED(arg);
    lock();
    dnested++;
    unlock_signal();
}

static void free_dio(void *arg)
{
    struct dio *d = arg;
    ag_loop_later(d->loop, nested_later, NULL); /* deferred from a deferred call: runs in this pass too */
    lock();
    dlater++;
    dcalls_at_later = dcalls;
    dlater_thread = pthread_self();
    unlock_signal();
    free(d);
}

static void dio_fn(struct ag_loop *loop, struct ag_loop_io *io, uint32_t events)
{
    struct dio *d = (struct dio *)io, *o = d->other;
    struct pollfd p = {.fd = o->io.fd, .events = POLLIN};
    int ready = o->io.fd >= 0 && poll(&p, 1, 0) == 1 && (p.revents & POLLIN);

    AG_UNUSED(events);
    ag_loop_watch(loop, &d->io, 0);
    ag_loop_watch(loop, &o->io, 0);
    close(o->io.fd);
    o->io.fd = -1;
    ag_loop_later(loop, free_dio, o);
    lock();
    dcalls++;
    dother_ready = ready; /* so its event is in this batch too */
    dsurvivor = d;
    unlock_signal();
}

struct pair {
    struct dio *d[2];
    int peer[2]; /* the other ends */
    bool ok[2];
};

static void arm_pair(struct ag_loop *loop, void *arg)
{
    struct pair *p = arg;
    /* both readable before the loop's next epoll_wait: one batch */
    for (int i = 0; i < 2; i++)
        p->ok[i] = ag_loop_watch(loop, &p->d[i]->io, EPOLLIN) == AG_OK && write(p->peer[i], "x", 1) == 1;
}

START_TEST(later_frees_after_batch)
{
    struct ag_loops *ls = start(1);
    struct ag_loop *loop = ag_loops_pick(ls);
    pthread_t lt = thread_of(loop);
    int a[2], b[2];

    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, a), 0);
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, b), 0);
    struct dio *d0 = calloc(1, sizeof(*d0)), *d1 = calloc(1, sizeof(*d1));
    ck_assert(d0 != NULL && d1 != NULL);
    *d0 = (struct dio){.io = {.fd = a[0], .fn = dio_fn}, .other = d1, .loop = loop};
    *d1 = (struct dio){.io = {.fd = b[0], .fn = dio_fn}, .other = d0, .loop = loop};
    struct pair pr = {{d0, d1}, {a[1], b[1]}, {false, false}};
    run_on(loop, arm_pair, &pr);
    ck_assert(pr.ok[0] && pr.ok[1]);

    ck_assert(wait_for(&dlater, 1));
    ck_assert(wait_for(&dnested, 1));
    sync_loop(loop);
    sync_loop(loop);
    lock();
    ck_assert_msg(dcalls == 1, "the io closed earlier in the batch was called (%d calls)", dcalls);
    ck_assert(dother_ready);
    ck_assert_int_eq(dlater, 1);
    ck_assert_int_eq(dnested, 1);
    ck_assert_int_eq(dcalls_at_later, 1);
    ck_assert(pthread_equal(dlater_thread, lt));
    ck_assert(dsurvivor == d0 || dsurvivor == d1);
    struct dio *survivor = dsurvivor;
    pthread_mutex_unlock(&mu);
    ck_assert_uint_eq(survivor->io.events, 0);
    ag_loops_free(ls);
    close(survivor->io.fd);
    free(survivor);
    close(a[1]);
    close(b[1]);
}
END_TEST

/* ------------------------------------------------------------------------------------------------
 * curl transfers, against a one-connection server on 127.0.0.1. */

#define RESPONSE                                                                                             \
    "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\nhello"

struct srv {
    int lfd, port;
    bool respond;   /* answer RESPONSE after a request's head; else read until the peer closes */
    char got[2048]; /* what it received */
    size_t ngot;
    pthread_t thread;
};

static void *srv_run(void *arg)
{
    struct srv *s = arg;
    struct pollfd p = {.fd = s->lfd, .events = POLLIN};
    if (poll(&p, 1, WAIT_MS) != 1)
        return NULL;
    int c = accept(s->lfd, NULL, NULL);
    if (c < 0)
        return NULL;
    struct timeval tv = {WAIT_MS / 1000, 0};
    setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    for (;;) {
        ssize_t n = recv(c, s->got + s->ngot, sizeof(s->got) - 1 - s->ngot, 0);
        if (n <= 0)
            break;
        s->ngot += (size_t)n;
        s->got[s->ngot] = '\0';
        if (s->respond && strstr(s->got, "\r\n\r\n") != NULL) {
            send(c, RESPONSE, strlen(RESPONSE), MSG_NOSIGNAL);
            break;
        }
    }
    close(c);
    return NULL;
}

static void srv_start(struct srv *s, bool respond)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sa);
    memset(s, 0, sizeof(*s));
    s->respond = respond;
    s->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(s->lfd, 0);
    ck_assert_int_eq(bind(s->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    ck_assert_int_eq(listen(s->lfd, 4), 0);
    ck_assert_int_eq(getsockname(s->lfd, (struct sockaddr *)&sa, &len), 0);
    s->port = ntohs(sa.sin_port);
    ck_assert_int_eq(pthread_create(&s->thread, NULL, srv_run, s), 0);
}

static void srv_join(struct srv *s)
{
    pthread_join(s->thread, NULL);
    close(s->lfd);
}

/* A port nobody listens on. */
static int closed_port(void)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    close(fd);
    return ntohs(sa.sin_port);
}

struct xfer {
    struct ag_loop_xfer x;
    enum ag_rc add_rc;
    char body[256];
    size_t len;
    pthread_t write_thread, done_thread;
    int done;
    CURLcode result;
    long status;
    int sock;
    int fd_flags, fd_flags_after_cleanup; /* fcntl(F_GETFD) on sock in done, before and after the cleanup */
    int64_t added_ms, done_ms;
    bool keep; /* done leaves the handle to the test */
};

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
    struct xfer *t = arg;
    size_t len = size * n, room = sizeof(t->body) - 1 - t->len;
    memcpy(t->body + t->len, p, len < room ? len : room);
    t->len += len < room ? len : room;
    t->body[t->len] = '\0';
    t->write_thread = pthread_self();
    return len;
}

static void on_done(struct ag_loop *loop, struct ag_loop_xfer *x, CURLcode result)
{
    struct xfer *t = (struct xfer *)x;
    long status = 0;
    int flags = -1, after = -1;

    AG_UNUSED(loop);
    curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &status);
    if (x->take_socket && x->sock >= 0)
        flags = fcntl(x->sock, F_GETFD);
    if (!t->keep) {
        curl_easy_cleanup(x->h); /* as the tunnel does: libcurl closes its own descriptor */
        x->h = NULL;
    }
    if (x->take_socket && x->sock >= 0)
        after = fcntl(x->sock, F_GETFD);
    lock();
    t->result = result;
    t->status = status;
    t->sock = x->sock;
    t->fd_flags = flags;
    t->fd_flags_after_cleanup = after;
    t->done_thread = pthread_self();
    t->done_ms = ag_loop_now_ms();
    t->done++;
    unlock_signal();
}

static void add_xfer(struct ag_loop *loop, void *arg)
{
    struct xfer *t = arg;
    t->added_ms = ag_loop_now_ms();
    t->add_rc = ag_loop_add(loop, &t->x);
}

/* Added and taken out again in the same task. */
static void add_remove_xfer(struct ag_loop *loop, void *arg)
{
    struct xfer *t = arg;
    t->add_rc = ag_loop_add(loop, &t->x);
    ag_loop_remove(loop, &t->x);
    ag_loop_remove(loop, &t->x); /* not in it any more: harmless */
}

static struct xfer *new_xfer(int port, bool connect_only)
{
    char url[64];
    struct xfer *t = calloc(1, sizeof(*t));
    ck_assert_ptr_nonnull(t);
    t->x.h = curl_easy_init();
    ck_assert_ptr_nonnull(t->x.h);
    t->x.done = on_done;
    t->x.take_socket = connect_only;
    t->x.sock = -2; /* so that -1 is the loop's */
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/", port);
    curl_easy_setopt(t->x.h, CURLOPT_URL, url);
    curl_easy_setopt(t->x.h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(t->x.h, CURLOPT_TIMEOUT_MS, (long)WAIT_MS);
    if (connect_only) {
        curl_easy_setopt(t->x.h, CURLOPT_CONNECT_ONLY, 1L);
    } else {
        curl_easy_setopt(t->x.h, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(t->x.h, CURLOPT_WRITEDATA, t);
    }
    return t;
}

START_TEST(curl_transfer_done_on_loop)
{
    struct srv s;
    srv_start(&s, true);
    struct ag_loops *ls = start(1);
    struct ag_loop *loop = ag_loops_pick(ls);
    pthread_t lt = thread_of(loop);
    struct xfer *t = new_xfer(s.port, false);

    run_on(loop, add_xfer, t);
    ck_assert_int_eq(t->add_rc, AG_OK);
    ck_assert_msg(wait_for(&t->done, 1), "the transfer did not end");
    sync_loop(loop);
    lock();
    ck_assert_int_eq(t->done, 1);
    ck_assert_msg(t->result == CURLE_OK, "result %d (%s)", (int)t->result, curl_easy_strerror(t->result));
    ck_assert_int_eq(t->status, 200);
    ck_assert_str_eq(t->body, "hello");
    ck_assert(pthread_equal(t->done_thread, lt));
    ck_assert(pthread_equal(t->write_thread, lt));
    ck_assert_int_eq(t->sock, -2); /* not a connect-only transfer: left alone */
    pthread_mutex_unlock(&mu);
    ag_loops_free(ls);
    srv_join(&s);
    ck_assert_msg(strncmp(s.got, "GET / HTTP/1.1\r\n", 16) == 0, "the server got \"%s\"", s.got);
    free(t);
}
END_TEST

START_TEST(curl_connect_only_takes_socket)
{
    struct srv s;
    srv_start(&s, false);
    struct ag_loops *ls = start(1);
    struct ag_loop *loop = ag_loops_pick(ls);
    pthread_t lt = thread_of(loop);
    struct xfer *t = new_xfer(s.port, true);

    run_on(loop, add_xfer, t);
    ck_assert_int_eq(t->add_rc, AG_OK);
    ck_assert_msg(wait_for(&t->done, 1), "the transfer did not end");
    sync_loop(loop);
    lock();
    ck_assert_int_eq(t->done, 1);
    ck_assert_msg(t->result == CURLE_OK, "result %d (%s)", (int)t->result, curl_easy_strerror(t->result));
    ck_assert(pthread_equal(t->done_thread, lt));
    ck_assert_int_ge(t->sock, 0);
    ck_assert_int_ne(t->fd_flags, -1);
    ck_assert(t->fd_flags & FD_CLOEXEC);
    ck_assert_int_ne(t->fd_flags_after_cleanup, -1); /* a duplicate: libcurl's close leaves it open */
    int sock = t->sock;
    pthread_mutex_unlock(&mu);

    /* still connected after curl_easy_cleanup: the server gets what is sent through it */
    ck_assert_int_ne(fcntl(sock, F_GETFD), -1);
    ck_assert_int_eq(send(sock, "x", 1, MSG_NOSIGNAL), 1);
    ck_assert_int_eq(close(sock), 0);
    srv_join(&s);
    ck_assert_msg(s.ngot == 1 && s.got[0] == 'x', "the server got %zu bytes: \"%s\"", s.ngot, s.got);
    ag_loops_free(ls);
    free(t);
}
END_TEST

START_TEST(curl_connect_only_refused)
{
    struct ag_loops *ls = start(1);
    struct ag_loop *loop = ag_loops_pick(ls);
    pthread_t lt = thread_of(loop);
    struct xfer *t = new_xfer(closed_port(), true);

    run_on(loop, add_xfer, t);
    ck_assert_int_eq(t->add_rc, AG_OK);
    ck_assert_msg(wait_for(&t->done, 1), "the transfer did not end");
    sync_loop(loop);
    lock();
    ck_assert_int_eq(t->done, 1);
    ck_assert_msg(t->result != CURLE_OK, "connected to a closed port");
    ck_assert_int_eq(t->sock, -1);
    ck_assert(pthread_equal(t->done_thread, lt));
    pthread_mutex_unlock(&mu);
    ag_loops_free(ls);
    free(t);
}
END_TEST

/* libcurl's own timeout (its timer callback, curl_at in the loop) ends a transfer the server never
 * answers. */
START_TEST(curl_timeout_driven_by_loop)
{
    struct srv s;
    srv_start(&s, false);
    struct ag_loops *ls = start(1);
    struct ag_loop *loop = ag_loops_pick(ls);
    pthread_t lt = thread_of(loop);
    struct xfer *t = new_xfer(s.port, false);

    curl_easy_setopt(t->x.h, CURLOPT_TIMEOUT_MS, 100L);
    run_on(loop, add_xfer, t);
    ck_assert_int_eq(t->add_rc, AG_OK);
    ck_assert_msg(wait_for(&t->done, 1), "a transfer the server never answers did not time out");
    lock();
    ck_assert_msg(t->result == CURLE_OPERATION_TIMEDOUT, "result %d (%s)", (int)t->result,
                  curl_easy_strerror(t->result));
    ck_assert_msg(t->done_ms - t->added_ms >= 95, "timed out after %lld ms, set to 100",
                  (long long)(t->done_ms - t->added_ms));
    ck_assert(pthread_equal(t->done_thread, lt));
    pthread_mutex_unlock(&mu);
    srv_join(&s); /* the cleanup in done closed the connection */
    ck_assert_msg(strncmp(s.got, "GET / HTTP/1.1\r\n", 16) == 0, "the server got \"%s\"", s.got);
    ag_loops_free(ls);
    free(t);
}
END_TEST

/* A transfer taken out with ag_loop_remove never gets done; it can then be added again. */
START_TEST(curl_remove_means_no_done)
{
    struct ag_loops *ls = start(1);
    struct ag_loop *loop = ag_loops_pick(ls);
    struct xfer *t = new_xfer(closed_port(), true); /* would end at once with "connection refused" */

    t->keep = true;
    run_on(loop, add_remove_xfer, t);
    ck_assert_int_eq(t->add_rc, AG_OK);
    ck_assert_msg(!wait_for_ms(&t->done, 1, 50), "done ran for a removed transfer"); /* else ~10 ms */
    /* out of the multi handle: adding it again is accepted (a handle still in it is refused), and it ends */
    run_on(loop, add_xfer, t);
    ck_assert_int_eq(t->add_rc, AG_OK);
    ck_assert(wait_for(&t->done, 1));
    sync_loop(loop);
    lock();
    ck_assert_int_eq(t->done, 1);
    ck_assert(t->result != CURLE_OK);
    ck_assert_int_eq(t->sock, -1);
    pthread_mutex_unlock(&mu);
    ag_loops_free(ls);
    curl_easy_cleanup(t->x.h);
    t->x.h = NULL;
    free(t);
}
END_TEST

/* ------------------------------------------------------------------------------------------------
 * Picking, scratch buffers, slots. */

START_TEST(pick_round_robin)
{
    struct ag_loops *ls = start(3);
    struct ag_loop *p[10];
    pthread_t th[3];

    for (int i = 0; i < 10; i++)
        p[i] = ag_loops_pick(ls);
    ck_assert(p[0] != p[1] && p[1] != p[2] && p[0] != p[2]);
    for (int i = 3; i < 10; i++)
        ck_assert_msg(p[i] == p[i % 3], "pick %d is not loop %d", i, i % 3);
    for (int i = 0; i < 3; i++)
        th[i] = thread_of(p[i]);
    ck_assert(!pthread_equal(th[0], th[1]) && !pthread_equal(th[1], th[2]) && !pthread_equal(th[0], th[2]));
    ag_loops_free(ls);

    /* no count: one loop */
    ls = start(0);
    struct ag_loop *one = ag_loops_pick(ls);
    ck_assert_ptr_eq(ag_loops_pick(ls), one);
    ck_assert_ptr_eq(ag_loops_pick(ls), one);
    thread_of(one);
    ag_loops_free(ls);
}
END_TEST

struct probe {
    char *scratch;
    void **slot[AG_LOOP_SLOTS];
    bool was_null[AG_LOOP_SLOTS];
    void *kept;
};

static void probe_loop(struct ag_loop *loop, void *arg)
{
    struct probe *r = arg;
    r->scratch = ag_loop_scratch(loop);
    if (r->scratch != NULL)
        memset(r->scratch, 0x5a, AG_LOOP_SCRATCH); /* all of it is there: ASan would say */
    for (unsigned i = 0; i < AG_LOOP_SLOTS; i++) {
        r->slot[i] = ag_loop_slot(loop, i);
        r->was_null[i] = *r->slot[i] == NULL;
    }
    *ag_loop_slot(loop, AG_LOOP_SLOT_PROXY) = r;
}

static void read_slot(struct ag_loop *loop, void *arg)
{
    struct probe *r = arg;
    r->kept = *ag_loop_slot(loop, AG_LOOP_SLOT_PROXY);
}

START_TEST(scratch_and_slots_per_loop)
{
    struct ag_loops *ls = start(2);
    struct ag_loop *l0 = ag_loops_pick(ls), *l1 = ag_loops_pick(ls);
    struct probe r0 = {0}, r1 = {0};

    run_on(l0, probe_loop, &r0);
    run_on(l1, probe_loop, &r1);
    ck_assert_ptr_nonnull(r0.scratch);
    ck_assert_ptr_nonnull(r1.scratch);
    ck_assert_ptr_ne(r0.scratch, r1.scratch);
    for (unsigned i = 0; i < AG_LOOP_SLOTS; i++) {
        ck_assert(r0.was_null[i] && r1.was_null[i]);
        ck_assert_ptr_ne(r0.slot[i], r1.slot[i]);
    }
    ck_assert_ptr_ne(r0.slot[AG_LOOP_SLOT_PROXY], r0.slot[AG_LOOP_SLOT_TUNNEL]);
    run_on(l0, read_slot, &r0);
    run_on(l1, read_slot, &r1);
    ck_assert_ptr_eq(r0.kept, &r0); /* each loop keeps its own */
    ck_assert_ptr_eq(r1.kept, &r1);
    ck_assert_ptr_null(*r0.slot[AG_LOOP_SLOT_TUNNEL]);
    ag_loops_free(ls);
}
END_TEST

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    Suite *s = suite_create("loop");
    TCase *tc = tcase_create("loop");
    tcase_set_timeout(tc, 20); /* each test takes well under a second; this only bounds a hang */
    tcase_add_test(tc, tasks_run_in_order_on_loop_thread);
    tcase_add_test(tc, post_while_queued_runs_once);
    tcase_add_test(tc, stop_after_queued_tasks_then_closed);
    tcase_add_test(tc, broadcast_once_per_loop);
    tcase_add_test(tc, timers_in_deadline_order_never_early);
    tcase_add_test(tc, watch_socketpair);
    tcase_add_test(tc, later_frees_after_batch);
    tcase_add_test(tc, curl_transfer_done_on_loop);
    tcase_add_test(tc, curl_connect_only_takes_socket);
    tcase_add_test(tc, curl_connect_only_refused);
    tcase_add_test(tc, curl_timeout_driven_by_loop);
    tcase_add_test(tc, curl_remove_means_no_done);
    tcase_add_test(tc, pick_round_robin);
    tcase_add_test(tc, scratch_and_slots_per_loop);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    curl_global_cleanup();
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
