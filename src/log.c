/* SPDX-License-Identifier: Apache-2.0
 * Log lines in oauth2-proxy's default formats (standard, request, auth) or JSON, each written with
 * a single write(2) from a bounded stack buffer. See log.h. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

#define LINE_MAX_BYTES 8192

static struct ag_log_options opts = {AG_LOG_FORMAT_STANDARD, true, true, true, 2};

void ag_log_setup(const struct ag_log_options *o)
{
    opts = *o;
}

/* A line under construction; appends past the end are dropped and the line marked truncated. A JSON
 * line keeps JSON_RESERVE bytes that only its structure may use: string values stop short of them (see
 * put_json), so the keys, numbers and closing brace after a long value always fit and the line stays
 * valid JSON. The largest structure after a value is the request line's tail (a few keys, three numbers,
 * a short message and three cut-short values), far below the reserve. */
#define JSON_RESERVE 1024

struct line {
    char buf[LINE_MAX_BYTES];
    size_t len;
    bool truncated;
};

static void put(struct line *l, const char *s, size_t n)
{
    size_t room = sizeof(l->buf) - 2 - l->len; /* keep room for "\n" and NUL */
    if (n > room) {
        n = room;
        l->truncated = true;
    }
    memcpy(l->buf + l->len, s, n);
    l->len += n;
}

static void puts_(struct line *l, const char *s)
{
    put(l, s, strlen(s));
}

static void putf(struct line *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void putf(struct line *l, const char *fmt, ...)
{
    va_list ap;
    size_t room = sizeof(l->buf) - 2 - l->len;
    va_start(ap, fmt);
    int n = vsnprintf(l->buf + l->len, room + 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n > room) {
        n = (int)room;
        l->truncated = true;
    }
    l->len += (size_t)n;
}

/* Length of the well-formed UTF-8 sequence at s (1..4), or 0 when it is not one (RFC 3629 section 4:
 * no overlong forms, no surrogates U+D800..U+DFFF, nothing above U+10FFFF). s is NUL-terminated, and a
 * NUL is never a continuation byte, so no byte past the terminator is read. */
static size_t utf8_len(const unsigned char *s)
{
    unsigned char lo = 0x80, hi = 0xbf; /* the range of the second byte */
    size_t n;

    if (s[0] < 0x80)
        return 1;
    if (s[0] >= 0xc2 && s[0] <= 0xdf)
        n = 2;
    else if (s[0] >= 0xe0 && s[0] <= 0xef)
        n = 3;
    else if (s[0] >= 0xf0 && s[0] <= 0xf4)
        n = 4;
    else
        return 0; /* a continuation byte, an overlong lead (C0, C1) or beyond U+10FFFF (F5..FF) */
    if (s[0] == 0xe0)
        lo = 0xa0; /* E0 80..9F would be overlong */
    else if (s[0] == 0xed)
        hi = 0x9f; /* ED A0..BF are the surrogates */
    else if (s[0] == 0xf0)
        lo = 0x90; /* F0 80..8F would be overlong */
    else if (s[0] == 0xf4)
        hi = 0x8f; /* F4 90.. is above U+10FFFF */
    if (s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    return n;
}

/* Most bytes a value may take in a line, escapes counted, so that no field crowds out the others: a
 * client sending a Host header of kilobytes must not push the request's path out of its log line. */
#define VALUE_SHORT 256            /* client, request id, method, protocol, status */
#define VALUE_NAME  512            /* user, host, upstream */
#define VALUE_AGENT 1024           /* user agent */
#define VALUE_URI   4096           /* the request URI (already cut to 2 KiB before escaping) */
#define VALUE_LINE  LINE_MAX_BYTES /* messages: whatever the line has room for */

/* Text format: control bytes, backslash and quote escaped so a client cannot forge a line. A value
 * longer than `cap` bytes ends in "...". */
static void put_text(struct line *l, const char *s, size_t cap)
{
    const size_t end = l->len + cap;
    char esc[8];

    if (s == NULL || *s == '\0') {
        put(l, "-", 1);
        return;
    }
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        const char *out = (const char *)p;
        size_t n = 1;
        if (*p < 0x20 || *p == 0x7f || *p == '"' || *p == '\\') {
            snprintf(esc, sizeof(esc), "\\x%02x", *p);
            out = esc;
            n = 4;
        }
        if (l->len + n + 3 > end) {
            put(l, "...", 3);
            return;
        }
        put(l, out, n);
    }
}

/* A JSON string literal. Each byte that is not part of well-formed UTF-8 becomes U+FFFD, so the line is
 * valid UTF-8 and valid JSON whatever the client sent. Escapes and characters are written whole; a value
 * longer than `cap` bytes, or one that would reach into the line's reserve, ends in "..." instead. */
static void put_json(struct line *l, const char *s, size_t cap)
{
    const size_t reserve_at = sizeof(l->buf) - 2 - JSON_RESERVE;
    const size_t end = (l->len + 1 + cap < reserve_at ? l->len + 1 + cap : reserve_at) - 3; /* 3: "..." */
    char esc[8];

    put(l, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p;) {
        const char *out = (const char *)p;
        size_t n, used = 1;
        if (*p == '"' || *p == '\\') {
            esc[0] = '\\';
            esc[1] = (char)*p;
            out = esc;
            n = 2;
        } else if (*p < 0x20 || *p == 0x7f) {
            snprintf(esc, sizeof(esc), "\\u%04x", *p);
            out = esc;
            n = 6;
        } else {
            n = used = utf8_len(p);
            if (n == 0) {
                out = "\\ufffd";
                n = 6;
                used = 1;
            }
        }
        if (l->len + n > end) {
            put(l, "...", 3);
            break;
        }
        put(l, out, n);
        p += used;
    }
    put(l, "\"", 1);
}

static void emit(struct line *l)
{
    if (l->truncated && opts.format == AG_LOG_FORMAT_JSON) {
        /* put_json() keeps the reserve for the structure, so this is a bug; still never write broken JSON */
        static const char broken[] = "{\"level\":\"error\",\"msg\":\"log line too long\"}";
        memcpy(l->buf, broken, sizeof(broken) - 1);
        l->len = sizeof(broken) - 1;
    } else if (l->truncated && l->len >= 3) {
        memcpy(l->buf + l->len - 3, "...", 3);
    }
    l->buf[l->len++] = '\n';
    const char *p = l->buf;
    size_t left = l->len;
    while (left > 0) {
        ssize_t w = write(opts.fd, p, left);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return; /* nowhere to report a failing log; drop the line */
        p += w;
        left -= (size_t)w;
    }
}

/* "2006/01/02 15:04:05" (oauth2-proxy) or RFC 3339 with milliseconds in UTC (JSON). */
static void put_time(struct line *l)
{
    struct timeval tv;
    struct tm tm;
    char ts[40];
    gettimeofday(&tv, NULL);
    if (opts.format == AG_LOG_FORMAT_JSON) {
        gmtime_r(&tv.tv_sec, &tm);
        size_t n = strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
        snprintf(ts + n, sizeof(ts) - n, ".%03dZ", (int)(tv.tv_usec / 1000));
        put_json(l, ts, VALUE_SHORT);
    } else {
        localtime_r(&tv.tv_sec, &tm);
        strftime(ts, sizeof(ts), "%Y/%m/%d %H:%M:%S", &tm);
        puts_(l, ts);
    }
}

static const char *level_name(enum ag_log_level level)
{
    switch (level) {
    case AG_LOG_DEBUG:
        return "debug";
    case AG_LOG_INFO:
        return "info";
    case AG_LOG_WARN:
        return "warning";
    case AG_LOG_ERROR:
        return "error";
    }
    return "info";
}

static const char *base_name(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

void ag_log_at(enum ag_log_level level, const char *file, int lineno, const char *request_id, const char *fmt,
               ...)
{
    struct line l;
    char msg[LINE_MAX_BYTES / 2];
    va_list ap;

    if (!opts.standard && level < AG_LOG_WARN)
        return;
    l.len = 0;
    l.truncated = false;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);

    if (opts.format == AG_LOG_FORMAT_JSON) {
        puts_(&l, "{\"time\":");
        put_time(&l);
        puts_(&l, ",\"level\":");
        put_json(&l, level_name(level), VALUE_SHORT);
        putf(&l, ",\"caller\":\"%s:%d\"", base_name(file), lineno);
        if (request_id) {
            puts_(&l, ",\"request_id\":");
            put_json(&l, request_id, VALUE_SHORT);
        }
        puts_(&l, ",\"msg\":");
        put_json(&l, msg, VALUE_LINE);
        put(&l, "}", 1);
    } else {
        put(&l, "[", 1);
        put_time(&l);
        putf(&l, "] [%s:%d] ", base_name(file), lineno);
        if (level >= AG_LOG_WARN) {
            puts_(&l, level == AG_LOG_WARN ? "WARNING: " : "ERROR: ");
        }
        if (request_id) {
            puts_(&l, "request_id=");
            put_text(&l, request_id, VALUE_SHORT);
            put(&l, " ", 1);
        }
        /* messages are ours, but may quote client data: escape control bytes only */
        for (const unsigned char *p = (const unsigned char *)msg; *p; p++) {
            if (*p < 0x20 || *p == 0x7f)
                putf(&l, "\\x%02x", *p);
            else
                put(&l, (const char *)p, 1);
        }
    }
    emit(&l);
}

/* Whether a query parameter name (n bytes, as sent) names a secret. The name is percent-decoded once
 * first, as every server decodes it before an application reads it (`c%6fde=` is `code=`), and compared
 * without regard to case (`CODE=`): hiding a value too many never leaks one. A malformed escape stays
 * as it is; a name longer than any secret's cannot be one. */
static bool secret_param(const char *name, size_t n)
{
    static const char *const names[] = {"code",          "state",    "token",
                                        "access_token",  "id_token", "refresh_token",
                                        "client_secret", "password", "session"};
    char dec[16];
    size_t d = 0;

    for (size_t i = 0; i < n; i++) {
        int hi = name[i] == '%' && i + 2 < n ? ag_hex_digit((unsigned char)name[i + 1]) : -1;
        int lo = hi >= 0 ? ag_hex_digit((unsigned char)name[i + 2]) : -1;
        if (d == sizeof(dec))
            return false;
        if (lo >= 0) {
            dec[d++] = (char)(hi * 16 + lo);
            i += 2;
        } else {
            dec[d++] = name[i];
        }
    }
    for (size_t i = 0; i < AG_ARRAY_LEN(names); i++)
        if (strlen(names[i]) == d && strncasecmp(names[i], dec, d) == 0)
            return true;
    return false;
}

size_t ag_log_redact_uri(const char *uri, char *out, size_t outlen)
{
    size_t o = 0;
    const char *q;

    if (outlen == 0)
        return 0;
    if (uri == NULL)
        uri = "";
#define OUT(c)                                                                                               \
    do {                                                                                                     \
        if (o + 1 < outlen)                                                                                  \
            out[o++] = (c);                                                                                  \
    } while (0)
    q = strchr(uri, '?');
    for (const char *p = uri; *p && (q == NULL || p <= q); p++)
        OUT(*p);
    if (q != NULL) {
        const char *p = q + 1;
        while (*p) {
            const char *end = p + strcspn(p, "&;");
            const char *eq = memchr(p, '=', (size_t)(end - p));
            if (eq != NULL && secret_param(p, (size_t)(eq - p))) {
                for (const char *c = p; c <= eq; c++)
                    OUT(*c);
                for (const char *c = "REDACTED"; *c; c++)
                    OUT(*c);
            } else {
                for (const char *c = p; c < end; c++)
                    OUT(*c);
            }
            if (*end == '\0')
                break;
            OUT(*end);
            p = end + 1;
        }
    }
#undef OUT
    out[o] = '\0';
    return o;
}

void ag_log_request(const struct ag_log_request *r)
{
    struct line l;
    char uri[2048];

    if (!opts.request)
        return;
    l.len = 0;
    l.truncated = false;
    ag_log_redact_uri(r->uri, uri, sizeof(uri));
    if (opts.format == AG_LOG_FORMAT_JSON) {
        char msg[128];
        puts_(&l, "{\"time\":");
        put_time(&l);
        puts_(&l, ",\"level\":\"info\",\"type\":\"request\",\"client\":");
        put_json(&l, r->client, VALUE_SHORT);
        puts_(&l, ",\"request_id\":");
        put_json(&l, r->request_id, VALUE_SHORT);
        puts_(&l, ",\"user\":");
        put_json(&l, r->user, VALUE_NAME);
        puts_(&l, ",\"host\":");
        put_json(&l, r->host, VALUE_NAME);
        puts_(&l, ",\"method\":");
        put_json(&l, r->method, VALUE_SHORT);
        puts_(&l, ",\"upstream\":");
        put_json(&l, r->upstream, VALUE_NAME);
        puts_(&l, ",\"uri\":");
        put_json(&l, uri, VALUE_URI);
        puts_(&l, ",\"proto\":");
        put_json(&l, r->proto, VALUE_SHORT);
        puts_(&l, ",\"user_agent\":");
        put_json(&l, r->user_agent, VALUE_AGENT);
        putf(&l, ",\"status\":%u,\"size\":%llu,\"duration\":%.6f,\"msg\":", r->status,
             (unsigned long long)r->size, r->duration_s);
        snprintf(msg, sizeof(msg), "%.16s request %u", r->method ? r->method : "-", r->status);
        put_json(&l, msg, VALUE_LINE);
        put(&l, "}", 1);
    } else {
        /* {{.Client}} - {{.RequestID}} - {{.Username}} [{{.Timestamp}}] {{.Host}} {{.RequestMethod}}
         * {{.Upstream}} "{{.RequestURI}}" {{.Protocol}} "{{.UserAgent}}" {{.StatusCode}}
         * {{.ResponseSize}} {{.RequestDuration}} */
        put_text(&l, r->client, VALUE_SHORT);
        puts_(&l, " - ");
        put_text(&l, r->request_id, VALUE_SHORT);
        puts_(&l, " - ");
        put_text(&l, r->user, VALUE_NAME);
        puts_(&l, " [");
        put_time(&l);
        puts_(&l, "] ");
        put_text(&l, r->host, VALUE_NAME);
        put(&l, " ", 1);
        put_text(&l, r->method, VALUE_SHORT);
        put(&l, " ", 1);
        put_text(&l, r->upstream, VALUE_NAME);
        puts_(&l, " \"");
        put_text(&l, uri, VALUE_URI);
        puts_(&l, "\" ");
        put_text(&l, r->proto, VALUE_SHORT);
        puts_(&l, " \"");
        put_text(&l, r->user_agent, VALUE_AGENT);
        putf(&l, "\" %u %llu %.3f", r->status, (unsigned long long)r->size, r->duration_s);
    }
    emit(&l);
}

void ag_log_auth(const char *client, const char *request_id, const char *user, const char *status,
                 const char *msg)
{
    struct line l;

    if (!opts.auth)
        return;
    l.len = 0;
    l.truncated = false;
    if (opts.format == AG_LOG_FORMAT_JSON) {
        puts_(&l, "{\"time\":");
        put_time(&l);
        puts_(&l, ",\"level\":\"info\",\"type\":\"auth\",\"client\":");
        put_json(&l, client, VALUE_SHORT);
        puts_(&l, ",\"request_id\":");
        put_json(&l, request_id, VALUE_SHORT);
        puts_(&l, ",\"user\":");
        put_json(&l, user, VALUE_NAME);
        puts_(&l, ",\"status\":");
        put_json(&l, status, VALUE_SHORT);
        puts_(&l, ",\"msg\":");
        put_json(&l, msg, VALUE_LINE);
        put(&l, "}", 1);
    } else {
        /* {{.Client}} - {{.RequestID}} - {{.Username}} [{{.Timestamp}}] [{{.Status}}] {{.Message}} */
        put_text(&l, client, VALUE_SHORT);
        puts_(&l, " - ");
        put_text(&l, request_id, VALUE_SHORT);
        puts_(&l, " - ");
        put_text(&l, user, VALUE_NAME);
        puts_(&l, " [");
        put_time(&l);
        puts_(&l, "] [");
        put_text(&l, status, VALUE_SHORT);
        puts_(&l, "] ");
        put_text(&l, msg, VALUE_LINE);
    }
    emit(&l);
}
