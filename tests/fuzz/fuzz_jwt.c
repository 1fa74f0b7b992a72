/* SPDX-License-Identifier: Apache-2.0
 * JWT verification (src/token/jwt.c): the compact serialization, the header and the claims of ID tokens
 * and bearer access tokens. The first input byte picks the reading: the bytes as a token (a forgery:
 * nothing may verify), or a header and a claims object (two lines) that this target signs with the
 * provider's EC key, so the header and claims checks behind the signature are fuzzed too. Oracles: a
 * forgery never verifies; a token that verifies was signed with ES256 by the key its header names (or the
 * only fitting key), has no crit, a JWT typ, our issuer, one of our audiences, our azp when there are
 * several, the nonce when one is expected, and an exp, nbf and iat that hold at `now`. */
#include <jansson.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <strings.h>

#include "fuzz.h"
#include "token/jwt.h"
#include "util/b64.h"

#define NOW    1700000000
#define SKEW   60
#define ISSUER "https://idp.example.com"

static EVP_PKEY *ec_key;
static struct ag_jwks *keys;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    unsigned char pub[65];
    char x[64], y[64], doc[512];
    size_t plen = 0;
    char err[256];

    (void)argc;
    (void)argv;
    ec_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    if (ec_key == NULL ||
        EVP_PKEY_get_octet_string_param(ec_key, "encoded-pub-key", pub, sizeof(pub), &plen) != 1 ||
        plen != 65)
        abort();
    ag_b64url_encode(pub + 1, 32, x, sizeof(x));
    ag_b64url_encode(pub + 33, 32, y, sizeof(y));
    /* the signing key under two kids, plus a key of another kind: kid and alg choose among them */
    snprintf(doc, sizeof(doc),
             "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"%s\",\"y\":\"%s\",\"kid\":\"ec1\"},"
             "{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"%s\",\"y\":\"%s\",\"kid\":\"ec2\",\"alg\":\"ES256\","
             "\"use\":\"sig\"}]}",
             x, y, x, y);
    if (ag_jwks_parse(doc, strlen(doc), &keys, err, sizeof(err)) != AG_OK) {
        fprintf(stderr, "fuzz_jwt: %s\n", err);
        abort();
    }
    return 0;
}

/* ES256 over input as a JWS signature (r || s, 32 bytes each) into sig. */
static void sign(const char *input, size_t len, unsigned char sig[64])
{
    unsigned char der[80];
    const unsigned char *p = der;
    size_t dlen = sizeof(der);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    ECDSA_SIG *es;
    const BIGNUM *r, *s;

    if (ctx == NULL || EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, ec_key) != 1 ||
        EVP_DigestSign(ctx, der, &dlen, (const unsigned char *)input, len) != 1)
        abort();
    EVP_MD_CTX_free(ctx);
    es = d2i_ECDSA_SIG(NULL, &p, (long)dlen);
    if (es == NULL)
        abort();
    ECDSA_SIG_get0(es, &r, &s);
    if (BN_bn2binpad(r, sig, 32) != 32 || BN_bn2binpad(s, sig + 32, 32) != 32)
        abort();
    ECDSA_SIG_free(es);
}

static bool aud_has(json_t *aud, const char *want)
{
    size_t i;
    json_t *v;
    if (json_is_string(aud))
        return strcmp(json_string_value(aud), want) == 0;
    json_array_foreach(aud, i,
                       v) if (json_is_string(v) && strcmp(json_string_value(v), want) == 0) return true;
    return false;
}

static void verified(json_t *hdr, json_t *c, const struct ag_jwt_expect *ex)
{
    json_t *v;
    FUZZ_CHECK(json_is_object(c), "claims");
    if (hdr != NULL) {
        FUZZ_CHECK(strcmp(json_string_value(json_object_get(hdr, "alg")), "ES256") == 0, "alg");
        FUZZ_CHECK(json_object_get(hdr, "crit") == NULL, "crit");
        v = json_object_get(hdr, "typ");
        FUZZ_CHECK(v == NULL || strcasecmp(json_string_value(v), "JWT") == 0 ||
                       (ex->access_token && (strcasecmp(json_string_value(v), "at+jwt") == 0 ||
                                             strcasecmp(json_string_value(v), "application/at+jwt") == 0)),
                   "typ");
        v = json_object_get(hdr, "kid");
        FUZZ_CHECK(v == NULL || strcmp(json_string_value(v), "ec1") == 0 ||
                       strcmp(json_string_value(v), "ec2") == 0,
                   "kid");
    }
    FUZZ_CHECK(strcmp(json_string_value(json_object_get(c, "iss")), ISSUER) == 0, "iss");
    FUZZ_CHECK(aud_has(json_object_get(c, "aud"), "app"), "aud");
    FUZZ_CHECK(json_number_value(json_object_get(c, "exp")) > NOW - SKEW, "exp");
    v = json_object_get(c, "nbf");
    FUZZ_CHECK(v == NULL || json_number_value(v) <= NOW + SKEW, "nbf");
    v = json_object_get(c, "iat");
    FUZZ_CHECK(v == NULL || json_number_value(v) <= NOW + SKEW, "iat");
    if (ex->nonce != NULL)
        FUZZ_CHECK(json_is_string(json_object_get(c, "nonce")) &&
                       strcmp(json_string_value(json_object_get(c, "nonce")), ex->nonce) == 0,
                   "nonce");
    v = json_object_get(c, "azp");
    if (v != NULL && json_array_size(json_object_get(c, "aud")) > 1)
        FUZZ_CHECK(json_is_string(v) && strcmp(json_string_value(v), "app") == 0, "azp");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const auds[] = {"app", "api"};
    static const char *const algs[] = {"RS256", "ES256", "HS256", "none"};
    struct fuzz_in in = fuzz_in(data, size);
    uint8_t mode = fuzz_byte(&in);
    struct ag_jwt_expect ex = {
        ISSUER, auds, 1 + (mode >> 7), algs, 4, (mode & 2) ? "n-1" : NULL, (mode & 4) ? "app" : NULL,
        NOW,    SKEW, (mode & 8) != 0};
    json_t *claims = NULL;
    enum ag_jwt_result r;

    if (!(mode & 1)) {
        size_t len;
        char *text = fuzz_rest(&in, &len), *tok = fuzz_exact((const uint8_t *)text, len);
        free(text);
        r = ag_jwt_verify(tok, len, keys, &ex, &claims);
        FUZZ_CHECK(r != AG_JWT_OK && claims == NULL, "a forged token verified");
        free(tok);
        return 0;
    }
    {
        size_t hl, cl, o = 0;
        char *h = fuzz_field(&in, '\n', &hl), *c = fuzz_rest(&in, &cl);
        char *tok = malloc(AG_B64URL_LEN(hl) + AG_B64URL_LEN(cl) + AG_B64URL_LEN(64) + 4);
        unsigned char sig[64];
        if (tok == NULL)
            abort();
        o += ag_b64url_encode(h, hl, tok, AG_B64URL_LEN(hl) + 1);
        tok[o++] = '.';
        o += ag_b64url_encode(c, cl, tok + o, AG_B64URL_LEN(cl) + 1);
        sign(tok, o, sig);
        tok[o++] = '.';
        o += ag_b64url_encode(sig, sizeof(sig), tok + o, AG_B64URL_LEN(64) + 1);
        {
            char *exact = fuzz_exact((const uint8_t *)tok, o);
            r = ag_jwt_verify(exact, o, keys, &ex, &claims);
            free(exact);
        }
        if (r == AG_JWT_OK) {
            json_t *hdr = json_loadb(h, hl, 0, NULL);
            verified(hdr, claims, &ex);
            json_decref(hdr);
            json_decref(claims);
            /* one changed signature bit and it is refused */
            tok[o - 1] = tok[o - 1] == 'A' ? 'Q' : 'A';
            FUZZ_CHECK(ag_jwt_verify(tok, o, keys, &ex, NULL) != AG_JWT_OK, "a changed signature verified");
        } else {
            FUZZ_CHECK(claims == NULL, "claims without a verified token");
        }
        free(tok);
        free(h);
        free(c);
    }
    return 0;
}
