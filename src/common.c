/* SPDX-License-Identifier: Apache-2.0
 * Names of result codes, for log lines. */
#include "common.h"

const char *ag_rc_str(enum ag_rc rc)
{
    switch (rc) {
    case AG_OK:
        return "ok";
    case AG_ERR_NOMEM:
        return "out of memory";
    case AG_ERR_INVALID:
        return "invalid";
    case AG_ERR_NOT_FOUND:
        return "not found";
    case AG_ERR_TOO_LARGE:
        return "too large";
    case AG_ERR_IO:
        return "i/o error";
    case AG_ERR_UNAVAILABLE:
        return "unavailable";
    case AG_ERR_DENIED:
        return "denied";
    case AG_ERR_UNAUTHENTICATED:
        return "unauthenticated";
    case AG_ERR_INTERNAL:
        return "internal error";
    }
    return "unknown";
}
