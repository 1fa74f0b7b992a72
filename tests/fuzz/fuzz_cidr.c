/* SPDX-License-Identifier: Apache-2.0
 * --trusted-proxy-ip blocks and the addresses matched against them (src/net/cidr.c): whether a peer's
 * X-Forwarded-* headers are believed. Input: entries separated by ',', a newline, then addresses one per
 * line. Oracles: for an accepted list, each address matches exactly when an independent reading says it
 * lies in a block (IPv4-mapped IPv6 read as IPv4 on both sides, an IPv6 block never covering IPv4), and
 * the socket-address match agrees with the text match, in both the AF_INET and the mapped AF_INET6 form. */
#include <arpa/inet.h>
#include <netinet/in.h>

#include "fuzz.h"
#include "net/cidr.h"

struct block {
    int family;
    unsigned char a[16];
    unsigned prefix;
};

static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

/* An address as the peer's family sees it: mapped IPv6 folded to IPv4. */
static bool addr_read(const char *s, int *family, unsigned char a[16])
{
    memset(a, 0, 16);
    if (inet_pton(AF_INET, s, a) == 1) {
        *family = AF_INET;
        return true;
    }
    if (inet_pton(AF_INET6, s, a) != 1)
        return false;
    *family = AF_INET6;
    if (memcmp(a, mapped, 12) == 0) {
        memmove(a, a + 12, 4);
        memset(a + 4, 0, 12);
        *family = AF_INET;
    }
    return true;
}

static bool block_read(const char *s, struct block *b)
{
    char buf[128];
    const char *slash = strchr(s, '/');
    size_t n = slash ? (size_t)(slash - s) : strlen(s);
    bool was_mapped;

    if (n >= sizeof(buf))
        return false;
    memcpy(buf, s, n);
    buf[n] = '\0';
    if (!addr_read(buf, &b->family, b->a))
        return false;
    was_mapped = b->family == AF_INET && strchr(buf, ':') != NULL;
    b->prefix = b->family == AF_INET && !was_mapped ? 32 : 128;
    if (slash != NULL)
        b->prefix = (unsigned)strtoul(slash + 1, NULL, 10);
    if (was_mapped)
        b->prefix -= 96;
    return true;
}

static bool in_block(const struct block *b, int family, const unsigned char a[16])
{
    if (b->family != family)
        return false;
    for (unsigned bit = 0; bit < b->prefix; bit++) {
        unsigned mask = 0x80u >> (bit % 8);
        if ((a[bit / 8] & mask) != (b->a[bit / 8] & mask))
            return false;
    }
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_in in = fuzz_in(data, size);
    char *list = fuzz_field(&in, '\n', NULL), *line, err[160];
    const char *entries[16];
    struct block blocks[16];
    size_t n = 0;
    struct ag_cidrs *c = NULL;

    for (char *save = NULL, *e = strtok_r(list, ",", &save); e != NULL && n < 16;
         e = strtok_r(NULL, ",", &save))
        entries[n++] = e;
    if (ag_cidrs_new(entries, n, &c, err, sizeof(err)) != AG_OK) {
        FUZZ_CHECK(c == NULL && err[0] != '\0', "refused without a reason");
        free(list);
        while (fuzz_left(&in)) {
            line = fuzz_field(&in, '\n', NULL);
            FUZZ_CHECK(!ag_cidrs_match_text(NULL, line), "an empty list matches");
            free(line);
        }
        return 0;
    }
    for (size_t i = 0; i < n; i++)
        FUZZ_CHECK(block_read(entries[i], &blocks[i]), "entry \"%s\" accepted, unreadable", entries[i]);
    while (fuzz_left(&in)) {
        int family;
        unsigned char a[16];
        bool want = false, got;
        line = fuzz_field(&in, '\n', NULL);
        got = ag_cidrs_match_text(c, line);
        if (addr_read(line, &family, a)) {
            for (size_t i = 0; i < n && !want; i++)
                want = in_block(&blocks[i], family, a);
            if (family == AF_INET) {
                struct sockaddr_in sin = {.sin_family = AF_INET};
                struct sockaddr_in6 sin6 = {.sin6_family = AF_INET6};
                memcpy(&sin.sin_addr, a, 4);
                memcpy(sin6.sin6_addr.s6_addr, mapped, 12);
                memcpy(sin6.sin6_addr.s6_addr + 12, a, 4);
                FUZZ_CHECK(ag_cidrs_match_sa(c, (struct sockaddr *)&sin) == want, "sockaddr_in of %s", line);
                FUZZ_CHECK(ag_cidrs_match_sa(c, (struct sockaddr *)&sin6) == want, "mapped sockaddr of %s",
                           line);
            } else {
                struct sockaddr_in6 sin6 = {.sin6_family = AF_INET6};
                memcpy(sin6.sin6_addr.s6_addr, a, 16);
                FUZZ_CHECK(ag_cidrs_match_sa(c, (struct sockaddr *)&sin6) == want, "sockaddr_in6 of %s",
                           line);
            }
        }
        FUZZ_CHECK(got == want, "%s: matched %d, expected %d", line, got, want);
        free(line);
    }
    ag_cidrs_free(c);
    free(list);
    return 0;
}
