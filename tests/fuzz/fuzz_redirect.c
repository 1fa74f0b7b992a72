/* SPDX-License-Identifier: Apache-2.0
 * The redirect check (src/net/redirect.c) against an oracle that reads URLs the way a browser does
 * (WHATWG URL Standard, written here independently and strictly): tabs and newlines removed, leading
 * and trailing blanks and controls stripped, `\` read as `/` in http(s) URLs, any number of slashes after
 * the scheme, userinfo up to the last `@`, percent-decoded hosts, and hosts that end in a number read as
 * IPv4 (`0x7f.1`, `1.0x7f`, `0`, `2130706433`, octal `0177.0.0.1`).
 * Input: the whitelist entries (comma-separated), a newline, this request's host (empty: none), a
 * newline, the target. Oracles:
 *  - an accepted whitelist entry means the same to the browser as to authgate: its host is already in
 *    the browser's canonical form, and a subdomain entry names a domain, not an address;
 *  - an accepted target is either a same-origin reference (a path the browser resolves against the
 *    current origin) or leads, in the browser, to a host and port that a whitelist entry or this
 *    request's host allows, compared in canonical form. */
#include <arpa/inet.h>
#include <ctype.h>
#include <strings.h>

#include "fuzz.h"
#include "net/redirect.h"

enum host_kind { H_NONE = 0, H_DOMAIN, H_V4, H_V6 };

struct host {
    enum host_kind kind;
    char name[1024]; /* H_DOMAIN: lower case ASCII */
    uint32_t v4;
    unsigned char v6[16];
};

/* WHATWG IPv4 number parser: 0x/0X hex, a leading 0 octal, else decimal; "" fails. */
static bool v4_number(const char *s, size_t n, uint64_t *out)
{
    unsigned radix = 10;
    uint64_t v = 0;

    if (n == 0)
        return false;
    if (n >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        radix = 16;
        s += 2;
        n -= 2;
    } else if (n >= 2 && s[0] == '0') {
        radix = 8;
        s++;
        n--;
    }
    for (size_t i = 0; i < n; i++) {
        int d = ag_hex_digit((unsigned char)s[i]);
        if (d < 0 || (unsigned)d >= radix)
            return false;
        if (v > (UINT64_C(1) << 40))
            return false; /* far too large for any part */
        v = v * radix + (unsigned)d;
    }
    *out = v;
    return true;
}

/* WHATWG "ends in a number". */
static bool ends_in_number(const char *s, size_t n)
{
    const char *last;
    uint64_t v;

    if (n > 0 && s[n - 1] == '.') {
        if (memchr(s, '.', n - 1) == NULL)
            return false;
        n--;
    }
    last = s + n;
    while (last > s && last[-1] != '.')
        last--;
    n = (size_t)(s + n - last);
    if (n > 0 && strspn(last, "0123456789") >= n)
        return true;
    return v4_number(last, n, &v);
}

/* WHATWG IPv4 parser, for a host that ends in a number. */
static bool v4_parse(const char *s, size_t n, uint32_t *out)
{
    uint64_t parts[4];
    size_t np = 0, start = 0;

    if (n > 0 && s[n - 1] == '.' && n > 1)
        n--;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && s[i] != '.')
            continue;
        if (np == 4 || !v4_number(s + start, i - start, &parts[np]))
            return false;
        np++;
        start = i + 1;
    }
    for (size_t i = 0; i + 1 < np; i++)
        if (parts[i] > 255)
            return false;
    if (parts[np - 1] >= (UINT64_C(1) << (8 * (5 - np))))
        return false;
    uint64_t v = parts[np - 1];
    for (size_t i = 0; i + 1 < np; i++)
        v += parts[i] << (8 * (3 - i));
    *out = (uint32_t)v;
    return true;
}

/* WHATWG host parser for special schemes, for ASCII hosts (anything else is H_NONE: the browser would
 * need IDNA, which authgate must then have refused). */
static enum host_kind host_parse(const char *s, size_t n, struct host *h)
{
    char buf[1024];
    size_t o = 0;

    memset(h, 0, sizeof(*h));
    if (n == 0)
        return H_NONE;
    if (s[0] == '[') {
        if (n < 3 || s[n - 1] != ']' || n - 2 >= sizeof(buf))
            return H_NONE;
        memcpy(buf, s + 1, n - 2);
        buf[n - 2] = '\0';
        if (inet_pton(AF_INET6, buf, h->v6) != 1)
            return H_NONE;
        return h->kind = H_V6;
    }
    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)s[i], hi, lo;
        if (c == '%' && i + 2 < n) {
            hi = ag_hex_digit((unsigned char)s[i + 1]);
            lo = ag_hex_digit((unsigned char)s[i + 2]);
            if (hi >= 0 && lo >= 0) {
                c = hi * 16 + lo;
                i += 2;
            }
        }
        if (c >= 0x80 || o + 1 >= sizeof(buf))
            return H_NONE;
        /* forbidden domain code points */
        if (c <= 0x20 || c == 0x7f || strchr("#%/:<>?@[\\]^|", c) != NULL)
            return H_NONE;
        buf[o++] = (char)tolower(c);
    }
    buf[o] = '\0';
    if (ends_in_number(buf, o)) {
        if (!v4_parse(buf, o, &h->v4))
            return H_NONE;
        return h->kind = H_V4;
    }
    memcpy(h->name, buf, o + 1);
    return h->kind = H_DOMAIN;
}

static bool host_eq(const struct host *a, const struct host *b)
{
    if (a->kind != b->kind)
        return false;
    switch (a->kind) {
    case H_DOMAIN:
        return strcmp(a->name, b->name) == 0;
    case H_V4:
        return a->v4 == b->v4;
    case H_V6:
        return memcmp(a->v6, b->v6, 16) == 0;
    default:
        return false;
    }
}

/* An allowed destination: an entry or this request's host. port: 0 = the scheme's default only,
 * -1 = any, else that port. */
struct allowed {
    struct host h;
    bool subdomains;
    long port;
    const char *text; /* the host as written */
    size_t text_len;
};

/* "host[:port|:*]" as the entry or Host header spells it. */
static bool allowed_parse(const char *s, bool entry, struct allowed *a)
{
    size_t n = strlen(s), hn;
    const char *colon;

    memset(a, 0, sizeof(*a));
    if (entry && n >= 2 && s[0] == '*' && s[1] == '.') {
        a->subdomains = true;
        s += 2;
        n -= 2;
    } else if (entry && n >= 1 && s[0] == '.') {
        a->subdomains = true;
        s++;
        n--;
    }
    colon = s[0] == '[' ? (memchr(s, ']', n) ? strchr(memchr(s, ']', n), ':') : NULL) : memchr(s, ':', n);
    hn = colon != NULL ? (size_t)(colon - s) : n;
    a->text = s;
    a->text_len = hn;
    if (host_parse(s, hn, &a->h) == H_NONE)
        return false;
    if (colon != NULL) {
        if (strcmp(colon + 1, "*") == 0) {
            a->port = -1;
        } else {
            char *end;
            a->port = strtol(colon + 1, &end, 10);
            if (*end != '\0' || a->port < 1 || a->port > 65535)
                return false;
        }
    }
    return true;
}

/* Whether the browser's destination (host h, port: 0 when none was written) is allowed. */
static bool dest_allowed(const struct host *h, long port, unsigned def, const struct allowed *a, size_t n)
{
    long effective = port != 0 ? port : (long)def;
    for (size_t i = 0; i < n; i++) {
        bool host_ok = host_eq(h, &a[i].h);
        if (!host_ok && a[i].subdomains && h->kind == H_DOMAIN && a[i].h.kind == H_DOMAIN) {
            size_t hl = strlen(h->name), el = strlen(a[i].h.name);
            host_ok =
                hl > el + 1 && h->name[hl - el - 1] == '.' && strcmp(h->name + hl - el, a[i].h.name) == 0;
        }
        if (!host_ok)
            continue;
        if (a[i].port == -1 || (a[i].port == 0 && effective == (long)def) || a[i].port == effective)
            return true;
    }
    return false;
}

/* The authority of an http(s) URL after the scheme: slashes and backslashes skipped, up to / \ ? #;
 * userinfo dropped; host and port parsed. False when the browser would refuse the URL. */
static bool authority(const char *s, struct host *h, long *port)
{
    const char *end, *at, *colon, *hs;

    while (*s == '/' || *s == '\\')
        s++;
    end = s + strcspn(s, "/\\?#");
    hs = s;
    for (at = s; at < end; at++)
        if (*at == '@')
            hs = at + 1;
    colon = NULL;
    if (hs < end && *hs == '[') {
        const char *close = memchr(hs, ']', (size_t)(end - hs));
        if (close != NULL && close + 1 < end && close[1] == ':')
            colon = close + 1;
    } else {
        colon = memchr(hs, ':', (size_t)(end - hs));
    }
    *port = 0;
    if (colon != NULL && colon + 1 < end) {
        long v = 0;
        for (const char *p = colon + 1; p < end; p++) {
            if (*p < '0' || *p > '9')
                return false;
            v = v * 10 + (*p - '0');
            if (v > 65535)
                return false;
        }
        *port = v;
    }
    return host_parse(hs, (size_t)((colon != NULL ? colon : end) - hs), h) != H_NONE;
}

/* Browser preprocessing: leading and trailing C0 controls and spaces stripped, tabs and newlines gone. */
static char *preprocess(const char *t)
{
    size_t n = strlen(t), o = 0;
    char *r = malloc(n + 1);
    if (r == NULL)
        abort();
    while (n > 0 && (unsigned char)t[n - 1] <= 0x20)
        n--;
    while (n > 0 && (unsigned char)*t <= 0x20) {
        t++;
        n--;
    }
    for (size_t i = 0; i < n; i++)
        if (t[i] != '\t' && t[i] != '\n' && t[i] != '\r')
            r[o++] = t[i];
    r[o] = '\0';
    return r;
}

static void check_target(const char *target, const struct allowed *a, size_t na)
{
    char *u = preprocess(target);
    size_t sl = 0;
    struct host h;
    long port;

    if (isalpha((unsigned char)u[0])) {
        sl = 1;
        while (isalnum((unsigned char)u[sl]) || u[sl] == '+' || u[sl] == '-' || u[sl] == '.')
            sl++;
        sl = u[sl] == ':' ? sl : 0;
    }
    if (sl > 0) {
        bool http = sl == 4 && strncasecmp(u, "http", 4) == 0,
             https = sl == 5 && strncasecmp(u, "https", 5) == 0;
        const char *rest = u + sl + 1;
        FUZZ_CHECK(http || https, "accepted a %.*s: URL: %s", (int)sl, u, target);
        /* on a page of the same scheme without two slashes it is a relative path; on another scheme's
         * page, or with the slashes, an authority: the second reading must be safe either way */
        FUZZ_CHECK(authority(rest, &h, &port), "accepted %s, which a browser does not open", target);
        FUZZ_CHECK(dest_allowed(&h, port, http ? 80 : 443, a, na), "accepted %s, off the whitelist", target);
    } else if ((u[0] == '/' || u[0] == '\\') && (u[1] == '/' || u[1] == '\\')) {
        /* scheme-relative: the current page's scheme, and its default port */
        FUZZ_CHECK(authority(u, &h, &port), "accepted %s, which a browser does not open", target);
        FUZZ_CHECK(dest_allowed(&h, port, 80, a, na) && dest_allowed(&h, port, 443, a, na),
                   "accepted %s, off the whitelist", target);
    }
    /* otherwise a path, a query or a fragment: the same origin */
    free(u);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_in in = fuzz_in(data, size);
    char *list = fuzz_field(&in, '\n', NULL), *self = fuzz_field(&in, '\n', NULL);
    char *target = fuzz_rest(&in, NULL), err[256];
    const char *entries[16];
    struct allowed allow[17];
    size_t n = 0, na = 0;
    struct ag_whitelist *w = NULL;
    const char *why = NULL;

    for (char *p = list, *save = NULL, *e = strtok_r(p, ",", &save); e != NULL && n < 16;
         e = strtok_r(NULL, ",", &save))
        entries[n++] = e;
    if (ag_whitelist_new(entries, n, &w, err, sizeof(err)) == AG_OK) {
        for (size_t i = 0; i < n; i++) {
            struct allowed *a = &allow[na++];
            char canon[INET6_ADDRSTRLEN];
            FUZZ_CHECK(allowed_parse(entries[i], true, a), "entry \"%s\" accepted, but a browser refuses it",
                       entries[i]);
            /* the entry as written is what the browser reads */
            if (a->h.kind == H_V4) {
                struct in_addr ia = {htonl(a->h.v4)};
                inet_ntop(AF_INET, &ia, canon, sizeof(canon));
                FUZZ_CHECK(a->text_len == strlen(canon) && memcmp(a->text, canon, a->text_len) == 0,
                           "entry \"%s\" is the address %s to a browser", entries[i], canon);
            }
            FUZZ_CHECK(!a->subdomains || a->h.kind == H_DOMAIN, "subdomain entry \"%s\" names an address",
                       entries[i]);
        }
    } else {
        w = NULL;
        na = 0;
    }
    if (self[0] != '\0' && allowed_parse(self, false, &allow[na]))
        na++;
    if (ag_redirect_check(w, target, self[0] != '\0' ? self : NULL, &why) == AG_OK) {
        FUZZ_CHECK(strcmp(why, "ok") == 0, "why");
        check_target(target, allow, na);
    }
    ag_whitelist_free(w);
    free(list);
    free(self);
    free(target);
    return 0;
}
