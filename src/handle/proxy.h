/* SPDX-License-Identifier: Apache-2.0
 * Reverse-proxy mode (--upstream=http(s)://...): an allowed request goes to its upstream with method,
 * path and query as received, the body streamed both ways through two small buffers, hop-by-hop
 * headers dropped, X-Forwarded-* set and the identity headers of DESIGN.md section 2 (client copies
 * removed first), the session and CSRF cookies taken out of Cookie.
 *
 * The server runs one thread per connection in this mode, so the access handler and the response's
 * content reader may block. Each proxied request gets one libcurl transfer on a thread of its own: the
 * handler feeds the request body to it, the content reader drains the response from it. Upstream
 * connections are kept alive and shared between transfers. */
#ifndef AG_HANDLE_PROXY_H
#define AG_HANDLE_PROXY_H

#include <microhttpd.h>

#include "request.h"

/* Connections to upstreams, shared by every transfer. */
struct ag_proxy_shared;
enum ag_rc ag_proxy_shared_new(struct ag_proxy_shared **out);
void ag_proxy_shared_free(struct ag_proxy_shared *ps);

/* Whether the comma-separated header value (Connection's, say; NULL is fine) lists the token canon_name
 * (lowercase; the value's tokens are compared in any case, '_' read as '-'). */
bool ag_proxy_header_has(const char *value, const char *canon_name);

/* Whether this request goes to an upstream (reverse-proxy mode and the catch-all route). */
bool ag_proxy_wanted(const struct ag_request *rq);

/* Headers are in: decide (the same check as ext_authz), and when allowed start the upstream transfer.
 * Returns MHD_NO only to drop the connection. */
enum MHD_Result ag_proxy_begin(struct ag_request *rq);

/* A piece of the request body: passed upstream (blocks while the upstream is slower), or dropped when
 * the request was refused. */
enum MHD_Result ag_proxy_body(struct ag_request *rq, const char *data, size_t len);

/* The body is complete: answer (the upstream's response, streamed, or the refusal, or 502/504). */
enum MHD_Result ag_proxy_finish(struct ag_request *rq);

/* Stop the transfer (if any) and free it; from the request's completion. */
void ag_proxy_end(struct ag_request *rq);

#endif
