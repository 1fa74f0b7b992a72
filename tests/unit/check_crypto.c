/* SPDX-License-Identifier: Apache-2.0
 * Unit tests for src/util/b64.c and src/util/crypto.c: RFC 4648 vectors, strict decoding, HMAC and
 * SHA-256 vectors, AES-256-GCM round trips, tamper detection and fresh nonces. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "util/b64.h"
#include "util/crypto.h"

START_TEST(b64_vectors)
{
    static const struct {
        const char *raw, *enc;
    } v[] = {{"", ""},           {"f", "Zg"},          {"fo", "Zm8"},          {"foo", "Zm9v"},
             {"foob", "Zm9vYg"}, {"fooba", "Zm9vYmE"}, {"foobar", "Zm9vYmFy"}, {"\xfb\xff", "-_8"}};
    char out[32];
    unsigned char dec[32];
    size_t n;
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        ck_assert_uint_eq(ag_b64url_encode(v[i].raw, strlen(v[i].raw), out, sizeof(out)), strlen(v[i].enc));
        ck_assert_str_eq(out, v[i].enc);
        ck_assert_int_eq(ag_b64url_decode(v[i].enc, strlen(v[i].enc), dec, sizeof(dec), &n), AG_OK);
        ck_assert_uint_eq(n, strlen(v[i].raw));
        ck_assert(memcmp(dec, v[i].raw, n) == 0);
    }
}
END_TEST

START_TEST(b64_strict)
{
    unsigned char dec[16];
    size_t n;
    static const char *const bad[] = {"Zg==", "Zm9v+", "Zm9v/", "Z",     "Zm9vY",
                                      "Zh",   "Zm9=",  "Zm 9v", "Zm\n9v"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(ag_b64url_decode(bad[i], strlen(bad[i]), dec, sizeof(dec), &n) != AG_OK, "accepted %s",
                      bad[i]);
    ck_assert_int_eq(ag_b64url_decode("Zm9vYmFy", 8, dec, 5, &n), AG_ERR_TOO_LARGE);
    char small[4];
    ck_assert_uint_eq(ag_b64url_encode("foo", 3, small, sizeof(small)), 0);
    ck_assert_str_eq(small, "");
}
END_TEST

/* The options for input that is not ours: the standard alphabet, padding, and lax trailing bits. */
START_TEST(b64_options)
{
    unsigned char dec[16];
    size_t n = 0;
    ck_assert_int_eq(ag_b64_decode("+/8=", 4, AG_B64_STANDARD, dec, sizeof(dec), &n), AG_ERR_INVALID);
    ck_assert_int_eq(ag_b64_decode("+/8=", 4, AG_B64_STANDARD | AG_B64_PADDING, dec, sizeof(dec), &n), AG_OK);
    ck_assert_uint_eq(n, 2);
    ck_assert(dec[0] == 0xfb && dec[1] == 0xff);
    ck_assert_int_eq(ag_b64_decode("-_8", 3, AG_B64_STANDARD, dec, sizeof(dec), &n),
                     AG_OK); /* both alphabets */
    ck_assert_int_eq(ag_b64_decode("+/8", 3, 0, dec, sizeof(dec), &n), AG_ERR_INVALID);
    ck_assert_int_eq(ag_b64_decode("Zh", 2, 0, dec, sizeof(dec), &n), AG_ERR_INVALID); /* tail bits set */
    ck_assert_int_eq(ag_b64_decode("Zh==", 4, AG_B64_PADDING | AG_B64_LAX_TAIL, dec, sizeof(dec), &n), AG_OK);
    ck_assert(n == 1 && dec[0] == 'f');
    ck_assert_int_eq(ag_b64_decode("Z===", 4, AG_B64_PADDING | AG_B64_LAX_TAIL, dec, sizeof(dec), &n),
                     AG_ERR_INVALID);
}
END_TEST

START_TEST(hmac_sha256_vectors)
{
    /* RFC 4231 test case 2 */
    unsigned char out[32];
    static const unsigned char want[32] = {0x5b, 0xdc, 0xc1, 0x46, 0xbf, 0x60, 0x75, 0x4e, 0x6a, 0x04, 0x24,
                                           0x26, 0x08, 0x95, 0x75, 0xc7, 0x5a, 0x00, 0x3f, 0x08, 0x9d, 0x27,
                                           0x39, 0x83, 0x9d, 0xec, 0x58, 0xb9, 0x64, 0xec, 0x38, 0x43};
    ck_assert_int_eq(ag_hmac_sha256("Jefe", 4, "what do ya want for nothing?", 28, out), AG_OK);
    ck_assert(memcmp(out, want, 32) == 0);
    static const unsigned char abc[32] = {0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41, 0x40,
                                          0xde, 0x5d, 0xae, 0x22, 0x23, 0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17,
                                          0x7a, 0x9c, 0xb4, 0x10, 0xff, 0x61, 0xf2, 0x00, 0x15, 0xad};
    ck_assert_int_eq(ag_sha256("abc", 3, out), AG_OK);
    ck_assert(memcmp(out, abc, 32) == 0);
}
END_TEST

START_TEST(seal_round_trip_and_tamper)
{
    unsigned char key[32], key2[32], sealed[128], sealed2[128], pt[128];
    size_t n, n2, m;
    const char *msg = "the session";
    ck_assert_int_eq(ag_random(key, 32), AG_OK);
    memcpy(key2, key, 32);
    key2[0] ^= 1;
    ck_assert_int_eq(ag_seal(key, "id", 2, msg, strlen(msg), sealed, &n), AG_OK);
    ck_assert_uint_eq(n, strlen(msg) + AG_SEAL_OVERHEAD);
    ck_assert_int_eq(ag_open(key, "id", 2, sealed, n, pt, &m), AG_OK);
    ck_assert_uint_eq(m, strlen(msg));
    ck_assert(memcmp(pt, msg, m) == 0);
    /* the same plaintext twice: different nonce, different ciphertext */
    ck_assert_int_eq(ag_seal(key, "id", 2, msg, strlen(msg), sealed2, &n2), AG_OK);
    ck_assert(memcmp(sealed, sealed2, AG_SEAL_NONCE) != 0);
    ck_assert(memcmp(sealed + AG_SEAL_NONCE, sealed2 + AG_SEAL_NONCE, n - AG_SEAL_NONCE) != 0);
    /* wrong key, wrong aad, every flipped byte, truncation */
    ck_assert_int_eq(ag_open(key2, "id", 2, sealed, n, pt, &m), AG_ERR_INVALID);
    ck_assert_int_eq(ag_open(key, "ie", 2, sealed, n, pt, &m), AG_ERR_INVALID);
    for (size_t i = 0; i < n; i++) {
        sealed[i] ^= 0x40;
        ck_assert_msg(ag_open(key, "id", 2, sealed, n, pt, &m) == AG_ERR_INVALID, "byte %zu", i);
        sealed[i] ^= 0x40;
    }
    ck_assert_int_eq(ag_open(key, "id", 2, sealed, n - 1, pt, &m), AG_ERR_INVALID);
    ck_assert_int_eq(ag_open(key, "id", 2, sealed, AG_SEAL_OVERHEAD - 1, pt, &m), AG_ERR_INVALID);
    /* empty plaintext is fine */
    ck_assert_int_eq(ag_seal(key, NULL, 0, "", 0, sealed, &n), AG_OK);
    ck_assert_int_eq(ag_open(key, NULL, 0, sealed, n, pt, &m), AG_OK);
    ck_assert_uint_eq(m, 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("crypto");
    TCase *tc = tcase_create("crypto");
    tcase_add_test(tc, b64_vectors);
    tcase_add_test(tc, b64_strict);
    tcase_add_test(tc, b64_options);
    tcase_add_test(tc, hmac_sha256_vectors);
    tcase_add_test(tc, seal_round_trip_and_tamper);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
