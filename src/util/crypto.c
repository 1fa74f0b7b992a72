/* SPDX-License-Identifier: Apache-2.0
 * OpenSSL 3 wrappers: randomness, HMAC-SHA256, SHA-256, AES-256-GCM seal/open.
 *
 * Speed (issue 6): OpenSSL 3 looks an algorithm up by name on every use of EVP_sha256() or
 * EVP_aes_256_gcm() (a lock and a hash lookup), and every RAND_bytes() call costs a getpid() system
 * call and the DRBG's locking. A login redirect made four such calls and they were a quarter of its
 * CPU. So the algorithms are fetched once, and small draws of randomness come from a per-thread
 * buffer that one RAND_bytes() call fills; a byte is handed out once and wiped from the buffer as it
 * goes. A fork bumps a generation, so a child never hands out its parent's bytes. */
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "util/crypto.h"

static EVP_MD *sha256_md, *sha384_md, *sha512_md;
static EVP_CIPHER *gcm_cipher;
static atomic_uint fork_generation;
static pthread_once_t fetch_once = PTHREAD_ONCE_INIT;

static void after_fork_child(void)
{
    atomic_fetch_add(&fork_generation, 1);
}

static void fetch_algorithms(void)
{
    sha256_md = EVP_MD_fetch(NULL, "SHA2-256", NULL);
    sha384_md = EVP_MD_fetch(NULL, "SHA2-384", NULL);
    sha512_md = EVP_MD_fetch(NULL, "SHA2-512", NULL);
    gcm_cipher = EVP_CIPHER_fetch(NULL, "AES-256-GCM", NULL);
    pthread_atfork(NULL, NULL, after_fork_child);
}

static bool algorithms(void)
{
    pthread_once(&fetch_once, fetch_algorithms);
    return sha256_md != NULL && sha384_md != NULL && sha512_md != NULL && gcm_cipher != NULL;
}

const EVP_MD *ag_crypto_sha(int bits)
{
    if (!algorithms())
        return NULL;
    return bits == 256 ? sha256_md : bits == 384 ? sha384_md : bits == 512 ? sha512_md : NULL;
}

#define POOL_SIZE 4096
#define POOL_DRAW 64 /* larger draws go to RAND_bytes directly */

static _Thread_local struct {
    unsigned char bytes[POOL_SIZE];
    size_t used; /* bytes[used..] are still unused */
    unsigned generation;
    bool filled;
} pool;

static enum ag_rc rand_direct(void *buf, size_t n)
{
    if (n > INT32_MAX || RAND_bytes(buf, (int)n) != 1) {
        ERR_clear_error();
        return AG_ERR_INTERNAL;
    }
    return AG_OK;
}

enum ag_rc ag_random(void *buf, size_t n)
{
    unsigned gen;

    if (n > POOL_DRAW)
        return rand_direct(buf, n);
    algorithms(); /* registers the fork handler */
    gen = atomic_load(&fork_generation);
    if (!pool.filled || pool.generation != gen || POOL_SIZE - pool.used < n) {
        pool.filled = false;
        if (rand_direct(pool.bytes, POOL_SIZE) != AG_OK)
            return AG_ERR_INTERNAL;
        pool.used = 0;
        pool.generation = gen;
        pool.filled = true;
    }
    memcpy(buf, pool.bytes + pool.used, n);
    OPENSSL_cleanse(pool.bytes + pool.used, n);
    pool.used += n;
    return AG_OK;
}

enum ag_rc ag_sha256(const void *msg, size_t mlen, unsigned char out[32])
{
    unsigned int len = 32;
    if (!algorithms() || EVP_Digest(msg, mlen, out, &len, sha256_md, NULL) != 1) {
        ERR_clear_error();
        return AG_ERR_INTERNAL;
    }
    return AG_OK;
}

/* One half of HMAC: SHA-256 of (k ^ padbyte) | msg. */
static bool hmac_half(EVP_MD_CTX *ctx, const unsigned char k[64], unsigned char padbyte, const void *msg,
                      size_t mlen, unsigned char out[32])
{
    unsigned char pad[64];
    bool ok;

    for (size_t i = 0; i < sizeof(pad); i++)
        pad[i] = k[i] ^ padbyte;
    ok = EVP_DigestInit_ex(ctx, sha256_md, NULL) == 1 && EVP_DigestUpdate(ctx, pad, sizeof(pad)) == 1 &&
         EVP_DigestUpdate(ctx, msg, mlen) == 1 && EVP_DigestFinal_ex(ctx, out, NULL) == 1;
    OPENSSL_cleanse(pad, sizeof(pad));
    return ok;
}

/* HMAC (RFC 2104) over the fetched SHA-256: H((K ^ opad) | H((K ^ ipad) | msg)). */
enum ag_rc ag_hmac_sha256(const void *key, size_t klen, const void *msg, size_t mlen, unsigned char out[32])
{
    unsigned char k[64], inner[32];
    EVP_MD_CTX *ctx = NULL;
    enum ag_rc rc = AG_ERR_INTERNAL;

    memset(k, 0, sizeof(k));
    if (klen > sizeof(k)) {
        if (ag_sha256(key, klen, k) != AG_OK)
            return AG_ERR_INTERNAL;
    } else if (klen > 0) {
        memcpy(k, key, klen);
    }
    if (algorithms() && (ctx = EVP_MD_CTX_new()) != NULL && hmac_half(ctx, k, 0x36, msg, mlen, inner) &&
        hmac_half(ctx, k, 0x5c, inner, sizeof(inner), out))
        rc = AG_OK;
    else
        ERR_clear_error();
    EVP_MD_CTX_free(ctx);
    OPENSSL_cleanse(k, sizeof(k));
    OPENSSL_cleanse(inner, sizeof(inner));
    return rc;
}

enum ag_rc ag_seal(const unsigned char key[32], const void *aad, size_t aadlen, const void *pt, size_t ptlen,
                   unsigned char *out, size_t *outlen)
{
    EVP_CIPHER_CTX *ctx = NULL;
    enum ag_rc rc = AG_ERR_INTERNAL;
    int n = 0, fin = 0;

    if (ptlen > INT32_MAX - AG_SEAL_OVERHEAD || aadlen > INT32_MAX)
        return AG_ERR_TOO_LARGE;
    if (!algorithms() || ag_random(out, AG_SEAL_NONCE) != AG_OK)
        return AG_ERR_INTERNAL;
    ctx = EVP_CIPHER_CTX_new();
    if (ctx == NULL)
        goto out;
    if (EVP_EncryptInit_ex(ctx, gcm_cipher, NULL, key, out) != 1)
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
    if (!algorithms())
        return AG_ERR_INTERNAL;
    ctx = EVP_CIPHER_CTX_new();
    if (ctx == NULL)
        return AG_ERR_NOMEM;
    if (EVP_DecryptInit_ex(ctx, gcm_cipher, NULL, key, in) != 1)
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
