/* SPDX-License-Identifier: Apache-2.0
 * How authgate reads a request path before its route rules judge it. nginx, Envoy, Tomcat and the
 * apps behind them disagree on some path forms (`//` merged or not, `..;` a name or a parent,
 * `%2F` a separator or a byte, a case-insensitive app), so a path that any of them could read two
 * ways is AMBIGUOUS and never gets a lenient answer (see auth/rules.h). A path that is not ambiguous
 * has two readings, as received and percent-decoded once, which mean the same resource to all of
 * them up to the escapes of ordinary characters and letter case. */
#ifndef AG_AUTH_PATH_H
#define AG_AUTH_PATH_H

#include "common.h"

/* Longest path read; a longer one is ambiguous (never lenient). */
#define AG_PATH_MAX 8192

struct ag_path {
    bool ambiguous;
    /* Both NUL-terminated; meaningful only when !ambiguous. */
    char raw[AG_PATH_MAX];     /* the request-target up to its first '?', as received */
    char decoded[AG_PATH_MAX]; /* raw with every %XX decoded once */
};

/* Read the path of request-target `target` (NULL is read as ambiguous) into *p. The path is
 * ambiguous when it: does not start with '/'; has an empty segment other than the last ("//"); has
 * a "." or ".." segment; contains ';', '\', '#', a space or a control character; has a malformed
 * escape; or escapes one of / \ . ; ? # % or a control character (%2F %5C %2E %3B %3F %23 %25 %00-%1F
 * %7F). Those are exactly the forms that front ends and apps resolve differently. */
void ag_path_read(const char *target, struct ag_path *p);

#endif
