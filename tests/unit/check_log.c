/* SPDX-License-Identifier: Apache-2.0
 * Unit tests for src/log.c: oauth2-proxy's text formats, valid JSON for any input, no forged
 * lines from client data, redaction of secret query parameters. */
#include <check.h>
#include <fcntl.h>
#include <jansson.h>
#include <regex.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

static int pipefd[2];
static char out[65536];

static void open_log(enum ag_log_format fmt)
{
    ck_assert_int_eq(pipe(pipefd), 0);
    fcntl(pipefd[0], F_SETFL, O_NONBLOCK);
    fcntl(pipefd[0], F_SETPIPE_SZ, 1 << 20);
    struct ag_log_options o = {fmt, true, true, true, pipefd[1]};
    ag_log_setup(&o);
}

/* Everything written since open_log(), NUL-terminated in `out`. */
static const char *drain(void)
{
    ssize_t n = read(pipefd[0], out, sizeof(out) - 1);
    out[n > 0 ? n : 0] = '\0';
    close(pipefd[0]);
    close(pipefd[1]);
    return out;
}

static int count_lines(const char *s)
{
    int n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

static void assert_match(const char *s, const char *re)
{
    regex_t r;
    ck_assert_int_eq(regcomp(&r, re, REG_EXTENDED | REG_NOSUB), 0);
    ck_assert_msg(regexec(&r, s, 0, NULL, 0) == 0, "'%s' does not match /%s/", s, re);
    regfree(&r);
}

START_TEST(standard_format)
{
    open_log(AG_LOG_FORMAT_STANDARD);
    ag_log_info("listening on %s", "http://127.0.0.1:4180");
    const char *s = drain();
    assert_match(s, "^\\[[0-9]{4}/[0-9]{2}/[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}\\] \\[check_log\\.c:[0-9]+\\] "
                    "listening on http://127\\.0\\.0\\.1:4180\n$");
}
END_TEST

START_TEST(request_format)
{
    struct ag_log_request r = {.client = "10.0.0.1",
                               .request_id = "abc",
                               .host = "app.example.com",
                               .method = "GET",
                               .uri = "/x?a=1",
                               .proto = "HTTP/1.1",
                               .user_agent = "curl/8",
                               .status = 200,
                               .size = 2,
                               .duration_s = 0.0015};
    open_log(AG_LOG_FORMAT_STANDARD);
    ag_log_request(&r);
    const char *s = drain();
    assert_match(
        s, "^10\\.0\\.0\\.1 - abc - - \\[[0-9/: ]+\\] app\\.example\\.com GET - \"/x\\?a=1\" HTTP/1\\.1 "
           "\"curl/8\" 200 2 0\\.002\n$");
}
END_TEST

START_TEST(auth_format)
{
    open_log(AG_LOG_FORMAT_STANDARD);
    ag_log_auth("10.0.0.1", "rid", "user@example.com", "AuthSuccess", "authenticated via OAuth2");
    const char *s = drain();
    assert_match(s, "^10\\.0\\.0\\.1 - rid - user@example\\.com \\[[0-9/: ]+\\] \\[AuthSuccess\\] "
                    "authenticated via OAuth2\n$");
}
END_TEST

START_TEST(client_data_cannot_forge_lines)
{
    struct ag_log_request r = {.method = "GET",
                               .uri = "/a\r\n[2026/01/01 00:00:00] [main.c:1] forged",
                               .user_agent = "ua\"\n x",
                               .status = 403};
    open_log(AG_LOG_FORMAT_STANDARD);
    ag_log_request(&r);
    ag_log_info("header was %s", "a\nb");
    const char *s = drain();
    ck_assert_int_eq(count_lines(s), 2);
    ck_assert_ptr_nonnull(strstr(s, "\\x0d\\x0a[2026/01/01"));
    ck_assert_ptr_nonnull(strstr(s, "ua\\x22\\x0a x"));
    ck_assert_ptr_nonnull(strstr(s, "a\\x0ab"));
}
END_TEST

START_TEST(json_is_valid_for_any_input)
{
    char nasty[300];
    for (int i = 0; i < 255; i++)
        nasty[i] = (char)(i + 1); /* every byte value, invalid UTF-8 included */
    nasty[255] = '\0';
    struct ag_log_request r = {.client = "::1",
                               .method = "GET",
                               .uri = nasty,
                               .user_agent = "\xff\xfe\xc3",
                               .status = 200,
                               .size = 5};
    open_log(AG_LOG_FORMAT_JSON);
    ag_log_info("msg with \"quotes\" and \\ and %s", nasty);
    ag_log_request(&r);
    ag_log_auth("::1", NULL, "u\"ser", "AuthFailure", "bad\nthing");
    const char *s = drain();
    ck_assert_int_eq(count_lines(s), 3);
    char *copy = strdup(s), *save = NULL;
    int n = 0;
    for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save), n++) {
        json_error_t e;
        json_t *j = json_loads(line, 0, &e);
        ck_assert_msg(j != NULL, "invalid JSON (%s): %s", e.text, line);
        ck_assert_ptr_nonnull(json_object_get(j, "time"));
        ck_assert_ptr_nonnull(json_object_get(j, "level"));
        ck_assert_ptr_nonnull(json_object_get(j, "msg"));
        if (n == 1)
            ck_assert_int_eq(json_integer_value(json_object_get(j, "status")), 200);
        if (n == 2)
            ck_assert_str_eq(json_string_value(json_object_get(j, "user")), "u\"ser");
        json_decref(j);
    }
    ck_assert_int_eq(n, 3);
    free(copy);
}
END_TEST

START_TEST(long_lines_stay_one_line)
{
    char big[20000];
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    struct ag_log_request r = {.method = "GET", .uri = big, .user_agent = big, .status = 200};
    open_log(AG_LOG_FORMAT_JSON);
    ag_log_request(&r);
    const char *s = drain();
    ck_assert_int_eq(count_lines(s), 1);
    ck_assert_uint_le(strlen(s), 8192);
}
END_TEST

/* Every byte of a JSON line's values that is not well-formed UTF-8 must be replaced, so the line is valid
 * UTF-8 and valid JSON whatever the client sent. */
static bool utf8_valid(const unsigned char *s, size_t n)
{
    size_t i = 0;

    while (i < n) {
        unsigned char c = s[i], lo = 0x80, hi = 0xbf;
        size_t k;
        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf)
            k = 1;
        else if (c >= 0xe0 && c <= 0xef)
            k = 2;
        else if (c >= 0xf0 && c <= 0xf4)
            k = 3;
        else
            return false;
        if (i + k >= n)
            return false;
        lo = c == 0xe0 ? 0xa0 : c == 0xf0 ? 0x90 : lo;
        hi = c == 0xed ? 0x9f : c == 0xf4 ? 0x8f : hi;
        if (s[i + 1] < lo || s[i + 1] > hi)
            return false;
        for (size_t j = 2; j <= k; j++)
            if ((s[i + j] & 0xc0) != 0x80)
                return false;
        i += k + 1;
    }
    return true;
}

/* One JSON line, checked: valid UTF-8, a JSON object, at most 8 KiB. Caller decrefs. */
static json_t *one_json_line(void)
{
    const char *s = drain();
    size_t n = strlen(s);
    json_error_t e;
    json_t *j;

    ck_assert_int_eq(count_lines(s), 1);
    ck_assert_uint_le(n, 8192);
    ck_assert_msg(utf8_valid((const unsigned char *)s, n - 1), "not UTF-8: %s", s);
    j = json_loadb(s, n - 1, 0, &e);
    ck_assert_msg(json_is_object(j), "invalid JSON (%s): %.300s", e.text, s);
    return j;
}

/* Found by tests/fuzz/fuzz_log: overlong forms, UTF-16 surrogates and code points above U+10FFFF passed
 * into JSON lines as they were (jansson, and any strict reader, refuses the line). */
START_TEST(json_invalid_utf8_replaced)
{
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"a\xc0\xaf-", "a\xef\xbf\xbd\xef\xbf\xbd-"},                             /* overlong '/' */
        {"\xe0\x80\xaf", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},                 /* overlong, 3 bytes */
        {"\xf0\x80\x80\xaf", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"}, /* overlong, 4 bytes */
        {"\xed\xa0\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},                 /* U+D800, a surrogate */
        {"\xed\xbf\xbf", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},                 /* U+DFFF */
        {"\xf4\x90\x80\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"}, /* U+110000 */
        {"\xf5\x80\x80\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},
        {"\xe2\x82", "\xef\xbf\xbd\xef\xbf\xbd"}, /* cut short by the end */
        /* well-formed text stays as it is, at the edges of each range */
        {"\xc2\x80\xdf\xbf\xe0\xa0\x80\xed\x9f\xbf\xee\x80\x80\xf0\x90\x80\x80\xf4\x8f\xbf\xbf",
         "\xc2\x80\xdf\xbf\xe0\xa0\x80\xed\x9f\xbf\xee\x80\x80\xf0\x90\x80\x80\xf4\x8f\xbf\xbf"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_t *j;
        open_log(AG_LOG_FORMAT_JSON);
        ag_log_auth("::1", NULL, cases[i].in, "AuthFailure", "x");
        j = one_json_line();
        ck_assert_msg(strcmp(json_string_value(json_object_get(j, "user")), cases[i].out) == 0, "case %zu",
                      i);
        json_decref(j);
    }
}
END_TEST

/* Found by tests/fuzz/fuzz_log: a long value (here a path whose bytes all need escaping) filled the line,
 * which was cut and ended in "..." wherever the cut fell: not JSON any more. */
START_TEST(json_long_values_stay_valid)
{
    static char ctl[2048], big[20000], utf[6000];
    memset(ctl, '\x01', sizeof(ctl) - 1); /* 6 bytes each once escaped */
    memset(big, '"', sizeof(big) - 1);    /* 2 bytes each */
    for (size_t i = 0; i + 3 < sizeof(utf); i += 3)
        memcpy(utf + i, "\xe2\x82\xac", 3); /* never cut inside a character */
    struct ag_log_request r = {.client = "::1",
                               .method = "GET",
                               .uri = ctl,
                               .user_agent = big,
                               .host = utf,
                               .status = 200,
                               .size = 7};
    json_t *j;
    const char *v;

    open_log(AG_LOG_FORMAT_JSON);
    ag_log_request(&r);
    j = one_json_line();
    ck_assert_int_eq(json_integer_value(json_object_get(j, "status")), 200);
    ck_assert_int_eq(json_integer_value(json_object_get(j, "size")), 7);
    ck_assert_ptr_nonnull(json_object_get(j, "user_agent"));
    v = json_string_value(json_object_get(j, "uri"));
    ck_assert_ptr_nonnull(v);
    /* the path keeps its 4 KiB of the line (682 escaped bytes) whatever came before it, then "..." */
    ck_assert_uint_ge(strlen(v), 600);
    ck_assert_str_eq(v + strlen(v) - 3, "...");
    ck_assert_uint_eq(strspn(v, "\x01"), strlen(v) - 3);
    json_decref(j);

    open_log(AG_LOG_FORMAT_JSON);
    ag_log_rq(AG_LOG_WARN, "rid-1", "refused %s", big);
    j = one_json_line();
    ck_assert_str_eq(json_string_value(json_object_get(j, "request_id")), "rid-1");
    ck_assert_str_eq(json_string_value(json_object_get(j, "level")), "warning");
    json_decref(j);

    open_log(AG_LOG_FORMAT_JSON);
    ag_log_auth(utf, big, ctl, "AuthFailure", big);
    j = one_json_line();
    ck_assert_str_eq(json_string_value(json_object_get(j, "status")), "AuthFailure");
    json_decref(j);
}
END_TEST

START_TEST(redaction)
{
    char buf[256];
    ag_log_redact_uri("/oauth2/callback?code=SECRET1&state=SECRET2&x=keep", buf, sizeof(buf));
    ck_assert_str_eq(buf, "/oauth2/callback?code=REDACTED&state=REDACTED&x=keep");
    ag_log_redact_uri("/p?ACCESS_TOKEN=t1;id_token=t2&refresh_token=t3&client_secret=t4&a", buf, sizeof(buf));
    ck_assert_str_eq(buf, "/p?ACCESS_TOKEN=REDACTED;id_token=REDACTED&refresh_token=REDACTED&client_secret="
                          "REDACTED&a");
    ag_log_redact_uri("/no/query", buf, sizeof(buf));
    ck_assert_str_eq(buf, "/no/query");
    ag_log_redact_uri("/p?codex=1&xcode=2", buf, sizeof(buf));
    ck_assert_str_eq(buf, "/p?codex=1&xcode=2");
    /* truncation keeps the NUL and never leaks the part after the cut */
    ck_assert_uint_eq(ag_log_redact_uri("/p?code=SECRET", buf, 9), 8);
    ck_assert_str_eq(buf, "/p?code=");
    ag_log_redact_uri(NULL, buf, sizeof(buf));
    ck_assert_str_eq(buf, "");
}
END_TEST

/* Item 12 of issue 11: names are compared after percent-decoding them once, as the application behind
 * reads them, and without regard to case (a value hidden too many is never a leak). */
START_TEST(redaction_decodes_names)
{
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"/cb?c%6fde=S1", "/cb?c%6fde=REDACTED"},
        {"/cb?%63ode=S1&%73tate=S2", "/cb?%63ode=REDACTED&%73tate=REDACTED"},
        {"/cb?%43%4F%44%45=S1", "/cb?%43%4F%44%45=REDACTED"},
        {"/cb?CODE=S1;Code=S2", "/cb?CODE=REDACTED;Code=REDACTED"},
        {"/p?access%5Ftoken=T&id%5ftoken=T&REFRESH_TOKEN=T",
         "/p?access%5Ftoken=REDACTED&id%5ftoken=REDACTED&REFRESH_TOKEN=REDACTED"},
        {"/p?client%5fsecret=X&pass%77ord=X&%73ession=X&tok%65n=X",
         "/p?client%5fsecret=REDACTED&pass%77ord=REDACTED&%73ession=REDACTED&tok%65n=REDACTED"},
        /* decoded once only, as a server does: %2563 is "%63", not "c" */
        {"/p?%2563ode=keep", "/p?%2563ode=keep"},
        /* malformed escapes and near misses stay */
        {"/p?c%6=keep&c%zzode=keep&cod%65x=keep&%63od=keep",
         "/p?c%6=keep&c%zzode=keep&cod%65x=keep&%63od=keep"},
        {"/p?%63ode", "/p?%63ode"},
    };
    char buf[256];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ag_log_redact_uri(cases[i].in, buf, sizeof(buf));
        ck_assert_str_eq(buf, cases[i].out);
    }
}
END_TEST

START_TEST(request_log_redacts)
{
    struct ag_log_request r = {
        .method = "GET", .uri = "/oauth2/callback?code=SECRET1&state=SECRET2", .status = 302};
    open_log(AG_LOG_FORMAT_STANDARD);
    ag_log_request(&r);
    const char *s = drain();
    ck_assert_ptr_null(strstr(s, "SECRET"));
    ck_assert_ptr_nonnull(strstr(s, "code=REDACTED"));
}
END_TEST

START_TEST(kinds_can_be_turned_off)
{
    struct ag_log_request r = {.method = "GET", .uri = "/", .status = 200};
    ck_assert_int_eq(pipe(pipefd), 0);
    fcntl(pipefd[0], F_SETFL, O_NONBLOCK);
    struct ag_log_options o = {AG_LOG_FORMAT_STANDARD, false, false, false, pipefd[1]};
    ag_log_setup(&o);
    ag_log_info("quiet");
    ag_log_request(&r);
    ag_log_auth(NULL, NULL, NULL, "AuthSuccess", "x");
    ag_log_error("errors are always written");
    const char *s = drain();
    ck_assert_int_eq(count_lines(s), 1);
    ck_assert_ptr_nonnull(strstr(s, "ERROR: errors are always written"));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("log");
    TCase *tc = tcase_create("log");
    tcase_add_test(tc, standard_format);
    tcase_add_test(tc, request_format);
    tcase_add_test(tc, auth_format);
    tcase_add_test(tc, client_data_cannot_forge_lines);
    tcase_add_test(tc, json_is_valid_for_any_input);
    tcase_add_test(tc, long_lines_stay_one_line);
    tcase_add_test(tc, json_invalid_utf8_replaced);
    tcase_add_test(tc, json_long_values_stay_valid);
    tcase_add_test(tc, redaction);
    tcase_add_test(tc, redaction_decodes_names);
    tcase_add_test(tc, request_log_redacts);
    tcase_add_test(tc, kinds_can_be_turned_off);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
