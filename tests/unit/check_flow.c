/* SPDX-License-Identifier: Apache-2.0
 * Unit tests for the CSRF cookie of src/oidc/flow.c (ag_flow_csrf_seal and ag_flow_csrf_open): what
 * /oauth2/start seals comes back at the callback unchanged, bound to the cookie name and the secret, and a
 * return target of any length the redirect check accepts gives a cookie a browser keeps. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "net/redirect.h"
#include "oidc/flow.h"
#include "request.h"
#include "util/b64.h"
#include "util/crypto.h"

#define NAME "_oauth2_proxy_csrf"

static struct ag_app app;

static struct ag_request *bare_request(void)
{
    struct ag_request *rq = calloc(1, sizeof(*rq));
    ck_assert_ptr_nonnull(rq);
    for (size_t i = 0; i < sizeof(app.csrf_key); i++)
        app.csrf_key[i] = (unsigned char)(i + 1);
    rq->app = &app;
    return rq;
}

static struct ag_csrf record(const char *rd)
{
    struct ag_csrf c = {"st4te-st4te-st4te-st4te-st4te-st",
                        "n0nce-n0nce-n0nce-n0nce-n0nce-n0",
                        "v3rifier-v3rifier-v3rifier-v3rifier-v3rifi",
                        "https://auth.example.com/oauth2/callback",
                        rd,
                        1700000900};
    return c;
}

/* A path of n bytes the redirect check accepts. */
static char *long_path(size_t n)
{
    char *p = malloc(n + 1);
    ck_assert_ptr_nonnull(p);
    for (size_t i = 0; i < n; i++)
        p[i] = i == 0 ? '/' : (i % 10 == 0 ? '/' : (char)('a' + i % 26));
    p[n] = '\0';
    ck_assert_int_eq(ag_redirect_check(NULL, p, NULL, NULL), AG_OK);
    return p;
}

START_TEST(round_trip)
{
    struct ag_request *rq = bare_request();
    struct ag_csrf c = record("/app/page?x=1&y=%2F"), r;
    const char *v = ag_flow_csrf_seal(rq, NAME, &c);

    ck_assert_ptr_nonnull(v);
    ck_assert(ag_flow_csrf_open(rq, NAME, v, &r));
    ck_assert_str_eq(r.state, c.state);
    ck_assert_str_eq(r.nonce, c.nonce);
    ck_assert_str_eq(r.verifier, c.verifier);
    ck_assert_str_eq(r.uri, c.uri);
    ck_assert_str_eq(r.rd, c.rd);
    ck_assert_int_eq(r.expires_at, c.expires_at);
    /* without PKCE the verifier stays absent */
    c.verifier = NULL;
    v = ag_flow_csrf_seal(rq, NAME, &c);
    ck_assert(ag_flow_csrf_open(rq, NAME, v, &r));
    ck_assert_ptr_null(r.verifier);
    ag_request_free(rq);
}
END_TEST

START_TEST(bound_to_name_and_key)
{
    struct ag_request *rq = bare_request();
    struct ag_csrf c = record("/"), r;
    char *v = strdup(ag_flow_csrf_seal(rq, NAME, &c));

    ck_assert_ptr_nonnull(v);
    ck_assert(!ag_flow_csrf_open(rq, NAME "_abc", v, &r));
    ck_assert_ptr_null(r.state);
    v[strlen(v) / 2] = v[strlen(v) / 2] == 'A' ? 'B' : 'A';
    ck_assert(!ag_flow_csrf_open(rq, NAME, v, &r));
    v[strlen(v) / 2] = '\0';
    ck_assert(!ag_flow_csrf_open(rq, NAME, v, &r));
    ck_assert(!ag_flow_csrf_open(rq, NAME, "", &r));
    free(v);
    ag_request_free(rq);
}
END_TEST

/* Found by tests/fuzz/fuzz_csrf: a return target the redirect check accepts (up to 8 KiB) made the record
 * outgrow its 4 KiB buffer, the seal failed and /oauth2/start answered 500. A target over AG_FLOW_RD_MAX
 * is now kept as "/", and the cookie always fits what a browser stores (4096 bytes, name included). */
START_TEST(long_return_target)
{
    static const size_t lengths[] = {AG_FLOW_RD_MAX - 1, AG_FLOW_RD_MAX, AG_FLOW_RD_MAX + 1, 4000, 5000,
                                     AG_REDIRECT_MAX};
    struct ag_request *rq = bare_request();

    for (size_t i = 0; i < sizeof(lengths) / sizeof(lengths[0]); i++) {
        char *rd = long_path(lengths[i]);
        struct ag_csrf c = record(rd), r;
        const char *v = ag_flow_csrf_seal(rq, NAME, &c);
        ck_assert_msg(v != NULL, "rd of %zu bytes: no cookie", lengths[i]);
        ck_assert_msg(strlen(NAME) + 1 + strlen(v) <= 4096, "rd of %zu bytes: a cookie of %zu bytes",
                      lengths[i], strlen(v));
        ck_assert(ag_flow_csrf_open(rq, NAME, v, &r));
        ck_assert_str_eq(r.state, c.state);
        ck_assert_str_eq(r.uri, c.uri);
        ck_assert_str_eq(r.rd, lengths[i] <= AG_FLOW_RD_MAX ? rd : "/");
        free(rd);
    }
    ag_request_free(rq);
}
END_TEST

/* A plaintext sealed the way the cookie is, as its base64url value in the arena. */
static const char *seal_plain(struct ag_request *rq, const char *pt)
{
    unsigned char sealed[512];
    size_t n = 0;
    char *v = ag_request_alloc(rq, AG_B64URL_LEN(sizeof(sealed)) + 1);

    ck_assert_uint_lt(strlen(pt) + AG_SEAL_OVERHEAD, sizeof(sealed));
    ck_assert_int_eq(ag_seal(app.csrf_key, NAME, strlen(NAME), pt, strlen(pt), sealed, &n), AG_OK);
    ag_b64url_encode(sealed, n, v, AG_B64URL_LEN(sizeof(sealed)) + 1);
    return v;
}

/* Found by tests/fuzz/fuzz_csrf: format 1 (JSON) records were read without format 2's rules, so an empty
 * state (which an empty `state` parameter at the callback would match), nonce, URI or return target, or
 * an empty verifier, was taken. Only a holder of the cookie secret can seal one, but both readers must
 * accept the same records. */
START_TEST(format1_held_to_format2_rules)
{
    struct ag_request *rq = bare_request();
    struct ag_csrf r;

    ck_assert(ag_flow_csrf_open(
        rq, NAME,
        seal_plain(rq,
                   "{\"s\":\"st\",\"n\":\"no\",\"v\":\"ve\",\"u\":\"https://a/cb\",\"r\":\"/x\",\"e\":5}"),
        &r));
    ck_assert_str_eq(r.verifier, "ve");
    ck_assert_str_eq(r.rd, "/x");
    ck_assert_int_eq(r.expires_at, 5);
    ck_assert(ag_flow_csrf_open(
        rq, NAME, seal_plain(rq, "{\"s\":\"st\",\"n\":\"no\",\"u\":\"https://a/cb\",\"r\":\"/x\",\"e\":5}"),
        &r));
    ck_assert_ptr_null(r.verifier);
    static const char *const bad[] = {
        "{\"s\":\"\",\"n\":\"no\",\"u\":\"https://a/cb\",\"r\":\"/x\",\"e\":5}",
        "{\"s\":\"st\",\"n\":\"\",\"u\":\"https://a/cb\",\"r\":\"/x\",\"e\":5}",
        "{\"s\":\"st\",\"n\":\"no\",\"v\":\"\",\"u\":\"https://a/cb\",\"r\":\"/x\",\"e\":5}",
        "{\"s\":\"st\",\"n\":\"no\",\"u\":\"\",\"r\":\"/x\",\"e\":5}",
        "{\"s\":\"st\",\"n\":\"no\",\"u\":\"https://a/cb\",\"r\":\"\",\"e\":5}",
        "{\"s\":\"st\",\"n\":\"no\",\"u\":\"https://a/cb\",\"r\":\"/x\"}",
        "{\"s\":\"st\",\"s\":\"st\",\"n\":\"no\",\"u\":\"https://a/cb\",\"r\":\"/x\",\"e\":5}",
        "{\"s\":1,\"n\":\"no\",\"u\":\"https://a/cb\",\"r\":\"/x\",\"e\":5}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(!ag_flow_csrf_open(rq, NAME, seal_plain(rq, bad[i]), &r), "opened %s", bad[i]);
    ag_request_free(rq);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("flow");
    TCase *tc = tcase_create("csrf");
    tcase_add_test(tc, round_trip);
    tcase_add_test(tc, bound_to_name_and_key);
    tcase_add_test(tc, long_return_target);
    tcase_add_test(tc, format1_held_to_format2_rules);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
