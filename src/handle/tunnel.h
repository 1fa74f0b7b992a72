/* SPDX-License-Identifier: Apache-2.0
 * WebSocket (and any HTTP/1.1 Upgrade) through the reverse proxy, --proxy-websockets: authgate sends
 * the upgrade request to the upstream itself (libcurl connects, with TLS for https), and when the
 * upstream switches protocols it answers the client 101 with the upstream's headers and then copies
 * bytes both ways until either side closes. An upstream that refuses gets its status passed on. */
#ifndef AG_HANDLE_TUNNEL_H
#define AG_HANDLE_TUNNEL_H

#include <curl/curl.h>
#include <microhttpd.h>

#include "net/upstream.h"
#include "request.h"

/* Whether the request asks to switch protocols (Connection: upgrade and an Upgrade header). */
bool ag_tunnel_wanted(const struct ag_request *rq);

/* Do the upgrade with `up`, sending the request line and the header lines `hdrs` (already filtered, with
 * the identity), and answer the client. Blocks the connection's thread for the tunnel's life (the
 * server runs a thread per connection in proxy mode). */
enum MHD_Result ag_tunnel_open(struct ag_request *rq, const struct ag_upstream *up,
                               const struct curl_slist *hdrs);

/* Make every open tunnel end within about half a second (at shutdown, before the daemon stops). */
void ag_tunnel_stop_all(void);

#endif
