/* SPDX-License-Identifier: Apache-2.0
 * Unit tests for src/auth/rules.c: skip-auth and API route rules match the decoded, normalised path
 * only; the advisory inputs of ../shared/ATTACKS.md never skip authentication. */
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

START_TEST(normalize)
{
    static const struct {
        const char *in, *out;
    } v[] = {
        {"/a/b", "/a/b"},
        {"/a/./b", "/a/b"},
        {"/a/../b", "/b"},
        {"/public/../admin", "/admin"},
        {"/public/%2e%2e/admin", "/admin"},
        {"/public/%2E%2E/admin", "/admin"},
        {"/public/..;/admin", "/admin"},
        {"/public/.;x/admin", "/public/admin"},
        {"/../../x", "/x"},
        {"/a/b/..", "/a/"},
        {"/a/b/.", "/a/b/"},
        {"/", "/"},
        {"/a/", "/a/"},
        {"/api/x?path=/status", "/api/x"},
        {"/foo/secret%23/bar", "/foo/secret"},
        {"/foo%3fx=/bar", "/foo"},
        {"/a%20b", "/a b"},
        {"/a#frag", "/a"},
    };
    char out[256];
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        ck_assert_msg(ag_rules_normalize(v[i].in, out, sizeof(out)) == AG_OK, "refused %s", v[i].in);
        ck_assert_msg(strcmp(out, v[i].out) == 0, "%s -> %s, want %s", v[i].in, out, v[i].out);
    }
    static const char *const bad[] = {"", "a", "/%00", "/a%0a", "/a\\b", "/a%5cb", "/%zz", "/%2", "/a\tb"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(ag_rules_normalize(bad[i], out, sizeof(out)) != AG_OK, "accepted %s", bad[i]);
}
END_TEST

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
    ag_rules_free(r);
}
END_TEST

START_TEST(methods_and_negation)
{
    static const char *const v[] = {"GET=^/health$", "POST!=^/write"};
    struct ag_rules *r = rules(v, 2);
    ck_assert(ag_rules_match(r, "GET", "/health"));
    ck_assert(ag_rules_match(r, "get", "/health"));
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
    static const char *const bad[] = {"^/a(", "GET=[z-a]"};
    struct ag_rules *r = NULL;
    char err[256];
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ck_assert_int_eq(ag_rules_new(&bad[i], 1, &r, err, sizeof(err)), AG_ERR_INVALID);
        ck_assert_ptr_null(r);
        ck_assert_ptr_nonnull(strstr(err, "rule 1"));
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("rules");
    TCase *tc = tcase_create("rules");
    tcase_add_test(tc, normalize);
    tcase_add_test(tc, attacks_need_auth);
    tcase_add_test(tc, methods_and_negation);
    tcase_add_test(tc, bad_rules);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
