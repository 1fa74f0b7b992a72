/* SPDX-License-Identifier: Apache-2.0
 * Unit tests for src/auth/path.c: which request paths are ambiguous (front ends and apps read them
 * differently), and the two readings of the others. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "auth/path.h"

START_TEST(readings)
{
    static const struct {
        const char *in, *raw, *decoded;
    } v[] = {
        {"/", "/", "/"},
        {"/a/b", "/a/b", "/a/b"},
        {"/a/", "/a/", "/a/"},
        {"/a/b/", "/a/b/", "/a/b/"},
        {"/api/x?path=/status", "/api/x", "/api/x"},
        {"/api/x?a=/../b;c%2f", "/api/x", "/api/x"}, /* the query is not the path */
        {"/a%20b", "/a%20b", "/a b"},
        {"/%70ublic/x", "/%70ublic/x", "/public/x"},
        {"/caf%C3%A9", "/caf%C3%A9", "/caf\xc3\xa9"},
        {"/a.b/.c/..d/...", "/a.b/.c/..d/...", "/a.b/.c/..d/..."},
        {"/a+b:c@d!$&'()*,=~", "/a+b:c@d!$&'()*,=~", "/a+b:c@d!$&'()*,=~"},
    };
    struct ag_path p;
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        ag_path_read(v[i].in, &p);
        ck_assert_msg(!p.ambiguous, "%s read as ambiguous", v[i].in);
        ck_assert_str_eq(p.raw, v[i].raw);
        ck_assert_str_eq(p.decoded, v[i].decoded);
    }
}
END_TEST

START_TEST(ambiguous)
{
    static const char *const v[] = {
        NULL,
        "",
        "a",
        "*",
        "http://host/x",
        "?x",
        /* empty segments: nginx, Envoy (merge_slashes) and Tomcat merge them, others do not */
        "//",
        "//admin/x",
        "/public//../admin/x",
        "/a//b",
        "/a///",
        /* dot segments, raw, encoded and with parameters */
        "/.",
        "/..",
        "/a/.",
        "/a/..",
        "/a/./b",
        "/public/../admin",
        "/%2e/x",
        "/%2E%2E/x",
        "/public/%2e%2e/admin",
        "/public/.%2e/admin",
        "/public/..;/admin",
        "/admin/..;/public/x",
        "/public/.;x/admin",
        "/a/..;",
        /* parameters anywhere: Tomcat and Spring cut them, nginx and Envoy do not */
        "/admin;x/y",
        "/;/admin",
        "/a;",
        "/public;jsessionid=1/x",
        /* encoded separators, query and fragment starts, the escape itself, NUL and controls */
        "/a%2fb",
        "/a%2Fb",
        "/a%5cb",
        "/a%5Cb",
        "/a%3bb",
        "/a%3Bb",
        "/foo/secret%23/bar",
        "/foo%3fx=/bar",
        "/a%25b",
        "/public/%252e%252e/admin",
        "/a%00b",
        "/a%0ab",
        "/a%0D",
        "/a%1f",
        "/a%7f",
        /* raw backslash, fragment, space and controls */
        "/a\\b",
        "/public\\..\\admin",
        "/a#frag",
        "/a b",
        "/a\tb",
        "/a\x7f",
        /* malformed escapes */
        "/%",
        "/%4",
        "/%zz",
        "/a%g0",
        "/a%",
    };
    struct ag_path p;
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        ag_path_read(v[i], &p);
        ck_assert_msg(p.ambiguous, "%s read as canonical", v[i] ? v[i] : "(null)");
    }
}
END_TEST

START_TEST(too_long)
{
    char *s = malloc(AG_PATH_MAX + 2);
    struct ag_path p;
    ck_assert_ptr_nonnull(s);
    s[0] = '/';
    memset(s + 1, 'a', AG_PATH_MAX);
    s[AG_PATH_MAX + 1] = '\0';
    ag_path_read(s, &p);
    ck_assert(p.ambiguous);
    s[AG_PATH_MAX - 1] = '\0'; /* the longest that is read */
    ag_path_read(s, &p);
    ck_assert(!p.ambiguous);
    ck_assert_uint_eq(strlen(p.raw), AG_PATH_MAX - 1);
    free(s);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("path");
    TCase *tc = tcase_create("path");
    tcase_add_test(tc, readings);
    tcase_add_test(tc, ambiguous);
    tcase_add_test(tc, too_long);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
