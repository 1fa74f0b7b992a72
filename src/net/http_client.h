/* SPDX-License-Identifier: Apache-2.0
 * A small libcurl client for talking to the OpenID Provider: GET (optionally with a bearer token,
 * RFC 6750 2.1) and form POST (optionally with HTTP Basic, RFC 7617). One easy handle per thread,
 * reused for keep-alive; http and https only, no redirects, bounded time and body size. Bodies and
 * credentials are never logged; failing URLs are logged as scheme://host[:port]/path only. */
#ifndef AG_NET_HTTP_CLIENT_H
#define AG_NET_HTTP_CLIENT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"

/* Largest response body accepted; a bigger one aborts the transfer with AG_ERR_TOO_LARGE. */
#define AG_HTTP_MAX_BODY (1024u * 1024u)

/* Per-call settings, borrowed for the call only. */
struct ag_http_opts {
    int64_t connect_timeout_ms; /* bound on the TCP+TLS connect; <= 0 means timeout_ms */
    int64_t timeout_ms;         /* bound on the whole transfer; <= 0 means 10 s */
    const char *ca_file;        /* PEM bundle to trust; NULL or "" = the system store */
    const atomic_bool *cancel;  /* NULL, or a flag that aborts the transfer (within about 1 s) once
                                 * true: lets a background thread be stopped while it waits */
};

struct ag_http_response {
    long status;            /* HTTP status, e.g. 200 */
    char *body;             /* owned; NUL-terminated (the NUL is not counted in len); never NULL on AG_OK */
    size_t len;             /* body length, <= AG_HTTP_MAX_BODY */
    char content_type[128]; /* Content-Type as sent (truncated to fit), "" when absent */
};

/* Initialise libcurl and this module. Call once from the main thread before any other thread
 * exists and before any other function here. AG_ERR_INTERNAL when libcurl cannot start. */
enum ag_rc ag_http_global_init(void);

/* Free the calling thread's handle and libcurl's global state. Call once, from the main thread,
 * after every other thread that used this module has exited (their handles are freed by a
 * thread-exit destructor). Safe when ag_http_global_init() failed or was never called. */
void ag_http_global_cleanup(void);

/* GET `url` (http or https, not NULL) with `Accept: application/json`. `bearer` (may be NULL) is
 * sent as `Authorization: Bearer <bearer>`. `opts` may be NULL (defaults).
 * Returns AG_OK when a response arrived, whatever its status: the caller judges the status; *out
 * then holds the response, which the caller releases with ag_http_response_clear(). Otherwise *out
 * is left cleared (body NULL) and the result is AG_ERR_TOO_LARGE (body over AG_HTTP_MAX_BODY),
 * AG_ERR_INVALID (malformed URL or a scheme other than http/https), AG_ERR_NOMEM, or
 * AG_ERR_UNAVAILABLE (refused, timed out, TLS failure, cancelled); failures are logged here once. */
enum ag_rc ag_http_get(const struct ag_http_opts *opts, const char *url, const char *bearer,
                       struct ag_http_response *out);

/* POST an application/x-www-form-urlencoded body to `url`. `fields` holds name,value pairs and
 * ends with a NULL name (a NULL value skips that pair); every name and value is percent-encoded
 * here. When `basic_user` is not NULL, `Authorization: Basic base64(basic_user ":" basic_pass)` is
 * sent (`basic_pass` NULL counts as ""): the values are used as given, so a caller whose protocol
 * wants them encoded first (OAuth 2.0, RFC 6749 2.3.1) encodes them itself. The encoded body is
 * cleansed before it is freed, as it may carry secrets. Results as for ag_http_get(). */
enum ag_rc ag_http_post_form(const struct ag_http_opts *opts, const char *url, const char *const *fields,
                             const char *basic_user, const char *basic_pass, struct ag_http_response *out);

/* Percent-encode `in` (NUL-terminated, not NULL) as libcurl does for form values (every byte but
 * A-Z a-z 0-9 - . _ ~ becomes %XX). Returns a malloc'd string the caller frees (cleanse it first if
 * `in` was secret), or NULL when out of memory. */
char *ag_http_form_encode(const char *in);

/* Cleanse and free the body, zero the rest. NULL or an already cleared response is fine. */
void ag_http_response_clear(struct ag_http_response *r);

#endif
