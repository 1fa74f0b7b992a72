/* SPDX-License-Identifier: Apache-2.0
 * Unit tests for src/net/redirect.c: every redirect bypass in /work/shared/ATTACKS.md and its
 * neighbours is refused, ordinary targets pass, whitelist syntax is checked, and random input
 * never crashes, leaks or yields a redirect off the whitelist. */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "net/redirect.h"

static const char *const wl_entries[] = {"foo.bar", ".bar.foo", "port.bar:8080", "anyport.bar:*",
                                         "*.wildcard.bar"};
static struct ag_whitelist *wl;
static char err[256];

static void setup(void)
{
    ck_assert_int_eq(ag_whitelist_new(wl_entries, AG_ARRAY_LEN(wl_entries), &wl, err, sizeof(err)), AG_OK);
}

static void teardown(void)
{
    ag_whitelist_free(wl);
    wl = NULL;
}

static enum ag_rc check(const char *target)
{
    const char *why = NULL;
    enum ag_rc rc = ag_redirect_check(wl, target, NULL, &why);
    ck_assert_ptr_nonnull(why);
    return rc;
}

static void refuse_all(const char *const *targets, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const char *why = NULL;
        ck_assert_msg(ag_redirect_check(wl, targets[i], NULL, &why) == AG_ERR_INVALID, "accepted \"%s\"",
                      targets[i]);
        ck_assert_str_ne(why, "ok");
    }
}

static void allow_all(const char *const *targets, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const char *why = NULL;
        ck_assert_msg(ag_redirect_check(wl, targets[i], NULL, &why) == AG_OK, "refused \"%s\": %s",
                      targets[i], why);
        ck_assert_str_eq(why, "ok");
    }
}

START_TEST(allowed_relative)
{
    static const char *const t[] = {"/",
                                    "/app/page?x=1&y=%2F#frag",
                                    "/a/b/../c",
                                    "/a/b/./c",
                                    "/app",
                                    "/?rd=//evil.com",
                                    "/#//evil.com",
                                    "/app?x=a:b",
                                    "/app/x:y",
                                    "/my%20docs/file",
                                    "/a/%2F/b",
                                    "/a/%5c/b",
                                    "/a%09b",
                                    "/../app",
                                    "/..",
                                    "/.",
                                    "/./",
                                    "/%2e%2e/app",
                                    "/%255cevil.com",
                                    "/%252fevil.com",
                                    "/%2509/evil.com",
                                    "/%250a",
                                    "/a//b",
                                    "/~user/x;y=1",
                                    "/%41pp"};
    allow_all(t, AG_ARRAY_LEN(t));
}
END_TEST

START_TEST(refused_relative_backslash_and_slash)
{
    static const char *const t[] = {"/\\evil.com",    "//evil.com",     "///evil.com",     "////evil.com",
                                    "/\\/evil.com",   "/\\\\evil.com",  "/a\\b",           "/app\\",
                                    "\\evil.com",     "\\\\evil.com",   "\\/evil.com",     "%2f%5cevil.com",
                                    "%2F%5Cevil.com", "%2f%2fevil.com", "/%2f%5cevil.com", "/%5cevil.com",
                                    "/%5Cevil.com",   "/%2fevil.com",   "/%2Fevil.com",    "/%2f/evil.com"};
    refuse_all(t, AG_ARRAY_LEN(t));
}
END_TEST

START_TEST(refused_relative_encoded_blanks)
{
    static const char *const t[] = {
        "/%09/evil.com",   "/%0A/evil.com",     "/%0a/evil.com",    "/%0D/evil.com",    "/%0d/evil.com",
        "/%20/evil.com",   "/%09%5Cevil.com",   "/%09%5cevil.com",  "/%20%2F/evil.com", "/%09",
        "/%20abc",         "/.%2f/evil.com",    "/%2e%2f/evil.com", "/%2E%2F/evil.com", "/./%5cevil.com",
        "/../%2fevil.com", "/%2e/%09/evil.com", "/%0b/evil.com",    "/%0c/evil.com",    "/%1f/%2fevil.com"};
    refuse_all(t, AG_ARRAY_LEN(t));
}
END_TEST

START_TEST(refused_relative_literal_blanks)
{
    static const char *const t[] = {"/\t\t/\t/evil.com",  "/\t/evil.com",  "/\n/evil.com", "/\r/evil.com",
                                    "/ /evil.com",        " /evil.com",    "/evil.com ",   "\t//evil.com",
                                    "/\v/evil.com",       "/\f/evil.com",  "/a\x7f",       "/a\x01",
                                    "/\xc2\xa0/evil.com", "/\xe3\x80\x82", "/caf\xc3\xa9"};
    refuse_all(t, AG_ARRAY_LEN(t));
}
END_TEST

START_TEST(refused_relative_dot_segments)
{
    static const char *const t[] = {"/./\\evil.com",     "/./../../\\evil.com", "/.//evil.com",
                                    "/..//evil.com",     "/a/..//evil.com",     "/a/b/../..//evil.com",
                                    "/././/evil.com",    "/%2e//evil.com",      "/%2E%2E//evil.com",
                                    "/.%2e//evil.com",   "/a/%2e%2e//evil.com", "/./%09/evil.com",
                                    "/x/../\t/evil.com", "/x/..%2f%2fevil.com"};
    refuse_all(t, AG_ARRAY_LEN(t));
}
END_TEST

START_TEST(refused_schemes)
{
    static const char *const t[] = {"/JavaScript:alert(1)",
                                    "/javascript:alert(1)",
                                    "/javascript%3aalert(1)",
                                    "/a/../javascript:alert(1)",
                                    "javascript:alert(1)",
                                    "JAVASCRIPT:alert(1)",
                                    "JaVaScRiPt:alert(1)",
                                    "data:text/html,x",
                                    "DATA:text/html,x",
                                    "vbscript:x",
                                    "ftp://foo.bar/",
                                    "file:///etc/passwd",
                                    "http:foo.bar",
                                    "http:/foo.bar",
                                    "http:\\\\evil.com",
                                    "https:/\\evil.com",
                                    "mailto:a@foo.bar",
                                    "foo.bar",
                                    "evil.com/x",
                                    "?x=1",
                                    "#frag",
                                    ".",
                                    "./evil.com",
                                    "httpx://foo.bar/",
                                    "http//foo.bar"};
    refuse_all(t, AG_ARRAY_LEN(t));
}
END_TEST

START_TEST(refused_injection_and_size)
{
    static const char *const t[] = {"/a\r\nSet-Cookie: x=1",
                                    "/a\nb",
                                    "/a\rb",
                                    "/a%0d%0aSet-Cookie:x",
                                    "/a?x=%0D%0A",
                                    "/a#%00",
                                    "/a%00",
                                    "http://foo.bar/%0a",
                                    "https://foo.bar/?%0d",
                                    "/a%",
                                    "/a%4",
                                    "/a%zz",
                                    "/a%%30a",
                                    "/<script>",
                                    "/a\"onload=x",
                                    "/a`b",
                                    "http://foo.bar/\r\n",
                                    "http://foo.bar/>",
                                    ""};
    refuse_all(t, AG_ARRAY_LEN(t));
    ck_assert_int_eq(check(NULL), AG_ERR_INVALID);
    ck_assert_int_eq(ag_redirect_check(wl, NULL, NULL, NULL), AG_ERR_INVALID);
}
END_TEST

START_TEST(size_limit)
{
    char *big = malloc(20 * 1024 + 1);
    ck_assert_ptr_nonnull(big);
    big[0] = '/';
    memset(big + 1, 'a', 20 * 1024 - 1);
    big[20 * 1024] = '\0';
    ck_assert_int_eq(check(big), AG_ERR_INVALID);
    /* the boundary: exactly AG_REDIRECT_MAX passes, one more does not */
    big[AG_REDIRECT_MAX] = '\0';
    ck_assert_int_eq(check(big), AG_OK);
    big[AG_REDIRECT_MAX] = 'a';
    big[AG_REDIRECT_MAX + 1] = '\0';
    ck_assert_int_eq(check(big), AG_ERR_INVALID);
    /* an absolute one of the same sizes */
    memcpy(big, "http://foo.bar/", 15);
    ck_assert_int_eq(check(big), AG_ERR_INVALID);
    big[AG_REDIRECT_MAX] = '\0';
    ck_assert_int_eq(check(big), AG_OK);
    free(big);
}
END_TEST

START_TEST(allowed_absolute)
{
    static const char *const t[] = {
        "http://foo.bar/x",           "https://foo.bar/",         "https://foo.bar",
        "https://FOO.BAR/x",          "HTTPS://Foo.Bar/x",        "HtTp://foo.bar?x=1",
        "http://foo.bar#frag",        "http://foo.bar:80/",       "https://foo.bar:443/",
        "http://foo.bar//evil.com",   "http://foo.bar/@evil.com", "http://foo.bar?@evil.com",
        "http://foo.bar#@evil.com",   "http://bar.foo/",          "http://sub.bar.foo/",
        "http://a.b.bar.foo/",        "http://SUB.Bar.Foo/",      "http://x.wildcard.bar/",
        "http://wildcard.bar/",       "http://a.b.wildcard.bar/", "http://port.bar:8080/",
        "https://port.bar:8080/",     "http://anyport.bar:1234/", "http://anyport.bar/",
        "https://anyport.bar:65535/", "http://anyport.bar:1/"};
    allow_all(t, AG_ARRAY_LEN(t));
}
END_TEST

START_TEST(refused_absolute)
{
    static const char *const t[] = {"http://evilbar.foo",
                                    "http://evilbar.foo/",
                                    "http://bar.foo.evil.com",
                                    "http://bar.foo.evil.com/",
                                    "http://foo.bar.evil.com/",
                                    "http://evilfoo.bar/",
                                    "http://sub.foo.bar/",
                                    "http://oo.bar/",
                                    "http://ar.foo/",
                                    "http://port.bar:9090",
                                    "http://port.bar/",
                                    "https://port.bar/",
                                    "http://port.bar:80/",
                                    "http://port.bar:08080/",
                                    "http://foo.bar:8080/",
                                    "https://foo.bar:80/",
                                    "http://foo.bar:443/",
                                    "https://evil.com@foo.bar",
                                    "https://foo.bar@evil.com",
                                    "https://foo.bar:@evil.com",
                                    "https://user:pw@foo.bar/",
                                    "https://@foo.bar/",
                                    "http://",
                                    "https://",
                                    "https:///foo",
                                    "http:///foo.bar",
                                    "http:////foo.bar",
                                    "http://?x",
                                    "http://#x",
                                    "http://foo.bar:0",
                                    "http://foo.bar:00",
                                    "http://foo.bar:99999",
                                    "http://foo.bar:65536",
                                    "http://foo.bar:123456/",
                                    "http://foo.bar:",
                                    "http://foo.bar:/",
                                    "http://foo.bar:-1/",
                                    "http://foo.bar:+80/",
                                    "http://foo.bar:80:80/",
                                    "http://foo.bar:8a/",
                                    "http://anyport.bar:*/",
                                    "http://anyport.bar:0/",
                                    "http://[::1]/",
                                    "http://[::1]:8080/",
                                    "http://[::1/",
                                    "http://[]/",
                                    "http://[foo.bar]/",
                                    "http://[fe80::1%25eth0]/",
                                    "http://127.0.0.1/",
                                    "http://foo.bar./",
                                    "http://.foo.bar/",
                                    "http://foo..bar/",
                                    "http://foo%2ebar/",
                                    "http://%66oo.bar/",
                                    "http://foo.bar%2f@evil.com/",
                                    "http://foo.bar\\@evil.com/",
                                    "http://foo.bar\\.evil.com/",
                                    "http://evil.com\\foo.bar",
                                    "http://evil.com;foo.bar/",
                                    "http://evil.com&foo.bar/",
                                    "http://foo.bar\t/",
                                    "http://fo o.bar/",
                                    "http://f\xc3\xb6o.bar/",
                                    "http://foo.bar\xe3\x80\x82\x65vil.com/",
                                    "http://*.wildcard.bar/",
                                    "http://.bar.foo/",
                                    "ftp://foo.bar/",
                                    "ws://foo.bar/",
                                    "https://wildcard.bar.evil.com/",
                                    "http://xwildcard.bar/"};
    refuse_all(t, AG_ARRAY_LEN(t));
}
END_TEST

START_TEST(self_host)
{
    const char *why = NULL;

    ck_assert_int_eq(ag_redirect_check(wl, "https://auth.example.com/x", "auth.example.com", &why), AG_OK);
    ck_assert_int_eq(ag_redirect_check(wl, "https://AUTH.example.com/x", "auth.EXAMPLE.com", &why), AG_OK);
    ck_assert_int_eq(ag_redirect_check(wl, "https://auth.example.com:443/", "auth.example.com", &why), AG_OK);
    ck_assert_int_eq(ag_redirect_check(wl, "http://auth.example.com:4180/", "auth.example.com:4180", &why),
                     AG_OK);
    ck_assert_int_eq(ag_redirect_check(wl, "https://auth.example.com/", "auth.example.com:443", &why), AG_OK);
    ck_assert_int_eq(ag_redirect_check(wl, "http://[::1]:4180/", "[::1]:4180", &why), AG_OK);
    ck_assert_int_eq(ag_redirect_check(wl, "http://[0:0::1]:4180/", "[::1]:4180", &why), AG_OK);
    /* other port, other host, subdomain, userinfo: refused */
    ck_assert_int_eq(ag_redirect_check(wl, "http://auth.example.com:4181/", "auth.example.com:4180", &why),
                     AG_ERR_INVALID);
    ck_assert_int_eq(ag_redirect_check(wl, "http://auth.example.com/", "auth.example.com:4180", &why),
                     AG_ERR_INVALID);
    ck_assert_int_eq(ag_redirect_check(wl, "https://auth.example.com:8443/", "auth.example.com", &why),
                     AG_ERR_INVALID);
    ck_assert_int_eq(ag_redirect_check(wl, "https://x.auth.example.com/", "auth.example.com", &why),
                     AG_ERR_INVALID);
    ck_assert_int_eq(ag_redirect_check(wl, "https://auth.example.com.evil.com/", "auth.example.com", &why),
                     AG_ERR_INVALID);
    ck_assert_int_eq(ag_redirect_check(wl, "https://evil.com@auth.example.com/", "auth.example.com", &why),
                     AG_ERR_INVALID);
    ck_assert_str_eq(why, "userinfo in URL");
    /* no self host, or a broken one, grants nothing */
    ck_assert_int_eq(ag_redirect_check(wl, "https://auth.example.com/", NULL, &why), AG_ERR_INVALID);
    ck_assert_int_eq(ag_redirect_check(wl, "https://auth.example.com/", "", &why), AG_ERR_INVALID);
    ck_assert_int_eq(ag_redirect_check(wl, "https://auth.example.com/", "auth.example.com:", &why),
                     AG_ERR_INVALID);
    ck_assert_int_eq(ag_redirect_check(wl, "https://auth.example.com/", "evil.com@auth.example.com", &why),
                     AG_ERR_INVALID);
    /* the self host does not open relative-path holes or other schemes */
    ck_assert_int_eq(ag_redirect_check(wl, "//auth.example.com/", "auth.example.com", &why), AG_ERR_INVALID);
    ck_assert_int_eq(ag_redirect_check(wl, "ftp://auth.example.com/", "auth.example.com", &why),
                     AG_ERR_INVALID);
}
END_TEST

START_TEST(null_and_empty_whitelist)
{
    struct ag_whitelist *empty = NULL;
    const char *why = NULL;

    ck_assert_int_eq(ag_redirect_check(NULL, "/app", NULL, &why), AG_OK);
    ck_assert_int_eq(ag_redirect_check(NULL, "http://foo.bar/", NULL, &why), AG_ERR_INVALID);
    ck_assert_str_eq(why, "host not in whitelist");
    ck_assert_int_eq(ag_redirect_check(NULL, "http://foo.bar/", "foo.bar", &why), AG_OK);
    ck_assert_int_eq(ag_whitelist_new(NULL, 0, &empty, err, sizeof(err)), AG_OK);
    ck_assert_ptr_nonnull(empty);
    ck_assert_int_eq(ag_redirect_check(empty, "http://foo.bar/", NULL, &why), AG_ERR_INVALID);
    ck_assert_int_eq(ag_redirect_check(empty, "/x", NULL, NULL), AG_OK);
    ag_whitelist_free(empty);
    ag_whitelist_free(NULL);
}
END_TEST

START_TEST(why_never_echoes_target)
{
    static const char *const t[] = {"http://evil.com/",    "/\\evil.com",   "https://evil.com@foo.bar",
                                    "javascript:evil.com", "/%09/evil.com", "/./..//evil.com"};
    for (size_t i = 0; i < AG_ARRAY_LEN(t); i++) {
        const char *why = NULL;
        ck_assert_int_eq(ag_redirect_check(wl, t[i], NULL, &why), AG_ERR_INVALID);
        ck_assert_ptr_null(strstr(why, "evil"));
    }
}
END_TEST

START_TEST(whitelist_syntax)
{
    static const char *const good[] = {"foo.bar",
                                       ".bar.foo",
                                       "*.bar.foo",
                                       "FOO.Bar",
                                       "x:1",
                                       "x:65535",
                                       "x:*",
                                       ".x.y:*",
                                       "*.x.y:443",
                                       "[::1]",
                                       "[::1]:8080",
                                       "[::1]:*",
                                       "localhost",
                                       "127.0.0.1",
                                       "127.0.0.1:8080",
                                       "a_b.c-d.e",
                                       "xn--bcher-kva.example"};
    static const char *const bad[] = {"",
                                      ".",
                                      "*",
                                      "*.",
                                      "**.foo.bar",
                                      "*foo.bar",
                                      "foo.*.bar",
                                      "..foo.bar",
                                      ".*.foo.bar",
                                      "foo.bar.",
                                      "foo..bar",
                                      "foo.bar:",
                                      "foo.bar:0",
                                      "foo.bar:65536",
                                      "foo.bar:8o",
                                      "foo.bar:**",
                                      "foo.bar:80:80",
                                      "https://foo.bar",
                                      "foo.bar/",
                                      "foo.bar/path",
                                      "user@foo.bar",
                                      "foo bar",
                                      " foo.bar",
                                      "foo.bar ",
                                      "f\xc3\xb6o.bar",
                                      "foo%2ebar",
                                      "[::1",
                                      "[::1]x",
                                      "[zz::1]",
                                      "::1",
                                      ".[::1]",
                                      "*.[::1]",
                                      ".0.0.1",
                                      "*.10.0.0.1",
                                      "foo\\bar"};
    char long_entry[400];

    for (size_t i = 0; i < AG_ARRAY_LEN(good); i++) {
        struct ag_whitelist *w = NULL;
        ck_assert_msg(ag_whitelist_new(&good[i], 1, &w, err, sizeof(err)) == AG_OK, "refused %s: %s", good[i],
                      err);
        ag_whitelist_free(w);
    }
    for (size_t i = 0; i < AG_ARRAY_LEN(bad); i++) {
        struct ag_whitelist *w = (struct ag_whitelist *)1;
        ck_assert_msg(ag_whitelist_new(&bad[i], 1, &w, err, sizeof(err)) == AG_ERR_INVALID, "accepted %s",
                      bad[i]);
        ck_assert_ptr_null(w);
        ck_assert_msg(strncmp(err, "whitelist_domains: ", 19) == 0, "error \"%s\" does not name the key",
                      err);
    }
    /* the error names the bad entry, even among good ones */
    {
        const char *mixed[] = {"foo.bar", "evil.com:99999", "x.y"};
        struct ag_whitelist *w = NULL;
        ck_assert_int_eq(ag_whitelist_new(mixed, 3, &w, err, sizeof(err)), AG_ERR_INVALID);
        ck_assert_ptr_nonnull(strstr(err, "evil.com:99999"));
        ck_assert_ptr_null(w);
    }
    /* NULL entries, a NULL array, a tiny or absent error buffer */
    {
        const char *withnull[] = {"foo.bar", NULL};
        struct ag_whitelist *w = NULL;
        char tiny[4];
        ck_assert_int_eq(ag_whitelist_new(withnull, 2, &w, err, sizeof(err)), AG_ERR_INVALID);
        ck_assert_int_eq(ag_whitelist_new(NULL, 1, &w, err, sizeof(err)), AG_ERR_INVALID);
        ck_assert_int_eq(ag_whitelist_new(&bad[0], 1, &w, tiny, sizeof(tiny)), AG_ERR_INVALID);
        ck_assert_uint_eq(strlen(tiny), 3);
        ck_assert_int_eq(ag_whitelist_new(&bad[0], 1, &w, NULL, 0), AG_ERR_INVALID);
        ck_assert_int_eq(ag_whitelist_new(good, 1, NULL, err, sizeof(err)), AG_ERR_INVALID);
    }
    /* overlong entries and labels */
    {
        const char *p = long_entry;
        struct ag_whitelist *w = NULL;
        memset(long_entry, 'a', sizeof(long_entry) - 1);
        long_entry[sizeof(long_entry) - 1] = '\0';
        ck_assert_int_eq(ag_whitelist_new(&p, 1, &w, err, sizeof(err)), AG_ERR_INVALID);
        long_entry[64] = '\0';
        ck_assert_int_eq(ag_whitelist_new(&p, 1, &w, err, sizeof(err)), AG_ERR_INVALID);
        long_entry[63] = '\0';
        ck_assert_int_eq(ag_whitelist_new(&p, 1, &w, err, sizeof(err)), AG_OK);
        ag_whitelist_free(w);
    }
}
END_TEST

/* Found by tests/fuzz/fuzz_redirect: a whitelist entry whose host a browser reads as an IPv4 address
 * (its last label a number) was compared as text, so the check and the browser disagreed about where a
 * target goes: `.0x7f` let http://10.0.0.0x7f/ through to 10.0.0.127, `127.0.0.10.0.1` is no host to a
 * browser at all. Such entries are refused at startup, naming the option; only four decimal numbers
 * (the form that reads the same both ways) are an address entry. Targets follow the same rule. */
START_TEST(whitelist_numbers_refused)
{
    static const char *const bad[] = {
        "0",           "1.0x7f",     "0x7f.1",      "0x7f.0.0.1", "2130706433",     "127.1",
        "0177.0.0.1",  "127.0.0.01", "127.0.0.256", "1.2.3.4.5",  "127.0.0.10.0.1", "example.0x10",
        "example.123", "0X7F.1",     "0x",          "a.0x",       "0xff:8080",      ".0x7f",
        "*.0x7f:*",    ".1.2.3.4",   "*.10.0.0.1"};
    static const char *const good[] = {"127.0.0.1", "10.0.0.255:8080", "0.0.0.0:*", "0x7f.example.com",
                                       "1a",        "a1.b2",           "0xg",       "x.0x7f1g"};
    for (size_t i = 0; i < AG_ARRAY_LEN(bad); i++) {
        struct ag_whitelist *w = NULL;
        ck_assert_msg(ag_whitelist_new(&bad[i], 1, &w, err, sizeof(err)) == AG_ERR_INVALID, "accepted %s",
                      bad[i]);
        ck_assert_ptr_null(w);
        ck_assert_msg(strncmp(err, "whitelist_domains: ", 19) == 0 && strstr(err, bad[i]) != NULL,
                      "error \"%s\" names neither the option nor the entry", err);
    }
    for (size_t i = 0; i < AG_ARRAY_LEN(good); i++) {
        struct ag_whitelist *w = NULL;
        ck_assert_msg(ag_whitelist_new(&good[i], 1, &w, err, sizeof(err)) == AG_OK, "refused %s: %s", good[i],
                      err);
        ag_whitelist_free(w);
    }
    {
        const char *entries[] = {"127.0.0.1", ".example.com"};
        static const char *const refused[] = {
            "http://0x7f.0.0.1/",        "http://2130706433/",  "http://127.1/",
            "http://0177.0.0.1/",        "http://127.000.0.1/", "http://0/",
            "http://a.example.com.0x1/", "https://1.2.3.0x7f/"};
        static const char *const allowed[] = {"http://127.0.0.1/", "https://1.example.com/",
                                              "http://0x7f.example.com/"};
        struct ag_whitelist *w = NULL;
        ck_assert_int_eq(ag_whitelist_new(entries, 2, &w, err, sizeof(err)), AG_OK);
        for (size_t i = 0; i < AG_ARRAY_LEN(refused); i++)
            ck_assert_msg(ag_redirect_check(w, refused[i], NULL, NULL) == AG_ERR_INVALID, "accepted %s",
                          refused[i]);
        for (size_t i = 0; i < AG_ARRAY_LEN(allowed); i++)
            ck_assert_msg(ag_redirect_check(w, allowed[i], NULL, NULL) == AG_OK, "refused %s", allowed[i]);
        /* a Host header spelled as a number is not this request's host either */
        ck_assert_int_eq(ag_redirect_check(w, "http://0x7f.1/", "0x7f.1", NULL), AG_ERR_INVALID);
        ck_assert_int_eq(ag_redirect_check(w, "http://127.0.0.2:4180/", "127.0.0.2:4180", NULL), AG_OK);
        ag_whitelist_free(w);
    }
}
END_TEST

START_TEST(whitelist_v6_and_ports)
{
    static const char *const e[] = {"[::1]:8080", "[2001:db8::1]", "x.y:443"};
    struct ag_whitelist *w = NULL;

    ck_assert_int_eq(ag_whitelist_new(e, AG_ARRAY_LEN(e), &w, err, sizeof(err)), AG_OK);
    ck_assert_int_eq(ag_redirect_check(w, "http://[::1]:8080/", NULL, NULL), AG_OK);
    ck_assert_int_eq(ag_redirect_check(w, "http://[0::1]:8080/", NULL, NULL), AG_OK);
    ck_assert_int_eq(ag_redirect_check(w, "http://[::1]/", NULL, NULL), AG_ERR_INVALID);
    ck_assert_int_eq(ag_redirect_check(w, "http://[::2]:8080/", NULL, NULL), AG_ERR_INVALID);
    ck_assert_int_eq(ag_redirect_check(w, "https://[2001:DB8::1]/", NULL, NULL), AG_OK);
    ck_assert_int_eq(ag_redirect_check(w, "https://[2001:db8:0:0:0:0:0:1]/x", NULL, NULL), AG_OK);
    ck_assert_int_eq(ag_redirect_check(w, "https://[2001:db8::1]:8443/", NULL, NULL), AG_ERR_INVALID);
    ck_assert_int_eq(ag_redirect_check(w, "https://[::ffff:127.0.0.1]/", NULL, NULL), AG_ERR_INVALID);
    /* x.y:443 means port 443, whatever the scheme: https by default, http when written */
    ck_assert_int_eq(ag_redirect_check(w, "https://x.y/", NULL, NULL), AG_OK);
    ck_assert_int_eq(ag_redirect_check(w, "http://x.y:443/", NULL, NULL), AG_OK);
    ck_assert_int_eq(ag_redirect_check(w, "http://x.y/", NULL, NULL), AG_ERR_INVALID);
    ag_whitelist_free(w);
}
END_TEST

/* xorshift64*: a fixed, portable sequence (rand() is banned and not reproducible across libcs) */
static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint64_t rng(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545f4914f6cdd1dULL;
}

/* An independent, deliberately simple oracle: whatever the checker accepts must be a clean
 * relative path, or an http(s) URL whose authority is one of the whitelisted names. */
static bool oracle_acceptable(const char *s)
{
    static const char *const exact[] = {"foo.bar", "foo.bar:80", "foo.bar:443", "port.bar:8080"};
    static const char *const suffixes[] = {"bar.foo", "wildcard.bar"};
    char auth[300];
    size_t len = strlen(s), alen, skip;

    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= 0x20 || c >= 0x7f || c == '\\')
            return false;
    }
    if (s[0] == '/')
        return s[1] != '/' && strncasecmp(s, "/%2f", 4) != 0 && strncasecmp(s, "/%5c", 4) != 0;
    if (strncasecmp(s, "http://", 7) == 0)
        skip = 7;
    else if (strncasecmp(s, "https://", 8) == 0)
        skip = 8;
    else
        return false;
    alen = strcspn(s + skip, "/?#");
    if (alen == 0 || alen >= sizeof(auth))
        return false;
    for (size_t i = 0; i < alen; i++) {
        char c = s[skip + i];
        auth[i] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
    }
    auth[alen] = '\0';
    if (strchr(auth, '@') != NULL)
        return false;
    if (strncmp(auth, "anyport.bar", 11) == 0 && (auth[11] == '\0' || auth[11] == ':'))
        return true;
    for (size_t i = 0; i < AG_ARRAY_LEN(exact); i++)
        if (strcmp(auth, exact[i]) == 0)
            return true;
    for (size_t i = 0; i < AG_ARRAY_LEN(suffixes); i++) {
        const char *colon = strchr(auth, ':');
        size_t hl = colon != NULL ? (size_t)(colon - auth) : alen, sl = strlen(suffixes[i]);
        if (hl >= sl && memcmp(auth + hl - sl, suffixes[i], sl) == 0 &&
            (hl == sl || auth[hl - sl - 1] == '.'))
            return true;
    }
    return false;
}

START_TEST(random_bytes)
{
    char buf[96];

    for (int iter = 0; iter < 20000; iter++) {
        size_t n = (size_t)(rng() % (sizeof(buf) - 1));
        for (size_t i = 0; i < n; i++)
            buf[i] = (char)(rng() & 0xff);
        /* half the time start like a plausible target so the deeper parsers are reached */
        if (n > 0 && (iter & 1))
            buf[0] = '/';
        buf[n] = '\0';
        if (ag_redirect_check(wl, buf, NULL, NULL) == AG_OK)
            ck_assert_msg(oracle_acceptable(buf), "accepted a random target");
    }
}
END_TEST

START_TEST(random_tokens)
{
    static const char *const tok[] = {"/",
                                      "\\",
                                      "//",
                                      ".",
                                      "..",
                                      "./",
                                      "../",
                                      "%2f",
                                      "%2F",
                                      "%5c",
                                      "%5C",
                                      "%2e",
                                      "%2E",
                                      "%09",
                                      "%0a",
                                      "%0d",
                                      "%20",
                                      "%00",
                                      "%25",
                                      "%",
                                      "\t",
                                      " ",
                                      "\r\n",
                                      "@",
                                      ":",
                                      ":8080",
                                      ":*",
                                      ":0",
                                      ":99999",
                                      "?",
                                      "#",
                                      "[",
                                      "]",
                                      "[::1]",
                                      "http://",
                                      "https://",
                                      "HTTP://",
                                      "http:",
                                      "//",
                                      "foo.bar",
                                      "bar.foo",
                                      "sub.bar.foo",
                                      "evil.com",
                                      "evilbar.foo",
                                      "port.bar",
                                      "anyport.bar",
                                      "x.wildcard.bar",
                                      "javascript:",
                                      "a",
                                      "\xc3\xa9",
                                      "\x7f",
                                      "*"};
    char buf[512];

    for (int iter = 0; iter < 50000; iter++) {
        size_t n = 0, parts = 1 + (size_t)(rng() % 8);
        for (size_t p = 0; p < parts; p++) {
            const char *t = tok[rng() % AG_ARRAY_LEN(tok)];
            size_t l = strlen(t);
            if (n + l >= sizeof(buf))
                break;
            memcpy(buf + n, t, l);
            n += l;
        }
        buf[n] = '\0';
        if (ag_redirect_check(wl, buf, NULL, NULL) == AG_OK)
            ck_assert_msg(oracle_acceptable(buf), "accepted \"%s\"", buf);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("redirect");
    TCase *tc = tcase_create("redirect");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, allowed_relative);
    tcase_add_test(tc, refused_relative_backslash_and_slash);
    tcase_add_test(tc, refused_relative_encoded_blanks);
    tcase_add_test(tc, refused_relative_literal_blanks);
    tcase_add_test(tc, refused_relative_dot_segments);
    tcase_add_test(tc, refused_schemes);
    tcase_add_test(tc, refused_injection_and_size);
    tcase_add_test(tc, size_limit);
    tcase_add_test(tc, allowed_absolute);
    tcase_add_test(tc, refused_absolute);
    tcase_add_test(tc, self_host);
    tcase_add_test(tc, null_and_empty_whitelist);
    tcase_add_test(tc, why_never_echoes_target);
    tcase_add_test(tc, whitelist_syntax);
    tcase_add_test(tc, whitelist_v6_and_ports);
    tcase_add_test(tc, whitelist_numbers_refused);
    tcase_add_test(tc, random_bytes);
    tcase_add_test(tc, random_tokens);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
