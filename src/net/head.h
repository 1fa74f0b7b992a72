/* SPDX-License-Identifier: Apache-2.0
 * The request head as the front ends, authgate and the upstream must all read it the same way
 * (RFC 9110 5, RFC 9112 2-6). libmicrohttpd 0.9.75 is lenient where leniency lets a request mean
 * two things: it glues a folded line (obs-fold) onto the header NAME, keeps a space before the colon
 * in the name (`Transfer-Encoding : chunked` is then no framing header to it, but one to the
 * upstream), keeps a bare CR inside a value, and takes the first of several Content-Length headers.
 * Anything of that kind is refused with 400 before any decision is made. */
#ifndef AG_NET_HEAD_H
#define AG_NET_HEAD_H

#include "common.h"

/* One header field as libmicrohttpd parsed it. `name` and `value` point into its read buffer. */
struct ag_head_field {
    const char *name, *value;
    size_t name_len, value_len;
};

/* Why the head (the request line's method, target and version, and its n fields in arrival order)
 * must be refused, as a short static text for the log; NULL when it is fine. Refused: a method or a
 * header name that is not an RFC 9110 token; a target with a space, a control character or '#'; a
 * value with a control character other than HTAB (a bare CR or LF); a folded line (detected from
 * where libmicrohttpd put the name: a folded name is moved out of its line); HTTP/1.1 without Host,
 * or several Host headers; a Content-Length that is not digits, or several; Transfer-Encoding other
 * than one "chunked", with Content-Length, or in an HTTP/1.0 request. */
const char *ag_head_refusal(const char *method, const char *target, const char *version,
                            const struct ag_head_field *f, size_t n);

/* Whether s[0..len) is an RFC 9110 token (1 or more tchar). */
bool ag_head_token(const char *s, size_t len);

#endif
