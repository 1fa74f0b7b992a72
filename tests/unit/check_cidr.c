/* SPDX-License-Identifier: Apache-2.0
 * Unit tests for src/net/cidr.c: entry syntax, IPv4/IPv6/mapped matching at prefix boundaries,
 * sockaddr peers of every family, and random input that must never match by accident. */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "net/cidr.h"

static char err[256];

static struct ag_cidrs *make(const char *const *e, size_t n)
{
    struct ag_cidrs *c = NULL;
    ck_assert_msg(ag_cidrs_new(e, n, &c, err, sizeof(err)) == AG_OK, "%s", err);
    ck_assert_ptr_nonnull(c);
    return c;
}

static struct ag_cidrs *make1(const char *e)
{
    return make(&e, 1);
}

static bool sa4(const struct ag_cidrs *c, const char *text)
{
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons(4180);
    ck_assert_int_eq(inet_pton(AF_INET, text, &sin.sin_addr), 1);
    return ag_cidrs_match_sa(c, (const struct sockaddr *)&sin);
}

static bool sa6(const struct ag_cidrs *c, const char *text)
{
    struct sockaddr_in6 sin6;
    memset(&sin6, 0, sizeof(sin6));
    sin6.sin6_family = AF_INET6;
    sin6.sin6_port = htons(4180);
    ck_assert_int_eq(inet_pton(AF_INET6, text, &sin6.sin6_addr), 1);
    return ag_cidrs_match_sa(c, (const struct sockaddr *)&sin6);
}

START_TEST(v4_blocks)
{
    struct ag_cidrs *c = make1("10.0.0.0/8");
    ck_assert(ag_cidrs_match_text(c, "10.0.0.0"));
    ck_assert(ag_cidrs_match_text(c, "10.1.2.3"));
    ck_assert(ag_cidrs_match_text(c, "10.255.255.255"));
    ck_assert(!ag_cidrs_match_text(c, "11.0.0.0"));
    ck_assert(!ag_cidrs_match_text(c, "9.255.255.255"));
    ck_assert(!ag_cidrs_match_text(c, "110.0.0.1"));
    ck_assert(sa4(c, "10.9.8.7"));
    ck_assert(!sa4(c, "192.168.1.1"));
    ag_cidrs_free(c);

    /* a prefix that does not fall on a byte */
    c = make1("172.16.0.0/12");
    ck_assert(ag_cidrs_match_text(c, "172.16.0.1"));
    ck_assert(ag_cidrs_match_text(c, "172.31.255.255"));
    ck_assert(!ag_cidrs_match_text(c, "172.32.0.0"));
    ck_assert(!ag_cidrs_match_text(c, "172.15.255.255"));
    ag_cidrs_free(c);

    c = make1("192.168.1.128/25");
    ck_assert(ag_cidrs_match_text(c, "192.168.1.128"));
    ck_assert(ag_cidrs_match_text(c, "192.168.1.255"));
    ck_assert(!ag_cidrs_match_text(c, "192.168.1.127"));
    ag_cidrs_free(c);
}
END_TEST

START_TEST(v4_boundaries)
{
    struct ag_cidrs *c = make1("127.0.0.1");
    ck_assert(ag_cidrs_match_text(c, "127.0.0.1"));
    ck_assert(!ag_cidrs_match_text(c, "127.0.0.2"));
    ck_assert(!ag_cidrs_match_text(c, "127.0.0.0"));
    ag_cidrs_free(c);

    c = make1("127.0.0.1/32");
    ck_assert(ag_cidrs_match_text(c, "127.0.0.1"));
    ck_assert(!ag_cidrs_match_text(c, "127.0.0.2"));
    ag_cidrs_free(c);

    c = make1("0.0.0.0/0");
    ck_assert(ag_cidrs_match_text(c, "0.0.0.0"));
    ck_assert(ag_cidrs_match_text(c, "255.255.255.255"));
    ck_assert(ag_cidrs_match_text(c, "::ffff:1.2.3.4"));
    ck_assert(sa4(c, "8.8.8.8"));
    /* the IPv4 wildcard is not an IPv6 wildcard */
    ck_assert(!ag_cidrs_match_text(c, "::1"));
    ck_assert(!ag_cidrs_match_text(c, "2001:db8::1"));
    ck_assert(!sa6(c, "::"));
    ag_cidrs_free(c);

    c = make1("128.0.0.0/1");
    ck_assert(ag_cidrs_match_text(c, "128.0.0.0"));
    ck_assert(ag_cidrs_match_text(c, "255.1.1.1"));
    ck_assert(!ag_cidrs_match_text(c, "127.255.255.255"));
    ag_cidrs_free(c);

    c = make1("10.0.0.1/31");
    ck_assert(ag_cidrs_match_text(c, "10.0.0.0"));
    ck_assert(ag_cidrs_match_text(c, "10.0.0.1"));
    ck_assert(!ag_cidrs_match_text(c, "10.0.0.2"));
    ag_cidrs_free(c);
}
END_TEST

START_TEST(host_bits_normalised)
{
    struct ag_cidrs *c = make1("10.0.0.1/8");
    ck_assert(ag_cidrs_match_text(c, "10.200.0.1"));
    ck_assert(ag_cidrs_match_text(c, "10.0.0.0"));
    ck_assert(!ag_cidrs_match_text(c, "11.0.0.1"));
    ag_cidrs_free(c);

    c = make1("fd00::1234/8");
    ck_assert(ag_cidrs_match_text(c, "fd12::1"));
    ck_assert(!ag_cidrs_match_text(c, "fe00::1"));
    ag_cidrs_free(c);
}
END_TEST

START_TEST(v6_blocks)
{
    static const char *const e[] = {"::1", "fd00::/8", "2001:db8:abcd::/48"};
    struct ag_cidrs *c = make(e, AG_ARRAY_LEN(e));
    ck_assert(ag_cidrs_match_text(c, "::1"));
    ck_assert(ag_cidrs_match_text(c, "0:0:0:0:0:0:0:1"));
    ck_assert(!ag_cidrs_match_text(c, "::2"));
    ck_assert(!ag_cidrs_match_text(c, "::"));
    ck_assert(ag_cidrs_match_text(c, "fd00::"));
    ck_assert(ag_cidrs_match_text(c, "fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"));
    ck_assert(ag_cidrs_match_text(c, "FD12:3456::1"));
    ck_assert(!ag_cidrs_match_text(c, "fc00::1"));
    ck_assert(!ag_cidrs_match_text(c, "fe00::"));
    ck_assert(ag_cidrs_match_text(c, "2001:db8:abcd:ffff::1"));
    ck_assert(!ag_cidrs_match_text(c, "2001:db8:abce::1"));
    ck_assert(sa6(c, "::1"));
    ck_assert(sa6(c, "fd00:1::5"));
    ck_assert(!sa6(c, "2001:db8::1"));
    /* ::1 is not 127.0.0.1 */
    ck_assert(!ag_cidrs_match_text(c, "127.0.0.1"));
    ck_assert(!sa4(c, "127.0.0.1"));
    ag_cidrs_free(c);
}
END_TEST

START_TEST(v6_boundaries)
{
    struct ag_cidrs *c = make1("::/0");
    ck_assert(ag_cidrs_match_text(c, "::"));
    ck_assert(ag_cidrs_match_text(c, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"));
    ck_assert(sa6(c, "2001:db8::1"));
    /* mapped peers are IPv4 peers: an IPv6 wildcard does not cover them */
    ck_assert(!ag_cidrs_match_text(c, "::ffff:10.1.2.3"));
    ck_assert(!sa6(c, "::ffff:10.1.2.3"));
    ck_assert(!sa4(c, "10.1.2.3"));
    ag_cidrs_free(c);

    c = make1("2001:db8::1/128");
    ck_assert(ag_cidrs_match_text(c, "2001:db8::1"));
    ck_assert(!ag_cidrs_match_text(c, "2001:db8::"));
    ck_assert(!ag_cidrs_match_text(c, "2001:db8::3"));
    ag_cidrs_free(c);

    c = make1("2001:db8::/127");
    ck_assert(ag_cidrs_match_text(c, "2001:db8::"));
    ck_assert(ag_cidrs_match_text(c, "2001:db8::1"));
    ck_assert(!ag_cidrs_match_text(c, "2001:db8::2"));
    ag_cidrs_free(c);

    c = make1("8000::/1");
    ck_assert(ag_cidrs_match_text(c, "8000::"));
    ck_assert(!ag_cidrs_match_text(c, "7fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"));
    ag_cidrs_free(c);
}
END_TEST

START_TEST(mapped)
{
    struct ag_cidrs *c = make1("10.0.0.0/8");
    ck_assert(ag_cidrs_match_text(c, "::ffff:10.1.2.3"));
    ck_assert(ag_cidrs_match_text(c, "::FFFF:10.1.2.3"));
    ck_assert(ag_cidrs_match_text(c, "::ffff:a01:203"));
    ck_assert(ag_cidrs_match_text(c, "0:0:0:0:0:ffff:10.1.2.3"));
    ck_assert(sa6(c, "::ffff:10.1.2.3"));
    ck_assert(!sa6(c, "::ffff:11.1.2.3"));
    ck_assert(!ag_cidrs_match_text(c, "::ffff:11.1.2.3"));
    /* not mapped: IPv4-compatible (deprecated), NAT64 and a near-miss prefix stay IPv6 */
    ck_assert(!ag_cidrs_match_text(c, "::10.1.2.3"));
    ck_assert(!ag_cidrs_match_text(c, "64:ff9b::10.1.2.3"));
    ck_assert(!ag_cidrs_match_text(c, "::fffe:10.1.2.3"));
    ck_assert(!ag_cidrs_match_text(c, "1::ffff:10.1.2.3"));
    ck_assert(!sa6(c, "::10.1.2.3"));
    ag_cidrs_free(c);

    /* a mapped entry is the IPv4 block it names */
    c = make1("::ffff:10.0.0.0/104");
    ck_assert(ag_cidrs_match_text(c, "10.200.1.1"));
    ck_assert(sa4(c, "10.200.1.1"));
    ck_assert(ag_cidrs_match_text(c, "::ffff:10.200.1.1"));
    ck_assert(!ag_cidrs_match_text(c, "11.0.0.0"));
    ag_cidrs_free(c);

    c = make1("::ffff:127.0.0.1");
    ck_assert(ag_cidrs_match_text(c, "127.0.0.1"));
    ck_assert(!ag_cidrs_match_text(c, "127.0.0.2"));
    ag_cidrs_free(c);

    c = make1("::ffff:0.0.0.0/96");
    ck_assert(ag_cidrs_match_text(c, "1.2.3.4"));
    ck_assert(!ag_cidrs_match_text(c, "::1"));
    ag_cidrs_free(c);
}
END_TEST

START_TEST(other_families_and_nulls)
{
    static const char *const all[] = {"0.0.0.0/0", "::/0"};
    struct ag_cidrs *c = make(all, AG_ARRAY_LEN(all));
    struct sockaddr_un sun;
    struct sockaddr_storage ss;
    unsigned char raw[sizeof(struct sockaddr_in6) + 1];
    struct sockaddr_in6 sin6;

    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    memcpy(sun.sun_path, "/run/authgate.sock", 19);
    ck_assert(!ag_cidrs_match_sa(c, (const struct sockaddr *)&sun));
    memset(&ss, 0, sizeof(ss));
    ss.ss_family = AF_UNSPEC;
    ck_assert(!ag_cidrs_match_sa(c, (const struct sockaddr *)&ss));
    ck_assert(!ag_cidrs_match_sa(c, NULL));
    ck_assert(!ag_cidrs_match_sa(NULL, (const struct sockaddr *)&ss));
    ck_assert(!ag_cidrs_match_text(c, NULL));
    ck_assert(!ag_cidrs_match_text(NULL, "10.0.0.1"));
    ck_assert(sa4(c, "1.2.3.4"));
    ck_assert(sa6(c, "2001:db8::1"));

    /* a peer address in unaligned storage is read safely */
    memset(&sin6, 0, sizeof(sin6));
    sin6.sin6_family = AF_INET6;
    ck_assert_int_eq(inet_pton(AF_INET6, "2001:db8::1", &sin6.sin6_addr), 1);
    memcpy(raw + 1, &sin6, sizeof(sin6));
    ck_assert(ag_cidrs_match_sa(c, (const struct sockaddr *)(void *)(raw + 1)));
    ag_cidrs_free(c);
    ag_cidrs_free(NULL);
}
END_TEST

START_TEST(empty_list_trusts_nobody)
{
    struct ag_cidrs *c = NULL;

    ck_assert_int_eq(ag_cidrs_new(NULL, 0, &c, err, sizeof(err)), AG_OK);
    ck_assert_ptr_nonnull(c);
    ck_assert(!ag_cidrs_match_text(c, "127.0.0.1"));
    ck_assert(!ag_cidrs_match_text(c, "::1"));
    ck_assert(!sa4(c, "127.0.0.1"));
    ck_assert(!sa6(c, "::1"));
    ag_cidrs_free(c);
    ck_assert(!sa4(NULL, "127.0.0.1"));
}
END_TEST

START_TEST(text_syntax)
{
    static const char *const no[] = {"",
                                     "10.1.2",
                                     "10.1.2.3.4",
                                     "010.1.2.3",
                                     "0x0a.1.2.3",
                                     "167838211",
                                     "10.1.2.3/32",
                                     "10.1.2.3:80",
                                     " 10.1.2.3",
                                     "10.1.2.3 ",
                                     "10.1.2.3\n",
                                     "[::ffff:10.1.2.3]",
                                     "::ffff:10.1.2.3%eth0",
                                     "localhost",
                                     "10.1.2.256",
                                     "::ffff:10.1.2.3:80",
                                     "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff:10.1.2.3"};
    static const char *const all[] = {"0.0.0.0/0", "::/0"};
    struct ag_cidrs *c = make(all, AG_ARRAY_LEN(all));
    char big[300];

    for (size_t i = 0; i < AG_ARRAY_LEN(no); i++)
        ck_assert_msg(!ag_cidrs_match_text(c, no[i]), "matched \"%s\"", no[i]);
    memset(big, '1', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    ck_assert(!ag_cidrs_match_text(c, big));
    ag_cidrs_free(c);
}
END_TEST

START_TEST(bad_entries)
{
    static const char *const bad[] = {"10.0.0.0/33",
                                      "1.2.3",
                                      "::1/129",
                                      "host.name",
                                      "localhost",
                                      "",
                                      "/8",
                                      "10.0.0.0/",
                                      "10.0.0.0/-1",
                                      "10.0.0.0/+8",
                                      "10.0.0.0/8/8",
                                      "10.0.0.0/8 ",
                                      " 10.0.0.0/8",
                                      "10.0.0.0 /8",
                                      "10.0.0.0/ 8",
                                      "10.0.0.0/0x8",
                                      "10.0.0.0/1000",
                                      "10.0.0.0/4294967304",
                                      "010.0.0.0/8",
                                      "10.0.0.0.0/8",
                                      "256.0.0.0/8",
                                      "10.0.0.0/8,11.0.0.0/8",
                                      "[::1]",
                                      "[::1]/128",
                                      "fe80::1%eth0",
                                      "fe80::1%eth0/64",
                                      ":::1",
                                      "1::2::3",
                                      "::ffff:10.0.0.0/95",
                                      "::ffff:10.0.0.0/129",
                                      "::/",
                                      "*",
                                      "10.*.0.0"};
    for (size_t i = 0; i < AG_ARRAY_LEN(bad); i++) {
        struct ag_cidrs *c = (struct ag_cidrs *)1;
        ck_assert_msg(ag_cidrs_new(&bad[i], 1, &c, err, sizeof(err)) == AG_ERR_INVALID, "accepted \"%s\"",
                      bad[i]);
        ck_assert_ptr_null(c);
        ck_assert_msg(strstr(err, "trusted proxy ip") != NULL, "error \"%s\"", err);
    }
    /* the error names the entry, among good ones */
    {
        const char *mixed[] = {"10.0.0.0/8", "::1/129", "::1"};
        struct ag_cidrs *c = NULL;
        ck_assert_int_eq(ag_cidrs_new(mixed, 3, &c, err, sizeof(err)), AG_ERR_INVALID);
        ck_assert_ptr_nonnull(strstr(err, "\"::1/129\""));
        ck_assert_ptr_nonnull(strstr(err, "out of range"));
        ck_assert_ptr_null(c);
    }
    {
        const char *one = "1.2.3";
        struct ag_cidrs *c = NULL;
        ck_assert_int_eq(ag_cidrs_new(&one, 1, &c, err, sizeof(err)), AG_ERR_INVALID);
        ck_assert_ptr_nonnull(strstr(err, "\"1.2.3\""));
        one = "host.name";
        ck_assert_int_eq(ag_cidrs_new(&one, 1, &c, err, sizeof(err)), AG_ERR_INVALID);
        ck_assert_ptr_nonnull(strstr(err, "\"host.name\""));
    }
    /* NULL entries and arrays, small and absent error buffers, an overlong entry */
    {
        const char *withnull[] = {"10.0.0.0/8", NULL};
        struct ag_cidrs *c = NULL;
        char tiny[5], big[200];
        const char *p = big;
        ck_assert_int_eq(ag_cidrs_new(withnull, 2, &c, err, sizeof(err)), AG_ERR_INVALID);
        ck_assert_ptr_null(c);
        ck_assert_int_eq(ag_cidrs_new(NULL, 3, &c, err, sizeof(err)), AG_ERR_INVALID);
        ck_assert_int_eq(ag_cidrs_new(&bad[0], 1, &c, tiny, sizeof(tiny)), AG_ERR_INVALID);
        ck_assert_uint_eq(strlen(tiny), 4);
        ck_assert_int_eq(ag_cidrs_new(&bad[0], 1, &c, NULL, 0), AG_ERR_INVALID);
        ck_assert_int_eq(ag_cidrs_new(withnull, 1, NULL, err, sizeof(err)), AG_ERR_INVALID);
        memset(big, '1', sizeof(big) - 1);
        big[sizeof(big) - 1] = '\0';
        ck_assert_int_eq(ag_cidrs_new(&p, 1, &c, err, sizeof(err)), AG_ERR_INVALID);
        ck_assert_ptr_null(c);
    }
}
END_TEST

START_TEST(good_entries)
{
    static const char *const good[] = {"10.0.0.0/8",     "127.0.0.1",     "::1",
                                       "fd00::/8",       "0.0.0.0/0",     "::/0",
                                       "10.0.0.1/8",     "1.2.3.4/32",    "::1/128",
                                       "FD00::/8",       "10.0.0.0/08",   "::ffff:10.0.0.0/104",
                                       "::ffff:1.2.3.4", "2001:db8::/32", "255.255.255.255/32",
                                       "0.0.0.0"};
    struct ag_cidrs *c = make(good, AG_ARRAY_LEN(good));
    ag_cidrs_free(c);
}
END_TEST

static uint64_t rng_state = 0x243f6a8885a308d3ULL;

static uint64_t rng(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545f4914f6cdd1dULL;
}

/* Random entries and addresses: never a crash or leak; a /32 or /128 list built from a random
 * address matches that address and, with overwhelming odds, not its bit-flipped neighbour. */
START_TEST(random_input)
{
    static const char alphabet[] = "0123456789abcdefABCDEF:./%[] -x\n";
    char buf[48];

    for (int iter = 0; iter < 5000; iter++) {
        size_t n = (size_t)(rng() % (sizeof(buf) - 1));
        const char *p = buf;
        struct ag_cidrs *c = NULL;
        for (size_t i = 0; i < n; i++)
            buf[i] = (iter & 1) ? alphabet[rng() % (sizeof(alphabet) - 1)] : (char)(1 + rng() % 255);
        buf[n] = '\0';
        if (ag_cidrs_new(&p, 1, &c, err, sizeof(err)) == AG_OK) {
            (void)ag_cidrs_match_text(c, buf);
            ag_cidrs_free(c);
        } else {
            ck_assert_ptr_null(c);
        }
    }
    for (int iter = 0; iter < 2000; iter++) {
        unsigned char bin[16];
        char text[INET6_ADDRSTRLEN], flipped[INET6_ADDRSTRLEN];
        int fam = (iter & 1) ? AF_INET6 : AF_INET;
        size_t blen = fam == AF_INET ? 4 : 16;
        const char *p = text;
        struct ag_cidrs *c = NULL;
        for (size_t i = 0; i < 16; i++)
            bin[i] = (unsigned char)rng();
        ck_assert_ptr_nonnull(inet_ntop(fam, bin, text, sizeof(text)));
        ck_assert_int_eq(ag_cidrs_new(&p, 1, &c, err, sizeof(err)), AG_OK);
        ck_assert_msg(ag_cidrs_match_text(c, text), "%s does not match itself", text);
        bin[rng() % blen] ^= (unsigned char)(1u << (rng() % 8));
        ck_assert_ptr_nonnull(inet_ntop(fam, bin, flipped, sizeof(flipped)));
        ck_assert_msg(!ag_cidrs_match_text(c, flipped), "%s matched %s", flipped, text);
        ag_cidrs_free(c);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("cidr");
    TCase *tc = tcase_create("cidr");
    tcase_add_test(tc, v4_blocks);
    tcase_add_test(tc, v4_boundaries);
    tcase_add_test(tc, host_bits_normalised);
    tcase_add_test(tc, v6_blocks);
    tcase_add_test(tc, v6_boundaries);
    tcase_add_test(tc, mapped);
    tcase_add_test(tc, other_families_and_nulls);
    tcase_add_test(tc, empty_list_trusts_nobody);
    tcase_add_test(tc, text_syntax);
    tcase_add_test(tc, bad_entries);
    tcase_add_test(tc, good_entries);
    tcase_add_test(tc, random_input);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
