/* SPDX-License-Identifier: Apache-2.0
 * Logging to stderr in oauth2-proxy's three kinds (standard, request, auth), as text in
 * oauth2-proxy's default formats or as one JSON object per line. Each line is built in a bounded
 * buffer and written with one write(2), so lines from worker threads never interleave. Values that
 * come from clients are escaped (no CR/LF or control bytes reach the log); in JSON every line is valid
 * UTF-8 (bytes that are not well-formed UTF-8 become U+FFFD) and valid JSON however long its values
 * (a value that does not fit ends in "..."); ag_log_redact_uri() hides the values of query parameters
 * that carry secrets. */
#ifndef AG_LOG_H
#define AG_LOG_H

#include <stdarg.h>

#include "common.h"

enum ag_log_level { AG_LOG_DEBUG = 0, AG_LOG_INFO, AG_LOG_WARN, AG_LOG_ERROR };
enum ag_log_format { AG_LOG_FORMAT_STANDARD = 0, AG_LOG_FORMAT_JSON };

struct ag_log_options {
    enum ag_log_format format;
    bool standard; /* standard (application) lines */
    bool request;  /* one line per HTTP request */
    bool auth;     /* authentication events */
    int fd;        /* where lines go; 2 (stderr) in the daemon, a pipe in tests */
};

/* Set the process-wide options; call before starting threads. Defaults: standard format, all
 * kinds on, fd 2. */
void ag_log_setup(const struct ag_log_options *opts);

/* A standard log line. `file`/`line` name the caller; `request_id` may be NULL. */
void ag_log_at(enum ag_log_level level, const char *file, int line, const char *request_id, const char *fmt,
               ...) __attribute__((format(printf, 5, 6)));

#define ag_log_info(...)  ag_log_at(AG_LOG_INFO, __FILE__, __LINE__, NULL, __VA_ARGS__)
#define ag_log_warn(...)  ag_log_at(AG_LOG_WARN, __FILE__, __LINE__, NULL, __VA_ARGS__)
#define ag_log_error(...) ag_log_at(AG_LOG_ERROR, __FILE__, __LINE__, NULL, __VA_ARGS__)
/* The same with a request id. */
#define ag_log_rq(level, rid, ...) ag_log_at(level, __FILE__, __LINE__, rid, __VA_ARGS__)

/* One request-log line. All strings may be NULL (printed as "-"); `uri` is redacted here. */
struct ag_log_request {
    const char *client, *request_id, *user, *host, *method, *upstream, *uri, *proto, *user_agent;
    unsigned status;
    uint64_t size;
    double duration_s;
};
void ag_log_request(const struct ag_log_request *r);

/* One auth-log line; status is "AuthSuccess", "AuthFailure" or "AuthError". */
void ag_log_auth(const char *client, const char *request_id, const char *user, const char *status,
                 const char *msg);

/* Copy `uri` to out (always NUL-terminated, truncated to outlen-1) with the values of query
 * parameters named code, state, token, access_token, id_token, refresh_token, client_secret,
 * password or session replaced by "REDACTED". Names are compared after percent-decoding them once and
 * without regard to case, as the application behind would read them: `c%6fde=`, `%63ode=` and `CODE=`
 * are all `code=`. Returns the length written. */
size_t ag_log_redact_uri(const char *uri, char *out, size_t outlen);

#endif
