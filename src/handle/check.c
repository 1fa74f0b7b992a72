/* SPDX-License-Identifier: Apache-2.0
 * The authorization check for every path that is not one of authgate's own endpoints. This
 * release has no login provider wired in yet, so it fails closed: nothing is ever allowed. */
#include "handle/handlers.h"

enum ag_rc ag_handle_check(struct ag_request *rq, struct ag_reply *reply)
{
    AG_UNUSED(rq);
    AG_UNUSED(reply);
    return AG_ERR_DENIED;
}
