/* SPDX-License-Identifier: Apache-2.0
 * Static files for file:// upstreams. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "handle/files.h"
#include "handle/pages.h"
#include "log.h"

enum ag_rc ag_files_map(const struct ag_upstream *up, const char *path, size_t path_len, char *out,
                        size_t cap)
{
    size_t o, seg_start, dir_len;

    if (up->file_dir == NULL || path_len < up->path_len || memcmp(path, up->path, up->path_len) != 0)
        return AG_ERR_NOT_FOUND;
    dir_len = strlen(up->file_dir);
    if (dir_len + 2 >= cap)
        return AG_ERR_TOO_LARGE;
    memcpy(out, up->file_dir, dir_len + 1);
    if (up->exact) /* file:///srv/logo.png#/logo.png: that one file */
        return path_len == up->path_len ? AG_OK : AG_ERR_NOT_FOUND;
    o = dir_len;
    out[o++] = '/';
    seg_start = o;
    /* the rest of the path after the prefix, decoded once, one segment at a time */
    for (size_t i = up->path_len; i <= path_len; i++) {
        char c = i < path_len ? path[i] : '/';
        if (c == '%') {
            int h = i + 2 < path_len ? ag_hex_digit((unsigned char)path[i + 1]) : -1;
            int l = h < 0 ? -1 : ag_hex_digit((unsigned char)path[i + 2]);
            if (h < 0 || l < 0)
                return AG_ERR_NOT_FOUND;
            c = (char)(h * 16 + l);
            i += 2;
            if (c == '/')
                return AG_ERR_NOT_FOUND; /* an encoded slash is not a separator: refuse it */
        }
        if (c == '\0' || c == '\\' || (unsigned char)c < 0x20 || c == 0x7f)
            return AG_ERR_NOT_FOUND;
        if (c != '/') {
            if (o + 1 >= cap)
                return AG_ERR_TOO_LARGE;
            out[o++] = c;
            continue;
        }
        if (o == seg_start) /* an empty segment: "//", or the end right after a '/' */
            continue;
        if (out[seg_start] == '.')
            return AG_ERR_NOT_FOUND; /* ".", "..", ".git", ".env": never */
        if (o + 1 >= cap)
            return AG_ERR_TOO_LARGE;
        out[o++] = '/';
        seg_start = o;
    }
    if (o > dir_len + 1 && out[o - 1] == '/') /* no separator after the last name; "dir/" for the root */
        o--;
    out[o] = '\0';
    return AG_OK;
}

static const char *content_type(const char *file)
{
    static const char *const types[][2] = {
        {".html", "text/html; charset=utf-8"},
        {".htm", "text/html; charset=utf-8"},
        {".css", "text/css; charset=utf-8"},
        {".js", "text/javascript; charset=utf-8"},
        {".mjs", "text/javascript; charset=utf-8"},
        {".json", "application/json"},
        {".map", "application/json"},
        {".txt", "text/plain; charset=utf-8"},
        {".svg", "image/svg+xml"},
        {".png", "image/png"},
        {".jpg", "image/jpeg"},
        {".jpeg", "image/jpeg"},
        {".gif", "image/gif"},
        {".ico", "image/x-icon"},
        {".webp", "image/webp"},
        {".woff", "font/woff"},
        {".woff2", "font/woff2"},
        {".wasm", "application/wasm"},
        {".pdf", "application/pdf"},
        {".xml", "application/xml"},
    };
    const char *dot = strrchr(file, '.');
    for (size_t i = 0; dot != NULL && strchr(dot, '/') == NULL && i < AG_ARRAY_LEN(types); i++)
        if (strcasecmp(dot, types[i][0]) == 0)
            return types[i][1];
    return "application/octet-stream";
}

/* 405 for anything but GET and HEAD, with the Allow header RFC 9110 wants. */
static enum MHD_Result not_allowed(struct ag_request *rq)
{
    struct ag_reply reply;
    enum ag_rc rc;

    memset(&reply, 0, sizeof(reply));
    rc = ag_page_error(rq, &reply, 405, "method_not_allowed", "Only GET and HEAD are served here.");
    if (rc != AG_OK)
        ag_response_error(rq, rc, &reply);
    ag_reply_header(&reply, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
    return ag_response_send(rq, &reply);
}

enum MHD_Result ag_files_serve(struct ag_request *rq, const struct ag_upstream *up)
{
    char want[PATH_MAX], real[PATH_MAX], root[PATH_MAX], lm[64];
    struct stat st;
    struct MHD_Response *resp;
    enum MHD_Result ret;
    struct tm tm;
    int fd;

    if (strcmp(rq->method, "GET") != 0 && strcmp(rq->method, "HEAD") != 0)
        return not_allowed(rq);
    if (ag_files_map(up, rq->raw_uri, rq->path_len, want, sizeof(want) - 12) != AG_OK)
        return ag_page_send(rq, 404, "not_found", "There is no such file.");
    /* the file, or a directory's index.html; its real path must stay in the (real) directory */
    if (stat(want, &st) == 0 && S_ISDIR(st.st_mode))
        strcat(want, "/index.html");
    if (realpath(up->file_dir, root) == NULL || realpath(want, real) == NULL ||
        strncmp(real, root, strlen(root)) != 0 || (real[strlen(root)] != '/' && real[strlen(root)] != '\0'))
        return ag_page_send(rq, 404, "not_found", "There is no such file.");
    fd = open(real, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        if (fd >= 0)
            close(fd);
        return ag_page_send(rq, 404, "not_found", "There is no such file.");
    }
    resp = MHD_create_response_from_fd((uint64_t)st.st_size, fd); /* closes fd when done */
    if (resp == NULL) {
        close(fd);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type(real));
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    gmtime_r(&st.st_mtime, &tm);
    strftime(lm, sizeof(lm), "%a, %d %b %Y %H:%M:%S GMT", &tm);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_LAST_MODIFIED, lm);
    if (rq->set_cookie != NULL)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_SET_COOKIE, rq->set_cookie);
    ret = MHD_queue_response(rq->conn, MHD_HTTP_OK, resp);
    MHD_destroy_response(resp);
    if (ret == MHD_YES) {
        rq->answered = true;
        rq->status = 200;
        rq->resp_size = (uint64_t)st.st_size;
    }
    return ret;
}
