/* SPDX-License-Identifier: Apache-2.0
 * Redirect-target validation: oauth2-proxy's IsValidRedirect and --whitelist-domain matching,
 * hardened against the bypasses in oauth2-proxy CVE-2020-5233, CVE-2020-11053, CVE-2020-4037,
 * CVE-2021-21291 and mod_auth_openidc CVE-2019-14857, CVE-2021-32786. URL syntax per RFC 3986
 * (sections 3.2 and 5.2.4), read the way WHATWG browsers read it. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "net/redirect.h"

#define HOST_MAX  253 /* RFC 1035 name length; a canonical IPv6 literal is shorter */
#define LABEL_MAX 63
#define HTTP_PORT 80
#define TLS_PORT  443

enum port_rule {
    PORT_DEFAULT = 0, /* no port in the entry: only the scheme's default port */
    PORT_ANY,         /* `:*` */
    PORT_EXACT        /* `:8080` */
};

struct wl_entry {
    char host[HOST_MAX + 1]; /* lower case; IPv6 literals in inet_ntop form without brackets */
    bool subdomains;         /* `.x` or `*.x`: x itself and every name below it */
    enum port_rule port_rule;
    unsigned port; /* PORT_EXACT only */
};

struct ag_whitelist {
    size_t n;
    struct wl_entry e[];
};

struct authority {
    char host[HOST_MAX + 1];
    bool ipv6;
    enum port_rule port_rule; /* PORT_DEFAULT when no port was written */
    unsigned port;
};

static bool is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

/* The byte encoded by `%XX` at s[i] (s[i] == '%'), or -1 when the escape is malformed. */
static int pct_decode(const char *s, size_t len, size_t i)
{
    int hi, lo;
    if (i + 2 >= len)
        return -1;
    hi = ag_hex_digit((unsigned char)s[i + 1]);
    lo = ag_hex_digit((unsigned char)s[i + 2]);
    if (hi < 0 || lo < 0)
        return -1;
    return hi * 16 + lo;
}

static unsigned char lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c - 'A' + 'a') : c;
}

static bool is_name_char(unsigned char c)
{
    return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-' || c == '_';
}

/* Whether the host's last label is a number to a browser: all digits, or 0x/0X and hex digits (WHATWG
 * URL Standard, "ends in a number"). Such a host is an IPv4 address however it is written: `0`,
 * `2130706433`, `0x7f.1`, `1.0x7f` and `0177.0.0.1` all go to an address, not to a name. */
static bool ends_in_number(const char *host)
{
    const char *dot = strrchr(host, '.');
    const char *p = dot != NULL ? dot + 1 : host;

    if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) {
        for (p += 2; *p != '\0'; p++)
            if (ag_hex_digit((unsigned char)*p) < 0)
                return false;
        return true;
    }
    if (*p == '\0')
        return false;
    for (; *p != '\0'; p++)
        if (!is_digit((unsigned char)*p))
            return false;
    return true;
}

/* Four decimal numbers 0-255 without leading zeros: the one spelling of an IPv4 address that reads the
 * same to a browser and to a string comparison. */
static bool dotted_quad(const char *host)
{
    const char *p = host;

    for (int part = 0; part < 4; part++) {
        unsigned v = 0;
        size_t n = 0;
        if (part > 0 && *p++ != '.')
            return false;
        for (; is_digit((unsigned char)p[n]) && n < 4; n++)
            v = v * 10 + (unsigned)(p[n] - '0');
        if (n == 0 || n > 3 || v > 255 || (n > 1 && p[0] == '0'))
            return false;
        p += n;
    }
    return *p == '\0';
}

/* A DNS-style name: labels of [A-Za-z0-9_-], 1-63 bytes, no empty label (so no leading or
 * trailing dot: `foo.bar.` would otherwise be a second spelling of `foo.bar`). Anything else,
 * including non-ASCII that browsers would IDNA-map onto ASCII, is refused. A host that a browser reads
 * as a number must be a dotted quad: otherwise the check would compare the text `0x7f.1` while the
 * browser goes to 127.0.0.1, and two spellings of one address would be two hosts here. */
static const char *parse_name(const char *s, size_t len, char *out)
{
    size_t label = 0;

    if (len > HOST_MAX)
        return "host too long";
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '.') {
            if (label == 0)
                return "empty label in host";
            label = 0;
        } else if (is_name_char(c)) {
            if (++label > LABEL_MAX)
                return "host label too long";
        } else {
            return "bad character in host";
        }
        out[i] = (char)lower(c);
    }
    if (label == 0)
        return "empty label in host";
    out[len] = '\0';
    if (ends_in_number(out) && !dotted_quad(out))
        return "a browser reads this host as an IPv4 address: write the address as four decimal numbers "
               "(like 127.0.0.1)";
    return NULL;
}

/* `[v6]`, brackets included. Canonicalised so `[0:0::1]` and `[::1]` compare equal; zone ids
 * (`%25eth0`) are refused because inet_pton does not take them. */
static const char *parse_ipv6(const char *s, size_t len, char *out, size_t outlen)
{
    char buf[INET6_ADDRSTRLEN];
    unsigned char bin[16];

    if (len < 4 || s[len - 1] != ']' || len - 2 >= sizeof(buf))
        return "bad IPv6 literal";
    memcpy(buf, s + 1, len - 2);
    buf[len - 2] = '\0';
    if (inet_pton(AF_INET6, buf, bin) != 1)
        return "bad IPv6 literal";
    if (inet_ntop(AF_INET6, bin, out, (socklen_t)outlen) == NULL)
        return "bad IPv6 literal";
    return NULL;
}

static const char *parse_port(const char *s, size_t len, bool allow_star, struct authority *a)
{
    unsigned long v = 0;

    if (allow_star && len == 1 && s[0] == '*') {
        a->port_rule = PORT_ANY;
        return NULL;
    }
    if (len == 0)
        return "empty port";
    /* canonical spelling only: `:08080` is port 8080 to a browser, but nothing legitimate writes it */
    if (len > 5 || (len > 1 && s[0] == '0'))
        return "bad port";
    for (size_t i = 0; i < len; i++) {
        if (!is_digit((unsigned char)s[i]))
            return "bad port";
        v = v * 10 + (unsigned long)(s[i] - '0');
    }
    if (v < 1 || v > 65535)
        return "port out of range";
    a->port_rule = PORT_EXACT;
    a->port = (unsigned)v;
    return NULL;
}

/* host[:port] or [v6][:port], exactly `len` bytes. `allow_star` admits the whitelist's `:*`. */
static const char *parse_authority(const char *s, size_t len, bool allow_star, struct authority *a)
{
    size_t hostlen;
    const char *why;

    memset(a, 0, sizeof(*a));
    if (len == 0)
        return "empty host";
    if (s[0] == '[') {
        const char *close = memchr(s, ']', len);
        if (close == NULL)
            return "bad IPv6 literal";
        hostlen = (size_t)(close - s) + 1;
        why = parse_ipv6(s, hostlen, a->host, sizeof(a->host));
        a->ipv6 = true;
    } else {
        const char *colon = memchr(s, ':', len);
        hostlen = colon != NULL ? (size_t)(colon - s) : len;
        why = hostlen == 0 ? "empty host" : parse_name(s, hostlen, a->host);
    }
    if (why != NULL)
        return why;
    if (hostlen == len)
        return NULL;
    if (s[hostlen] != ':')
        return "bad IPv6 literal";
    return parse_port(s + hostlen + 1, len - hostlen - 1, allow_star, a);
}

static bool host_matches(const struct wl_entry *e, const char *host)
{
    size_t hl = strlen(host), el = strlen(e->host);

    if (strcmp(host, e->host) == 0)
        return true;
    /* the dot before the suffix is what keeps `evilbar.foo` out of `.bar.foo` (CVE-2021-21291) */
    return e->subdomains && hl > el + 1 && host[hl - el - 1] == '.' &&
           memcmp(host + hl - el, e->host, el) == 0;
}

static bool port_matches(enum port_rule rule, unsigned want, unsigned effective, unsigned scheme_default)
{
    switch (rule) {
    case PORT_ANY:
        return true;
    case PORT_EXACT:
        return effective == want;
    case PORT_DEFAULT:
        return effective == scheme_default;
    }
    return false;
}

static void set_err(char *err, size_t errlen, const char *entry, const char *msg)
{
    if (err != NULL && errlen > 0)
        snprintf(err, errlen, "whitelist_domains: \"%.*s\": %s", 80, entry != NULL ? entry : "(null)", msg);
}

enum ag_rc ag_whitelist_new(const char *const *domains, size_t n, struct ag_whitelist **out, char *err,
                            size_t errlen)
{
    struct ag_whitelist *w = NULL;
    enum ag_rc rc = AG_ERR_INVALID;

    if (err != NULL && errlen > 0)
        err[0] = '\0';
    if (out == NULL)
        return AG_ERR_INVALID;
    *out = NULL;
    if (domains == NULL && n > 0) {
        set_err(err, errlen, NULL, "no entries");
        goto out;
    }
    if (n > (SIZE_MAX - sizeof(*w)) / sizeof(w->e[0])) {
        rc = AG_ERR_NOMEM;
        goto out;
    }
    w = calloc(1, sizeof(*w) + n * sizeof(w->e[0]));
    if (w == NULL) {
        rc = AG_ERR_NOMEM;
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        const char *s = domains[i];
        struct wl_entry *e = &w->e[i];
        struct authority a;
        const char *why;
        size_t len;

        if (s == NULL) {
            set_err(err, errlen, NULL, "missing entry");
            goto out;
        }
        len = strnlen(s, HOST_MAX + 16);
        /* `*.x` is oauth2-proxy's alias of `.x`: both cover x and its subdomains */
        if (len >= 2 && s[0] == '*' && s[1] == '.') {
            e->subdomains = true;
            s += 2;
            len -= 2;
        } else if (len >= 1 && s[0] == '.') {
            e->subdomains = true;
            s += 1;
            len -= 1;
        }
        if (len > HOST_MAX + 8) {
            set_err(err, errlen, domains[i], "too long");
            goto out;
        }
        why = parse_authority(s, len, true, &a);
        if (why == NULL && s[len] != '\0')
            why = "too long";
        /* `.0.0.1` would be an IPv4 address range in disguise, and no real TLD is numeric */
        if (why == NULL && e->subdomains && (a.ipv6 || ends_in_number(a.host)))
            why = "a subdomain wildcard needs a domain name, not an address";
        if (why != NULL) {
            set_err(err, errlen, domains[i], why);
            goto out;
        }
        memcpy(e->host, a.host, sizeof(e->host));
        e->port_rule = a.port_rule;
        e->port = a.port;
    }
    w->n = n;
    *out = w;
    w = NULL;
    rc = AG_OK;
out:
    free(w);
    return rc;
}

void ag_whitelist_free(struct ag_whitelist *w)
{
    free(w);
}

/* Byte-level screen for every target. Controls, whitespace and `\` are what browsers strip or
 * turn into `/` (CVE-2020-5233, CVE-2020-4037); non-ASCII and `"<>`` never appear in a URL a
 * browser produced, and refusing them keeps the target inert in headers and HTML; encoded CR,
 * LF and NUL only serve header injection once someone decodes them. */
static const char *check_bytes(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        int d;

        if (c < 0x20 || c == 0x7f)
            return "control character";
        if (c >= 0x80)
            return "non-ASCII byte";
        switch (c) {
        case ' ':
            return "whitespace";
        case '\\':
            return "backslash";
        case '"':
        case '<':
        case '>':
        case '`':
            return "character not allowed in a URL";
        case '%':
            d = pct_decode(s, len, i);
            if (d < 0)
                return "malformed percent-escape";
            if (d == 0x00 || d == 0x0a || d == 0x0d)
                return "encoded CR, LF or NUL";
            i += 2;
            break;
        default:
            break;
        }
    }
    return NULL;
}

/* RFC 3986 5.2.4 remove_dot_segments, in place: the output never outgrows what has been read,
 * so writing at `o` never overtakes reading at `i`. Returns the new length. */
static size_t remove_dot_segments(char *b, size_t n)
{
    size_t i = 0, o = 0;

    while (i < n) {
        size_t rest = n - i;
        const char *p = b + i;

        if (rest >= 3 && memcmp(p, "../", 3) == 0) {
            i += 3;
        } else if (rest >= 2 && memcmp(p, "./", 2) == 0) {
            i += 2;
        } else if (rest >= 3 && memcmp(p, "/./", 3) == 0) {
            i += 2;
        } else if (rest == 2 && memcmp(p, "/.", 2) == 0) {
            b[i + 1] = '/';
            i += 1;
        } else if ((rest >= 4 && memcmp(p, "/../", 4) == 0) || (rest == 3 && memcmp(p, "/..", 3) == 0)) {
            if (rest == 3)
                b[i + 2] = '/';
            i += (rest == 3) ? 2 : 3;
            while (o > 0 && b[o - 1] != '/')
                o--;
            if (o > 0)
                o--;
        } else if ((rest == 1 && p[0] == '.') || (rest == 2 && memcmp(p, "..", 2) == 0)) {
            i = n;
        } else {
            size_t k = (p[0] == '/') ? 1 : 0;
            while (k < rest && p[k] != '/')
                k++;
            memmove(b + o, p, k);
            o += k;
            i += k;
        }
    }
    return o;
}

/* Escapes that, at the start of a path, decode to something a browser or a decoding server
 * turns into a host reference: tab, LF, CR, space, `\`, `/` (CVE-2020-11053). */
static bool is_head_escape(int d)
{
    return d == 0x09 || d == 0x0a || d == 0x0d || d == 0x20 || d == '\\' || d == '/';
}

static const char *check_relative(const char *s, size_t len)
{
    char buf[AG_REDIRECT_MAX + 1];
    size_t plen, n = 0, i;

    /* `//host` and `/\host` are network-path references (CVE-2019-14857, CVE-2020-5233) */
    if (len >= 2 && (s[1] == '/' || s[1] == '\\'))
        return "protocol-relative target";

    /* the leading run of slashes, dots and escapes must not hide an encoded slash or blank */
    for (i = 1; i < len;) {
        if (s[i] == '/' || s[i] == '.') {
            i++;
        } else if (s[i] == '%') {
            int d = pct_decode(s, len, i);
            if (is_head_escape(d))
                return "encoded slash or whitespace at the start of the path";
            if (d != '.')
                break;
            i += 3;
        } else {
            break;
        }
    }

    /* Read the path as the most lenient consumer would: decode once, drop blanks and controls,
     * take `\` for `/`, resolve dot segments. If that still starts with `//` some browser or
     * server in the chain could send the user to another host (CVE-2020-4037). */
    plen = strcspn(s, "?#");
    for (i = 0; i < plen; i++) {
        int c = (unsigned char)s[i];
        if (c == '%') {
            c = pct_decode(s, plen, i);
            if (c < 0)
                return "malformed percent-escape";
            i += 2;
        }
        if (c <= 0x20 || c == 0x7f)
            continue;
        buf[n++] = (char)(c == '\\' ? '/' : c);
    }
    n = remove_dot_segments(buf, n);
    if (n >= 2 && buf[0] == '/' && buf[1] == '/')
        return "path collapses to a protocol-relative target";
    /* `/javascript:x` is harmless as a path, but some clients take a first segment with `:` for
     * a scheme */
    for (i = 1; i < n && buf[i] != '/'; i++)
        if (buf[i] == ':')
            return "colon in the first path segment";
    return NULL;
}

static const char *check_absolute(const struct ag_whitelist *w, const char *s, size_t len,
                                  unsigned scheme_default, const char *self_host)
{
    struct authority a, self;
    size_t alen = 0;
    unsigned effective;
    const char *why;

    while (alen < len && s[alen] != '/' && s[alen] != '?' && s[alen] != '#')
        alen++;
    if (alen == 0)
        return "empty host";
    /* `https://evil.com@foo.bar`: refuse userinfo rather than guess which side a client uses */
    if (memchr(s, '@', alen) != NULL)
        return "userinfo in URL";
    if (memchr(s, '%', alen) != NULL)
        return "percent-encoding in host";
    why = parse_authority(s, alen, false, &a);
    if (why != NULL)
        return why;
    effective = a.port_rule == PORT_EXACT ? a.port : scheme_default;

    if (self_host != NULL) {
        size_t slen = strnlen(self_host, HOST_MAX + 16);
        if (self_host[slen] == '\0' && parse_authority(self_host, slen, false, &self) == NULL &&
            strcmp(self.host, a.host) == 0 &&
            port_matches(self.port_rule, self.port, effective, scheme_default))
            return NULL;
    }
    if (w != NULL) {
        for (size_t i = 0; i < w->n; i++) {
            const struct wl_entry *e = &w->e[i];
            if (host_matches(e, a.host) && port_matches(e->port_rule, e->port, effective, scheme_default))
                return NULL;
        }
    }
    return "host not in whitelist";
}

/* Length of a `scheme:` prefix (RFC 3986 3.1), or 0 when `s` does not start with one. */
static size_t scheme_len(const char *s, size_t len)
{
    size_t i = 0;

    while (i < len && (is_name_char((unsigned char)s[i]) || s[i] == '+' || s[i] == '.'))
        i++;
    return (i > 0 && i < len && s[i] == ':') ? i + 1 : 0;
}

enum ag_rc ag_redirect_check(const struct ag_whitelist *w, const char *target, const char *self_host,
                             const char **why)
{
    const char *reason = NULL;
    size_t len;

    if (target == NULL) {
        reason = "no target";
        goto out;
    }
    len = strnlen(target, AG_REDIRECT_MAX + 1);
    if (len == 0) {
        reason = "empty target";
        goto out;
    }
    if (len > AG_REDIRECT_MAX) {
        reason = "target too long";
        goto out;
    }
    reason = check_bytes(target, len);
    if (reason != NULL)
        goto out;
    if (target[0] == '/')
        reason = check_relative(target, len);
    else if (len >= 7 && strncasecmp(target, "http://", 7) == 0)
        reason = check_absolute(w, target + 7, len - 7, HTTP_PORT, self_host);
    else if (len >= 8 && strncasecmp(target, "https://", 8) == 0)
        reason = check_absolute(w, target + 8, len - 8, TLS_PORT, self_host);
    else if (scheme_len(target, len) > 0)
        reason = "scheme not allowed";
    else
        reason = "not a path or an http(s) URL";
out:
    if (why != NULL)
        *why = reason != NULL ? reason : "ok";
    return reason != NULL ? AG_ERR_INVALID : AG_OK;
}
