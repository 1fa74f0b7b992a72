/* SPDX-License-Identifier: Apache-2.0
 * JWK Set (RFC 7517 sections 4-5; RSA and EC public keys per RFC 7518 section 6.2-6.3): turns a
 * provider's jwks_uri document into OpenSSL public keys for ID and access token verification.
 * A set is immutable once parsed and reference-counted, so a refetch can swap it whole while
 * requests still verify against the old one. */
#ifndef AG_TOKEN_JWKS_H
#define AG_TOKEN_JWKS_H

#include <stddef.h>

#include <openssl/evp.h>

#include "common.h"

#define AG_JWKS_MAX_DOC  (256u * 1024u) /* larger documents are refused whole */
#define AG_JWKS_MAX_KEYS 64             /* more entries in "keys" are refused whole */
#define AG_JWKS_MAX_KID  256            /* longer kids are skipped (JWKS) or malformed (JWT) */
#define AG_JWKS_MIN_RSA  2048           /* smaller RSA moduli are skipped */

/* Key type and, for EC, curve: together they decide which JWS algs a key can verify. */
enum ag_jwk_kind { AG_JWK_RSA = 1, AG_JWK_EC_P256, AG_JWK_EC_P384, AG_JWK_EC_P521 };

/* One usable signing key. Everything is owned by the set and lives as long as it does. */
struct ag_jwk {
    char *kid; /* NULL when the JWK has no "kid" */
    char *alg; /* the JWK's own "alg", NULL when absent */
    enum ag_jwk_kind kind;
    EVP_PKEY *pkey; /* public key */
    char *pem;      /* the same key as SubjectPublicKeyInfo PEM, NUL-terminated (for libjwt) */
    size_t pem_len; /* strlen(pem) */
};

struct ag_jwks;

/* Parse a JWKS document of `len` bytes (`json` need not be NUL-terminated). Keys with "use" other
 * than "sig", unsupported types (oct, OKP, ...), curves other than P-256/P-384/P-521, bad
 * base64url, RSA under 2048 bits, or kid/alg that are not short strings are skipped; the reason
 * for each goes to `err` (may be NULL; `errlen` bytes, always NUL-terminated, truncated when
 * full). Refused whole: AG_ERR_TOO_LARGE above AG_JWKS_MAX_DOC bytes or AG_JWKS_MAX_KEYS keys;
 * AG_ERR_INVALID when not a JSON object with a "keys" array (duplicate members count as invalid),
 * or when no key is usable (so a broken refetch never replaces a working set). On AG_OK, *out
 * holds one reference the caller drops with ag_jwks_unref(); otherwise *out is NULL. */
enum ag_rc ag_jwks_parse(const char *json, size_t len, struct ag_jwks **out, char *err, size_t errlen);

/* Take one more reference (thread-safe); returns `set`. NULL gives NULL. */
struct ag_jwks *ag_jwks_ref(struct ag_jwks *set);

/* Drop one reference (thread-safe); the last one frees the set and its keys. NULL is a no-op. */
void ag_jwks_unref(struct ag_jwks *set);

/* Number of usable keys (at least 1), and of entries skipped while parsing. `set` is not NULL. */
size_t ag_jwks_count(const struct ag_jwks *set);
size_t ag_jwks_skipped(const struct ag_jwks *set);

/* Key `i` (0 <= i < ag_jwks_count()), borrowed from the set; NULL when out of range. */
const struct ag_jwk *ag_jwks_get(const struct ag_jwks *set, size_t i);

#endif
