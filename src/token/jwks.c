/* SPDX-License-Identifier: Apache-2.0
 * JWK Set parsing (RFC 7517 sections 4-5, RFC 7518 sections 6.2-6.3) into OpenSSL 3 public keys
 * built with OSSL_PARAM_BLD / EVP_PKEY_fromdata, plus each key's SubjectPublicKeyInfo PEM because
 * libjwt 1.10 only takes PEM. Bad entries are skipped one by one; a bad document is refused whole. */
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>

#include "token/jwks.h"
#include "util/b64.h"

/* 8192-bit moduli at most: bigger keys only make every verification slower (a cheap DoS lever
 * for whoever controls the JWKS), and no provider uses them. */
#define RSA_MAX_BYTES 1024
#define RSA_MAX_E     8
#define EC_MAX_FIELD  66

struct ag_jwks {
    atomic_uint refs;
    size_t nkeys;
    size_t nskipped;
    struct ag_jwk keys[AG_JWKS_MAX_KEYS];
};

static const struct {
    const char *crv;   /* JWK name */
    const char *group; /* OpenSSL name */
    size_t field;      /* coordinate size in bytes; x and y must be exactly this long */
    enum ag_jwk_kind kind;
} curves[] = {
    {"P-256", "prime256v1", 32, AG_JWK_EC_P256},
    {"P-384", "secp384r1", 48, AG_JWK_EC_P384},
    {"P-521", "secp521r1", 66, AG_JWK_EC_P521},
};

static void err_add(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void err_add(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    size_t used;

    if (!err || errlen == 0)
        return;
    used = strnlen(err, errlen - 1);
    if (used > 0 && used + 2 < errlen) {
        memcpy(err + used, "; ", 3);
        used += 2;
    }
    va_start(ap, fmt);
    vsnprintf(err + used, errlen - used, fmt, ap);
    va_end(ap);
}

/* An optional short string member, copied; absent gives NULL. */
static enum ag_rc opt_string(const json_t *jwk, const char *name, size_t max, char **dst)
{
    const json_t *v = json_object_get(jwk, name);

    *dst = NULL;
    if (!v)
        return AG_OK;
    if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) > max)
        return AG_ERR_INVALID;
    *dst = strdup(json_string_value(v));
    return *dst ? AG_OK : AG_ERR_NOMEM;
}

static enum ag_rc member_decode(const json_t *jwk, const char *name, unsigned char *out, size_t cap,
                                size_t *outlen)
{
    const json_t *v = json_object_get(jwk, name);

    if (!json_is_string(v))
        return AG_ERR_INVALID;
    return ag_b64url_decode(json_string_value(v), json_string_length(v), out, cap, outlen);
}

/* Build a public key from OSSL params and let OpenSSL check it (EC point on the curve, RSA
 * modulus odd and without small factors) so a crafted JWK fails here, not at verification. */
static enum ag_rc pkey_from_params(const char *type, OSSL_PARAM_BLD *bld, EVP_PKEY **pkey)
{
    enum ag_rc rc = AG_ERR_INVALID;
    OSSL_PARAM *params = NULL;
    EVP_PKEY_CTX *ctx = NULL, *check = NULL;

    params = OSSL_PARAM_BLD_to_param(bld);
    ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
    if (!params || !ctx || EVP_PKEY_fromdata_init(ctx) <= 0 ||
        EVP_PKEY_fromdata(ctx, pkey, EVP_PKEY_PUBLIC_KEY, params) <= 0)
        goto out;
    check = EVP_PKEY_CTX_new_from_pkey(NULL, *pkey, NULL);
    if (!check || EVP_PKEY_public_check(check) <= 0)
        goto out;
    rc = AG_OK;
out:
    if (rc != AG_OK) {
        EVP_PKEY_free(*pkey);
        *pkey = NULL;
        ERR_clear_error();
    }
    EVP_PKEY_CTX_free(check);
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    return rc;
}

static enum ag_rc rsa_load(const json_t *jwk, struct ag_jwk *key, const char **why)
{
    enum ag_rc rc = AG_ERR_INVALID;
    unsigned char n[RSA_MAX_BYTES], e[RSA_MAX_E];
    size_t nlen = 0, elen = 0;
    BIGNUM *bn = NULL, *be = NULL;
    OSSL_PARAM_BLD *bld = NULL;

    *why = "RSA n or e missing, not base64url or too long";
    if (member_decode(jwk, "n", n, sizeof(n), &nlen) != AG_OK ||
        member_decode(jwk, "e", e, sizeof(e), &elen) != AG_OK)
        goto out;
    bn = BN_bin2bn(n, (int)nlen, NULL);
    be = BN_bin2bn(e, (int)elen, NULL);
    bld = OSSL_PARAM_BLD_new();
    if (!bn || !be || !bld) {
        rc = AG_ERR_NOMEM;
        goto out;
    }
    *why = "RSA modulus under 2048 bits";
    if (BN_num_bits(bn) < AG_JWKS_MIN_RSA)
        goto out;
    *why = "RSA key refused by OpenSSL";
    if (!OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn) ||
        !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, be))
        goto out;
    rc = pkey_from_params("RSA", bld, &key->pkey);
    key->kind = AG_JWK_RSA;
out:
    if (rc != AG_OK)
        ERR_clear_error();
    OSSL_PARAM_BLD_free(bld);
    BN_free(bn);
    BN_free(be);
    return rc;
}

static enum ag_rc ec_load(const json_t *jwk, struct ag_jwk *key, const char **why)
{
    enum ag_rc rc = AG_ERR_INVALID;
    unsigned char point[1 + 2 * EC_MAX_FIELD];
    size_t i, xlen = 0, ylen = 0;
    const char *crv = json_string_value(json_object_get(jwk, "crv"));
    OSSL_PARAM_BLD *bld = NULL;

    *why = "EC curve not P-256, P-384 or P-521";
    for (i = 0; crv && i < AG_ARRAY_LEN(curves); i++)
        if (strcmp(crv, curves[i].crv) == 0)
            break;
    if (!crv || i == AG_ARRAY_LEN(curves))
        goto out;
    /* RFC 7518 6.2.1.2: x and y are full-size; the uncompressed point is 04 || x || y. */
    *why = "EC x or y missing, not base64url or not the curve's size";
    point[0] = 0x04;
    if (member_decode(jwk, "x", point + 1, curves[i].field, &xlen) != AG_OK ||
        member_decode(jwk, "y", point + 1 + curves[i].field, curves[i].field, &ylen) != AG_OK ||
        xlen != curves[i].field || ylen != curves[i].field)
        goto out;
    bld = OSSL_PARAM_BLD_new();
    if (!bld) {
        rc = AG_ERR_NOMEM;
        goto out;
    }
    *why = "EC key refused by OpenSSL (point not on the curve?)";
    if (!OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, curves[i].group, 0) ||
        !OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point, 1 + 2 * curves[i].field))
        goto out;
    rc = pkey_from_params("EC", bld, &key->pkey);
    key->kind = curves[i].kind;
out:
    if (rc != AG_OK)
        ERR_clear_error();
    OSSL_PARAM_BLD_free(bld);
    return rc;
}

static enum ag_rc pem_make(struct ag_jwk *key)
{
    enum ag_rc rc = AG_ERR_NOMEM;
    BIO *bio = BIO_new(BIO_s_mem());
    char *data = NULL;
    long n;

    if (!bio || !PEM_write_bio_PUBKEY(bio, key->pkey))
        goto out;
    n = BIO_get_mem_data(bio, &data);
    if (n <= 0 || !data)
        goto out;
    key->pem = malloc((size_t)n + 1);
    if (!key->pem)
        goto out;
    memcpy(key->pem, data, (size_t)n);
    key->pem[n] = '\0';
    key->pem_len = (size_t)n;
    rc = AG_OK;
out:
    if (rc != AG_OK)
        ERR_clear_error();
    BIO_free(bio);
    return rc;
}

static void key_clear(struct ag_jwk *key)
{
    EVP_PKEY_free(key->pkey);
    free(key->kid);
    free(key->alg);
    free(key->pem);
    memset(key, 0, sizeof(*key));
}

/* One JWK into `key` (zeroed). AG_ERR_INVALID means "skip it", with the reason in *why. */
static enum ag_rc jwk_load(const json_t *jwk, struct ag_jwk *key, const char **why)
{
    enum ag_rc rc = AG_ERR_INVALID;
    const json_t *use = json_object_get(jwk, "use");
    const char *kty = json_string_value(json_object_get(jwk, "kty"));

    *why = "not an object";
    if (!json_is_object(jwk))
        goto out;
    /* An encryption key must never verify a signature (RFC 7517 4.2); absent "use" is common. */
    *why = "use is not sig";
    if (use && (!json_is_string(use) || strcmp(json_string_value(use), "sig") != 0))
        goto out;
    *why = "kid or alg is not a short string";
    rc = opt_string(jwk, "kid", AG_JWKS_MAX_KID, &key->kid);
    if (rc == AG_OK)
        rc = opt_string(jwk, "alg", 32, &key->alg);
    if (rc != AG_OK)
        goto out;
    *why = "unsupported kty";
    rc = AG_ERR_INVALID;
    if (kty && strcmp(kty, "RSA") == 0)
        rc = rsa_load(jwk, key, why);
    else if (kty && strcmp(kty, "EC") == 0)
        rc = ec_load(jwk, key, why);
    if (rc == AG_OK)
        rc = pem_make(key);
out:
    if (rc != AG_OK)
        key_clear(key);
    return rc;
}

static void jwks_free(struct ag_jwks *set)
{
    for (size_t i = 0; i < set->nkeys; i++)
        key_clear(&set->keys[i]);
    free(set);
}

enum ag_rc ag_jwks_parse(const char *json, size_t len, struct ag_jwks **out, char *err, size_t errlen)
{
    enum ag_rc rc = AG_ERR_INVALID;
    json_t *root = NULL;
    const json_t *keys;
    struct ag_jwks *set = NULL;
    const char *why = NULL;

    if (err && errlen > 0)
        err[0] = '\0';
    if (!out)
        return AG_ERR_INVALID;
    *out = NULL;
    if (!json) {
        err_add(err, errlen, "no document");
        goto out;
    }
    if (len > AG_JWKS_MAX_DOC) {
        rc = AG_ERR_TOO_LARGE;
        err_add(err, errlen, "JWKS larger than %u bytes", AG_JWKS_MAX_DOC);
        goto out;
    }
    root = json_loadb(json, len, JSON_REJECT_DUPLICATES, NULL);
    keys = json_object_get(root, "keys");
    if (!json_is_object(root) || !json_is_array(keys)) {
        err_add(err, errlen, "JWKS is not a JSON object with a keys array");
        goto out;
    }
    if (json_array_size(keys) > AG_JWKS_MAX_KEYS) {
        rc = AG_ERR_TOO_LARGE;
        err_add(err, errlen, "JWKS has more than %d keys", AG_JWKS_MAX_KEYS);
        goto out;
    }
    set = calloc(1, sizeof(*set));
    if (!set) {
        rc = AG_ERR_NOMEM;
        goto out;
    }
    atomic_init(&set->refs, 1u);
    for (size_t i = 0; i < json_array_size(keys); i++) {
        rc = jwk_load(json_array_get(keys, i), &set->keys[set->nkeys], &why);
        if (rc == AG_ERR_NOMEM)
            goto out;
        if (rc == AG_OK) {
            set->nkeys++;
            continue;
        }
        set->nskipped++;
        err_add(err, errlen, "key %zu skipped: %s", i, why);
    }
    rc = AG_OK;
    if (set->nkeys == 0) {
        rc = AG_ERR_INVALID;
        err_add(err, errlen, "JWKS has no usable signing key");
    }
out:
    if (rc == AG_OK) {
        *out = set;
        set = NULL;
    }
    if (set)
        jwks_free(set);
    json_decref(root);
    return rc;
}

struct ag_jwks *ag_jwks_ref(struct ag_jwks *set)
{
    if (set)
        atomic_fetch_add_explicit(&set->refs, 1u, memory_order_relaxed);
    return set;
}

void ag_jwks_unref(struct ag_jwks *set)
{
    /* acq_rel: the thread that frees must see every other thread's last use of the set. */
    if (set && atomic_fetch_sub_explicit(&set->refs, 1u, memory_order_acq_rel) == 1u)
        jwks_free(set);
}

size_t ag_jwks_count(const struct ag_jwks *set)
{
    return set->nkeys;
}

size_t ag_jwks_skipped(const struct ag_jwks *set)
{
    return set->nskipped;
}

const struct ag_jwk *ag_jwks_get(const struct ag_jwks *set, size_t i)
{
    return i < set->nkeys ? &set->keys[i] : NULL;
}
