/* SPDX-License-Identifier: Apache-2.0
 * Definitions every authgate module shares: the result code, a few helper macros.
 * One result type for the whole daemon; exactly one place (src/response.c) maps it to HTTP. */
#ifndef AG_COMMON_H
#define AG_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

enum ag_rc {
    AG_OK = 0,
    AG_ERR_NOMEM,           /* allocation failed */
    AG_ERR_INVALID,         /* bad input from a client or a config source */
    AG_ERR_NOT_FOUND,       /* no such route, key or entry */
    AG_ERR_TOO_LARGE,       /* input exceeds a configured bound */
    AG_ERR_IO,              /* file or socket error */
    AG_ERR_UNAVAILABLE,     /* a dependency (Redis, the provider) cannot be reached */
    AG_ERR_DENIED,          /* authenticated but not allowed */
    AG_ERR_UNAUTHENTICATED, /* no valid credentials */
    AG_ERR_INTERNAL         /* a bug or an impossible state */
};

/* Short, stable name of a result code for logs ("invalid", "unavailable"...). Never NULL. */
const char *ag_rc_str(enum ag_rc rc);

/* The value of a hexadecimal digit (either case), or -1. */
static inline int ag_hex_digit(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

#define AG_UNUSED(x)    ((void)(x))
#define AG_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#endif
