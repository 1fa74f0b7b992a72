/* SPDX-License-Identifier: Apache-2.0
 * Unit tests for src/net/cookie.c: how a Cookie header is split into pairs, and which pairs are
 * authgate's own (found as the session, never forwarded), also behind a comma. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "net/cookie.h"

/* The pairs of `header` as "name=value|" strings, for comparison. */
static void pairs(const char *header, char *out, size_t cap)
{
    const char *pos = header, *end = header + strlen(header);
    struct ag_cookie_pair p;
    size_t o = 0;
    out[0] = '\0';
    while (ag_cookie_next(&pos, end, &p)) {
        int n = snprintf(out + o, cap - o, "%.*s=%.*s|", (int)p.name_len, p.name, (int)p.value_len, p.value);
        ck_assert(n > 0 && (size_t)n < cap - o);
        o += (size_t)n;
    }
}

START_TEST(splitting)
{
    static const struct {
        const char *in, *want;
    } v[] = {
        {"a=1", "a=1|"},
        {"a=1; b=2", "a=1|b=2|"},
        {"a=1;b=2", "a=1|b=2|"},
        {" a = 1 ;\tb=2\t", "a=1|b=2|"},
        {"_oauth2_proxy =v1.x", "_oauth2_proxy=v1.x|"},
        {"a=1,_oauth2_proxy=v1.x", "a=1,_oauth2_proxy=v1.x|"},
        {"a=b=c", "a=b=c|"},
        {"flag", "flag=|"},
        {"=v", "=v|"},
        {";", ""},
        {";;", ""},
        {"", ""},
        {" ; a=1 ;; ", "a=1|"},
        {"a=\"q;x\"", "a=\"q|x\"=|"}, /* no quoting: ';' always separates */
        {"%s%s%s%n%x=1", "%s%s%s%n%x=1|"},
    };
    char out[512];
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        pairs(v[i].in, out, sizeof(out));
        ck_assert_msg(strcmp(out, v[i].want) == 0, "\"%s\" -> \"%s\", want \"%s\"", v[i].in, out, v[i].want);
    }
}
END_TEST

static bool ours(const char *header, bool hidden)
{
    const char *pos = header, *end = header + strlen(header);
    struct ag_cookie_pair p;
    ck_assert(ag_cookie_next(&pos, end, &p));
    return ag_cookie_is_ours(&p, "_oauth2_proxy", hidden);
}

START_TEST(ours_and_hidden)
{
    ck_assert(ours("_oauth2_proxy=v1", false));
    ck_assert(ours(" _oauth2_proxy =v1", false));
    ck_assert(ours("_oauth2_proxy_csrf=x", false));
    ck_assert(ours("_oauth2_proxy_csrf_abc=x", false));
    ck_assert(ours("_oauth2_proxy", false));
    ck_assert(!ours("_oauth2_proxyx=1", false));
    ck_assert(!ours("_oauth2_prox=1", false));
    ck_assert(!ours("x_oauth2_proxy=1", false));
    ck_assert(!ours("_OAUTH2_PROXY=1", false)); /* cookie names are case-sensitive */
    /* behind a comma: never a session, never forwarded */
    ck_assert(!ours("a=1,_oauth2_proxy=v1", false));
    ck_assert(ours("a=1,_oauth2_proxy=v1", true));
    ck_assert(ours("a=1, _oauth2_proxy =v1", true));
    ck_assert(ours("a=1,\t_oauth2_proxy_csrf=v1", true));
    ck_assert(ours("a=x,y,_oauth2_proxy", true));
    ck_assert(!ours("a=1,2,3", true));
    ck_assert(!ours("a=1,_oauth2_proxyx=2", true));
    ck_assert(!ours("a=1,", true));
    ck_assert(ours("_oauth2_proxy,\t_x", true)); /* before the comma too (found by fuzz_cookie) */
    ck_assert(ours("_oauth2_proxy ,x=1", true));
    ck_assert(!ours("_oauth2_proxy,x=1", false));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("cookie");
    TCase *tc = tcase_create("cookie");
    tcase_add_test(tc, splitting);
    tcase_add_test(tc, ours_and_hidden);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
