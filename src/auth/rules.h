/* SPDX-License-Identifier: Apache-2.0
 * Path rules in oauth2-proxy's forms, `regex`, `!=regex`, `METHOD=regex`, `METHOD!=regex`: the
 * lenient ones (--skip-auth-route, --api-route) and the strict ones (--required-scope-route). They
 * judge the path only (cut at the first '?': CVE-2025-54576), read as auth/path.h says:
 *   - a lenient rule applies only to a path that is not ambiguous, and only when it applies to every
 *     reading: as received and decoded, letters as written or in any case. So `/public/../admin`,
 *     `/public/%2e%2e/admin`, `/public/..;/admin`, `/public//../admin` and `/%70ublic/x` never skip
 *     authentication (GHSA-p224-6x5r-fjpm, CVE-2026-41059);
 *   - a strict rule applies when it applies to any reading, and every strict rule applies to an
 *     ambiguous path, so `//admin/x`, `/ADMIN/x` or `/x/..;/admin/x` cannot dodge a scope rule.
 * A `!=` rule applies when its regex does not match. Methods: lenient rules need the method exactly
 * as written, strict ones match it in any case. */
#ifndef AG_AUTH_RULES_H
#define AG_AUTH_RULES_H

#include "common.h"

struct ag_rules;

/* Compile n lenient rules. On error *out is NULL and err names the rule. An empty list is fine. */
enum ag_rc ag_rules_new(const char *const *rules, size_t n, struct ag_rules **out, char *err, size_t errlen);

/* Compile strict scope rules, "[METHOD=]regex payload": the regex ends at the first space (write a
 * space in it as [[:space:]]), the payload is the rest (the scopes). */
enum ag_rc ag_rules_new_scoped(const char *const *rules, size_t n, struct ag_rules **out, char *err,
                               size_t errlen);

/* Whether one rule (scoped: a scope rule) compiles; AG_ERR_INVALID with the reason in msg. For the config
 * check, which names the option and where it was set. */
enum ag_rc ag_rules_check(const char *rule, bool scoped, char *msg, size_t msglen);

/* Free (NULL is fine). */
void ag_rules_free(struct ag_rules *r);

/* Whether a lenient rule applies to `method` and the raw request-target `raw_uri` (path and query as
 * received). NULL rules apply nowhere. */
bool ag_rules_match(const struct ag_rules *r, const char *method, const char *raw_uri);

/* The payloads of every strict rule that applies, into payloads[0..*n). AG_ERR_TOO_LARGE when more than
 * cap apply (the caller refuses: a requirement must not be dropped). NULL rules: none. */
enum ag_rc ag_rules_collect(const struct ag_rules *r, const char *method, const char *raw_uri,
                            const char **payloads, size_t cap, size_t *n);

#endif
