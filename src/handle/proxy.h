/* SPDX-License-Identifier: Apache-2.0
 * Reverse-proxy mode (--upstream=http(s)://...): an allowed request goes to its upstream with method,
 * path and query as received, the body streamed both ways through two small buffers, hop-by-hop
 * headers dropped, X-Forwarded-* set and the identity headers of DESIGN.md section 2 (client copies
 * removed first), the session and CSRF cookies taken out of Cookie.
 *
 * Nothing blocks on the upstream: the event loop (net/loop.h) that runs the client's connection also
 * runs the transfer, in its curl multi handle, and suspends the connection while it waits (for the
 * response's headers, for answer bytes, for room to put more of the body); the transfer's callbacks
 * resume it. Each direction holds at most 64 KiB, so a slow client holds back the upstream (libcurl
 * pauses) and a slow upstream holds back the client (libmicrohttpd stops reading). Upstream connections
 * are kept alive in each loop's pool, at most --upstream-max-connections per upstream. */
#ifndef AG_HANDLE_PROXY_H
#define AG_HANDLE_PROXY_H

#include <microhttpd.h>

#include "request.h"

/* The event loops and their upstream connections, shared by every transfer. loops 0: one per CPU;
 * max_conns_per_upstream 0: no limit; upstreams: how many are configured (the pool's size). The loops
 * start with ag_proxy_start, each running one of the server's daemons. */
struct ag_proxy_conf {
    unsigned loops;
    unsigned max_conns_per_upstream;
    unsigned upstreams;
};
struct ag_proxy_shared;
enum ag_rc ag_proxy_shared_new(const struct ag_proxy_conf *conf, struct ag_proxy_shared **out);

/* How many loops (and so daemons) ag_proxy_start wants. */
unsigned ag_proxy_loop_count(const struct ag_proxy_shared *ps);

/* Start the loops, the i-th running daemons[i] (libmicrohttpd with MHD_USE_EPOLL, no thread of its own,
 * suspend/resume and upgrades allowed; the caller stops them after ag_proxy_stop). */
enum ag_rc ag_proxy_start(struct ag_proxy_shared *ps, struct MHD_Daemon *const *daemons);

/* Run fn once on every loop's thread (returns at once). NULL ps is fine. */
struct ag_loop;
void ag_proxy_each_loop(struct ag_proxy_shared *ps, void (*fn)(struct ag_loop *loop));

/* The server drains (SIGTERM): close every WebSocket tunnel; transfers go on. Returns at once. */
void ag_proxy_drain(struct ag_proxy_shared *ps);

/* The server stops: end every transfer and tunnel (their connections are resumed and fail) and stop the
 * loops. Before libmicrohttpd's daemon stops (it must not hold suspended connections then). */
void ag_proxy_stop(struct ag_proxy_shared *ps);

/* Stop (if not yet) and free. NULL is fine. */
void ag_proxy_shared_free(struct ag_proxy_shared *ps);

/* Whether the comma-separated header value (Connection's, say; NULL is fine) lists the token canon_name
 * (lowercase; the value's tokens are compared in any case, '_' read as '-'). */
bool ag_proxy_header_has(const char *value, const char *canon_name);

/* Whether this request goes to an upstream (reverse-proxy mode and the catch-all route). */
bool ag_proxy_wanted(const struct ag_request *rq);

/* Headers are in: decide (the same check as ext_authz), and when allowed start the upstream transfer.
 * Returns MHD_NO only to drop the connection. */
enum MHD_Result ag_proxy_begin(struct ag_request *rq);

/* A piece of the request body (*len bytes): what fits is passed upstream and *len says what is left;
 * when something is left the connection is suspended until the upstream has read (libmicrohttpd then
 * offers the rest again). Dropped (all taken) when the request was refused. */
enum MHD_Result ag_proxy_body(struct ag_request *rq, const char *data, size_t *len);

/* The body is complete: answer (the upstream's response, streamed, or the refusal, or 502/504), or
 * suspend the connection until the upstream's headers are in (then it is called again). */
enum MHD_Result ag_proxy_finish(struct ag_request *rq);

/* Stop the transfer (if any) and free it; from the request's completion. */
void ag_proxy_end(struct ag_request *rq);

#endif
