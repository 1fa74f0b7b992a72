/* SPDX-License-Identifier: Apache-2.0
 * Path rules for --skip-auth-route and --api-route, in oauth2-proxy's forms: `regex`, `!=regex`,
 * `METHOD=regex`, `METHOD!=regex`. They match the request path only: percent-decoded once, cut at
 * the first '?' or '#' (also when those were encoded: CVE-2026-41059), with dot segments resolved
 * (`..;` counts as `..`, as Java servers read it), so `/public/../admin` and `/public/%2e%2e/admin`
 * are `/admin`. A path that cannot be read unambiguously (an encoded NUL, a backslash, a bad escape)
 * matches no rule, so it always needs authentication. */
#ifndef AG_AUTH_RULES_H
#define AG_AUTH_RULES_H

#include "common.h"

struct ag_rules;

/* Compile n rules. On error *out is NULL and err names the rule. An empty list is fine. */
enum ag_rc ag_rules_new(const char *const *rules, size_t n, struct ag_rules **out, char *err, size_t errlen);

/* Compile scope rules, "[METHOD=]regex payload": the regex ends at the first space (write a space in
 * it as [[:space:]]), the payload is the rest (the scopes). */
enum ag_rc ag_rules_new_scoped(const char *const *rules, size_t n, struct ag_rules **out, char *err,
                               size_t errlen);

/* Whether one rule (scoped: a scope rule) compiles; AG_ERR_INVALID with the reason in msg. For the config
 * check, which names the option and where it was set. */
enum ag_rc ag_rules_check(const char *rule, bool scoped, char *msg, size_t msglen);

/* Free (NULL is fine). */
void ag_rules_free(struct ag_rules *r);

/* Whether any rule matches `method` and the raw request-target `raw_uri` (path and query as
 * received). NULL rules match nothing. */
bool ag_rules_match(const struct ag_rules *r, const char *method, const char *raw_uri);

/* The payloads of every scope rule that applies, into payloads[0..*n). Unlike ag_rules_match(), a path
 * that cannot be read unambiguously is an error here (AG_ERR_INVALID), not "no rule": the caller
 * refuses it, since a requirement must not be dodged. AG_ERR_TOO_LARGE when more than cap apply. NULL
 * rules: none. */
enum ag_rc ag_rules_collect(const struct ag_rules *r, const char *method, const char *raw_uri,
                            const char **payloads, size_t cap, size_t *n);

/* The normalised path described above into out; AG_ERR_INVALID when ambiguous. Exposed for tests. */
enum ag_rc ag_rules_normalize(const char *raw_uri, char *out, size_t cap);

#endif
