/* SPDX-License-Identifier: Apache-2.0
 * Who may log in, as oauth2-proxy decides it: the email's domain against --email-domain (`*`, an exact
 * domain, or `.sub` / `*.sub` for names below it), or the address in --authenticated-emails-file; and,
 * when --allowed-group is set, membership of at least one of those groups. An email must have exactly
 * one '@' (CVE-2026-40574: `attacker@evil.com@company.com`). */
#ifndef AG_AUTH_POLICY_H
#define AG_AUTH_POLICY_H

#include "config.h"

struct ag_policy;

/* Build from cfg (reads the authenticated emails file). On error err names the option. */
enum ag_rc ag_policy_new(const struct ag_config *cfg, struct ag_policy **out, char *err, size_t errlen);

/* Free (NULL is fine). */
void ag_policy_free(struct ag_policy *p);

/* AG_OK when the user may log in, AG_ERR_DENIED otherwise, with a reason for the log in *why. */
enum ag_rc ag_policy_check(const struct ag_policy *p, const char *email, const struct ag_strlist *groups,
                           const char **why);

/* Whether groups contains one of `allowed` (n entries); true when n == 0. */
bool ag_policy_groups_allowed(const struct ag_strlist *groups, const char *const *allowed, size_t n);

#endif
