/* SPDX-License-Identifier: Apache-2.0
 * OpenSSL 3 wrappers: RAND_bytes, HMAC-SHA256, SHA-256, AES-256-GCM seal/open. */
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "util/crypto.h"

enum ag_rc ag_random(void *buf, size_t n)
{
    if (n > INT32_MAX || RAND_bytes(buf, (int)n) != 1) {
        ERR_clear_error();
        return AG_ERR_INTERNAL;
    }
    return AG_OK;
}

enum ag_rc ag_hmac_sha256(const void *key, size_t klen, const void *msg, size_t mlen, unsigned char out[32])
{
    unsigned int len = 32;
    if (klen > INT32_MAX || HMAC(EVP_sha256(), key, (int)klen, msg, mlen, out, &len) == NULL || len != 32) {
        ERR_clear_error();
        return AG_ERR_INTERNAL;
    }
    return AG_OK;
}

enum ag_rc ag_sha256(const void *msg, size_t mlen, unsigned char out[32])
{
    unsigned int len = 32;
    if (EVP_Digest(msg, mlen, out, &len, EVP_sha256(), NULL) != 1) {
        ERR_clear_error();
        return AG_ERR_INTERNAL;
    }
    return AG_OK;
}

enum ag_rc ag_seal(const unsigned char key[32], const void *aad, size_t aadlen, const void *pt, size_t ptlen,
                   unsigned char *out, size_t *outlen)
{
    EVP_CIPHER_CTX *ctx = NULL;
    enum ag_rc rc = AG_ERR_INTERNAL;
    int n = 0, fin = 0;

    if (ptlen > INT32_MAX - AG_SEAL_OVERHEAD || aadlen > INT32_MAX)
        return AG_ERR_TOO_LARGE;
    if (ag_random(out, AG_SEAL_NONCE) != AG_OK)
        return AG_ERR_INTERNAL;
    ctx = EVP_CIPHER_CTX_new();
    if (ctx == NULL)
        goto out;
    if (EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, out) != 1)
        goto out;
    if (aadlen > 0 && EVP_EncryptUpdate(ctx, NULL, &n, aad, (int)aadlen) != 1)
        goto out;
    if (EVP_EncryptUpdate(ctx, out + AG_SEAL_NONCE, &n, pt, (int)ptlen) != 1)
        goto out;
    if (EVP_EncryptFinal_ex(ctx, out + AG_SEAL_NONCE + n, &fin) != 1)
        goto out;
    if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, AG_SEAL_TAG, out + AG_SEAL_NONCE + n + fin) != 1)
        goto out;
    *outlen = AG_SEAL_NONCE + (size_t)n + (size_t)fin + AG_SEAL_TAG;
    rc = AG_OK;
out:
    if (rc != AG_OK)
        ERR_clear_error();
    EVP_CIPHER_CTX_free(ctx);
    return rc;
}

enum ag_rc ag_open(const unsigned char key[32], const void *aad, size_t aadlen, const unsigned char *in,
                   size_t inlen, unsigned char *out, size_t *outlen)
{
    EVP_CIPHER_CTX *ctx = NULL;
    enum ag_rc rc = AG_ERR_INVALID;
    int n = 0, fin = 0;
    size_t ctlen;

    if (inlen < AG_SEAL_OVERHEAD || inlen > INT32_MAX || aadlen > INT32_MAX)
        return AG_ERR_INVALID;
    ctlen = inlen - AG_SEAL_OVERHEAD;
    ctx = EVP_CIPHER_CTX_new();
    if (ctx == NULL)
        return AG_ERR_NOMEM;
    if (EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, in) != 1)
        goto out;
    if (aadlen > 0 && EVP_DecryptUpdate(ctx, NULL, &n, aad, (int)aadlen) != 1)
        goto out;
    if (EVP_DecryptUpdate(ctx, out, &n, in + AG_SEAL_NONCE, (int)ctlen) != 1)
        goto out;
    if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, AG_SEAL_TAG, (void *)(in + inlen - AG_SEAL_TAG)) != 1)
        goto out;
    if (EVP_DecryptFinal_ex(ctx, out + n, &fin) != 1)
        goto out;
    *outlen = (size_t)n + (size_t)fin;
    rc = AG_OK;
out:
    if (rc != AG_OK) {
        ERR_clear_error();
        OPENSSL_cleanse(out, ctlen); /* never hand back plaintext that failed authentication */
    }
    EVP_CIPHER_CTX_free(ctx);
    return rc;
}
