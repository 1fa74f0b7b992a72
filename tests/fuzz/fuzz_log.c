/* SPDX-License-Identifier: Apache-2.0
 * The log line writer (src/log.c) with client data in every field, long and hostile. Oracles: each call
 * writes exactly one line of at most 8 KiB; a JSON line is valid UTF-8 and a JSON object jansson reads,
 * with every field present and short valid text kept exactly; a text line has no control byte; and in
 * the redacted request URI no parameter whose name is a secret (after percent-decoding, any case) keeps
 * its value. */
#include <fcntl.h>
#include <jansson.h>
#include <strings.h>
#include <unistd.h>

#include "fuzz.h"
#include "log.h"

#define LINE_MAX_BYTES 8192

static int fds[2] = {-1, -1};
static char out[1 << 20];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    if (pipe(fds) != 0)
        abort();
    fcntl(fds[0], F_SETFL, O_NONBLOCK);
    fcntl(fds[1], F_SETPIPE_SZ, 1 << 20);
    return 0;
}

/* Everything written since the last call, NUL-terminated; *n is its length. */
static const char *drain(size_t *n)
{
    size_t o = 0;
    for (;;) {
        ssize_t r = read(fds[0], out + o, sizeof(out) - 1 - o);
        if (r <= 0)
            break;
        o += (size_t)r;
    }
    out[o] = '\0';
    *n = o;
    return out;
}

/* RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF. */
static bool utf8_valid(const unsigned char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        unsigned char c = s[i];
        size_t k;
        unsigned lo = 0x80, hi = 0xbf;
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
        if (c == 0xe0)
            lo = 0xa0;
        if (c == 0xed)
            hi = 0x9f;
        if (c == 0xf0)
            lo = 0x90;
        if (c == 0xf4)
            hi = 0x8f;
        if (i + k >= n)
            return false;
        if (s[i + 1] < lo || s[i + 1] > hi)
            return false;
        for (size_t j = 2; j <= k; j++)
            if (s[i + j] < 0x80 || s[i + j] > 0xbf)
                return false;
        i += k + 1;
    }
    return true;
}

/* One line per call, at most LINE_MAX_BYTES with its newline. */
static const char *one_line(size_t *len)
{
    size_t n;
    const char *s = drain(&n);
    FUZZ_CHECK(n > 0 && s[n - 1] == '\n', "no line written (%zu bytes)", n);
    FUZZ_CHECK(memchr(s, '\n', n) == s + n - 1, "more than one line");
    FUZZ_CHECK(n <= LINE_MAX_BYTES, "line of %zu bytes", n);
    *len = n - 1;
    return s;
}

static json_t *json_line(void)
{
    size_t n;
    const char *s = one_line(&n);
    json_error_t e;
    json_t *j;

    FUZZ_CHECK(utf8_valid((const unsigned char *)s, n), "JSON line is not valid UTF-8: %.*s", (int)n, s);
    j = json_loadb(s, n, 0, &e);
    FUZZ_CHECK(json_is_object(j), "not a JSON object (%s): %.*s", e.text, (int)n, s);
    FUZZ_CHECK(json_is_string(json_object_get(j, "msg")), "no msg");
    FUZZ_CHECK(json_is_string(json_object_get(j, "time")), "no time");
    return j;
}

static void text_line(void)
{
    size_t n;
    const char *s = one_line(&n);
    for (size_t i = 0; i < n; i++)
        FUZZ_CHECK((unsigned char)s[i] >= 0x20 && s[i] != 0x7f, "control byte 0x%02x in a text line",
                   (unsigned char)s[i]);
}

/* `s` repeated `times` times: long fields from short inputs. */
static char *repeat(const char *s, size_t times)
{
    size_t n = strlen(s);
    char *r = malloc(n * times + 1);
    if (r == NULL)
        abort();
    for (size_t i = 0; i < times; i++)
        memcpy(r + i * n, s, n);
    r[n * times] = '\0';
    return r;
}

/* Text that every field keeps whole: valid UTF-8 without control bytes, and short enough that even
 * escaped (6 bytes a byte at most) it fits the smallest field's share of the line. */
static bool short_clean(const char *s)
{
    size_t n = strlen(s);
    if (n > 80 || !utf8_valid((const unsigned char *)s, n))
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20)
            return false;
    return true;
}

static const char *const secrets[] = {"code",          "state",    "token",
                                      "access_token",  "id_token", "refresh_token",
                                      "client_secret", "password", "session"};

/* The redacted URI: every secret parameter's value (name percent-decoded once, any case) is REDACTED,
 * or a prefix of it where the copy was cut short. */
static void check_redacted(const char *uri, size_t cap)
{
    char *buf = malloc(cap);
    const char *q, *p;
    size_t n;

    if (buf == NULL)
        abort();
    n = ag_log_redact_uri(uri, buf, cap);
    FUZZ_CHECK(n < cap && buf[n] == '\0', "length %zu for %zu bytes of room", n, cap);
    q = strchr(buf, '?');
    for (p = q ? q + 1 : NULL; p != NULL && *p != '\0';) {
        size_t len = strcspn(p, "&;");
        const char *eq = memchr(p, '=', len);
        if (eq != NULL) {
            char name[256];
            size_t o = 0;
            for (const char *c = p; c < eq && o < sizeof(name) - 1; c++) {
                int hi = *c == '%' && c + 2 < eq ? ag_hex_digit((unsigned char)c[1]) : -1;
                int lo = hi >= 0 ? ag_hex_digit((unsigned char)c[2]) : -1;
                if (lo >= 0) {
                    name[o++] = (char)(hi * 16 + lo);
                    c += 2;
                } else {
                    name[o++] = *c;
                }
            }
            name[o] = '\0';
            for (size_t i = 0; i < sizeof(secrets) / sizeof(secrets[0]); i++) {
                if (o != strlen(secrets[i]) || strcasecmp(name, secrets[i]) != 0)
                    continue;
                size_t vlen = len - (size_t)(eq + 1 - p);
                bool cut = p[len] == '\0' && n == cap - 1;
                FUZZ_CHECK((vlen == 8 || (cut && vlen < 8)) && strncmp(eq + 1, "REDACTED", vlen) == 0,
                           "parameter %s keeps its value in %s", name, buf);
            }
        }
        p += len;
        if (*p != '\0')
            p++;
    }
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_in in = fuzz_in(data, size);
    uint8_t mode = fuzz_byte(&in), times = fuzz_byte(&in);
    char *f[10];
    struct ag_log_options o = {(mode & 1) ? AG_LOG_FORMAT_JSON : AG_LOG_FORMAT_STANDARD, true, true, true,
                               fds[1]};
    bool json = o.format == AG_LOG_FORMAT_JSON;
    size_t reps = (size_t)(times % 64) + 1;

    for (size_t i = 0; i < 10; i++) {
        char *raw = fuzz_left(&in) ? fuzz_field(&in, '\n', NULL) : NULL;
        f[i] = raw != NULL ? repeat(raw, i == (size_t)(mode >> 4) % 10 ? reps : 1) : NULL; /* NULL: absent */
        free(raw);
    }
    ag_log_setup(&o);
    {
        struct ag_log_request r = {f[0], f[1], f[2], f[3], f[4], f[5], f[6], f[7], f[8], 200, 1, 0.5};
        ag_log_request(&r);
        if (json) {
            json_t *j = json_line();
            static const char *const keys[] = {"client",   "request_id", "user",  "host",      "method",
                                               "upstream", "uri",        "proto", "user_agent"};
            for (size_t i = 0; i < 9; i++)
                FUZZ_CHECK(json_is_string(json_object_get(j, keys[i])), "no %s", keys[i]);
            FUZZ_CHECK(json_integer_value(json_object_get(j, "status")) == 200, "status lost");
            /* short clean text is kept as it is */
            if (f[2] != NULL && short_clean(f[2]) && f[2][0] != '\0' && strlen(f[6] ? f[6] : "") < 1000)
                FUZZ_CHECK(strcmp(json_string_value(json_object_get(j, "user")), f[2]) == 0, "user changed");
            json_decref(j);
        } else {
            text_line();
        }
    }
    ag_log_auth(f[0], f[1], f[2], "AuthFailure", f[9]);
    if (json) {
        json_t *j = json_line();
        if (f[9] != NULL && short_clean(f[9]) && f[9][0] != '\0')
            FUZZ_CHECK(strcmp(json_string_value(json_object_get(j, "msg")), f[9]) == 0, "msg changed");
        json_decref(j);
    } else {
        text_line();
    }
    ag_log_rq(AG_LOG_WARN, f[1], "refused %s (%s)", f[9] ? f[9] : "-", f[6] ? f[6] : "-");
    if (json)
        json_decref(json_line());
    else
        text_line();
    check_redacted(f[6], 2048);
    check_redacted(f[6], (size_t)(times % 40) + 1);
    for (size_t i = 0; i < 10; i++)
        free(f[i]);
    return 0;
}
