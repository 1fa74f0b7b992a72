/* SPDX-License-Identifier: Apache-2.0
 * Unit tests for src/util/b64.c and src/util/crypto.c: RFC 4648 vectors, strict decoding, HMAC and
 * SHA-256 vectors, AES-256-GCM round trips, tamper detection and fresh nonces. */
#include <check.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

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

/* The quad-at-a-time path and the byte-at-a-time tail agree with the encoder at every length, and a
 * bad byte or the other alphabet anywhere in a quad is still seen. */
START_TEST(b64_every_length)
{
    unsigned char raw[120], dec[120];
    char enc[200], bad[200];
    size_t n;
    for (size_t i = 0; i < sizeof(raw); i++)
        raw[i] = (unsigned char)(i * 37 + 11);
    for (size_t len = 0; len <= sizeof(raw); len++) {
        size_t elen = ag_b64url_encode(raw, len, enc, sizeof(enc));
        ck_assert_uint_eq(elen, AG_B64URL_LEN(len));
        ck_assert_int_eq(ag_b64url_decode(enc, elen, dec, sizeof(dec), &n), AG_OK);
        ck_assert_uint_eq(n, len);
        ck_assert(memcmp(dec, raw, len) == 0);
        for (size_t at = 0; at < elen; at++) {
            memcpy(bad, enc, elen);
            bad[at] = '.';
            ck_assert_int_eq(ag_b64url_decode(bad, elen, dec, sizeof(dec), &n), AG_ERR_INVALID);
            bad[at] = '+';
            ck_assert_int_eq(ag_b64url_decode(bad, elen, dec, sizeof(dec), &n), AG_ERR_INVALID);
        }
    }
    /* standard alphabet inside the first quad: same bytes as the url spelling */
    ck_assert_int_eq(ag_b64_decode("+/+/-_-_", 8, AG_B64_STANDARD, dec, sizeof(dec), &n), AG_OK);
    ck_assert_uint_eq(n, 6);
    ck_assert(dec[0] == 0xfb && dec[1] == 0xff && dec[2] == 0xbf && dec[3] == 0xfb && dec[4] == 0xff &&
              dec[5] == 0xbf);
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

/* Our HMAC over the fetched SHA-256 against OpenSSL's own HMAC(), for keys shorter than, as long as
 * and longer than the 64-byte block, and RFC 4231 case 6 (a 131-byte key). */
START_TEST(hmac_matches_openssl)
{
    unsigned char key[200], msg[300], out[32], want[32];
    unsigned int wlen = 32;
    static const unsigned char case6[32] = {0x60, 0xe4, 0x31, 0x59, 0x1e, 0xe0, 0xb6, 0x7f, 0x0d, 0x8a, 0x26,
                                            0xaa, 0xcb, 0xf5, 0xb7, 0x7f, 0x8e, 0x0b, 0xc6, 0x21, 0x37, 0x28,
                                            0xc5, 0x14, 0x05, 0x46, 0x04, 0x0f, 0x0e, 0xe3, 0x7f, 0x54};
    const char *m6 = "Test Using Larger Than Block-Size Key - Hash Key First";
    for (size_t i = 0; i < sizeof(key); i++)
        key[i] = (unsigned char)(i * 7 + 3);
    for (size_t i = 0; i < sizeof(msg); i++)
        msg[i] = (unsigned char)(i * 13 + 5);
    static const size_t klens[] = {0, 1, 31, 32, 63, 64, 65, 128, 200};
    static const size_t mlens[] = {0, 1, 55, 56, 64, 300};
    for (size_t a = 0; a < sizeof(klens) / sizeof(klens[0]); a++)
        for (size_t b = 0; b < sizeof(mlens) / sizeof(mlens[0]); b++) {
            ck_assert_int_eq(ag_hmac_sha256(key, klens[a], msg, mlens[b], out), AG_OK);
            ck_assert_ptr_nonnull(HMAC(EVP_sha256(), key, (int)klens[a], msg, mlens[b], want, &wlen));
            ck_assert_msg(memcmp(out, want, 32) == 0, "key %zu msg %zu", klens[a], mlens[b]);
        }
    memset(key, 0xaa, 131);
    ck_assert_int_eq(ag_hmac_sha256(key, 131, m6, strlen(m6), out), AG_OK);
    ck_assert(memcmp(out, case6, 32) == 0);
}
END_TEST

/* Small draws come from a per-thread buffer: never the same bytes twice, not even in a forked child
 * (which inherits the parent's buffer). */
START_TEST(random_draws_never_repeat)
{
    enum { DRAWS = 4000 };
    static unsigned char seen[DRAWS][16];
    unsigned char big[300], mine[16], childs[16];
    int fds[2], status;
    pid_t pid;

    for (size_t i = 0; i < DRAWS; i++) {
        ck_assert_int_eq(ag_random(seen[i], i % 16 + 1), AG_OK);
        memset(seen[i] + i % 16 + 1, 0, 16 - (i % 16 + 1));
    }
    for (size_t i = 15; i < DRAWS; i += 16) /* the 16-byte draws */
        for (size_t j = i + 16; j < DRAWS; j += 16)
            ck_assert(memcmp(seen[i], seen[j], 16) != 0);
    ck_assert_int_eq(ag_random(big, sizeof(big)), AG_OK);
    ck_assert(memcmp(big, big + 150, 16) != 0);

    ck_assert_int_eq(ag_random(mine, 1), AG_OK); /* the buffer is filled and partly unused now */
    ck_assert_int_eq(pipe(fds), 0);
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        unsigned char c[16];
        _exit(ag_random(c, sizeof(c)) == AG_OK && write(fds[1], c, sizeof(c)) == (ssize_t)sizeof(c) ? 0 : 1);
    }
    ck_assert_int_eq(ag_random(mine, sizeof(mine)), AG_OK);
    ck_assert_int_eq(read(fds[0], childs, sizeof(childs)), (ssize_t)sizeof(childs));
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    ck_assert_msg(memcmp(mine, childs, sizeof(mine)) != 0, "a forked child handed out its parent's bytes");
    close(fds[0]);
    close(fds[1]);
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
    tcase_add_test(tc, b64_every_length);
    tcase_add_test(tc, hmac_sha256_vectors);
    tcase_add_test(tc, hmac_matches_openssl);
    tcase_add_test(tc, random_draws_never_repeat);
    tcase_add_test(tc, seal_round_trip_and_tamper);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
