/* SPDX-License-Identifier: Apache-2.0
 * --trusted-proxy-ip: the peers whose X-Forwarded-* and real-client-IP headers authgate honours.
 * Entries are IPv4/IPv6 addresses or CIDR blocks (RFC 4632, RFC 4291 section 2.3); an
 * IPv4-mapped IPv6 address (RFC 4291 section 2.5.5.2) is the IPv4 address it carries. */
#ifndef AG_NET_CIDR_H
#define AG_NET_CIDR_H

#include <sys/socket.h>

#include "common.h"

/* A parsed, immutable list of address blocks; safe to share between threads. */
struct ag_cidrs;

/* Parse `n` entries: `10.0.0.0/8`, `127.0.0.1` (= /32), `::1` (= /128), `fd00::/8`,
 * `::ffff:10.0.0.0/104` (= 10.0.0.0/8; a mapped block shorter than /96 is refused). IPv6 blocks
 * such as `::/0` never match IPv4 or IPv4-mapped peers. Host bits beyond the prefix are cleared
 * (`10.0.0.1/8` is 10.0.0.0/8). No surrounding whitespace, brackets, ports, zone ids or names.
 * `entries` may be NULL only when n == 0, which yields a list that matches nothing.
 * On success *out is a new list the caller frees with ag_cidrs_free; on error *out is NULL,
 * the result is AG_ERR_INVALID (or AG_ERR_NOMEM) and `err` (may be NULL when errlen is 0;
 * always NUL-terminated otherwise) names the bad entry. */
enum ag_rc ag_cidrs_new(const char *const *entries, size_t n, struct ag_cidrs **out, char *err,
                        size_t errlen);

/* Release `c`. NULL is a no-op. */
void ag_cidrs_free(struct ag_cidrs *c);

/* Whether the peer `sa` lies in one of the blocks. Only AF_INET and AF_INET6 can match (a unix
 * socket peer never does: trusting it is the deployment's business, not an address's); an
 * IPv4-mapped AF_INET6 peer is compared as IPv4. NULL `c` or `sa`: false. */
bool ag_cidrs_match_sa(const struct ag_cidrs *c, const struct sockaddr *sa);

/* The same for a textual address as inet_pton reads it (`10.1.2.3`, `::1`, `::ffff:10.1.2.3`):
 * no brackets, port, prefix, zone id or whitespace; anything unparsable is false. NULL: false. */
bool ag_cidrs_match_text(const struct ag_cidrs *c, const char *addr);

#endif
