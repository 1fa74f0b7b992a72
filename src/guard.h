/* SPDX-License-Identifier: Apache-2.0
 * The connection guard: what stops slow clients from holding every connection slot. libmicrohttpd's
 * own timeout counts idle time only, so a client that sends its head one byte at a time keeps its
 * connection for ever. The guard gives each request head a deadline in all, and when the server is
 * full it makes room by closing the connection that has waited longest for a request head:
 *   - a new connection must deliver its request line and headers within --read-header-timeout;
 *   - after an answer on a keep-alive connection, the next head must be complete within
 *     --connection-timeout + --read-header-timeout, and within --read-header-timeout of its request
 *     line (libmicrohttpd's idle timeout still ends a quiet connection sooner);
 *   - with more than --max-connections open, a new connection evicts the one waiting longest for a
 *     head (a slow head or an idle keep-alive connection: nginx reuses those first too); when none is
 *     waiting, the new connection is the one closed. A request being served is never cut.
 * It closes a connection with shutdown(2): libmicrohttpd then sees the end of the stream and cleans up
 * as usual. Its registry lock is held whenever it does, and libmicrohttpd reports a closed connection
 * (ag_guard_closed) before it closes the socket, so the guard never touches a socket number that has
 * been reused. */
#ifndef AG_GUARD_H
#define AG_GUARD_H

#include "common.h"

struct ag_guard;
struct ag_guard_conn;

/* A guard for at most max_conns connections with these timeouts (milliseconds), and its thread that
 * closes connections past their deadline. */
enum ag_rc ag_guard_new(size_t max_conns, int64_t header_ms, int64_t idle_ms, struct ag_guard **out);

/* Stop the thread and free (NULL is fine). Every connection must have been closed. */
void ag_guard_free(struct ag_guard *g);

/* A connection was accepted on socket fd: registered (NULL when memory ran out; then the connection is
 * closed at once). Makes room when the server is full. */
struct ag_guard_conn *ag_guard_opened(struct ag_guard *g, int fd);

/* Its request line has arrived: the headers have --read-header-timeout from now at most. */
void ag_guard_request_line(struct ag_guard_conn *c);

/* Its request head is complete: no deadline while the request is served. */
void ag_guard_head_done(struct ag_guard_conn *c);

/* The request is answered and the connection stays for the next one (keep-alive). */
void ag_guard_request_done(struct ag_guard_conn *c);

/* libmicrohttpd is about to close the connection: forget it (NULL is fine). */
void ag_guard_closed(struct ag_guard *g, struct ag_guard_conn *c);

/* Connections the guard has closed so far: for the deadline, and to make room. For tests and logs. */
void ag_guard_counts(struct ag_guard *g, uint64_t *expired, uint64_t *evicted);

#endif
