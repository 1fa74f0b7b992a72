/* SPDX-License-Identifier: Apache-2.0
 * Which handler answers a request: a const table of authgate's own endpoints, matched on the raw
 * path (before percent-decoding, cut at '?' or '#'), so an encoded or dotted variant never reaches
 * an own endpoint and always falls to the protected default route. */
#ifndef AG_ROUTER_H
#define AG_ROUTER_H

#include "response.h"

/* A handler fills *reply and returns AG_OK, or returns an error that response.c turns into one. */
typedef enum ag_rc (*ag_handler_fn)(struct ag_request *rq, struct ag_reply *reply);

enum ag_route_id {
    AG_ROUTE_PING,
    AG_ROUTE_READY,
    AG_ROUTE_ROBOTS,
    AG_ROUTE_START,
    AG_ROUTE_CALLBACK,
    AG_ROUTE_SIGN_IN,
    AG_ROUTE_SIGN_OUT,
    AG_ROUTE_AUTH,
    AG_ROUTE_USERINFO,
    AG_ROUTE_PREFIX_UNKNOWN, /* under --proxy-prefix but no such endpoint: 404 */
    AG_ROUTE_DEFAULT         /* everything else: the authorization check */
};

struct ag_route {
    enum ag_route_id id;
    const char *name; /* for logs and tests */
    ag_handler_fn handler;
};

/* The route for `path` (len bytes, not NUL-terminated necessarily). Never NULL. */
const struct ag_route *ag_router_match(const struct ag_config *cfg, const char *path, size_t len);

#endif
