/* SPDX-License-Identifier: Apache-2.0
 * Unit tests for src/router.c: own endpoints match exactly on the raw path; encoded, dotted or
 * suffixed variants fall to the protected default route, never to an own endpoint. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "router.h"

static struct ag_config cfg;

static void setup(void)
{
    memset(&cfg, 0, sizeof(cfg));
    cfg.proxy_prefix = "/oauth2";
    cfg.ping_path = "/ping";
    cfg.ready_path = "/ready";
}

static enum ag_route_id route(const char *path)
{
    return ag_router_match(&cfg, path, strcspn(path, "?#"))->id;
}

START_TEST(own_endpoints)
{
    ck_assert_int_eq(route("/ping"), AG_ROUTE_PING);
    ck_assert_int_eq(route("/ping?x=1"), AG_ROUTE_PING);
    ck_assert_int_eq(route("/ready"), AG_ROUTE_READY);
    ck_assert_int_eq(route("/robots.txt"), AG_ROUTE_ROBOTS);
}
END_TEST

START_TEST(variants_are_not_own_endpoints)
{
    static const char *const paths[] = {"/ping/",  "/pingx",   "/PING",        "/%70ing",       "//ping",
                                        "/./ping", "/ping%00", "/robots.txt/", "/x/../ping",    "/ping;x",
                                        "/ready/", "/readyz",  "/Robots.txt",  "/robots%2etxt", ""};
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++)
        ck_assert_msg(route(paths[i]) == AG_ROUTE_DEFAULT, "%s routed to an own endpoint", paths[i]);
}
END_TEST

START_TEST(prefix)
{
    ck_assert_int_eq(route("/oauth2/nope"), AG_ROUTE_PREFIX_UNKNOWN);
    ck_assert_int_eq(route("/oauth2"), AG_ROUTE_PREFIX_UNKNOWN);
    ck_assert_int_eq(route("/oauth2/"), AG_ROUTE_PREFIX_UNKNOWN);
    ck_assert_int_eq(route("/oauth2x"), AG_ROUTE_DEFAULT);
    ck_assert_int_eq(route("/oauth"), AG_ROUTE_DEFAULT);
    ck_assert_int_eq(route("/app/oauth2/start"), AG_ROUTE_DEFAULT);
}
END_TEST

START_TEST(configured_paths)
{
    cfg.ping_path = "/healthz";
    cfg.ready_path = "/readyz";
    cfg.proxy_prefix = "/auth";
    ck_assert_int_eq(route("/healthz"), AG_ROUTE_PING);
    ck_assert_int_eq(route("/ping"), AG_ROUTE_DEFAULT);
    ck_assert_int_eq(route("/readyz"), AG_ROUTE_READY);
    ck_assert_int_eq(route("/auth/x"), AG_ROUTE_PREFIX_UNKNOWN);
    ck_assert_int_eq(route("/oauth2/x"), AG_ROUTE_DEFAULT);
}
END_TEST

START_TEST(length_is_respected)
{
    /* the router compares only `len` bytes: the query never takes part */
    ck_assert_int_eq(ag_router_match(&cfg, "/pingpong", 5)->id, AG_ROUTE_PING);
    ck_assert_int_eq(ag_router_match(&cfg, "/ping", 4)->id, AG_ROUTE_DEFAULT);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("router");
    TCase *tc = tcase_create("router");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, own_endpoints);
    tcase_add_test(tc, variants_are_not_own_endpoints);
    tcase_add_test(tc, prefix);
    tcase_add_test(tc, configured_paths);
    tcase_add_test(tc, length_is_respected);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
