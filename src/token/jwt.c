/* SPDX-License-Identifier: Apache-2.0
 * Compact JWS verification (RFC 7515 section 5.2, RFC 7519 section 7.2, OIDC Core 3.1.3.7,
 * RFC 9068 for access tokens). The key is chosen by kid and the token's alg must fit its type and the
 * allow-list before anything is verified. libjwt 1.10 is not used here: its jwt_decode() trusts the
 * token's alg (HS256 with an RSA PEM as the HMAC secret verifies), parses the PEM key again on every
 * call (about 0.5 ms, 10 times the signature check itself) and refuses RFC 9068 "at+jwt" tokens. The
 * signature is checked with OpenSSL on the key the JWKS already holds. */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>

#include "token/jwt.h"
#include "util/b64.h"
#include "util/crypto.h"

/* The only algs we ever verify. "none" and HS* are absent on purpose: an allow-list entry naming
 * them matches nothing here, so no configuration can turn them on. */
static const struct jws_alg {
    const char *name;
    enum ag_jwk_kind kind;
    int bits;        /* SHA-2 size */
    size_t ec_field; /* ES*: bytes of r and of s in the JWS signature (RFC 7518 3.4); 0 for RS* */
} jws_algs[] = {
    {"RS256", AG_JWK_RSA, 256, 0},      {"RS384", AG_JWK_RSA, 384, 0},
    {"RS512", AG_JWK_RSA, 512, 0},      {"ES256", AG_JWK_EC_P256, 256, 32},
    {"ES384", AG_JWK_EC_P384, 384, 48}, {"ES512", AG_JWK_EC_P521, 512, 66},
};

/* Largest signature we accept: RSA moduli above 8192 bits are refused by the JWKS parser. */
#define SIG_MAX 1024

/* The JWS signature over input[0..len) with key k; ES* signatures are r||s and become DER first. */
static enum ag_jwt_result signature_ok(const struct jws_alg *a, const struct ag_jwk *k, const char *input,
                                       size_t len, const unsigned char *sig, size_t siglen)
{
    unsigned char der[SIG_MAX + 16], *p = der;
    const unsigned char *use = sig;
    size_t uselen = siglen;
    EVP_MD_CTX *ctx = NULL;
    ECDSA_SIG *es = NULL;
    BIGNUM *r = NULL, *s = NULL;
    enum ag_jwt_result res = AG_JWT_BAD_SIGNATURE;

    if (a->ec_field > 0) {
        int n;
        if (siglen != 2 * a->ec_field)
            goto out;
        es = ECDSA_SIG_new();
        r = BN_bin2bn(sig, (int)a->ec_field, NULL);
        s = BN_bin2bn(sig + a->ec_field, (int)a->ec_field, NULL);
        if (es == NULL || r == NULL || s == NULL || ECDSA_SIG_set0(es, r, s) != 1) {
            res = AG_JWT_INTERNAL;
            goto out;
        }
        r = s = NULL; /* owned by es now */
        n = i2d_ECDSA_SIG(es, NULL);
        if (n <= 0 || (size_t)n > sizeof(der) || i2d_ECDSA_SIG(es, &p) != n) {
            res = AG_JWT_INTERNAL;
            goto out;
        }
        use = der;
        uselen = (size_t)n;
    }
    ctx = EVP_MD_CTX_new();
    if (ctx == NULL || ag_crypto_sha(a->bits) == NULL) {
        res = AG_JWT_INTERNAL;
        goto out;
    }
    if (EVP_DigestVerifyInit(ctx, NULL, ag_crypto_sha(a->bits), NULL, k->pkey) == 1 &&
        EVP_DigestVerify(ctx, use, uselen, (const unsigned char *)input, len) == 1)
        res = AG_JWT_OK;
out:
    if (res != AG_JWT_OK)
        ERR_clear_error();
    EVP_MD_CTX_free(ctx);
    ECDSA_SIG_free(es);
    BN_free(r);
    BN_free(s);
    return res;
}

const char *ag_jwt_result_str(enum ag_jwt_result r)
{
    switch (r) {
    case AG_JWT_OK:
        return "ok";
    case AG_JWT_MALFORMED:
        return "malformed token";
    case AG_JWT_TOO_LARGE:
        return "token too large";
    case AG_JWT_BAD_ALG:
        return "signature algorithm not allowed";
    case AG_JWT_UNKNOWN_KID:
        return "unknown signing key id";
    case AG_JWT_NO_KEY:
        return "no suitable signing key";
    case AG_JWT_BAD_SIGNATURE:
        return "bad signature";
    case AG_JWT_BAD_ISSUER:
        return "wrong issuer";
    case AG_JWT_BAD_AUDIENCE:
        return "wrong audience";
    case AG_JWT_EXPIRED:
        return "token expired";
    case AG_JWT_NOT_YET_VALID:
        return "token not yet valid";
    case AG_JWT_MISSING_EXP:
        return "missing or invalid expiry";
    case AG_JWT_BAD_NONCE:
        return "wrong nonce";
    case AG_JWT_BAD_AZP:
        return "wrong authorized party";
    case AG_JWT_UNSUPPORTED_TYP:
        return "unsupported token type";
    case AG_JWT_INTERNAL:
        return "internal error";
    }
    return "unknown result";
}

/* The alg if we support it and the caller allows it, else NULL. */
static const struct jws_alg *alg_allowed(const char *alg, const struct ag_jwt_expect *ex)
{
    const struct jws_alg *a = NULL;

    for (size_t i = 0; alg && i < AG_ARRAY_LEN(jws_algs); i++)
        if (strcmp(alg, jws_algs[i].name) == 0)
            a = &jws_algs[i];
    for (size_t i = 0; a && ex->algs && i < ex->nalgs; i++)
        if (ex->algs[i] && strcmp(ex->algs[i], a->name) == 0)
            return a;
    return NULL;
}

static bool key_fits(const struct ag_jwk *k, const struct jws_alg *a)
{
    return k->kind == a->kind && (!k->alg || strcmp(k->alg, a->name) == 0);
}

/* With a kid: the one key of that kid that fits the alg (a kid may name keys of several types,
 * RFC 7517 4.5). Without: the one key in the set that fits; guessing among several is refused. */
static enum ag_jwt_result key_choose(const struct ag_jwks *keys, const char *kid, const struct jws_alg *a,
                                     const struct ag_jwk **out)
{
    size_t named = 0, fit = 0;

    for (size_t i = 0; i < ag_jwks_count(keys); i++) {
        const struct ag_jwk *k = ag_jwks_get(keys, i);
        if (kid && (!k->kid || strcmp(k->kid, kid) != 0))
            continue;
        named++;
        if (key_fits(k, a)) {
            *out = k;
            fit++;
        }
    }
    if (kid && named == 0)
        return AG_JWT_UNKNOWN_KID;
    return fit == 1 ? AG_JWT_OK : AG_JWT_NO_KEY;
}

/* One segment as a JSON object. Duplicate members are refused so that no two readers of the
 * token (we, libjwt, a later consumer) can disagree about which value counts. */
static enum ag_jwt_result segment_json(const char *seg, size_t n, unsigned char *buf, size_t cap,
                                       json_t **obj)
{
    size_t dlen = 0;

    if (n == 0 || ag_b64url_decode(seg, n, buf, cap, &dlen) != AG_OK)
        return AG_JWT_MALFORMED;
    *obj = json_loadb((const char *)buf, dlen, JSON_REJECT_DUPLICATES, NULL);
    if (!json_is_object(*obj)) {
        json_decref(*obj);
        *obj = NULL;
        return AG_JWT_MALFORMED;
    }
    return AG_JWT_OK;
}

static bool aud_ok(const json_t *aud, const struct ag_jwt_expect *ex)
{
    size_t i;
    const json_t *v;

    if (json_is_string(aud)) {
        for (i = 0; ex->audiences && i < ex->naudiences; i++)
            if (ex->audiences[i] && strcmp(json_string_value(aud), ex->audiences[i]) == 0)
                return true;
        return false;
    }
    json_array_foreach(aud, i, v)
    {
        if (json_is_string(v) && aud_ok(v, ex))
            return true;
    }
    return false;
}

/* A time claim that must not lie in the future: absent is fine, not a number is malformed. */
static enum ag_jwt_result not_after(const json_t *v, double limit)
{
    if (!v)
        return AG_JWT_OK;
    if (!json_is_number(v))
        return AG_JWT_MALFORMED;
    return json_number_value(v) > limit ? AG_JWT_NOT_YET_VALID : AG_JWT_OK;
}

static enum ag_jwt_result claims_check(const json_t *c, const struct ag_jwt_expect *ex)
{
    const json_t *iss = json_object_get(c, "iss"), *aud = json_object_get(c, "aud");
    const json_t *exp = json_object_get(c, "exp"), *nonce = json_object_get(c, "nonce");
    const json_t *azp = json_object_get(c, "azp");
    double skew = ex->skew_s > 0 ? (double)ex->skew_s : 0.0;
    enum ag_jwt_result res;

    if (!json_is_string(iss) || strcmp(json_string_value(iss), ex->issuer) != 0)
        return AG_JWT_BAD_ISSUER;
    if (!aud_ok(aud, ex))
        return AG_JWT_BAD_AUDIENCE;
    /* exp is required: a token without one would be valid forever (GHSA-wcvh-g65p-v576). */
    if (!json_is_number(exp))
        return AG_JWT_MISSING_EXP;
    if (json_number_value(exp) <= (double)ex->now - skew)
        return AG_JWT_EXPIRED;
    res = not_after(json_object_get(c, "nbf"), (double)ex->now + skew);
    if (res == AG_JWT_OK)
        res = not_after(json_object_get(c, "iat"), (double)ex->now + skew);
    if (res != AG_JWT_OK)
        return res;
    if (ex->nonce && (!json_is_string(nonce) || json_string_length(nonce) != strlen(ex->nonce) ||
                      CRYPTO_memcmp(json_string_value(nonce), ex->nonce, strlen(ex->nonce)) != 0))
        return AG_JWT_BAD_NONCE;
    /* OIDC Core 3.1.3.7 items 4-5: with several audiences, azp tells which client it was for. */
    if (ex->client_id && azp && json_array_size(aud) > 1 &&
        (!json_is_string(azp) || strcmp(json_string_value(azp), ex->client_id) != 0))
        return AG_JWT_BAD_AZP;
    return AG_JWT_OK;
}

enum ag_jwt_result ag_jwt_verify(const char *token, size_t len, const struct ag_jwks *keys,
                                 const struct ag_jwt_expect *ex, json_t **claims_out)
{
    enum ag_jwt_result res = AG_JWT_MALFORMED;
    json_t *hdr = NULL, *claims = NULL;
    unsigned char *buf = NULL, sig[SIG_MAX];
    const char *dot1, *dot2 = NULL, *kid = NULL, *typ;
    const json_t *v;
    const struct jws_alg *alg;
    const struct ag_jwk *key = NULL;
    size_t siglen = 0;

    if (claims_out)
        *claims_out = NULL;
    if (!token || !keys || !ex || !ex->issuer) {
        res = AG_JWT_INTERNAL;
        goto out;
    }
    if (len > AG_JWT_MAX_LEN) {
        res = AG_JWT_TOO_LARGE;
        goto out;
    }
    dot1 = memchr(token, '.', len);
    if (dot1)
        dot2 = memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - token));
    if (!dot2 || memchr(dot2 + 1, '.', len - (size_t)(dot2 + 1 - token)))
        goto out;
    /* Decoded segments are shorter than the token. Small enough (<= 16 KiB) to stay off mmap. */
    buf = malloc(len + 1);
    if (!buf) {
        res = AG_JWT_INTERNAL;
        goto out;
    }
    if (dot2 + 1 == token + len ||
        ag_b64url_decode(dot2 + 1, (size_t)(token + len - dot2 - 1), sig, sizeof(sig), &siglen) != AG_OK)
        goto out;
    res = segment_json(token, (size_t)(dot1 - token), buf, len, &hdr);
    if (res == AG_JWT_OK)
        res = segment_json(dot1 + 1, (size_t)(dot2 - dot1 - 1), buf, len, &claims);
    if (res != AG_JWT_OK)
        goto out;

    res = AG_JWT_MALFORMED;
    /* We implement no JWS extension, so any crit must be refused (RFC 7515 4.1.11). */
    if (json_object_get(hdr, "crit"))
        goto out;
    v = json_object_get(hdr, "kid");
    if (v && (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) > AG_JWKS_MAX_KID))
        goto out;
    kid = json_string_value(v);
    v = json_object_get(hdr, "typ");
    if (v && !json_is_string(v))
        goto out;
    typ = json_string_value(v);
    /* jku, x5u, jwk and x5c are ignored: keys come only from the configured JWKS. */
    res = AG_JWT_BAD_ALG;
    alg = alg_allowed(json_string_value(json_object_get(hdr, "alg")), ex);
    if (!alg)
        goto out;
    /* An ID token is a plain JWT; an access token may say so (RFC 9068 "at+jwt"). Never the other way
     * round: an access token must not pass for an ID token. */
    res = AG_JWT_UNSUPPORTED_TYP;
    if (typ && strcasecmp(typ, "JWT") != 0 &&
        !(ex->access_token && (strcasecmp(typ, "at+jwt") == 0 || strcasecmp(typ, "application/at+jwt") == 0)))
        goto out;
    res = key_choose(keys, kid, alg, &key);
    if (res != AG_JWT_OK)
        goto out;
    res = signature_ok(alg, key, token, (size_t)(dot2 - token), sig, siglen);
    if (res != AG_JWT_OK)
        goto out;
    res = claims_check(claims, ex);
out:
    if (res == AG_JWT_OK && claims_out) {
        *claims_out = claims;
        claims = NULL;
    }
    json_decref(hdr);
    json_decref(claims);
    free(buf);
    return res;
}
