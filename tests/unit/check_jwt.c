/* SPDX-License-Identifier: Apache-2.0
 * Unit tests for src/token/jwt.c: the happy paths for every supported alg, skew edges, and every
 * token attack of ATTACKS.md failing closed with its own result. Keys are generated here and
 * tokens are signed here with OpenSSL EVP_DigestSign, so nothing depends on the code under test. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <jwt.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "token/jwt.h"

#define NOW    1700000000LL
#define SKEW   60LL
#define ISS    "https://idp.example.com"
#define CLIENT "authgate"
#define NONCE  "n-0S6_WzA2Mj"

static EVP_PKEY *k_rsa1, *k_rsa2, *k_other, *k_ec256, *k_ec384, *k_ec521;
static struct ag_jwks *set, *other_set, *single_set;
static const char *const algs_all[] = {"RS256", "RS384", "RS512", "ES256", "ES384", "ES512"};
static const char *const auds[] = {CLIENT, "api://other"};
static struct ag_jwt_expect ex;

static void expect_reset(void)
{
    ex = (struct ag_jwt_expect){.issuer = ISS,
                                .audiences = auds,
                                .naudiences = 1,
                                .algs = algs_all,
                                .nalgs = AG_ARRAY_LEN(algs_all),
                                .nonce = NONCE,
                                .client_id = CLIENT,
                                .now = NOW,
                                .skew_s = SKEW};
}

/* ---- helpers: base64url, JWKs, signing ---- */

/* For code that also runs outside a test (key setup in main), where ck_assert may not be used. */
#define NEED(c)                                                                                              \
    do {                                                                                                     \
        if (!(c)) {                                                                                          \
            fprintf(stderr, "%s:%d: %s failed\n", __FILE__, __LINE__, #c);                                   \
            abort();                                                                                         \
        }                                                                                                    \
    } while (0)

static char *b64url(const void *in, size_t n)
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

static char *bn_b64url(EVP_PKEY *k, const char *param, size_t pad)
{
    BIGNUM *bn = NULL;
    unsigned char buf[1024];
    int n;

    NEED(EVP_PKEY_get_bn_param(k, param, &bn));
    n = pad ? BN_bn2binpad(bn, buf, (int)pad) : BN_bn2bin(bn, buf);
    BN_free(bn);
    return b64url(buf, (size_t)n);
}

static json_t *jwk_of(EVP_PKEY *k, const char *kid, const char *alg)
{
    json_t *j = json_object();
    char *a, *b;

    if (EVP_PKEY_is_a(k, "RSA")) {
        a = bn_b64url(k, OSSL_PKEY_PARAM_RSA_N, 0);
        b = bn_b64url(k, OSSL_PKEY_PARAM_RSA_E, 0);
        json_object_set_new(j, "kty", json_string("RSA"));
        json_object_set_new(j, "n", json_string(a));
        json_object_set_new(j, "e", json_string(b));
    } else {
        int bits = EVP_PKEY_get_bits(k);
        a = bn_b64url(k, OSSL_PKEY_PARAM_EC_PUB_X, (size_t)(bits + 7) / 8);
        b = bn_b64url(k, OSSL_PKEY_PARAM_EC_PUB_Y, (size_t)(bits + 7) / 8);
        json_object_set_new(j, "kty", json_string("EC"));
        json_object_set_new(j, "crv", json_string(bits == 256 ? "P-256" : bits == 384 ? "P-384" : "P-521"));
        json_object_set_new(j, "x", json_string(a));
        json_object_set_new(j, "y", json_string(b));
    }
    free(a);
    free(b);
    json_object_set_new(j, "use", json_string("sig"));
    if (kid)
        json_object_set_new(j, "kid", json_string(kid));
    if (alg)
        json_object_set_new(j, "alg", json_string(alg));
    return j;
}

/* A set from the given JWKs (the array is consumed). */
static struct ag_jwks *set_of(json_t *keys)
{
    json_t *doc = json_pack("{s:o}", "keys", keys);
    char *text = json_dumps(doc, JSON_COMPACT);
    struct ag_jwks *s = NULL;
    char err[256];

    NEED(ag_jwks_parse(text, strlen(text), &s, err, sizeof(err)) == AG_OK && err[0] == '\0');
    free(text);
    json_decref(doc);
    return s;
}

/* "b64(hdr).b64(payload)." followed by the given signature bytes. */
static char *assemble(const char *hdr, const char *payload, const unsigned char *sig, size_t siglen)
{
    char *h = b64url(hdr, strlen(hdr)), *p = b64url(payload, strlen(payload));
    char *s = b64url(sig, siglen);
    size_t n = strlen(h) + strlen(p) + strlen(s) + 3;
    char *out = malloc(n);

    snprintf(out, n, "%s.%s.%s", h, p, s);
    free(h);
    free(p);
    free(s);
    return out;
}

/* Sign with EVP_DigestSign; the digest comes from the alg's digits ("ES384" -> SHA384). ECDSA
 * DER signatures become the raw r || s of RFC 7518 3.4. */
static char *sign_with(const char *hdr, const char *payload, EVP_PKEY *k, const char *alg)
{
    char md[8], *input, *tok, *dot;
    unsigned char sig[1024], raw[132];
    size_t siglen = sizeof(sig), n;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();

    snprintf(md, sizeof(md), "SHA%s", alg + 2);
    tok = assemble(hdr, payload, (const unsigned char *)"", 0);
    dot = strrchr(tok, '.');
    input = strndup(tok, (size_t)(dot - tok));
    ck_assert(EVP_DigestSignInit_ex(ctx, NULL, md, NULL, NULL, k, NULL) == 1);
    ck_assert(EVP_DigestSign(ctx, sig, &siglen, (unsigned char *)input, strlen(input)) == 1);
    EVP_MD_CTX_free(ctx);
    if (EVP_PKEY_is_a(k, "EC")) {
        const unsigned char *p = sig;
        const BIGNUM *r, *s;
        ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)siglen);
        n = (size_t)(EVP_PKEY_get_bits(k) + 7) / 8;
        ECDSA_SIG_get0(es, &r, &s);
        BN_bn2binpad(r, raw, (int)n);
        BN_bn2binpad(s, raw + n, (int)n);
        ECDSA_SIG_free(es);
        memcpy(sig, raw, 2 * n);
        siglen = 2 * n;
    }
    free(tok);
    tok = assemble(hdr, payload, sig, siglen);
    free(input);
    return tok;
}

/* HS256 over the signing input with `secret` as the HMAC key: the key-confusion attack. */
static char *sign_hs256(const char *hdr, const char *payload, const void *secret, size_t secretlen)
{
    char *tok = assemble(hdr, payload, (const unsigned char *)"", 0);
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned maclen = 0;
    char *out;

    ck_assert_ptr_nonnull(
        HMAC(EVP_sha256(), secret, (int)secretlen, (unsigned char *)tok, strlen(tok) - 1, mac, &maclen));
    out = assemble(hdr, payload, mac, maclen);
    free(tok);
    return out;
}

static EVP_PKEY *key_for(const char *kid)
{
    if (strcmp(kid, "rsa2") == 0)
        return k_rsa2;
    if (strcmp(kid, "ec256") == 0)
        return k_ec256;
    if (strcmp(kid, "ec384") == 0)
        return k_ec384;
    if (strcmp(kid, "ec521") == 0)
        return k_ec521;
    return k_rsa1;
}

/* A payload with the given JSON member values; NULL leaves the member out. */
static const char *pay(const char *iss, const char *aud, const char *exp, const char *extra)
{
    static char buf[4][2048];
    static unsigned turn;
    char *b = buf[turn++ % 4];

    snprintf(b, sizeof(buf[0]), "{\"sub\":\"alice\"%s%s%s%s%s%s%s%s}", iss ? ",\"iss\":" : "", iss ? iss : "",
             aud ? ",\"aud\":" : "", aud ? aud : "", exp ? ",\"exp\":" : "", exp ? exp : "", extra ? "," : "",
             extra ? extra : "");
    return b;
}

#define D_ISS   "\"" ISS "\""
#define D_AUD   "\"" CLIENT "\""
#define D_EXP   "1700000300"
#define D_NONCE "\"nonce\":\"" NONCE "\",\"iat\":1700000000"
#define GOOD    pay(D_ISS, D_AUD, D_EXP, D_NONCE)

/* Sign a token for `kid` (header {"alg","kid","typ"}) over `payload`. */
static char *tok(const char *alg, const char *kid, const char *payload)
{
    char hdr[512];

    snprintf(hdr, sizeof(hdr), "{\"alg\":\"%s\",\"kid\":\"%s\",\"typ\":\"JWT\"}", alg, kid);
    return sign_with(hdr, payload, key_for(kid), alg);
}

/* Verify `t` (freed) against `s` and `ex`. */
static enum ag_jwt_result run_on(const struct ag_jwks *s, char *t)
{
    json_t *claims = (json_t *)1;
    enum ag_jwt_result r = ag_jwt_verify(t, strlen(t), s, &ex, &claims);

    if (r == AG_JWT_OK) {
        ck_assert_str_eq(json_string_value(json_object_get(claims, "sub")), "alice");
        json_decref(claims);
    } else {
        ck_assert_ptr_null(claims);
    }
    free(t);
    return r;
}

static enum ag_jwt_result run(char *t)
{
    return run_on(set, t);
}

/* ---- happy paths ---- */

START_TEST(happy_every_alg)
{
    static const char *const cases[][2] = {{"RS256", "rsa1"}, {"RS384", "rsa1"},  {"RS512", "rsa1"},
                                           {"RS256", "rsa2"}, {"ES256", "ec256"}, {"ES384", "ec384"},
                                           {"ES512", "ec521"}};
    for (size_t i = 0; i < AG_ARRAY_LEN(cases); i++)
        ck_assert_msg(run(tok(cases[i][0], cases[i][1], GOOD)) == AG_JWT_OK, "%s/%s", cases[i][0],
                      cases[i][1]);
}
END_TEST

START_TEST(happy_without_kid_when_one_key_fits)
{
    /* ES384 fits only ec384; RS384 fits only rsa1 (rsa2's JWK says RS256); a one-key set fits. */
    ck_assert_int_eq(run(sign_with("{\"alg\":\"ES384\"}", GOOD, k_ec384, "ES384")), AG_JWT_OK);
    ck_assert_int_eq(run(sign_with("{\"alg\":\"RS384\"}", GOOD, k_rsa1, "RS384")), AG_JWT_OK);
    ck_assert_int_eq(run_on(single_set, sign_with("{\"alg\":\"RS256\"}", GOOD, k_other, "RS256")), AG_JWT_OK);
}
END_TEST

START_TEST(happy_typ_and_no_claims_out)
{
    char *t = sign_with("{\"alg\":\"RS256\",\"kid\":\"rsa1\",\"typ\":\"jwt\"}", GOOD, k_rsa1, "RS256");

    ck_assert_int_eq(ag_jwt_verify(t, strlen(t), set, &ex, NULL), AG_JWT_OK);
    free(t);
    /* RFC 9068 access tokens pass as access tokens, never as ID tokens (token confusion). */
    ck_assert_int_eq(
        run(sign_with("{\"alg\":\"RS256\",\"kid\":\"rsa1\",\"typ\":\"at+jwt\"}", GOOD, k_rsa1, "RS256")),
        AG_JWT_UNSUPPORTED_TYP);
    ex.access_token = true;
    ck_assert_int_eq(
        run(sign_with("{\"alg\":\"RS256\",\"kid\":\"rsa1\",\"typ\":\"at+jwt\"}", GOOD, k_rsa1, "RS256")),
        AG_JWT_OK);
    ck_assert_int_eq(run(sign_with("{\"alg\":\"RS256\",\"kid\":\"rsa1\",\"typ\":\"application/at+jwt\"}",
                                   GOOD, k_rsa1, "RS256")),
                     AG_JWT_OK);
    ck_assert_int_eq(
        run(sign_with("{\"alg\":\"RS256\",\"kid\":\"rsa1\",\"typ\":\"dpop+jwt\"}", GOOD, k_rsa1, "RS256")),
        AG_JWT_UNSUPPORTED_TYP);
    ex.access_token = false;
    ck_assert_int_eq(run(sign_with("{\"alg\":\"RS256\",\"kid\":\"rsa1\",\"typ\":1}", GOOD, k_rsa1, "RS256")),
                     AG_JWT_MALFORMED);
}
END_TEST

START_TEST(skew_edges)
{
    ck_assert_int_eq(run(tok("RS256", "rsa1", pay(D_ISS, D_AUD, "1699999940", D_NONCE))), AG_JWT_EXPIRED);
    ck_assert_int_eq(run(tok("RS256", "rsa1", pay(D_ISS, D_AUD, "1699999941", D_NONCE))), AG_JWT_OK);
    ck_assert_int_eq(run(tok("ES256", "ec256", pay(D_ISS, D_AUD, "1699999940.5", D_NONCE))), AG_JWT_OK);
    ck_assert_int_eq(run(tok("RS256", "rsa1", pay(D_ISS, D_AUD, D_EXP, D_NONCE ",\"nbf\":1700000060"))),
                     AG_JWT_OK);
    ck_assert_int_eq(run(tok("RS256", "rsa1", pay(D_ISS, D_AUD, D_EXP, D_NONCE ",\"nbf\":1700000061"))),
                     AG_JWT_NOT_YET_VALID);
    ck_assert_int_eq(
        run(tok("RS256", "rsa1", pay(D_ISS, D_AUD, D_EXP, "\"nonce\":\"" NONCE "\",\"iat\":1700000060"))),
        AG_JWT_OK);
    ck_assert_int_eq(
        run(tok("RS256", "rsa1", pay(D_ISS, D_AUD, D_EXP, "\"nonce\":\"" NONCE "\",\"iat\":1700000061"))),
        AG_JWT_NOT_YET_VALID);
    ex.skew_s = 0;
    ck_assert_int_eq(run(tok("RS256", "rsa1", pay(D_ISS, D_AUD, "1700000000", D_NONCE))), AG_JWT_EXPIRED);
    ck_assert_int_eq(run(tok("RS256", "rsa1", pay(D_ISS, D_AUD, "1700000001", D_NONCE))), AG_JWT_OK);
    ex.skew_s = -1000; /* counts as 0, never widens the window */
    ck_assert_int_eq(run(tok("RS256", "rsa1", pay(D_ISS, D_AUD, "1700000001", D_NONCE))), AG_JWT_OK);
    ck_assert_int_eq(run(tok("RS256", "rsa1", pay(D_ISS, D_AUD, D_EXP, D_NONCE ",\"nbf\":1700000001"))),
                     AG_JWT_NOT_YET_VALID);
}
END_TEST

/* ---- alg and key confusion ---- */

START_TEST(alg_none)
{
    static const char *const hdrs[] = {"{\"alg\":\"none\"}", "{\"alg\":\"none\",\"kid\":\"rsa1\"}",
                                       "{\"alg\":\"None\",\"kid\":\"rsa1\"}", "{\"alg\":\"NONE\"}"};
    static const char *const lists[] = {"none", "None", "NONE", "RS256"};
    const unsigned char junk[32] = {1, 2, 3};

    ex.algs = lists;
    ex.nalgs = AG_ARRAY_LEN(lists);
    for (size_t i = 0; i < AG_ARRAY_LEN(hdrs); i++) {
        /* "h.p." (no signature) is malformed before alg is even looked at. */
        ck_assert_int_eq(run(assemble(hdrs[i], GOOD, junk, 0)), AG_JWT_MALFORMED);
        ck_assert_int_eq(run(assemble(hdrs[i], GOOD, junk, sizeof(junk))), AG_JWT_BAD_ALG);
    }
}
END_TEST

START_TEST(hs256_with_public_key_as_secret)
{
    static const char *const lists[] = {"HS256", "HS384", "HS512", "RS256"};
    const struct ag_jwk *k = ag_jwks_get(set, 0);
    const char *hdr = "{\"alg\":\"HS256\",\"kid\":\"rsa1\",\"typ\":\"JWT\"}";
    char *t = sign_hs256(hdr, GOOD, k->pem, k->pem_len);
    jwt_t *j = NULL;
    BIGNUM *n = NULL;
    unsigned char nbytes[512];
    int nlen;

    ck_assert_str_eq(k->kid, "rsa1");
    /* The attack is real: libjwt 1.10 alone accepts this token with the RSA PEM. */
    ck_assert_int_eq(jwt_decode(&j, t, (const unsigned char *)k->pem, (int)k->pem_len), 0);
    jwt_free(j);
    ex.algs = lists;
    ex.nalgs = AG_ARRAY_LEN(lists);
    ck_assert_int_eq(run(t), AG_JWT_BAD_ALG);
    ck_assert_int_eq(run(sign_hs256("{\"alg\":\"HS256\"}", GOOD, k->pem, k->pem_len)), AG_JWT_BAD_ALG);
    /* The same with the JWK's raw n bytes as the secret. */
    ck_assert(EVP_PKEY_get_bn_param(k_rsa1, OSSL_PKEY_PARAM_RSA_N, &n));
    nlen = BN_bn2bin(n, nbytes);
    BN_free(n);
    ck_assert_int_eq(run(sign_hs256(hdr, GOOD, nbytes, (size_t)nlen)), AG_JWT_BAD_ALG);
}
END_TEST

START_TEST(alg_not_allowed)
{
    static const char *const only_es[] = {"ES256"};

    ck_assert_int_eq(run(sign_with("{\"kid\":\"rsa1\"}", GOOD, k_rsa1, "RS256")), AG_JWT_BAD_ALG);
    ck_assert_int_eq(run(sign_with("{\"alg\":256,\"kid\":\"rsa1\"}", GOOD, k_rsa1, "RS256")), AG_JWT_BAD_ALG);
    ck_assert_int_eq(run(sign_with("{\"alg\":\"rs256\",\"kid\":\"rsa1\"}", GOOD, k_rsa1, "RS256")),
                     AG_JWT_BAD_ALG);
    ck_assert_int_eq(run(sign_with("{\"alg\":\"PS256\",\"kid\":\"rsa1\"}", GOOD, k_rsa1, "RS256")),
                     AG_JWT_BAD_ALG);
    ex.algs = only_es;
    ex.nalgs = 1;
    ck_assert_int_eq(run(tok("RS256", "rsa1", GOOD)), AG_JWT_BAD_ALG);
    ck_assert_int_eq(run(tok("ES256", "ec256", GOOD)), AG_JWT_OK);
    ex.nalgs = 0;
    ck_assert_int_eq(run(tok("ES256", "ec256", GOOD)), AG_JWT_BAD_ALG);
}
END_TEST

START_TEST(key_type_mismatch)
{
    /* RS256 naming an EC key, signed with an RSA key whose public half is not in the set. */
    ck_assert_int_eq(run(sign_with("{\"alg\":\"RS256\",\"kid\":\"ec256\"}", GOOD, k_rsa1, "RS256")),
                     AG_JWT_NO_KEY);
    /* ES256 on the P-384 key (signed by that key with SHA-256). */
    ck_assert_int_eq(run(sign_with("{\"alg\":\"ES256\",\"kid\":\"ec384\"}", GOOD, k_ec384, "ES256")),
                     AG_JWT_NO_KEY);
    ck_assert_int_eq(run(sign_with("{\"alg\":\"ES512\",\"kid\":\"ec256\"}", GOOD, k_ec256, "ES512")),
                     AG_JWT_NO_KEY);
    /* ES256 naming an RSA key. */
    ck_assert_int_eq(run(sign_with("{\"alg\":\"ES256\",\"kid\":\"rsa1\"}", GOOD, k_ec256, "ES256")),
                     AG_JWT_NO_KEY);
    /* The JWK says alg RS256: an RS384 token for it is refused even though it is an RSA key. */
    ck_assert_int_eq(run(tok("RS384", "rsa2", GOOD)), AG_JWT_NO_KEY);
}
END_TEST

START_TEST(kid_unknown_or_hostile)
{
    ck_assert_int_eq(run(tok("RS256", "rsa9", GOOD)), AG_JWT_UNKNOWN_KID);
    ck_assert_int_eq(run(tok("RS256", "../../../../etc/passwd", GOOD)), AG_JWT_UNKNOWN_KID);
    ck_assert_int_eq(run(tok("RS256", "rsa1' OR '1'='1'; --", GOOD)), AG_JWT_UNKNOWN_KID);
    ck_assert_int_eq(run(tok("RS256", "rsa1\\u0000", GOOD)), AG_JWT_MALFORMED); /* NUL refused by jansson */
    ck_assert_int_eq(run(sign_with("{\"alg\":\"RS256\",\"kid\":\"\"}", GOOD, k_rsa1, "RS256")),
                     AG_JWT_MALFORMED);
    ck_assert_int_eq(run(sign_with("{\"alg\":\"RS256\",\"kid\":7}", GOOD, k_rsa1, "RS256")),
                     AG_JWT_MALFORMED);
    char kid[300];
    memset(kid, 'k', sizeof(kid) - 1);
    kid[sizeof(kid) - 1] = '\0';
    ck_assert_int_eq(run(tok("RS256", kid, GOOD)), AG_JWT_MALFORMED);
    /* The kid from the other set does not exist here either. */
    ck_assert_int_eq(run_on(other_set, tok("RS256", "rsa2", GOOD)), AG_JWT_UNKNOWN_KID);
}
END_TEST

START_TEST(no_kid_several_keys)
{
    /* rsa1 and rsa2 both fit RS256: no guessing. */
    ck_assert_int_eq(run(sign_with("{\"alg\":\"RS256\"}", GOOD, k_rsa1, "RS256")), AG_JWT_NO_KEY);
    ck_assert_int_eq(run(sign_with("{\"alg\":\"RS256\",\"typ\":\"JWT\"}", GOOD, k_rsa2, "RS256")),
                     AG_JWT_NO_KEY);
}
END_TEST

START_TEST(other_key_same_kid)
{
    /* Signed by a key of another JWKS that uses the same kid "rsa1". */
    ck_assert_int_eq(run(sign_with("{\"alg\":\"RS256\",\"kid\":\"rsa1\"}", GOOD, k_other, "RS256")),
                     AG_JWT_BAD_SIGNATURE);
    ck_assert_int_eq(run_on(other_set, tok("RS256", "rsa1", GOOD)), AG_JWT_BAD_SIGNATURE);
    ck_assert_int_eq(run(sign_with("{\"alg\":\"ES256\",\"kid\":\"ec256\"}", GOOD, k_ec384, "ES256")),
                     AG_JWT_BAD_SIGNATURE);
}
END_TEST

/* ---- signature integrity ---- */

static char *splice(const char *a, const char *b)
{
    /* header and signature of a, payload of b */
    const char *a1 = strchr(a, '.'), *a2 = strrchr(a, '.'), *b1 = strchr(b, '.'), *b2 = strrchr(b, '.');
    size_t n = strlen(a) + strlen(b) + 1;
    char *out = malloc(n);

    snprintf(out, n, "%.*s%.*s%s", (int)(a1 - a), a, (int)(b2 - b1), b1, a2);
    return out;
}

START_TEST(tampered_payload)
{
    static const char *const cases[][2] = {{"RS256", "rsa1"}, {"ES256", "ec256"}, {"ES384", "ec384"}};
    for (size_t i = 0; i < AG_ARRAY_LEN(cases); i++) {
        char *good = tok(cases[i][0], cases[i][1], GOOD);
        char *evil = tok(cases[i][0], cases[i][1], pay(D_ISS, D_AUD, D_EXP, D_NONCE ",\"admin\":true"));
        ck_assert_int_eq(run(splice(good, evil)), AG_JWT_BAD_SIGNATURE);
        /* one signature character changed (a middle one, so the encoding stays canonical) */
        char *dot = strrchr(good, '.');
        dot[10] = dot[10] == 'A' ? 'B' : 'A';
        ck_assert_int_eq(run(good), AG_JWT_BAD_SIGNATURE);
        free(evil);
    }
    /* a raw signature of the wrong size for the curve */
    char *t = tok("ES256", "ec256", GOOD), *t2 = malloc(strlen(t) + 5);
    snprintf(t2, strlen(t) + 5, "%sAAAA", t);
    ck_assert_int_eq(run(t2), AG_JWT_BAD_SIGNATURE);
    free(t);
}
END_TEST

/* ---- structure ---- */

START_TEST(segment_counts)
{
    char *g = tok("RS256", "rsa1", GOOD);
    char *h = strndup(g, (size_t)(strrchr(g, '.') - g)); /* "h.p" */
    char buf[8192];
    /* around a valid token: nothing, 4 and 5 segments, empty segments */
    static const char *const shapes[][2] = {{"", ""},  {"", ".c2ln"}, {"", ".c2ln.c2ln"}, {"", "."},
                                            {".", ""}, {"", ".."},    {"..", ""}};

    ck_assert_int_eq(ag_jwt_verify(h, strlen(h), set, &ex, NULL), AG_JWT_MALFORMED);
    for (size_t i = 0; i < AG_ARRAY_LEN(shapes); i++) {
        snprintf(buf, sizeof(buf), "%s%s%s", shapes[i][0], g, shapes[i][1]);
        ck_assert_msg(ag_jwt_verify(buf, strlen(buf), set, &ex, NULL) ==
                          (i == 0 ? AG_JWT_OK : AG_JWT_MALFORMED),
                      "case %zu", i);
    }
    ck_assert_int_eq(ag_jwt_verify("..", 2, set, &ex, NULL), AG_JWT_MALFORMED);
    ck_assert_int_eq(ag_jwt_verify("", 0, set, &ex, NULL), AG_JWT_MALFORMED);
    ck_assert_int_eq(ag_jwt_verify("abc", 3, set, &ex, NULL), AG_JWT_MALFORMED);
    free(h);
    free(g);
}
END_TEST

START_TEST(too_large)
{
    size_t n = 1024 * 1024;
    char *big = malloc(n + 1);
    char *g = tok("RS256", "rsa1", GOOD);

    memset(big, 'A', n);
    big[100] = '.';
    big[n - 100] = '.';
    big[n] = '\0';
    ck_assert_int_eq(ag_jwt_verify(big, n, set, &ex, NULL), AG_JWT_TOO_LARGE);
    ck_assert_int_eq(ag_jwt_verify(big, AG_JWT_MAX_LEN + 1, set, &ex, NULL), AG_JWT_TOO_LARGE);
    /* `len` is what counts, not the NUL: a valid token's prefix is not the token */
    ck_assert_int_eq(ag_jwt_verify(g, strlen(g) - 2, set, &ex, NULL), AG_JWT_BAD_SIGNATURE);
    free(big);
    free(g);
}
END_TEST

START_TEST(bad_base64url)
{
    char *g = tok("RS256", "rsa1", GOOD);
    size_t len = strlen(g);
    const char *dot1 = strchr(g, '.'), *dot2 = strrchr(g, '.');
    size_t where[] = {3, (size_t)(dot1 - g) + 5, (size_t)(dot2 - g) + 7};
    static const char bad[] = {'=', '+', '/', ' ', '*', '\n', '%', '\x80', '\0'};
    char *t = malloc(len + 4);

    for (size_t w = 0; w < AG_ARRAY_LEN(where); w++)
        for (size_t b = 0; b < sizeof(bad); b++) {
            memcpy(t, g, len + 1);
            t[where[w]] = bad[b];
            ck_assert_msg(ag_jwt_verify(t, len, set, &ex, NULL) == AG_JWT_MALFORMED, "pos %zu char %d",
                          where[w], bad[b]);
        }
    /* padding appended to the signature */
    snprintf(t, len + 3, "%s==", g);
    ck_assert_int_eq(ag_jwt_verify(t, len + 2, set, &ex, NULL), AG_JWT_MALFORMED);
    /* a header with padding */
    const char *hj = "{\"alg\":\"RS256\",\"kid\":\"rsa1\"}";
    char *h = b64url(hj, strlen(hj));
    char pad[512];
    snprintf(pad, sizeof(pad), "%s=%s", h, dot1);
    ck_assert_int_eq(ag_jwt_verify(pad, strlen(pad), set, &ex, NULL), AG_JWT_MALFORMED);
    free(h);
    /* a signature whose last character has unused bits set (non-canonical) */
    memcpy(t, g, len + 1);
    t[len - 1] = t[len - 1] == 'A' ? 'B' : t[len - 1] == 'Q' ? 'R' : t[len - 1] == 'g' ? 'h' : 'x';
    ck_assert_int_eq(ag_jwt_verify(t, len, set, &ex, NULL), AG_JWT_MALFORMED);
    /* a segment of impossible length (4n + 1) */
    snprintf(t, len + 4, "%sAAA", g);
    ck_assert_int_eq(ag_jwt_verify(t, len + 3, set, &ex, NULL), AG_JWT_MALFORMED);
    free(t);
    free(g);
}
END_TEST

START_TEST(json_not_object)
{
    static const char *const notobj[] = {"[\"RS256\"]",        "\"RS256\"", "null", "42",
                                         "{\"alg\":\"RS256\"", "",          "{} {}"};
    for (size_t i = 0; i < AG_ARRAY_LEN(notobj); i++) {
        ck_assert_msg(run(sign_with(notobj[i], GOOD, k_rsa1, "RS256")) == AG_JWT_MALFORMED, "header %zu", i);
        ck_assert_msg(run(sign_with("{\"alg\":\"RS256\",\"kid\":\"rsa1\"}", notobj[i], k_rsa1, "RS256")) ==
                          AG_JWT_MALFORMED,
                      "payload %zu", i);
    }
}
END_TEST

START_TEST(duplicates_and_crit)
{
    ck_assert_int_eq(run(tok("RS256", "rsa1", pay(D_ISS, D_AUD, D_EXP, D_NONCE ",\"iss\":\"https://evil\""))),
                     AG_JWT_MALFORMED);
    ck_assert_int_eq(run(tok("RS256", "rsa1", pay(D_ISS, D_AUD, D_EXP, D_NONCE ",\"exp\":9999999999"))),
                     AG_JWT_MALFORMED);
    ck_assert_int_eq(
        run(sign_with("{\"alg\":\"RS256\",\"kid\":\"rsa1\",\"alg\":\"none\"}", GOOD, k_rsa1, "RS256")),
        AG_JWT_MALFORMED);
    ck_assert_int_eq(
        run(sign_with("{\"alg\":\"RS256\",\"kid\":\"rsa1\",\"kid\":\"rsa1\"}", GOOD, k_rsa1, "RS256")),
        AG_JWT_MALFORMED);
    ck_assert_int_eq(run(sign_with("{\"alg\":\"RS256\",\"kid\":\"rsa1\",\"crit\":[\"exp\"],\"exp\":1}", GOOD,
                                   k_rsa1, "RS256")),
                     AG_JWT_MALFORMED);
    ck_assert_int_eq(
        run(sign_with("{\"alg\":\"RS256\",\"kid\":\"rsa1\",\"crit\":[]}", GOOD, k_rsa1, "RS256")),
        AG_JWT_MALFORMED);
}
END_TEST

/* ---- claims ---- */

START_TEST(issuer)
{
    ck_assert_int_eq(run(tok("RS256", "rsa1", pay("\"https://evil.example.com\"", D_AUD, D_EXP, D_NONCE))),
                     AG_JWT_BAD_ISSUER);
    ck_assert_int_eq(run(tok("RS256", "rsa1", pay("\"" ISS "/\"", D_AUD, D_EXP, D_NONCE))),
                     AG_JWT_BAD_ISSUER);
    ck_assert_int_eq(run(tok("RS256", "rsa1", pay("\"https://idp.example.co\"", D_AUD, D_EXP, D_NONCE))),
                     AG_JWT_BAD_ISSUER);
    ck_assert_int_eq(run(tok("RS256", "rsa1", pay(NULL, D_AUD, D_EXP, D_NONCE))), AG_JWT_BAD_ISSUER);
    ck_assert_int_eq(run(tok("RS256", "rsa1", pay("[\"" ISS "\"]", D_AUD, D_EXP, D_NONCE))),
                     AG_JWT_BAD_ISSUER);
    ck_assert_int_eq(run(tok("RS256", "rsa1", pay("1", D_AUD, D_EXP, D_NONCE))), AG_JWT_BAD_ISSUER);
    ck_assert_int_eq(run(tok("RS256", "rsa1", pay("null", D_AUD, D_EXP, D_NONCE))), AG_JWT_BAD_ISSUER);
}
END_TEST

START_TEST(audience)
{
    ck_assert_int_eq(run(tok("RS256", "rsa1", pay(D_ISS, "\"someone-else\"", D_EXP, D_NONCE))),
                     AG_JWT_BAD_AUDIENCE);
    ck_assert_int_eq(run(tok("RS256", "rsa1", pay(D_ISS, NULL, D_EXP, D_NONCE))), AG_JWT_BAD_AUDIENCE);
    ck_assert_int_eq(run(tok("RS256", "rsa1", pay(D_ISS, "[\"a\",\"b\"]", D_EXP, D_NONCE))),
                     AG_JWT_BAD_AUDIENCE);
    ck_assert_int_eq(run(tok("RS256", "rsa1", pay(D_ISS, "[]", D_EXP, D_NONCE))), AG_JWT_BAD_AUDIENCE);
    ck_assert_int_eq(run(tok("RS256", "rsa1", pay(D_ISS, "[[\"" CLIENT "\"]]", D_EXP, D_NONCE))),
                     AG_JWT_BAD_AUDIENCE);
    ck_assert_int_eq(run(tok("RS256", "rsa1", pay(D_ISS, "{\"" CLIENT "\":1}", D_EXP, D_NONCE))),
                     AG_JWT_BAD_AUDIENCE);
    ck_assert_int_eq(run(tok("RS256", "rsa1", pay(D_ISS, "\"" CLIENT "x\"", D_EXP, D_NONCE))),
                     AG_JWT_BAD_AUDIENCE);
    ck_assert_int_eq(run(tok("RS256", "rsa1", pay(D_ISS, "[1,\"" CLIENT "\"]", D_EXP, D_NONCE))), AG_JWT_OK);
    /* a second accepted audience */
    ck_assert_int_eq(run(tok("RS256", "rsa1", pay(D_ISS, "\"api://other\"", D_EXP, D_NONCE))),
                     AG_JWT_BAD_AUDIENCE);
    ex.naudiences = 2;
    ck_assert_int_eq(run(tok("RS256", "rsa1", pay(D_ISS, "\"api://other\"", D_EXP, D_NONCE))), AG_JWT_OK);
    ex.naudiences = 0;
    ck_assert_int_eq(run(tok("RS256", "rsa1", GOOD)), AG_JWT_BAD_AUDIENCE);
}
END_TEST

START_TEST(azp)
{
    const char *two = "[\"" CLIENT "\",\"api://x\"]";

    ck_assert_int_eq(run(tok("RS256", "rsa1", pay(D_ISS, two, D_EXP, D_NONCE ",\"azp\":\"intruder\""))),
                     AG_JWT_BAD_AZP);
    ck_assert_int_eq(run(tok("RS256", "rsa1", pay(D_ISS, two, D_EXP, D_NONCE ",\"azp\":7"))), AG_JWT_BAD_AZP);
    ck_assert_int_eq(run(tok("RS256", "rsa1", pay(D_ISS, two, D_EXP, D_NONCE ",\"azp\":\"" CLIENT "\""))),
                     AG_JWT_OK);
    ck_assert_int_eq(run(tok("RS256", "rsa1", pay(D_ISS, two, D_EXP, D_NONCE))), AG_JWT_OK);
    ex.client_id = NULL;
    ck_assert_int_eq(run(tok("RS256", "rsa1", pay(D_ISS, two, D_EXP, D_NONCE ",\"azp\":\"intruder\""))),
                     AG_JWT_OK);
}
END_TEST

START_TEST(expiry)
{
    ck_assert_int_eq(run(tok("RS256", "rsa1", pay(D_ISS, D_AUD, NULL, D_NONCE))), AG_JWT_MISSING_EXP);
    ck_assert_int_eq(run(tok("RS256", "rsa1", pay(D_ISS, D_AUD, "\"1700000300\"", D_NONCE))),
                     AG_JWT_MISSING_EXP);
    ck_assert_int_eq(run(tok("RS256", "rsa1", pay(D_ISS, D_AUD, "null", D_NONCE))), AG_JWT_MISSING_EXP);
    ck_assert_int_eq(run(tok("RS256", "rsa1", pay(D_ISS, D_AUD, "true", D_NONCE))), AG_JWT_MISSING_EXP);
    ck_assert_int_eq(run(tok("RS256", "rsa1", pay(D_ISS, D_AUD, "1600000000", D_NONCE))), AG_JWT_EXPIRED);
    ck_assert_int_eq(run(tok("RS256", "rsa1", pay(D_ISS, D_AUD, "-1", D_NONCE))), AG_JWT_EXPIRED);
    ck_assert_int_eq(run(tok("RS256", "rsa1", pay(D_ISS, D_AUD, D_EXP, D_NONCE ",\"nbf\":1800000000"))),
                     AG_JWT_NOT_YET_VALID);
    ck_assert_int_eq(
        run(tok("RS256", "rsa1", pay(D_ISS, D_AUD, D_EXP, "\"nonce\":\"" NONCE "\",\"iat\":1800000000"))),
        AG_JWT_NOT_YET_VALID);
    ck_assert_int_eq(run(tok("RS256", "rsa1", pay(D_ISS, D_AUD, D_EXP, D_NONCE ",\"nbf\":\"0\""))),
                     AG_JWT_MALFORMED);
    ck_assert_int_eq(
        run(tok("RS256", "rsa1", pay(D_ISS, D_AUD, D_EXP, "\"nonce\":\"" NONCE "\",\"iat\":\"0\""))),
        AG_JWT_MALFORMED);
    /* an integer too large for jansson is malformed, not "far future" */
    ck_assert_int_eq(run(tok("RS256", "rsa1", pay(D_ISS, D_AUD, "99999999999999999999999", D_NONCE))),
                     AG_JWT_MALFORMED);
}
END_TEST

START_TEST(nonce)
{
    ck_assert_int_eq(run(tok("RS256", "rsa1", pay(D_ISS, D_AUD, D_EXP, "\"nonce\":\"other\""))),
                     AG_JWT_BAD_NONCE);
    ck_assert_int_eq(run(tok("RS256", "rsa1", pay(D_ISS, D_AUD, D_EXP, "\"nonce\":\"" NONCE "x\""))),
                     AG_JWT_BAD_NONCE);
    ck_assert_int_eq(run(tok("RS256", "rsa1", pay(D_ISS, D_AUD, D_EXP, "\"nonce\":\"n-0S6\""))),
                     AG_JWT_BAD_NONCE);
    ck_assert_int_eq(run(tok("RS256", "rsa1", pay(D_ISS, D_AUD, D_EXP, "\"nonce\":\"\""))), AG_JWT_BAD_NONCE);
    ck_assert_int_eq(run(tok("RS256", "rsa1", pay(D_ISS, D_AUD, D_EXP, "\"nonce\":[\"" NONCE "\"]"))),
                     AG_JWT_BAD_NONCE);
    ck_assert_int_eq(run(tok("RS256", "rsa1", pay(D_ISS, D_AUD, D_EXP, "\"x\":1"))), AG_JWT_BAD_NONCE);
    ex.nonce = NULL; /* access tokens carry no nonce */
    ck_assert_int_eq(run(tok("RS256", "rsa1", pay(D_ISS, D_AUD, D_EXP, "\"x\":1"))), AG_JWT_OK);
}
END_TEST

START_TEST(result_strings_and_null_args)
{
    for (int r = AG_JWT_OK; r <= AG_JWT_INTERNAL; r++) {
        const char *s = ag_jwt_result_str((enum ag_jwt_result)r);
        ck_assert(s && *s && !strchr(s, '%'));
        for (int q = AG_JWT_OK; q < r; q++)
            ck_assert_str_ne(s, ag_jwt_result_str((enum ag_jwt_result)q));
    }
    ck_assert_str_eq(ag_jwt_result_str((enum ag_jwt_result)999), "unknown result");
    char *g = tok("RS256", "rsa1", GOOD);
    json_t *c = (json_t *)1;
    ck_assert_int_eq(ag_jwt_verify(NULL, 0, set, &ex, &c), AG_JWT_INTERNAL);
    ck_assert_ptr_null(c);
    ck_assert_int_eq(ag_jwt_verify(g, strlen(g), NULL, &ex, NULL), AG_JWT_INTERNAL);
    ck_assert_int_eq(ag_jwt_verify(g, strlen(g), set, NULL, NULL), AG_JWT_INTERNAL);
    ex.issuer = NULL;
    ck_assert_int_eq(ag_jwt_verify(g, strlen(g), set, &ex, NULL), AG_JWT_INTERNAL);
    free(g);
}
END_TEST

static void keys_setup(void)
{
    json_t *keys = json_array();

    k_rsa1 = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    k_rsa2 = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    k_other = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    k_ec256 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    k_ec384 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
    k_ec521 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-521");
    NEED(k_rsa1 && k_rsa2 && k_other && k_ec256 && k_ec384 && k_ec521);
    json_array_append_new(keys, jwk_of(k_rsa1, "rsa1", NULL));
    json_array_append_new(keys, jwk_of(k_rsa2, "rsa2", "RS256"));
    json_array_append_new(keys, jwk_of(k_ec256, "ec256", "ES256"));
    json_array_append_new(keys, jwk_of(k_ec384, "ec384", NULL));
    json_array_append_new(keys, jwk_of(k_ec521, "ec521", "ES512"));
    set = set_of(keys);
    keys = json_array();
    json_array_append_new(keys, jwk_of(k_other, "rsa1", NULL));
    other_set = set_of(keys);
    keys = json_array();
    json_array_append_new(keys, jwk_of(k_other, NULL, NULL));
    single_set = set_of(keys);
}

static void keys_teardown(void)
{
    ag_jwks_unref(set);
    ag_jwks_unref(other_set);
    ag_jwks_unref(single_set);
    EVP_PKEY_free(k_rsa1);
    EVP_PKEY_free(k_rsa2);
    EVP_PKEY_free(k_other);
    EVP_PKEY_free(k_ec256);
    EVP_PKEY_free(k_ec384);
    EVP_PKEY_free(k_ec521);
}

int main(void)
{
    Suite *s = suite_create("jwt");
    TCase *tc = tcase_create("jwt");

    /* Keys are made once (RSA generation is slow); each test gets a fresh expectation. */
    keys_setup();
    tcase_add_checked_fixture(tc, expect_reset, NULL);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, happy_every_alg);
    tcase_add_test(tc, happy_without_kid_when_one_key_fits);
    tcase_add_test(tc, happy_typ_and_no_claims_out);
    tcase_add_test(tc, skew_edges);
    tcase_add_test(tc, alg_none);
    tcase_add_test(tc, hs256_with_public_key_as_secret);
    tcase_add_test(tc, alg_not_allowed);
    tcase_add_test(tc, key_type_mismatch);
    tcase_add_test(tc, kid_unknown_or_hostile);
    tcase_add_test(tc, no_kid_several_keys);
    tcase_add_test(tc, other_key_same_kid);
    tcase_add_test(tc, tampered_payload);
    tcase_add_test(tc, segment_counts);
    tcase_add_test(tc, too_large);
    tcase_add_test(tc, bad_base64url);
    tcase_add_test(tc, json_not_object);
    tcase_add_test(tc, duplicates_and_crit);
    tcase_add_test(tc, issuer);
    tcase_add_test(tc, audience);
    tcase_add_test(tc, azp);
    tcase_add_test(tc, expiry);
    tcase_add_test(tc, nonce);
    tcase_add_test(tc, result_strings_and_null_args);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    keys_teardown();
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
