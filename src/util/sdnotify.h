/* SPDX-License-Identifier: Apache-2.0
 * sd_notify(3) without libsystemd: one datagram to the AF_UNIX socket named by $NOTIFY_SOCKET
 * (a path, or "@name" for the abstract namespace). */
#ifndef AG_UTIL_SDNOTIFY_H
#define AG_UTIL_SDNOTIFY_H

#include "common.h"

/* Send `state` ("READY=1", "STOPPING=1", "STATUS=..."). Returns AG_OK, also when NOTIFY_SOCKET is
 * unset (nothing to do), AG_ERR_INVALID for a malformed variable, AG_ERR_IO when sending fails. */
enum ag_rc ag_sdnotify(const char *state);

#endif
