/* SPDX-License-Identifier: Apache-2.0
 * Unit tests for src/auth/policy.c: email domains, the emails file, groups, and the email attacks of
 * ../shared/ATTACKS.md. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth/policy.h"

static struct ag_config cfg;
static char *domains[4], *groups[2];
static const char *why;

static void setup(void)
{
    memset(&cfg, 0, sizeof(cfg));
}

static struct ag_policy *policy(void)
{
    struct ag_policy *p = NULL;
    char err[256];
    ck_assert_int_eq(ag_policy_new(&cfg, &p, err, sizeof(err)), AG_OK);
    return p;
}

static enum ag_rc check(struct ag_policy *p, const char *email)
{
    return ag_policy_check(p, email, NULL, &why);
}

START_TEST(domains_exact_and_sub)
{
    domains[0] = "company.com";
    domains[1] = ".sub.org";
    domains[2] = "*.star.net";
    cfg.email_domains.n = 3;
    cfg.email_domains.v = domains;
    struct ag_policy *p = policy();
    ck_assert_int_eq(check(p, "user@company.com"), AG_OK);
    ck_assert_int_eq(check(p, "User@COMPANY.com"), AG_OK);
    ck_assert_int_eq(check(p, "attacker@evil.com@company.com"), AG_ERR_DENIED); /* CVE-2026-40574 */
    ck_assert_int_eq(check(p, "user@evilcompany.com"), AG_ERR_DENIED);
    ck_assert_int_eq(check(p, "user@company.com.evil.com"), AG_ERR_DENIED);
    ck_assert_int_eq(check(p, "user@x.company.com"), AG_ERR_DENIED);
    ck_assert_int_eq(check(p, "a@x.sub.org"), AG_OK);
    ck_assert_int_eq(check(p, "a@sub.org"), AG_ERR_DENIED);
    ck_assert_int_eq(check(p, "a@evilsub.org"), AG_ERR_DENIED);
    ck_assert_int_eq(check(p, "a@y.star.net"), AG_OK);
    ck_assert_int_eq(check(p, "a@star.net"), AG_ERR_DENIED);
    static const char *const bad[] = {"",
                                      "@company.com",
                                      "user@",
                                      "usercompany.com",
                                      "user @company.com",
                                      "user@company.com\r\nX: y",
                                      "\"a,b\"@company.com"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(check(p, bad[i]) == AG_ERR_DENIED, "accepted %s", bad[i]);
    ck_assert_int_eq(check(p, NULL), AG_ERR_DENIED);
    ag_policy_free(p);
}
END_TEST

START_TEST(star_and_groups)
{
    domains[0] = "*";
    cfg.email_domains.n = 1;
    cfg.email_domains.v = domains;
    groups[0] = "admins";
    cfg.allowed_groups.n = 1;
    cfg.allowed_groups.v = groups;
    struct ag_policy *p = policy();
    char *g1[] = {"devs", "admins"}, *g2[] = {"devs"};
    struct ag_strlist in = {2, g1}, out = {1, g2}, none = {0, NULL};
    ck_assert_int_eq(ag_policy_check(p, "a@anything.io", &in, &why), AG_OK);
    ck_assert_int_eq(ag_policy_check(p, "a@anything.io", &out, &why), AG_ERR_DENIED);
    ck_assert_str_eq(why, "not in an allowed group");
    ck_assert_int_eq(ag_policy_check(p, "a@anything.io", &none, &why), AG_ERR_DENIED);
    ck_assert_int_eq(ag_policy_check(p, "a@b@anything.io", &in, &why), AG_ERR_DENIED);
    ag_policy_free(p);
}
END_TEST

START_TEST(emails_file)
{
    char path[] = "/tmp/ag-emails-XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    FILE *f = fdopen(fd, "w");
    fputs("# allowed people\n  Alice@Example.com  \n\nbob@other.org\r\n", f);
    fclose(f);
    cfg.authenticated_emails_file = path;
    struct ag_policy *p = policy();
    ck_assert_int_eq(check(p, "alice@example.com"), AG_OK);
    ck_assert_int_eq(check(p, "bob@other.org"), AG_OK);
    ck_assert_int_eq(check(p, "carol@example.com"), AG_ERR_DENIED);
    ck_assert_int_eq(check(p, "# allowed people"), AG_ERR_DENIED);
    ag_policy_free(p);
    unlink(path);
    struct ag_policy *q = NULL;
    char err[256];
    ck_assert_int_eq(ag_policy_new(&cfg, &q, err, sizeof(err)), AG_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(err, "authenticated_emails_file"));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("policy");
    TCase *tc = tcase_create("policy");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, domains_exact_and_sub);
    tcase_add_test(tc, star_and_groups);
    tcase_add_test(tc, emails_file);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
