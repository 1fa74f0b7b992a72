/* SPDX-License-Identifier: Apache-2.0
 * The listener: a libmicrohttpd daemon (epoll, a pool of worker threads) on the socket named by
 * --http-address, with the limits that guard it (connections, header memory, idle timeout), and
 * the request spine: context on the first callback, route, handler, response, request log. */
#ifndef AG_SERVER_H
#define AG_SERVER_H

#include "app.h"

struct ag_server;

/* Open the listening socket and start serving `app` (borrowed; must outlive the server).
 * On failure returns an error and writes the reason to err. */
enum ag_rc ag_server_start(struct ag_app *app, struct ag_server **out, char *err, size_t errlen);

/* The bound address, e.g. "http://127.0.0.1:4180" (borrowed). */
const char *ag_server_url(const struct ag_server *s);

/* Stop accepting connections, mark the server draining (/ready fails, responses close their
 * connection) and wait up to timeout_ms for requests in flight to finish. Returns how many were
 * still in flight when it gave up (0 = drained). */
unsigned ag_server_drain(struct ag_server *s, int64_t timeout_ms);

/* Stop the daemon, closing whatever connections remain, and free (NULL is fine). */
void ag_server_free(struct ag_server *s);

#endif
