/* SPDX-License-Identifier: Apache-2.0
 * file:///dir#/path/ upstreams: static files of a directory served at a URL path (the path prefix is
 * stripped, as oauth2-proxy does), GET and HEAD only. The request path is percent-decoded once and must
 * stay inside the directory: no "..", no hidden names (".git"), no NUL or backslash, and a symlink
 * that leads out of the directory is refused too. A directory answers its index.html. */
#ifndef AG_HANDLE_FILES_H
#define AG_HANDLE_FILES_H

#include <microhttpd.h>

#include "net/upstream.h"
#include "request.h"

/* The file for the raw request path (path_len bytes) under upstream `up` into out (cap bytes), not yet
 * checked against symlinks. AG_ERR_NOT_FOUND for paths that may not be served (or out of its prefix),
 * AG_ERR_TOO_LARGE when too long. Exposed for tests. */
enum ag_rc ag_files_map(const struct ag_upstream *up, const char *path, size_t path_len, char *out,
                        size_t cap);

/* Answer the request from the directory (after authorization). */
enum MHD_Result ag_files_serve(struct ag_request *rq, const struct ag_upstream *up);

#endif
