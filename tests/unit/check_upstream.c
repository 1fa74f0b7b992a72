/* SPDX-License-Identifier: Apache-2.0
 * Unit tests for src/net/upstream.c: parsing upstream URLs (http, https, unix, host=) and choosing one
 * for a request: host-specific first, longest path prefix, exact paths. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "handle/files.h"
#include "net/upstream.h"

static struct ag_upstreams table(const char *const *urls, size_t n)
{
    struct ag_upstreams t = {calloc(n, sizeof(struct ag_upstream)), n};
    char err[160];
    ck_assert_ptr_nonnull(t.v);
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(ag_upstream_parse(urls[i], &t.v[i], err, sizeof(err)) == AG_OK, "%s: %s", urls[i], err);
    return t;
}

static void table_free(struct ag_upstreams *t)
{
    for (size_t i = 0; i < t->n; i++)
        ag_upstream_clear(&t->v[i]);
    free(t->v);
}

/* Which entry (index) a request goes to, -1 for none. */
static int pick(const struct ag_upstreams *t, const char *host, const char *path)
{
    const struct ag_upstream *u = ag_upstreams_match(t, host, path, strcspn(path, "?"));
    return u == NULL ? -1 : (int)(u - t->v);
}

START_TEST(parse)
{
    struct ag_upstream u;
    char err[160];

    ck_assert_int_eq(ag_upstream_parse("https://app.internal:8443/api/", &u, err, sizeof(err)), AG_OK);
    ck_assert_str_eq(u.origin, "https://app.internal:8443");
    ck_assert_str_eq(u.authority, "app.internal:8443");
    ck_assert_str_eq(u.path, "/api/");
    ck_assert(!u.exact);
    ck_assert_ptr_null(u.host);
    ag_upstream_clear(&u);
    ck_assert_int_eq(ag_upstream_parse("http://x", &u, err, sizeof(err)), AG_OK);
    ck_assert_str_eq(u.path, "/");
    ag_upstream_clear(&u);
    ck_assert_int_eq(ag_upstream_parse("http://x/metrics", &u, err, sizeof(err)), AG_OK);
    ck_assert(u.exact);
    ag_upstream_clear(&u);
    ck_assert_int_eq(ag_upstream_parse("Grafana.Example.COM=unix:///run/g.sock#/g/", &u, err, sizeof(err)),
                     AG_OK);
    ck_assert_str_eq(u.host, "grafana.example.com");
    ck_assert_str_eq(u.unix_path, "/run/g.sock");
    ck_assert_str_eq(u.origin, "http://localhost");
    ck_assert_str_eq(u.path, "/g/");
    ag_upstream_clear(&u);
    /* a '=' in the path is not a host */
    ck_assert_int_eq(ag_upstream_parse("http://x/a=b/", &u, err, sizeof(err)), AG_OK);
    ck_assert_ptr_null(u.host);
    ck_assert_str_eq(u.path, "/a=b/");
    ag_upstream_clear(&u);
    const char *bad[] = {"ftp://x/",           "http://",       "http://u:p@x/",   "http://x/?q",
                         "http://x/#f",        "http://x/a b",  "unix://rel.sock", "unix:///s#x",
                         "=http://x/",         "h:1=http://x/", "http://x\r\n/",   "file://srv/www",
                         "file:///srv#static/"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ck_assert_msg(ag_upstream_parse(bad[i], &u, err, sizeof(err)) == AG_ERR_INVALID, "accepted %s",
                      bad[i]);
        ck_assert_ptr_null(u.origin); /* nothing left to free */
    }
}
END_TEST

/* Found by tests/fuzz/fuzz_upstream (LeakSanitizer): a refused "host=URL" kept its copy of the host. A
 * refused upstream must leave nothing to free, whichever check refused it. */
START_TEST(refused_host_prefix_leaves_nothing)
{
    static const char *const bad[] = {
        "app.example=ftp://x/",        "app.example=http://",     "app.example=http://u:p@x/",
        "app.example=http://x/?q",     "app.example=http://x/#f", "app.example=http://x/a b",
        "app.example=unix://rel.sock", "app.example=unix:///s#x", "app.example=file:///srv#static/",
        "App.Example=static://200"};
    struct ag_upstream u;
    char err[160];

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        ck_assert_msg(ag_upstream_parse(bad[i], &u, err, sizeof(err)) == AG_ERR_INVALID, "accepted %s",
                      bad[i]);
        ck_assert_msg(err[0] != '\0', "%s: no reason", bad[i]);
        ck_assert_msg(u.host == NULL && u.unix_path == NULL && u.file_dir == NULL && u.origin == NULL &&
                          u.authority == NULL && u.path == NULL,
                      "%s: refused, but something is left to free (host %p)", bad[i], (void *)u.host);
    }
}
END_TEST

START_TEST(routing)
{
    const char *urls[] = {
        "http://a/",                               /* 0 */
        "http://b/api/",                           /* 1 */
        "http://c/api/admin/",                     /* 2 */
        "http://d/health",                         /* 3: exact */
        "grafana.example.com=http://g/",           /* 4 */
        "grafana.example.com=http://g2/api/live/", /* 5 */
    };
    struct ag_upstreams t = table(urls, 6);

    ck_assert_int_eq(pick(&t, "app.example.com", "/"), 0);
    ck_assert_int_eq(pick(&t, "app.example.com", "/api"), 0); /* "/api/" is a prefix with its slash */
    ck_assert_int_eq(pick(&t, "app.example.com", "/api/x?y=/api/admin/"), 1);
    ck_assert_int_eq(pick(&t, "app.example.com", "/api/admin/users"), 2);
    ck_assert_int_eq(pick(&t, "app.example.com", "/health"), 3);
    ck_assert_int_eq(pick(&t, "app.example.com", "/health/x"), 0);
    ck_assert_int_eq(pick(&t, "app.example.com", "/healthz"), 0);
    /* a host's own upstreams first, whatever the path length of the others; any port, any case */
    ck_assert_int_eq(pick(&t, "grafana.example.com", "/api/admin/x"), 4);
    ck_assert_int_eq(pick(&t, "GRAFANA.example.com:8443", "/api/live/ws"), 5);
    ck_assert_int_eq(pick(&t, "grafana.example.com.evil", "/"), 0);
    ck_assert_int_eq(pick(&t, NULL, "/x"), 0);
    table_free(&t);

    const char *only[] = {"http://b/api/", "http://d/health"};
    t = table(only, 2);
    ck_assert_int_eq(pick(&t, "x", "/"), -1);
    ck_assert_int_eq(pick(&t, "x", "/health/"), -1);
    table_free(&t);
}
END_TEST

/* What file a request path maps to under "file://DIR#PREFIX", or "404". */
static const char *mapped(const char *url, const char *path)
{
    static char out[512];
    struct ag_upstream u;
    char err[160];
    enum ag_rc rc;

    ck_assert_msg(ag_upstream_parse(url, &u, err, sizeof(err)) == AG_OK, "%s: %s", url, err);
    rc = ag_files_map(&u, path, strlen(path), out, sizeof(out));
    ag_upstream_clear(&u);
    return rc == AG_OK ? out : "404";
}

START_TEST(files)
{
    struct ag_upstream u;
    char err[160];

    ck_assert_int_eq(ag_upstream_parse("file:///srv/www/#/static/", &u, err, sizeof(err)), AG_OK);
    ck_assert_str_eq(u.file_dir, "/srv/www");
    ck_assert_str_eq(u.path, "/static/");
    ag_upstream_clear(&u);
    ck_assert_str_eq(mapped("file:///srv/www#/static/", "/static/app.js"), "/srv/www/app.js");
    ck_assert_str_eq(mapped("file:///srv/www#/static/", "/static/"), "/srv/www/");
    ck_assert_str_eq(mapped("file:///srv/www#/static/", "/static/css//x%20y.css"), "/srv/www/css/x y.css");
    ck_assert_str_eq(mapped("file:///srv/www#/static/", "/static/dir/"), "/srv/www/dir");
    ck_assert_str_eq(mapped("file:///srv/www", "/index.html"), "/srv/www/index.html");
    ck_assert_str_eq(mapped("file:///srv/logo.png#/logo.png", "/logo.png"), "/srv/logo.png");
    /* never out of the directory, never a hidden name, never an ambiguous byte */
    const char *refused[] = {"/static/../etc/passwd", "/static/%2e%2e/etc/passwd",
                             "/static/a/../../x",     "/static/.git/config",
                             "/static/.env",          "/static/a%2fb",
                             "/static/a%00b",         "/static/a\\b",
                             "/static/%zz",           "/static/%2",
                             "/other/app.js",         "/static"};
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++)
        ck_assert_msg(strcmp(mapped("file:///srv/www#/static/", refused[i]), "404") == 0, "served %s as %s",
                      refused[i], mapped("file:///srv/www#/static/", refused[i]));
    ck_assert_str_eq(mapped("file:///srv/logo.png#/logo.png", "/logo.png/x"), "404");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("upstream");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, parse);
    tcase_add_test(tc, refused_host_prefix_leaves_nothing);
    tcase_add_test(tc, routing);
    tcase_add_test(tc, files);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
