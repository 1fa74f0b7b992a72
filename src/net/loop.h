/* SPDX-License-Identifier: Apache-2.0
 * Event loops for the reverse proxy: one thread per loop, each with an epoll set that holds a
 * libmicrohttpd daemon's (the loop runs it: MHD_run), a libcurl multi handle's sockets
 * (curl_multi_socket_action), timers, and a mailbox through which other threads hand it work. A request
 * lives on one loop from its first byte to its last, client side and upstream side, so nothing crosses
 * threads on the way. Everything a loop owns (its daemon's connections, curl handles, watched sockets,
 * timers) is touched only on its thread; other threads talk to it only by posting tasks.
 *
 * Modelled on Redis's ae.c and libcurl's multi-socket examples: the loop knows nothing of HTTP. */
#ifndef AG_NET_LOOP_H
#define AG_NET_LOOP_H

#include <curl/curl.h>
#include <microhttpd.h>
#include <stdint.h>

#include "common.h"

struct ag_loop;
struct ag_loops;

/* A unit of work posted to a loop. The caller embeds it in its own object (no allocation per post) and
 * keeps that object alive until fn has run. fn runs on the loop's thread, or, when the loop has stopped,
 * is never run (ag_loop_post says so). */
struct ag_loop_task {
    struct ag_loop_task *next;
    void (*fn)(struct ag_loop *loop, struct ag_loop_task *task);
    bool queued; /* guarded by the loop's mailbox lock */
};

/* A socket the loop watches (level-triggered): fn runs on the loop's thread with the epoll events. */
struct ag_loop_io {
    int fd;
    uint32_t events; /* EPOLLIN | EPOLLOUT ... as registered now; 0: not registered */
    void (*fn)(struct ag_loop *loop, struct ag_loop_io *io, uint32_t events);
};

/* A one-shot deadline; fn runs on the loop's thread once the monotonic clock passes `at`. */
struct ag_loop_timer {
    struct ag_loop_timer *prev, *next;
    int64_t at; /* ms, CLOCK_MONOTONIC; 0: not armed */
    void (*fn)(struct ag_loop *loop, struct ag_loop_timer *timer);
};

/* A curl transfer run by a loop's multi handle: embed it, set CURLOPT_PRIVATE to it (ag_loop_add does),
 * and done runs on the loop's thread when the transfer ends (the handle is then out of the multi). */
struct ag_loop_xfer {
    CURL *h;
    void (*done)(struct ag_loop *loop, struct ag_loop_xfer *x, CURLcode result);
    bool take_socket; /* a connect-only transfer: done gets a duplicate of its socket in sock (or -1),
                       * taken before the handle leaves the multi (which makes libcurl forget it) */
    int sock;
};

/* What the multi handles are told: max_host_conns connections to one host:port (0: no limit; the
 * upstream's limit divided between the loops), max_conns kept open in all. mhd: NULL, or one daemon per
 * loop, started without a thread of its own and with MHD_USE_EPOLL (the loop runs it; the caller stops
 * it after the loops). */
struct ag_loops_conf {
    unsigned count;
    long max_host_conns;
    long max_conns;
    struct MHD_Daemon *const *mhd;
};

/* Start conf->count loops (at least one). *out is freed by ag_loops_free. */
enum ag_rc ag_loops_start(const struct ag_loops_conf *conf, struct ag_loops **out);

/* Run `stop` on every loop's thread (NULL: nothing), then end every loop and join its thread. After this
 * ag_loop_post refuses. Safe to call twice; NULL is fine. */
void ag_loops_stop(struct ag_loops *ls, void (*stop)(struct ag_loop *loop));

/* Run fn on every loop's thread once (for example, to close every tunnel when draining); returns at
 * once, without waiting for them. */
void ag_loops_broadcast(struct ag_loops *ls, void (*fn)(struct ag_loop *loop));

/* Stop (if not yet) and free. NULL is fine. */
void ag_loops_free(struct ag_loops *ls);

/* The loop for a new piece of work (round robin). */
struct ag_loop *ag_loops_pick(struct ag_loops *ls);

/* Queue task on loop (any thread; from the loop's own thread it runs after the current step, without a
 * wake-up): AG_LOOP_QUEUED, or AG_LOOP_ALREADY when it is still queued from an earlier post (it runs
 * once), or AG_LOOP_CLOSED when the loop has stopped (fn will not run). */
enum ag_loop_post_rc { AG_LOOP_QUEUED, AG_LOOP_ALREADY, AG_LOOP_CLOSED };
enum ag_loop_post_rc ag_loop_post(struct ag_loop *loop, struct ag_loop_task *task);

/* How many loops, and the i-th (for the caller's own bookkeeping). */
unsigned ag_loops_count(const struct ag_loops *ls);
struct ag_loop *ag_loops_at(struct ag_loops *ls, unsigned i);

/* The loop whose thread calls, or NULL. */
struct ag_loop *ag_loop_current(void);

/* The following are for the loop's own thread. */

/* The loop's daemon (NULL without one). */
struct MHD_Daemon *ag_loop_mhd(struct ag_loop *loop);

/* A connection of this loop's daemon was resumed: run the daemon before waiting again. */
void ag_loop_kick(struct ag_loop *loop);

/* Hand x->h to the loop's multi handle. AG_OK, or the error with nothing added. */
enum ag_rc ag_loop_add(struct ag_loop *loop, struct ag_loop_xfer *x);

/* Take x->h out of the multi handle (if it is in); done will not run. */
void ag_loop_remove(struct ag_loop *loop, struct ag_loop_xfer *x);

/* Watch io->fd for `events` (0: stop watching; the socket stays open). AG_OK or AG_ERR_IO. */
enum ag_rc ag_loop_watch(struct ag_loop *loop, struct ag_loop_io *io, uint32_t events);

/* Arm t to fire after ms (re-arming moves it); disarm takes it out (no-op when not armed). */
void ag_loop_timer_arm(struct ag_loop *loop, struct ag_loop_timer *t, int64_t ms);
void ag_loop_timer_disarm(struct ag_loop *loop, struct ag_loop_timer *t);

/* fn(arg) once the current batch of events is handled, for freeing: an event later in the batch may
 * still point at an io inside arg (set its fd to -1 first: such an io is skipped). */
void ag_loop_later(struct ag_loop *loop, void (*fn)(void *), void *arg);

/* Monotonic milliseconds. */
int64_t ag_loop_now_ms(void);

/* A scratch buffer of AG_LOOP_SCRATCH bytes for copying between sockets on this loop's thread. */
#define AG_LOOP_SCRATCH (64 * 1024)
char *ag_loop_scratch(struct ag_loop *loop);

/* A pointer the loop keeps for a user (the list of transfers it runs, of tunnels it splices); NULL at
 * first. Read and written on the loop's thread. */
enum { AG_LOOP_SLOT_PROXY, AG_LOOP_SLOT_TUNNEL, AG_LOOP_SLOT_HANDLES, AG_LOOP_SLOTS };
void **ag_loop_slot(struct ag_loop *loop, unsigned slot);

#endif
