/* SPDX-License-Identifier: Apache-2.0
 * Validation of redirect targets (`rd`, X-Auth-Request-Redirect, the forwarded URI, sign-out
 * targets) against --whitelist-domain, following oauth2-proxy's IsValidRedirect but stricter
 * where its CVEs showed browsers and servers reading a "relative" path as a host. */
#ifndef AG_NET_REDIRECT_H
#define AG_NET_REDIRECT_H

#include "common.h"

/* Longest target accepted: browsers and proxies truncate or refuse longer Location headers. */
#define AG_REDIRECT_MAX 8192

/* Parsed --whitelist-domain entries; immutable after ag_whitelist_new, so it may be shared by
 * every request thread without a lock. */
struct ag_whitelist;

/* Parse `n` whitelist entries (oauth2-proxy syntax): `foo.bar` (that host, default port only),
 * `.bar.foo` or `*.bar.foo` (bar.foo and every name below it), `host:8080` (that port only),
 * `host:*` (any port), `[::1]` / `[::1]:8080` (an IPv6 literal). Hosts are matched
 * case-insensitively; a trailing dot, userinfo, a scheme or a path is an error, and so is a host that a
 * browser reads as an IPv4 address (its last label a number: `0`, `1.0x7f`, `0x7f.0.0.1`, `2130706433`)
 * unless it is written as four decimal numbers (`127.0.0.1`), the one form that means the same to a
 * browser and to the comparison here. A subdomain entry needs a domain name.
 * `domains` may be NULL only when n == 0 (an empty whitelist: relative targets and the self
 * host only). On success *out is a new object the caller frees with ag_whitelist_free; on error
 * *out is NULL, the result is AG_ERR_INVALID (or AG_ERR_NOMEM) and `err` (may be NULL when
 * errlen is 0; always NUL-terminated otherwise) names the option and the bad entry
 * ("whitelist_domains: \"1.0x7f\": ..."). */
enum ag_rc ag_whitelist_new(const char *const *domains, size_t n, struct ag_whitelist **out, char *err,
                            size_t errlen);

/* Release `w`. NULL is a no-op. */
void ag_whitelist_free(struct ag_whitelist *w);

/* Decide whether `target` may be used as a redirect after login or logout.
 * - Relative targets: one leading `/`, no `//`, `/\`, or anything that collapses to them after
 *   one percent-decoding, dropping whitespace and resolving dot segments; the first segment must
 *   not contain `:`.
 * - Absolute targets: `http://` or `https://` (any case) with a plain host (no userinfo, no
 *   percent-encoding, no trailing dot, no number a browser reads as an IPv4 address other than four
 *   decimal numbers) and an optional port 1-65535, whose host and port match a whitelist entry or
 *   `self_host`.
 * - Always refused: NULL, "", more than AG_REDIRECT_MAX bytes, control characters, whitespace,
 *   non-ASCII bytes, `\`, `"`, `<`, `>`, `` ` ``, malformed percent-escapes, and `%00`, `%0a`,
 *   `%0d` anywhere.
 * `w` may be NULL (empty whitelist). `self_host` is the host[:port] this request was served
 * for (already validated by the caller), or NULL; with no port it stands for the target scheme's
 * default port. Returns AG_OK when allowed, AG_ERR_INVALID otherwise. `why` (may be NULL)
 * receives a static reason for the log ("ok" on success) that never echoes the target. The
 * target is not copied or modified: emit it exactly as checked. */
enum ag_rc ag_redirect_check(const struct ag_whitelist *w, const char *target, const char *self_host,
                             const char **why);

#endif
