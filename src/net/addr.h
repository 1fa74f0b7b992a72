/* SPDX-License-Identifier: Apache-2.0
 * Listen addresses as oauth2-proxy writes them (`host:port`, `[v6]:port`, `:port`, an optional
 * `http://` in front), plus `unix:///path` and `fd:N` for sockets handed over by systemd socket
 * activation (sd_listen_fds(3): LISTEN_PID, LISTEN_FDS, first fd 3). */
#ifndef AG_NET_ADDR_H
#define AG_NET_ADDR_H

#include <sys/un.h>

#include "common.h"

enum ag_addr_kind { AG_ADDR_TCP = 0, AG_ADDR_UNIX, AG_ADDR_FD };

struct ag_addr {
    enum ag_addr_kind kind;
    char host[256]; /* TCP: literal or name without brackets; "" = every interface */
    unsigned port;  /* TCP: 0 = let the kernel choose */
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)]; /* UNIX */
    int fd;                                                 /* FD */
};

/* Parse `s` into *out. On error returns AG_ERR_INVALID and writes a reason ("port out of range")
 * to err (always NUL-terminated). */
enum ag_rc ag_addr_parse(const char *s, struct ag_addr *out, char *err, size_t errlen);

/* Open a non-blocking, close-on-exec listening socket for *a and store it in *fd_out (the caller
 * owns and closes it). For AG_ADDR_FD the inherited socket is checked (it must be a listening
 * stream socket and, when LISTEN_PID names this process, within LISTEN_FDS) and LISTEN_* are
 * removed from the environment. A stale unix socket file is replaced; any other file is not. */
enum ag_rc ag_addr_listen(const struct ag_addr *a, int backlog, int *fd_out, char *err, size_t errlen);

/* Describe the bound socket for the "listening on" line: http://127.0.0.1:4180,
 * http://[::1]:4180, unix:///run/authgate.sock or fd:3. */
void ag_addr_describe(int fd, const struct ag_addr *a, char *out, size_t outlen);

#endif
