/* SPDX-License-Identifier: Apache-2.0
 * Unit tests for src/token/jwks.c: RSA and EC JWKs become the same public keys OpenSSL generated,
 * unusable entries are skipped with a reason, bad documents are refused whole, strict base64url,
 * and the reference count. Keys are generated here and exported to JWK form with OpenSSL. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "token/jwks.h"
#include "util/b64.h"

static EVP_PKEY *k_rsa, *k_rsa1024, *k_ec256, *k_ec384, *k_ec521;

/* For code that also runs outside a test (key setup in main), where ck_assert may not be used. */
#define NEED(c)                                                                                              \
    do {                                                                                                     \
        if (!(c)) {                                                                                          \
            fprintf(stderr, "%s:%d: %s failed\n", __FILE__, __LINE__, #c);                                   \
            abort();                                                                                         \
        }                                                                                                    \
    } while (0)

static char *b64url(const unsigned char *in, size_t n)
{
    char *out = malloc(4 * ((n + 2) / 3) + 1);
    int len = EVP_EncodeBlock((unsigned char *)out, in, (int)n);

    NEED(len >= 0);
    while (len > 0 && out[len - 1] == '=')
        len--;
    out[len] = '\0';
    for (char *p = out; *p; p++)
        *p = *p == '+' ? '-' : *p == '/' ? '_' : *p;
    return out;
}

static void set_bn(json_t *j, const char *member, EVP_PKEY *k, const char *param, size_t pad)
{
    BIGNUM *bn = NULL;
    unsigned char buf[1024];
    char *s;
    int n;

    NEED(EVP_PKEY_get_bn_param(k, param, &bn));
    n = pad ? BN_bn2binpad(bn, buf, (int)pad) : BN_bn2bin(bn, buf);
    s = b64url(buf, (size_t)n);
    json_object_set_new(j, member, json_string(s));
    free(s);
    BN_free(bn);
}

static json_t *jwk_of(EVP_PKEY *k, const char *kid)
{
    json_t *j = json_object();

    if (EVP_PKEY_is_a(k, "RSA")) {
        json_object_set_new(j, "kty", json_string("RSA"));
        set_bn(j, "n", k, OSSL_PKEY_PARAM_RSA_N, 0);
        set_bn(j, "e", k, OSSL_PKEY_PARAM_RSA_E, 0);
    } else {
        int bits = EVP_PKEY_get_bits(k);
        json_object_set_new(j, "kty", json_string("EC"));
        json_object_set_new(j, "crv", json_string(bits == 256 ? "P-256" : bits == 384 ? "P-384" : "P-521"));
        set_bn(j, "x", k, OSSL_PKEY_PARAM_EC_PUB_X, (size_t)(bits + 7) / 8);
        set_bn(j, "y", k, OSSL_PKEY_PARAM_EC_PUB_Y, (size_t)(bits + 7) / 8);
    }
    if (kid)
        json_object_set_new(j, "kid", json_string(kid));
    return j;
}

/* Parse {"keys": <keys>} (consumed). */
static enum ag_rc parse_keys(json_t *keys, struct ag_jwks **out, char *err, size_t errlen)
{
    json_t *doc = json_pack("{s:o}", "keys", keys);
    char *text = json_dumps(doc, JSON_COMPACT);
    enum ag_rc rc = ag_jwks_parse(text, strlen(text), out, err, errlen);

    free(text);
    json_decref(doc);
    return rc;
}

static enum ag_rc parse_str(const char *doc, struct ag_jwks **out)
{
    char err[256];

    return ag_jwks_parse(doc, strlen(doc), out, err, sizeof(err));
}

START_TEST(rsa_and_ec_keys)
{
    json_t *keys = json_array(), *j;
    struct ag_jwks *set = NULL;
    char err[256];
    EVP_PKEY *orig[] = {k_rsa, k_ec256, k_ec384, k_ec521};
    enum ag_jwk_kind kinds[] = {AG_JWK_RSA, AG_JWK_EC_P256, AG_JWK_EC_P384, AG_JWK_EC_P521};

    json_array_append_new(keys, jwk_of(k_rsa, "r1"));
    j = jwk_of(k_ec256, "e1");
    json_object_set_new(j, "use", json_string("sig"));
    json_object_set_new(j, "alg", json_string("ES256"));
    json_array_append_new(keys, j);
    json_array_append_new(keys, jwk_of(k_ec384, NULL));
    j = jwk_of(k_ec521, "e3");
    json_object_set_new(j, "x5c", json_pack("[s]", "MIIB..."));
    json_array_append_new(keys, j);
    ck_assert_int_eq(parse_keys(keys, &set, err, sizeof(err)), AG_OK);
    ck_assert_str_eq(err, "");
    ck_assert_uint_eq(ag_jwks_count(set), 4);
    ck_assert_uint_eq(ag_jwks_skipped(set), 0);
    for (size_t i = 0; i < 4; i++) {
        const struct ag_jwk *k = ag_jwks_get(set, i);
        BIO *bio = BIO_new_mem_buf(k->pem, (int)k->pem_len);
        EVP_PKEY *back = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
        ck_assert_int_eq(k->kind, kinds[i]);
        ck_assert_int_eq(EVP_PKEY_eq(k->pkey, orig[i]), 1);
        ck_assert_int_eq(EVP_PKEY_eq(back, orig[i]), 1);
        ck_assert_uint_eq(strlen(k->pem), k->pem_len);
        ck_assert(strncmp(k->pem, "-----BEGIN PUBLIC KEY-----\n", 27) == 0);
        EVP_PKEY_free(back);
        BIO_free(bio);
    }
    ck_assert_str_eq(ag_jwks_get(set, 0)->kid, "r1");
    ck_assert_ptr_null(ag_jwks_get(set, 0)->alg);
    ck_assert_str_eq(ag_jwks_get(set, 1)->alg, "ES256");
    ck_assert_ptr_null(ag_jwks_get(set, 2)->kid);
    ck_assert_ptr_null(ag_jwks_get(set, 4));
    ag_jwks_unref(set);
}
END_TEST

/* Each entry must be skipped alone, leaving the one good key, with its reason reported. */
START_TEST(unusable_keys_are_skipped)
{
    static const struct {
        const char *jwk;
        const char *why;
    } bad[] = {
        {"{\"kty\":\"oct\",\"k\":\"c2VjcmV0\"}", "unsupported kty"},
        {"{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo\"}",
         "unsupported kty"},
        {"{\"n\":\"AQAB\",\"e\":\"AQAB\"}", "unsupported kty"},
        {"{\"kty\":\"rsa\",\"n\":\"AQAB\",\"e\":\"AQAB\"}", "unsupported kty"},
        {"{\"kty\":\"RSA\",\"e\":\"AQAB\"}", "RSA n or e"},
        {"{\"kty\":\"RSA\",\"n\":\"AQAB\",\"e\":\"AQAB\"}", "under 2048"},
        {"{\"kty\":\"EC\",\"crv\":\"secp256k1\",\"x\":\"AA\",\"y\":\"AA\"}", "EC curve"},
        {"{\"kty\":\"EC\",\"x\":\"AA\",\"y\":\"AA\"}", "EC curve"},
        {"{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"AA\",\"y\":\"AA\"}", "curve's size"},
        {"[]", "not an object"},
        {"7", "not an object"},
    };
    for (size_t i = 0; i < AG_ARRAY_LEN(bad); i++) {
        json_t *keys = json_array();
        struct ag_jwks *set = NULL;
        char err[512];
        json_array_append_new(keys, json_loads(bad[i].jwk, JSON_DECODE_ANY, NULL));
        json_array_append_new(keys, jwk_of(k_ec256, "good"));
        ck_assert_int_eq(parse_keys(keys, &set, err, sizeof(err)), AG_OK);
        ck_assert_uint_eq(ag_jwks_count(set), 1);
        ck_assert_uint_eq(ag_jwks_skipped(set), 1);
        ck_assert_str_eq(ag_jwks_get(set, 0)->kid, "good");
        ck_assert_msg(strstr(err, "key 0 skipped") && strstr(err, bad[i].why), "%zu: %s", i, err);
        ag_jwks_unref(set);
    }
}
END_TEST

/* Mutations of a good JWK that must each make it unusable. */
START_TEST(mutated_keys_are_skipped)
{
    static const struct {
        int ec; /* 1: mutate the P-256 key, 0: the RSA key */
        const char *member;
        const char *value; /* JSON text; NULL deletes the member */
    } muts[] = {
        {0, "use", "\"enc\""},   {0, "use", "1"},           {1, "use", "\"Sig\""}, {0, "kid", "7"},
        {0, "kid", "\"\""},      {0, "alg", "[\"RS256\"]"}, {0, "n", "\"AQAB=\""}, {0, "e", "\"AQ+B\""},
        {0, "n", "7"},           {0, "e", "\"AQAB==\""},    {0, "e", "\"\""},      {0, "e", "\"Ag\""},
        {1, "x", NULL},          {1, "crv", "\"P-384\""},   {1, "y", "\"AAAA\""},  {1, "x", "\"a/b\""},
        {1, "crv", "\"p-256\""}, {0, "kty", "\"EC\""},      {1, "kty", "\"RSA\""},
    };
    for (size_t i = 0; i < AG_ARRAY_LEN(muts); i++) {
        json_t *keys = json_array(), *j = jwk_of(muts[i].ec ? k_ec256 : k_rsa, "bad");
        struct ag_jwks *set = NULL;
        char err[512];
        if (muts[i].value)
            json_object_set_new(j, muts[i].member, json_loads(muts[i].value, JSON_DECODE_ANY, NULL));
        else
            json_object_del(j, muts[i].member);
        json_array_append_new(keys, j);
        json_array_append_new(keys, jwk_of(k_ec384, "good"));
        ck_assert_int_eq(parse_keys(keys, &set, err, sizeof(err)), AG_OK);
        ck_assert_msg(ag_jwks_count(set) == 1 && ag_jwks_skipped(set) == 1, "%zu kept", i);
        ck_assert_str_eq(ag_jwks_get(set, 0)->kid, "good");
        ag_jwks_unref(set);
    }
}
END_TEST

START_TEST(weak_huge_and_off_curve_keys)
{
    json_t *keys = json_array(), *j;
    struct ag_jwks *set = NULL;
    char err[512], *s;
    unsigned char big[1100];
    BIGNUM *bn = NULL;
    unsigned char y[32];

    json_array_append_new(keys, jwk_of(k_rsa1024, "weak"));
    /* a 8800-bit modulus: refused before OpenSSL sees it */
    memset(big, 0xc5, sizeof(big));
    s = b64url(big, sizeof(big));
    j = jwk_of(k_rsa, "huge");
    json_object_set_new(j, "n", json_string(s));
    free(s);
    json_array_append_new(keys, j);
    /* P-256 point with y changed by one bit: not on the curve */
    ck_assert(EVP_PKEY_get_bn_param(k_ec256, OSSL_PKEY_PARAM_EC_PUB_Y, &bn));
    BN_bn2binpad(bn, y, sizeof(y));
    BN_free(bn);
    y[31] ^= 1;
    s = b64url(y, sizeof(y));
    j = jwk_of(k_ec256, "offcurve");
    json_object_set_new(j, "y", json_string(s));
    free(s);
    json_array_append_new(keys, j);
    json_array_append_new(keys, jwk_of(k_rsa, "good"));
    ck_assert_int_eq(parse_keys(keys, &set, err, sizeof(err)), AG_OK);
    ck_assert_uint_eq(ag_jwks_count(set), 1);
    ck_assert_uint_eq(ag_jwks_skipped(set), 3);
    ck_assert_msg(strstr(err, "key 0 skipped: RSA modulus under 2048 bits"), "%s", err);
    ck_assert_msg(strstr(err, "key 1 skipped: RSA n or e"), "%s", err);
    ck_assert_msg(strstr(err, "key 2 skipped: EC key refused"), "%s", err);
    ag_jwks_unref(set);
}
END_TEST

START_TEST(bad_documents_are_refused)
{
    static const char *const docs[] = {
        "",
        "null",
        "[]",
        "{}",
        "{\"keys\":{}}",
        "{\"keys\":\"x\"}",
        "{\"keys\":[]}",
        "{\"keys\":[",
        "{\"keys\":[{\"kty\":\"oct\"}]}",
        "{\"keys\":[],\"keys\":[]}",
        "{\"keys\":[]} x",
    };
    struct ag_jwks *set = (struct ag_jwks *)1;
    char err[128];

    for (size_t i = 0; i < AG_ARRAY_LEN(docs); i++) {
        ck_assert_msg(parse_str(docs[i], &set) == AG_ERR_INVALID, "doc %zu", i);
        ck_assert_ptr_null(set);
    }
    ck_assert_int_eq(ag_jwks_parse(NULL, 0, &set, err, sizeof(err)), AG_ERR_INVALID);
    ck_assert_int_eq(ag_jwks_parse("{}", 2, NULL, err, sizeof(err)), AG_ERR_INVALID);
    ck_assert_int_eq(ag_jwks_parse("{\"keys\":[{\"kty\":\"oct\"}]}", 24, &set, err, sizeof(err)),
                     AG_ERR_INVALID);
    ck_assert_str_eq(err, "key 0 skipped: unsupported kty; JWKS has no usable signing key");
    /* a duplicate member anywhere in the document refuses it whole, even in an otherwise good key */
    json_t *good = jwk_of(k_ec256, "a");
    char *text = json_dumps(good, JSON_COMPACT), doc[1024];
    snprintf(doc, sizeof(doc), "{\"keys\":[{\"kid\":\"b\",%s]}", text + 1);
    ck_assert_int_eq(parse_str(doc, &set), AG_ERR_INVALID);
    json_object_del(good, "kid");
    free(text);
    text = json_dumps(good, JSON_COMPACT);
    snprintf(doc, sizeof(doc), "{\"keys\":[{\"kid\":\"b\",%s]}", text + 1);
    ck_assert_int_eq(parse_str(doc, &set), AG_OK); /* the same without the duplicate is fine */
    ag_jwks_unref(set);
    free(text);
    json_decref(good);
}
END_TEST

START_TEST(size_limits)
{
    struct ag_jwks *set = NULL;
    char err[128];
    size_t n = AG_JWKS_MAX_DOC + 1;
    char *doc = malloc(n);
    json_t *keys = json_array();
    char *text;

    /* A valid document padded with whitespace to one byte over the limit. */
    json_t *small = json_pack("{s:[o]}", "keys", jwk_of(k_ec256, "a"));
    text = json_dumps(small, JSON_COMPACT);
    json_decref(small);
    memset(doc, ' ', n);
    memcpy(doc, text, strlen(text));
    ck_assert_int_eq(ag_jwks_parse(doc, n, &set, err, sizeof(err)), AG_ERR_TOO_LARGE);
    ck_assert_ptr_null(set);
    ck_assert_int_eq(ag_jwks_parse(doc, n - 1, &set, err, sizeof(err)), AG_OK);
    ag_jwks_unref(set);
    free(doc);
    free(text);
    for (int i = 0; i <= AG_JWKS_MAX_KEYS; i++)
        json_array_append_new(keys, jwk_of(k_ec256, "k"));
    ck_assert_int_eq(parse_keys(json_incref(keys), &set, err, sizeof(err)), AG_ERR_TOO_LARGE);
    ck_assert_str_eq(err, "JWKS has more than 64 keys");
    json_array_remove(keys, 0);
    ck_assert_int_eq(parse_keys(keys, &set, err, sizeof(err)), AG_OK);
    ck_assert_uint_eq(ag_jwks_count(set), AG_JWKS_MAX_KEYS);
    ag_jwks_unref(set);
}
END_TEST

START_TEST(err_buffer_bounds)
{
    struct ag_jwks *set = NULL;
    char err[12];
    const char *doc = "{\"keys\":[{\"kty\":\"oct\"},{\"kty\":\"oct\"},{\"kty\":\"oct\"}]}";

    memset(err, 'x', sizeof(err));
    ck_assert_int_eq(ag_jwks_parse(doc, strlen(doc), &set, err, sizeof(err)), AG_ERR_INVALID);
    ck_assert_uint_eq(strlen(err), sizeof(err) - 1);
    ck_assert_int_eq(ag_jwks_parse(doc, strlen(doc), &set, NULL, 0), AG_ERR_INVALID);
    ck_assert_int_eq(ag_jwks_parse(doc, strlen(doc), &set, err, 0), AG_ERR_INVALID);
    ck_assert_int_eq(ag_jwks_parse(doc, strlen(doc), &set, err, 1), AG_ERR_INVALID);
    ck_assert_str_eq(err, "");
}
END_TEST

START_TEST(reference_count)
{
    json_t *keys = json_array();
    struct ag_jwks *a = NULL, *b;

    json_array_append_new(keys, jwk_of(k_ec256, "a"));
    ck_assert_int_eq(parse_keys(keys, &a, NULL, 0), AG_OK);
    b = ag_jwks_ref(a);
    ck_assert_ptr_eq(a, b);
    ag_jwks_unref(a); /* the "swapped out" owner lets go; a request still holds b */
    ck_assert_str_eq(ag_jwks_get(b, 0)->kid, "a");
    ck_assert_int_eq(EVP_PKEY_eq(ag_jwks_get(b, 0)->pkey, k_ec256), 1);
    ag_jwks_unref(b); /* last one: freed (ASan would see a leak otherwise) */
    ck_assert_ptr_null(ag_jwks_ref(NULL));
    ag_jwks_unref(NULL);
}
END_TEST

START_TEST(base64url_is_strict)
{
    unsigned char out[8];
    size_t n = 99;

    ck_assert_int_eq(ag_b64url_decode("", 0, out, sizeof(out), &n), AG_OK);
    ck_assert_uint_eq(n, 0);
    ck_assert_int_eq(ag_b64url_decode("AQAB", 4, out, sizeof(out), &n), AG_OK);
    ck_assert(n == 3 && out[0] == 1 && out[1] == 0 && out[2] == 1);
    ck_assert_int_eq(ag_b64url_decode("-_8", 3, out, sizeof(out), &n), AG_OK);
    ck_assert(n == 2 && out[0] == 0xfb && out[1] == 0xff);
    ck_assert_int_eq(ag_b64url_decode("QQ", 2, out, sizeof(out), &n), AG_OK);
    ck_assert(n == 1 && out[0] == 'A');
    static const char *const bad[] = {"QR",    "QQ==", "QQ=",  "Q",     "A",    "QUJDA",
                                      "QUJDR", "+/8A", "AQ B", "AQ\nB", "AQA.", "A\x80\x41\x41"};
    for (size_t i = 0; i < AG_ARRAY_LEN(bad); i++)
        ck_assert_msg(ag_b64url_decode(bad[i], strlen(bad[i]), out, sizeof(out), &n) == AG_ERR_INVALID, "%s",
                      bad[i]);
    ck_assert_int_eq(ag_b64url_decode("AQ\0B", 4, out, sizeof(out), &n), AG_ERR_INVALID);
    ck_assert_int_eq(ag_b64url_decode("AAAAAAAAAAAA", 12, out, sizeof(out), &n), AG_ERR_TOO_LARGE);
    ck_assert_int_eq(ag_b64url_decode("AAAAAAAAAAA", 11, out, sizeof(out), &n), AG_OK);
    ck_assert_uint_eq(n, 8);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("jwks");
    TCase *tc = tcase_create("jwks");

    /* Keys are made once, before the tests fork: RSA generation is slow. */
    k_rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    k_rsa1024 = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
    k_ec256 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    k_ec384 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
    k_ec521 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-521");
    NEED(k_rsa && k_rsa1024 && k_ec256 && k_ec384 && k_ec521);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, rsa_and_ec_keys);
    tcase_add_test(tc, unusable_keys_are_skipped);
    tcase_add_test(tc, mutated_keys_are_skipped);
    tcase_add_test(tc, weak_huge_and_off_curve_keys);
    tcase_add_test(tc, bad_documents_are_refused);
    tcase_add_test(tc, size_limits);
    tcase_add_test(tc, err_buffer_bounds);
    tcase_add_test(tc, reference_count);
    tcase_add_test(tc, base64url_is_strict);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    EVP_PKEY_free(k_rsa);
    EVP_PKEY_free(k_rsa1024);
    EVP_PKEY_free(k_ec256);
    EVP_PKEY_free(k_ec384);
    EVP_PKEY_free(k_ec521);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
