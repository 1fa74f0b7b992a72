/* SPDX-License-Identifier: Apache-2.0
 * The few primitives sessions and cookies need, on OpenSSL 3: randomness (RAND_bytes), HMAC-SHA256,
 * SHA-256, and AES-256-GCM sealing with a fresh random 96-bit nonce per seal (so sealing the same
 * data twice never repeats a nonce or a ciphertext). */
#ifndef AG_UTIL_CRYPTO_H
#define AG_UTIL_CRYPTO_H

#include <openssl/types.h>

#include "common.h"

#define AG_SEAL_NONCE    12
#define AG_SEAL_TAG      16
#define AG_SEAL_OVERHEAD (AG_SEAL_NONCE + AG_SEAL_TAG)

/* n random bytes from the OpenSSL DRBG. AG_ERR_INTERNAL if it fails (the caller must not go on).
 * Draws of up to 64 bytes come from a per-thread buffer that one RAND_bytes() call fills (each byte
 * handed out once, then wiped; refilled after a fork); larger ones from RAND_bytes() directly. */
enum ag_rc ag_random(void *buf, size_t n);

/* SHA-256, -384 or -512 (bits), fetched once for the process; NULL for other sizes or if OpenSSL
 * cannot provide it. */
const EVP_MD *ag_crypto_sha(int bits);

/* HMAC-SHA256 of msg under key into out. */
enum ag_rc ag_hmac_sha256(const void *key, size_t klen, const void *msg, size_t mlen, unsigned char out[32]);

/* SHA-256 of msg into out. */
enum ag_rc ag_sha256(const void *msg, size_t mlen, unsigned char out[32]);

/* Seal pt under key with AES-256-GCM, binding aad. Writes nonce | ciphertext | tag to out, which must
 * have room for ptlen + AG_SEAL_OVERHEAD bytes; *outlen gets that length. */
enum ag_rc ag_seal(const unsigned char key[32], const void *aad, size_t aadlen, const void *pt, size_t ptlen,
                   unsigned char *out, size_t *outlen);

/* Open what ag_seal() produced. out needs inlen - AG_SEAL_OVERHEAD bytes. A wrong key, aad, or any
 * changed byte is AG_ERR_INVALID (nothing is written that the caller may use). */
enum ag_rc ag_open(const unsigned char key[32], const void *aad, size_t aadlen, const unsigned char *in,
                   size_t inlen, unsigned char *out, size_t *outlen);

#endif
