/* SPDX-License-Identifier: Apache-2.0
 * Parse listen addresses and open the listening socket (TCP, unix, or inherited from systemd). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "net/addr.h"

static enum ag_rc fail(char *err, size_t errlen, const char *msg)
{
    snprintf(err, errlen, "%s", msg);
    return AG_ERR_INVALID;
}

static bool parse_uint(const char *s, size_t n, unsigned long max, unsigned long *out)
{
    unsigned long v = 0;
    if (n == 0 || n > 10)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (unsigned long)(s[i] - '0');
    }
    if (v > max)
        return false;
    *out = v;
    return true;
}

enum ag_rc ag_addr_parse(const char *s, struct ag_addr *out, char *err, size_t errlen)
{
    const char *colon, *host;
    size_t hostlen;
    unsigned long v;

    memset(out, 0, sizeof(*out));
    out->fd = -1;
    if (s == NULL || *s == '\0')
        return fail(err, errlen, "empty address");
    if (strncmp(s, "unix://", 7) == 0) {
        const char *p = s + 7;
        if (*p != '/')
            return fail(err, errlen, "unix socket path must be absolute (unix:///path)");
        if (strlen(p) >= sizeof(out->path))
            return fail(err, errlen, "unix socket path too long");
        out->kind = AG_ADDR_UNIX;
        memcpy(out->path, p, strlen(p) + 1);
        return AG_OK;
    }
    if (strncmp(s, "fd:", 3) == 0) {
        if (!parse_uint(s + 3, strlen(s + 3), 65535, &v) || v < 3)
            return fail(err, errlen, "fd:N needs a descriptor number of 3 or more");
        out->kind = AG_ADDR_FD;
        out->fd = (int)v;
        return AG_OK;
    }
    if (strncmp(s, "https://", 8) == 0)
        return fail(err, errlen, "https:// listeners are not supported yet");
    if (strncmp(s, "http://", 7) == 0)
        s += 7;
    out->kind = AG_ADDR_TCP;
    if (*s == '[') {
        const char *close = strchr(s, ']');
        if (close == NULL || close[1] != ':')
            return fail(err, errlen, "expected [ipv6]:port");
        host = s + 1;
        hostlen = (size_t)(close - host);
        colon = close + 1;
        if (hostlen == 0 || memchr(host, ':', hostlen) == NULL)
            return fail(err, errlen, "expected an IPv6 address inside [ ]");
    } else {
        colon = strrchr(s, ':');
        if (colon == NULL)
            return fail(err, errlen, "expected host:port, [ipv6]:port, unix:///path or fd:N");
        host = s;
        hostlen = (size_t)(colon - s);
        if (memchr(host, ':', hostlen) != NULL)
            return fail(err, errlen, "IPv6 addresses must be written in brackets: [::1]:4180");
    }
    if (hostlen >= sizeof(out->host))
        return fail(err, errlen, "host name too long");
    for (size_t i = 0; i < hostlen; i++) {
        unsigned char c = (unsigned char)host[i];
        if (c <= ' ' || c == 0x7f || c == '/' || c == '[' || c == ']')
            return fail(err, errlen, "host contains characters that cannot appear in a host name");
    }
    if (!parse_uint(colon + 1, strlen(colon + 1), 65535, &v))
        return fail(err, errlen, "port must be a number from 0 to 65535");
    memcpy(out->host, host, hostlen);
    out->host[hostlen] = '\0';
    out->port = (unsigned)v;
    return AG_OK;
}

static enum ag_rc sysfail(char *err, size_t errlen, const char *what)
{
    snprintf(err, errlen, "%s: %s", what, strerror(errno));
    return AG_ERR_IO;
}

static enum ag_rc set_flags(int fd, char *err, size_t errlen)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        return sysfail(err, errlen, "fcntl(O_NONBLOCK)");
    if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
        return sysfail(err, errlen, "fcntl(FD_CLOEXEC)");
    return AG_OK;
}

static enum ag_rc listen_inherited(const struct ag_addr *a, int *fd_out, char *err, size_t errlen)
{
    const char *pid = getenv("LISTEN_PID");
    const char *nfds = getenv("LISTEN_FDS");
    int type = 0, acc = 0;
    socklen_t len = sizeof(type);
    enum ag_rc rc;

    if (pid != NULL && nfds != NULL) {
        unsigned long p, n;
        if (!parse_uint(pid, strlen(pid), 4194304, &p) || !parse_uint(nfds, strlen(nfds), 1024, &n))
            return fail(err, errlen, "LISTEN_PID or LISTEN_FDS is malformed");
        if ((pid_t)p == getpid() && (a->fd < 3 || (unsigned long)a->fd >= 3 + n)) {
            snprintf(err, errlen, "fd:%d was not passed by the service manager (LISTEN_FDS=%lu)", a->fd, n);
            return AG_ERR_INVALID;
        }
    }
    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDS");
    unsetenv("LISTEN_FDNAMES");
    if (getsockopt(a->fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0) {
        snprintf(err, errlen, "fd:%d is not an open socket: %s", a->fd, strerror(errno));
        return AG_ERR_INVALID;
    }
    len = sizeof(acc);
    if (type != SOCK_STREAM || getsockopt(a->fd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &len) < 0 || !acc) {
        snprintf(err, errlen, "fd:%d is not a listening stream socket", a->fd);
        return AG_ERR_INVALID;
    }
    rc = set_flags(a->fd, err, errlen);
    if (rc == AG_OK)
        *fd_out = a->fd;
    return rc;
}

static enum ag_rc listen_unix(const struct ag_addr *a, int backlog, int *fd_out, char *err, size_t errlen)
{
    struct sockaddr_un sun;
    struct stat st;
    int fd = -1;
    enum ag_rc rc = AG_ERR_IO;

    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    memcpy(sun.sun_path, a->path, strlen(a->path) + 1);
    if (lstat(a->path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            snprintf(err, errlen, "%s exists and is not a socket", a->path);
            return AG_ERR_INVALID;
        }
        unlink(a->path); /* a stale socket from an earlier run */
    }
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        rc = sysfail(err, errlen, "socket(AF_UNIX)");
        goto out;
    }
    if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
        rc = sysfail(err, errlen, a->path);
        goto out;
    }
    if (listen(fd, backlog) < 0) {
        rc = sysfail(err, errlen, "listen");
        goto out;
    }
    *fd_out = fd;
    fd = -1;
    rc = AG_OK;
out:
    if (fd >= 0)
        close(fd);
    return rc;
}

static enum ag_rc listen_tcp(const struct ag_addr *a, int backlog, int *fd_out, char *err, size_t errlen)
{
    struct addrinfo hints, *res = NULL;
    char port[8];
    int fd = -1, one = 1, gai;
    enum ag_rc rc = AG_ERR_IO;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    snprintf(port, sizeof(port), "%u", a->port);
    gai = getaddrinfo(a->host[0] ? a->host : NULL, port, &hints, &res);
    if (gai != 0) {
        snprintf(err, errlen, "cannot resolve %s: %s", a->host, gai_strerror(gai));
        return AG_ERR_INVALID;
    }
    /* For an empty host prefer the IPv6 wildcard, which also takes IPv4 (dual stack). */
    struct addrinfo *ai = res;
    if (a->host[0] == '\0')
        for (struct addrinfo *p = res; p; p = p->ai_next)
            if (p->ai_family == AF_INET6) {
                ai = p;
                break;
            }
    fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        rc = sysfail(err, errlen, "socket");
        goto out;
    }
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (ai->ai_family == AF_INET6) {
        int v6only = a->host[0] ? 1 : 0;
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof(v6only));
    }
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
        snprintf(err, errlen, "cannot bind %s%s%s:%u: %s", strchr(a->host, ':') ? "[" : "", a->host,
                 strchr(a->host, ':') ? "]" : "", a->port, strerror(errno));
        goto out;
    }
    if (listen(fd, backlog) < 0) {
        rc = sysfail(err, errlen, "listen");
        goto out;
    }
    *fd_out = fd;
    fd = -1;
    rc = AG_OK;
out:
    if (fd >= 0)
        close(fd);
    freeaddrinfo(res);
    return rc;
}

enum ag_rc ag_addr_listen(const struct ag_addr *a, int backlog, int *fd_out, char *err, size_t errlen)
{
    *fd_out = -1;
    switch (a->kind) {
    case AG_ADDR_FD:
        return listen_inherited(a, fd_out, err, errlen);
    case AG_ADDR_UNIX:
        return listen_unix(a, backlog, fd_out, err, errlen);
    case AG_ADDR_TCP:
        return listen_tcp(a, backlog, fd_out, err, errlen);
    }
    return fail(err, errlen, "unknown address kind");
}

void ag_addr_describe(int fd, const struct ag_addr *a, char *out, size_t outlen)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    char host[INET6_ADDRSTRLEN];

    if (a->kind == AG_ADDR_UNIX) {
        snprintf(out, outlen, "unix://%s", a->path);
        return;
    }
    if (a->kind == AG_ADDR_FD) {
        snprintf(out, outlen, "fd:%d", a->fd);
        return;
    }
    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0) {
        snprintf(out, outlen, "http://%s:%u", a->host, a->port);
        return;
    }
    if (ss.ss_family == AF_INET6) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
        inet_ntop(AF_INET6, &s6->sin6_addr, host, sizeof(host));
        snprintf(out, outlen, "http://[%s]:%u", host, (unsigned)ntohs(s6->sin6_port));
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
        inet_ntop(AF_INET, &s4->sin_addr, host, sizeof(host));
        snprintf(out, outlen, "http://%s:%u", host, (unsigned)ntohs(s4->sin_port));
    }
}
