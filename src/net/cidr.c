/* SPDX-License-Identifier: Apache-2.0
 * Address blocks for --trusted-proxy-ip. IPv4-mapped IPv6 addresses, in entries and peers, are
 * folded to IPv4 (as nginx's set_real_ip_from does), so a dual-stack listener that reports
 * ::ffff:10.1.2.3 matches 10.0.0.0/8, and an IPv6 block never silently covers IPv4 peers. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/cidr.h"

#define TEXT_MAX 64 /* longer than any address inet_pton accepts, plus `/128` */

struct cidr {
    int family;             /* AF_INET or AF_INET6 */
    unsigned char addr[16]; /* network order; IPv4 uses the first 4 bytes; host bits zero */
    unsigned prefix;
};

struct ag_cidrs {
    size_t n;
    struct cidr v[];
};

static const unsigned char mapped_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

/* Parse exactly `len` bytes of `s` as an address. A mapped IPv6 address comes back as IPv4
 * with *was_mapped set, so the caller can shift a prefix length by 96. */
static bool parse_addr(const char *s, size_t len, int *family, unsigned char addr[16], bool *was_mapped)
{
    char buf[TEXT_MAX];

    *was_mapped = false;
    if (len == 0 || len >= sizeof(buf))
        return false;
    memcpy(buf, s, len);
    buf[len] = '\0';
    memset(addr, 0, 16);
    if (memchr(buf, ':', len) == NULL) {
        /* inet_pton, unlike inet_aton, refuses `1.2.3`, `010.0.0.1` and `0x0a.0.0.1` */
        if (inet_pton(AF_INET, buf, addr) != 1)
            return false;
        *family = AF_INET;
        return true;
    }
    if (inet_pton(AF_INET6, buf, addr) != 1)
        return false;
    if (memcmp(addr, mapped_prefix, sizeof(mapped_prefix)) == 0) {
        memmove(addr, addr + 12, 4);
        memset(addr + 4, 0, 12);
        *family = AF_INET;
        *was_mapped = true;
        return true;
    }
    *family = AF_INET6;
    return true;
}

static void clear_host_bits(unsigned char addr[16], unsigned prefix)
{
    for (unsigned bit = prefix; bit < 128; bit++)
        addr[bit / 8] &= (unsigned char)~(0x80u >> (bit % 8));
}

static bool in_block(const struct cidr *b, int family, const unsigned char addr[16])
{
    unsigned full = b->prefix / 8, rest = b->prefix % 8;

    if (b->family != family)
        return false;
    if (memcmp(b->addr, addr, full) != 0)
        return false;
    if (rest == 0)
        return true;
    return ((addr[full] ^ b->addr[full]) & (unsigned char)(0xff00u >> rest)) == 0;
}

static bool match(const struct ag_cidrs *c, int family, const unsigned char addr[16])
{
    if (c == NULL)
        return false;
    for (size_t i = 0; i < c->n; i++)
        if (in_block(&c->v[i], family, addr))
            return true;
    return false;
}

static const char *parse_entry(const char *s, struct cidr *out)
{
    size_t len = strnlen(s, TEXT_MAX), alen;
    const char *slash;
    bool mapped;
    unsigned long prefix;

    if (len >= TEXT_MAX)
        return "too long";
    slash = memchr(s, '/', len);
    alen = slash != NULL ? (size_t)(slash - s) : len;
    if (!parse_addr(s, alen, &out->family, out->addr, &mapped))
        return "not an IP address or CIDR block";
    if (slash == NULL) {
        prefix = out->family == AF_INET ? 32 : 128;
    } else {
        const char *p = slash + 1;
        size_t plen = len - alen - 1;
        unsigned long max = (out->family == AF_INET && !mapped) ? 32 : 128;

        if (plen == 0 || plen > 3)
            return "bad prefix length";
        prefix = 0;
        for (size_t i = 0; i < plen; i++) {
            if (p[i] < '0' || p[i] > '9')
                return "bad prefix length";
            prefix = prefix * 10 + (unsigned long)(p[i] - '0');
        }
        if (prefix > max)
            return "prefix length out of range";
        if (mapped) {
            /* ::ffff:a.b.c.d/p with p < 96 is a block of IPv6 space around the mapped range,
             * not an IPv4 block; keep the parse honest and refuse the ambiguity */
            if (prefix < 96)
                return "a mapped IPv4 block needs a prefix of 96 or more";
            prefix -= 96;
        }
    }
    out->prefix = (unsigned)prefix;
    clear_host_bits(out->addr, out->prefix);
    return NULL;
}

enum ag_rc ag_cidrs_new(const char *const *entries, size_t n, struct ag_cidrs **out, char *err, size_t errlen)
{
    struct ag_cidrs *c = NULL;
    enum ag_rc rc = AG_ERR_INVALID;

    if (err != NULL && errlen > 0)
        err[0] = '\0';
    if (out == NULL)
        return AG_ERR_INVALID;
    *out = NULL;
    if (entries == NULL && n > 0) {
        if (err != NULL && errlen > 0)
            snprintf(err, errlen, "trusted proxy ip: no entries");
        goto out;
    }
    if (n > (SIZE_MAX - sizeof(*c)) / sizeof(c->v[0])) {
        rc = AG_ERR_NOMEM;
        goto out;
    }
    c = calloc(1, sizeof(*c) + n * sizeof(c->v[0]));
    if (c == NULL) {
        rc = AG_ERR_NOMEM;
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        const char *why = entries[i] != NULL ? parse_entry(entries[i], &c->v[i]) : "missing entry";
        if (why != NULL) {
            if (err != NULL && errlen > 0)
                snprintf(err, errlen, "trusted proxy ip \"%.*s\": %s", TEXT_MAX,
                         entries[i] != NULL ? entries[i] : "(null)", why);
            goto out;
        }
    }
    c->n = n;
    *out = c;
    c = NULL;
    rc = AG_OK;
out:
    free(c);
    return rc;
}

void ag_cidrs_free(struct ag_cidrs *c)
{
    free(c);
}

bool ag_cidrs_match_sa(const struct ag_cidrs *c, const struct sockaddr *sa)
{
    unsigned char addr[16] = {0};
    sa_family_t family;

    if (c == NULL || sa == NULL)
        return false;
    /* copy the fields out rather than cast: the caller's storage (a byte buffer from a
     * library) need not be aligned for sockaddr_in6 */
    memcpy(&family, (const char *)sa + offsetof(struct sockaddr, sa_family), sizeof(family));
    if (family == AF_INET) {
        memcpy(addr, (const char *)sa + offsetof(struct sockaddr_in, sin_addr), 4);
        return match(c, AF_INET, addr);
    }
    if (family == AF_INET6) {
        memcpy(addr, (const char *)sa + offsetof(struct sockaddr_in6, sin6_addr), 16);
        if (memcmp(addr, mapped_prefix, sizeof(mapped_prefix)) == 0) {
            memmove(addr, addr + 12, 4);
            memset(addr + 4, 0, 12);
            return match(c, AF_INET, addr);
        }
        return match(c, AF_INET6, addr);
    }
    return false;
}

bool ag_cidrs_match_text(const struct ag_cidrs *c, const char *addr)
{
    unsigned char bin[16];
    int family;
    bool mapped;

    if (c == NULL || addr == NULL)
        return false;
    if (!parse_addr(addr, strnlen(addr, TEXT_MAX), &family, bin, &mapped))
        return false;
    return match(c, family, bin);
}
