/* SPDX-License-Identifier: Apache-2.0
 * authgate's endpoints, one file each under src/handle/. Each has the ag_handler_fn signature. */
#ifndef AG_HANDLE_HANDLERS_H
#define AG_HANDLE_HANDLERS_H

#include "response.h"

/* --ping-path: 200 "OK" while the process runs (liveness). */
enum ag_rc ag_handle_ping(struct ag_request *rq, struct ag_reply *reply);
/* --ready-path: 200 "OK" when authgate can serve, 503 while draining (readiness). */
enum ag_rc ag_handle_ready(struct ag_request *rq, struct ag_reply *reply);
/* /robots.txt: disallow all crawling, as oauth2-proxy does. */
enum ag_rc ag_handle_robots(struct ag_request *rq, struct ag_reply *reply);
/* An unknown path under --proxy-prefix: 404. */
enum ag_rc ag_handle_not_found(struct ag_request *rq, struct ag_reply *reply);
/* Every other path: the authorization check. Until a login provider is active it denies (403). */
enum ag_rc ag_handle_check(struct ag_request *rq, struct ag_reply *reply);

#endif
