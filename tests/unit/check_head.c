/* SPDX-License-Identifier: Apache-2.0
 * Unit tests for src/net/head.c: request heads that the front end, authgate and the upstream could
 * read differently are refused. Fields are laid out the way libmicrohttpd 0.9.75 leaves them in its
 * read buffer (name, NUL where the colon was, whitespace, value); a folded field's name lies
 * elsewhere, after the buffer. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "net/head.h"

struct head {
    char buf[4096];
    size_t used;
    struct ag_head_field f[32];
    size_t n;
};

/* Append "name\0<ows>value\0" to the buffer and a field pointing at it. */
static void field(struct head *h, const char *name, const char *ows, const char *value)
{
    size_t nl = strlen(name), ol = strlen(ows), vl = strlen(value);
    char *p = h->buf + h->used;
    ck_assert(h->used + nl + ol + vl + 2 <= sizeof(h->buf) && h->n < 32);
    memcpy(p, name, nl);
    p[nl] = '\0';
    memcpy(p + nl + 1, ows, ol);
    memcpy(p + nl + 1 + ol, value, vl);
    p[nl + 1 + ol + vl] = '\0';
    h->f[h->n++] = (struct ag_head_field){p, p + nl + 1 + ol, nl, vl};
    h->used += nl + ol + vl + 2;
}

/* A folded field: the value in the buffer, the (glued) name moved after it, as libmicrohttpd does. */
static void folded(struct head *h, const char *glued_name, const char *value)
{
    field(h, "x", " ", value);
    struct ag_head_field *f = &h->f[h->n - 1];
    char *moved = h->buf + h->used + 64;
    strcpy(moved, glued_name);
    f->name = moved;
    f->name_len = strlen(glued_name);
    h->used += 64 + strlen(glued_name) + 1;
}

static const char *check(struct head *h, const char *version)
{
    return ag_head_refusal("GET", "/x?a=1", version, h->f, h->n);
}

static void base(struct head *h)
{
    memset(h, 0, sizeof(*h));
    field(h, "Host", " ", "app.example.com");
    field(h, "Accept", " ", "*/*");
}

START_TEST(good_heads)
{
    struct head h;
    base(&h);
    ck_assert_ptr_null(check(&h, "HTTP/1.1"));
    field(&h, "X-Empty", "", "");
    field(&h, "X-Tab", "\t \t", "a\tb");
    field(&h, "X-UTF8", " ", "caf\xc3\xa9");
    field(&h, "Content-Length", " ", "0");
    field(&h, "x_auth-request!#$%&'*+.^`|~", " ", "v");
    ck_assert_ptr_null(check(&h, "HTTP/1.1"));

    base(&h);
    field(&h, "Transfer-Encoding", " ", "Chunked");
    ck_assert_ptr_null(check(&h, "HTTP/1.1"));

    memset(&h, 0, sizeof(h)); /* HTTP/1.0 needs no Host */
    ck_assert_ptr_null(check(&h, "HTTP/1.0"));
    base(&h);
    ck_assert_ptr_null(ag_head_refusal("OPTIONS", "*", "HTTP/1.1", h.f, h.n));
}
END_TEST

START_TEST(bad_names)
{
    static const char *const names[] = {
        "Transfer-Encoding ",
        "Content-Length ",
        "X-A:admin",
        "X A",
        " X-A",
        "X-A\t",
        "X\"A",
        "X(A)",
        "X,A",
        "X/A",
        "X;A",
        "X=A",
        "X@A",
        "X[A]",
        "X{A}",
        "X\\A",
        "X?A",
        "X\x7f",
        "X\x01",
        "X\xc3\xa9",
        "",
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        struct head h;
        base(&h);
        field(&h, names[i], " ", "v");
        ck_assert_msg(check(&h, "HTTP/1.1") != NULL, "name \"%s\" accepted", names[i]);
    }
}
END_TEST

START_TEST(folding)
{
    struct head h;
    /* X-Forwarded-User: b\r\n :admin  ->  name "X-Forwarded-User:admin" (not a token) */
    base(&h);
    folded(&h, "X-Forwarded-User:admin", "b");
    ck_assert_ptr_nonnull(check(&h, "HTTP/1.1"));
    /* X-Forwarded-Use: b\r\n r  ->  name "X-Forwarded-User", a token: only the layout gives it away */
    base(&h);
    folded(&h, "X-Forwarded-User", "b");
    ck_assert_ptr_nonnull(check(&h, "HTTP/1.1"));
    ck_assert_ptr_nonnull(strstr(check(&h, "HTTP/1.1"), "folded"));
    /* a value that does not follow its name within a line */
    base(&h);
    field(&h, "X-A", " ", "v");
    h.f[h.n - 1].value = h.f[0].value; /* points before its name */
    ck_assert_ptr_nonnull(check(&h, "HTTP/1.1"));
    base(&h);
    field(&h, "X-A", " x", "v"); /* something other than whitespace between colon and value */
    ck_assert_ptr_nonnull(check(&h, "HTTP/1.1"));
    base(&h);
    char ows[400];
    memset(ows, ' ', sizeof(ows) - 1);
    ows[sizeof(ows) - 1] = '\0';
    field(&h, "X-A", ows, "v");
    ck_assert_ptr_nonnull(check(&h, "HTTP/1.1"));
}
END_TEST

START_TEST(bad_values)
{
    static const char *const values[] = {
        "a\rX-Forwarded-User: admin", "a\nb", "a\x01", "\x7f", "a\x1b[0m", "\r"};
    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        struct head h;
        base(&h);
        field(&h, "X-A", " ", values[i]);
        ck_assert_msg(check(&h, "HTTP/1.1") != NULL, "value %zu accepted", i);
    }
}
END_TEST

START_TEST(framing)
{
    static const struct {
        const char *name, *value;
    } one[] = {
        {"Content-Length", "+6"},
        {"Content-Length", " 6"},
        {"Content-Length", "6 "},
        {"Content-Length", "6, 6"},
        {"Content-Length", "0x6"},
        {"Content-Length", ""},
        {"Content-Length", "-1"},
        {"Content-Length", "1234567890123456789"},
        {"Transfer-Encoding", "chunked, chunked"},
        {"Transfer-Encoding", "xchunked"},
        {"Transfer-Encoding", "identity"},
        {"Transfer-Encoding", "gzip, chunked"},
        {"Transfer-Encoding", "chunked "},
        {"Transfer-Encoding", ""},
    };
    for (size_t i = 0; i < sizeof(one) / sizeof(one[0]); i++) {
        struct head h;
        base(&h);
        field(&h, one[i].name, " ", one[i].value);
        ck_assert_msg(check(&h, "HTTP/1.1") != NULL, "%s: \"%s\" accepted", one[i].name, one[i].value);
    }
    struct head h;
    base(&h);
    field(&h, "Content-Length", " ", "6");
    field(&h, "content-length", " ", "7");
    ck_assert_ptr_nonnull(check(&h, "HTTP/1.1"));
    base(&h);
    field(&h, "Content-Length", " ", "6");
    field(&h, "Content-Length", " ", "6");
    ck_assert_ptr_nonnull(check(&h, "HTTP/1.1"));
    base(&h);
    field(&h, "Transfer-Encoding", " ", "chunked");
    field(&h, "Content-Length", " ", "6");
    ck_assert_ptr_nonnull(check(&h, "HTTP/1.1"));
    base(&h);
    field(&h, "Transfer-Encoding", " ", "chunked");
    field(&h, "TRANSFER-ENCODING", " ", "chunked");
    ck_assert_ptr_nonnull(check(&h, "HTTP/1.1"));
    base(&h);
    field(&h, "Transfer-Encoding", " ", "chunked");
    ck_assert_ptr_nonnull(check(&h, "HTTP/1.0"));
}
END_TEST

START_TEST(host_and_target)
{
    struct head h;
    memset(&h, 0, sizeof(h));
    ck_assert_ptr_nonnull(check(&h, "HTTP/1.1")); /* no Host */
    base(&h);
    field(&h, "host", " ", "evil.example");
    ck_assert_ptr_nonnull(check(&h, "HTTP/1.1"));
    base(&h);
    static const char *const targets[] = {"/a b", "/a\tb", "/a#b", "/a\x01", "/\x7f", ""};
    for (size_t i = 0; i < sizeof(targets) / sizeof(targets[0]); i++)
        ck_assert_msg(ag_head_refusal("GET", targets[i], "HTTP/1.1", h.f, h.n) != NULL, "target %zu", i);
    ck_assert_ptr_nonnull(ag_head_refusal("GE T", "/", "HTTP/1.1", h.f, h.n));
    ck_assert_ptr_nonnull(ag_head_refusal("", "/", "HTTP/1.1", h.f, h.n));
    ck_assert_ptr_null(ag_head_refusal("PROPFIND", "/a%20b?x=%23", "HTTP/1.1", h.f, h.n));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("head");
    TCase *tc = tcase_create("head");
    tcase_add_test(tc, good_heads);
    tcase_add_test(tc, bad_names);
    tcase_add_test(tc, folding);
    tcase_add_test(tc, bad_values);
    tcase_add_test(tc, framing);
    tcase_add_test(tc, host_and_target);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
