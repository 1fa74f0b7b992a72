/* SPDX-License-Identifier: Apache-2.0
 * Unit tests for src/auth/rules.c: lenient rules (skip-auth, API) apply only to an unambiguous path and
 * every reading of it, strict rules (required scopes) to any reading and to every ambiguous path; the
 * advisory inputs of ../shared/ATTACKS.md never skip authentication nor dodge a scope rule. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "auth/rules.h"

static struct ag_rules *rules(const char *const *v, size_t n)
{
    struct ag_rules *r = NULL;
    char err[256];
    ck_assert_int_eq(ag_rules_new(v, n, &r, err, sizeof(err)), AG_OK);
    return r;
}

START_TEST(attacks_need_auth)
{
    static const char *const r1[] = {"^/api/.*/status"};
    struct ag_rules *r = rules(r1, 1);
    ck_assert(ag_rules_match(r, "GET", "/api/v1/status"));
    ck_assert(!ag_rules_match(r, "GET", "/api/private/x?path=/status")); /* CVE-2025-54576 */
    ck_assert(!ag_rules_match(r, "GET", "/api/private/x#/status"));
    ag_rules_free(r);

    static const char *const r2[] = {"^/foo/.*/bar$"};
    r = rules(r2, 1);
    ck_assert(ag_rules_match(r, "GET", "/foo/x/bar"));
    ck_assert(!ag_rules_match(r, "GET", "/foo/secret%23/bar")); /* CVE-2026-41059 */
    ck_assert(!ag_rules_match(r, "GET", "/foo/secret%3F/bar"));
    ck_assert(!ag_rules_match(r, "GET", "/foo/secret%3f/bar"));
    ag_rules_free(r);

    static const char *const r3[] = {"^/public/"};
    r = rules(r3, 1);
    ck_assert(ag_rules_match(r, "GET", "/public/logo.png"));
    ck_assert(!ag_rules_match(r, "GET", "/public/../admin")); /* GHSA-p224-6x5r-fjpm */
    ck_assert(!ag_rules_match(r, "GET", "/public/%2e%2e/admin"));
    ck_assert(!ag_rules_match(r, "GET", "/public/..;/admin"));
    ck_assert(!ag_rules_match(r, "GET", "/public/%2e%2e;/admin"));
    ck_assert(!ag_rules_match(r, "GET", "/public/%2e%2e%2fadmin"));
    ck_assert(!ag_rules_match(r, "GET", "/public%2f..%2fadmin"));
    ck_assert(!ag_rules_match(r, "GET", "/public/%00/../admin"));
    ck_assert(!ag_rules_match(r, "GET", "/public\\..\\admin"));
    /* found in authgate itself: merged slashes and parameters in a dot segment */
    ck_assert(!ag_rules_match(r, "GET", "/public//../admin/x"));
    ck_assert(!ag_rules_match(r, "GET", "/admin/..;/public/x"));
    ck_assert(!ag_rules_match(r, "GET", "/public/..%2f..%2fadmin"));
    ck_assert(!ag_rules_match(r, "GET", "/public/%252e%252e/admin"));
    /* a reading that does not match (raw /%70ublic, upper case) means no skip */
    ck_assert(!ag_rules_match(r, "GET", "/%70ublic/x"));
    ck_assert(!ag_rules_match(r, "GET", "/PUBLIC/x"));
    ck_assert(ag_rules_match(r, "GET", "/public/caf%C3%A9.png"));
    ag_rules_free(r);
}
END_TEST

START_TEST(strict_rules_any_reading)
{
    static const char *const v[] = {"^/admin/ api:admin", "POST=^/api/ api:write", "!=^/ok/ base"};
    struct ag_rules *r = NULL;
    const char *need[8];
    size_t n = 0;
    char err[256];

    ck_assert_int_eq(ag_rules_new_scoped(v, 3, &r, err, sizeof(err)), AG_OK);
#define NEEDS(method, path, want)                                                                            \
    do {                                                                                                     \
        ck_assert_int_eq(ag_rules_collect(r, method, path, need, 8, &n), AG_OK);                             \
        ck_assert_msg(n == (want), "%s %s: %zu rules apply, want %d", method, path, n, (int)(want));         \
    } while (0)
    NEEDS("GET", "/ok/x", 0);
    NEEDS("GET", "/admin/x", 2); /* ^/admin/ and != ^/ok/ */
    ck_assert_str_eq(need[0], "api:admin");
    NEEDS("GET", "/ADMIN/x", 2);   /* a case-insensitive app serves /admin/x */
    NEEDS("GET", "/%61dmin/x", 2); /* decoded */
    NEEDS("GET", "/%41DMIN/x", 2); /* decoded, any case */
    NEEDS("GET", "/OK/x", 1);      /* != ^/ok/ applies: not /ok/ as written */
    NEEDS("GET", "/%6fk/x", 1);    /* the raw reading is not /ok/ */
    NEEDS("post", "/api/x", 2);    /* strict rules take the method in any case */
    NEEDS("POST", "/API/x", 2);
    /* ambiguous: every rule whose method fits */
    NEEDS("GET", "//admin/x", 2);
    NEEDS("GET", "/ok/..;/admin/x", 2);
    NEEDS("GET", "/ok//../admin/x", 2);
    NEEDS("GET", "/ok/%2e%2e/admin/x", 2);
    NEEDS("GET", "/ok/x%2f..%2f..%2fadmin/x", 2);
    NEEDS("POST", "/ok/%2e%2e/api/x", 3);
    NEEDS("GET", "/ok/a;b", 2);
#undef NEEDS
    ck_assert_int_eq(ag_rules_collect(r, "POST", "//x", need, 2, &n), AG_ERR_TOO_LARGE);
    ag_rules_free(r);
    ck_assert_int_eq(ag_rules_collect(NULL, "GET", "//x", need, 8, &n), AG_OK);
    ck_assert_uint_eq(n, 0);
}
END_TEST

START_TEST(methods_and_negation)
{
    static const char *const v[] = {"GET=^/health$", "POST!=^/write"};
    struct ag_rules *r = rules(v, 2);
    ck_assert(ag_rules_match(r, "GET", "/health"));
    ck_assert(!ag_rules_match(r, "get", "/health")); /* lenient: the method exactly as written */
    /* POST!=^/write skips POSTs to anything but /write... */
    ck_assert(ag_rules_match(r, "POST", "/other"));
    ck_assert(!ag_rules_match(r, "POST", "/write"));
    ck_assert(!ag_rules_match(r, "DELETE", "/other"));
    ag_rules_free(r);
    /* ...and !=^/secure/ skips every method outside /secure/ */
    static const char *const u[] = {"!=^/secure/"};
    r = rules(u, 1);
    ck_assert(ag_rules_match(r, "DELETE", "/x"));
    ck_assert(!ag_rules_match(r, "DELETE", "/secure/x"));
    ck_assert(!ag_rules_match(r, "GET", "/secure/../secure/x"));
    ck_assert(!ag_rules_match(r, "GET", "/SECURE/x"));   /* a case-insensitive app's /secure/x */
    ck_assert(!ag_rules_match(r, "GET", "/%73ecure/x")); /* decoded, /secure/x */
    ag_rules_free(r);

    static const char *const w[] = {"GET=^/health$"};
    r = rules(w, 1);
    ck_assert(!ag_rules_match(r, "POST", "/health"));
    ck_assert(!ag_rules_match(r, "GET", "/health/x"));
    ck_assert(!ag_rules_match(r, NULL, "/health"));
    ag_rules_free(r);
    ck_assert(!ag_rules_match(NULL, "GET", "/health"));
}
END_TEST

START_TEST(bad_rules)
{
    static const char *const bad[] = {
        "^/a(",
        "GET=[z-a]",
        /* what glibc's regcomp() needs exponential time or memory for (found by fuzz_toml) */
        "^/a++++++++++++++++++++++",
        "^/a{2}{2}{2}{2}{2}",
        "((((a+)+)+)+)+",
        "((a{20}){20}){20}",
        "a{1001}",
        "((((a*)?)+){1,3})*",
    };
    struct ag_rules *r = NULL;
    char err[256];
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ck_assert_int_eq(ag_rules_new(&bad[i], 1, &r, err, sizeof(err)), AG_ERR_INVALID);
        ck_assert_ptr_null(r);
        ck_assert_ptr_nonnull(strstr(err, "rule 1"));
    }
    char long_re[1100];
    memset(long_re, 'a', sizeof(long_re) - 1);
    long_re[sizeof(long_re) - 1] = '\0';
    const char *lr = long_re;
    ck_assert_int_eq(ag_rules_new(&lr, 1, &r, err, sizeof(err)), AG_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(err, "longer than 1024"));
    /* what routes need still compiles */
    static const char *const good[] = {"^/api/(v[0-9]+/)?users/.*$",
                                       "^/(a|b)*(c|d)+[x]{1,5}$",
                                       "^/a{2}{2}",
                                       "((a+)*)+",
                                       "^/[]a(+*{]+/\\(x\\)+$",
                                       "^/x{255}",
                                       "^/[[:alpha:]]+(/[^/]+)*$"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        ck_assert_msg(ag_rules_new(&good[i], 1, &r, err, sizeof(err)) == AG_OK, "%s: %s", good[i], err);
        ag_rules_free(r);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("rules");
    TCase *tc = tcase_create("rules");
    tcase_add_test(tc, attacks_need_auth);
    tcase_add_test(tc, strict_rules_any_reading);
    tcase_add_test(tc, methods_and_negation);
    tcase_add_test(tc, bad_rules);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
