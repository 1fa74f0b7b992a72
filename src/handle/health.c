/* SPDX-License-Identifier: Apache-2.0
 * Liveness (/ping), readiness (/ready) and /robots.txt, as oauth2-proxy serves them. */
#include "handle/handlers.h"
#include "log.h"

enum ag_rc ag_handle_ping(struct ag_request *rq, struct ag_reply *reply)
{
    AG_UNUSED(rq);
    ag_reply_text(reply, 200, "OK");
    return AG_OK;
}

enum ag_rc ag_handle_ready(struct ag_request *rq, struct ag_reply *reply)
{
    if (!ag_app_ready(rq->app))
        return AG_ERR_UNAVAILABLE;
    ag_reply_text(reply, 200, "OK");
    return AG_OK;
}

enum ag_rc ag_handle_robots(struct ag_request *rq, struct ag_reply *reply)
{
    AG_UNUSED(rq);
    ag_reply_text(reply, 200, "User-agent: *\nDisallow: /\n");
    return AG_OK;
}

enum ag_rc ag_handle_not_found(struct ag_request *rq, struct ag_reply *reply)
{
    AG_UNUSED(rq);
    AG_UNUSED(reply);
    return AG_ERR_NOT_FOUND;
}
