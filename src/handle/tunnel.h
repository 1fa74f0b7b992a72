/* SPDX-License-Identifier: Apache-2.0
 * WebSocket (and any HTTP/1.1 Upgrade) through the reverse proxy, --proxy-websockets: authgate sends
 * the upgrade request to the upstream itself (libcurl connects, with TLS for https), and when the
 * upstream switches protocols it answers the client 101 with the upstream's headers and then copies
 * bytes both ways until either side closes, on the proxy's event loops (no thread per tunnel). An
 * upstream that refuses gets its status passed on. */
#ifndef AG_HANDLE_TUNNEL_H
#define AG_HANDLE_TUNNEL_H

#include <curl/curl.h>
#include <microhttpd.h>

#include "net/upstream.h"
#include "request.h"

struct ag_loop;
struct ag_tunnel;

/* Whether the request asks to switch protocols (Connection: upgrade and an Upgrade header). */
bool ag_tunnel_wanted(const struct ag_request *rq);

/* Start the upgrade with `up` on `loop`: the request line and the header lines `hdrs` (already filtered,
 * with the identity; copied) go upstream once connected, within timeout_ms for the upstream's head.
 * NULL when out of memory or the loop has stopped. Release with ag_tunnel_release. */
struct ag_tunnel *ag_tunnel_new(struct ag_request *rq, struct ag_loop *loop, const struct ag_upstream *up,
                                const struct curl_slist *hdrs, int64_t timeout_ms);

/* From the access handler once the request is in: suspend the connection until the upstream's head is
 * in (the loop resumes it and the handler calls again), then answer: 101 with the upstream's headers
 * (libmicrohttpd then hands the socket to the loop), the upstream's refusal without a body, or 502/504. */
enum MHD_Result ag_tunnel_answer(struct ag_tunnel *t, struct ag_request *rq);

/* The request is over: let go (an unspliced upstream connection is closed). NULL is fine. */
void ag_tunnel_release(struct ag_tunnel *t);

/* On a loop's thread: close every tunnel of that loop (draining, stopping). */
void ag_tunnel_stop_loop(struct ag_loop *loop);

#endif
