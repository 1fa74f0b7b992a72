/* SPDX-License-Identifier: Apache-2.0
 * The provider's JWK Set document (src/token/jwks.c), as fetched from jwks_uri: attacker input whenever
 * the provider, the network path or a proxy on it is not trusted. Oracles: no crash, leak or undefined
 * behaviour; an accepted set has 1..AG_JWKS_MAX_KEYS keys, each with a public key of the kind it claims
 * and a PEM copy; counts add up to the document's entries; the reason text is always terminated. */
#include <jansson.h>
#include <openssl/evp.h>

#include "fuzz.h"
#include "token/jwks.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *doc = fuzz_exact(data, size), err[512];
    struct ag_jwks *set = NULL;
    enum ag_rc rc;

    memset(err, 'x', sizeof(err));
    /* the document is not NUL-terminated for the parser: only `size` bytes of it are read */
    rc = ag_jwks_parse(doc, size, &set, err, sizeof(err));
    FUZZ_CHECK(memchr(err, '\0', sizeof(err)) != NULL, "reason not terminated");
    if (rc == AG_OK) {
        size_t n = ag_jwks_count(set);
        json_t *root = json_loadb(doc, size, 0, NULL);
        FUZZ_CHECK(n >= 1 && n <= AG_JWKS_MAX_KEYS, "%zu keys", n);
        FUZZ_CHECK(n + ag_jwks_skipped(set) == json_array_size(json_object_get(root, "keys")), "counts");
        for (size_t i = 0; i < n; i++) {
            const struct ag_jwk *k = ag_jwks_get(set, i);
            FUZZ_CHECK(k != NULL && k->pkey != NULL && k->pem != NULL && strlen(k->pem) == k->pem_len,
                       "key %zu", i);
            FUZZ_CHECK(k->kind == AG_JWK_RSA ? EVP_PKEY_is_a(k->pkey, "RSA") : EVP_PKEY_is_a(k->pkey, "EC"),
                       "key %zu is not what it says", i);
            if (k->kind == AG_JWK_RSA)
                FUZZ_CHECK(EVP_PKEY_get_bits(k->pkey) >= AG_JWKS_MIN_RSA, "small RSA key");
        }
        FUZZ_CHECK(ag_jwks_get(set, n) == NULL, "key past the end");
        FUZZ_CHECK(ag_jwks_ref(set) == set, "ref");
        ag_jwks_unref(set);
        ag_jwks_unref(set);
        json_decref(root);
    } else {
        FUZZ_CHECK(set == NULL, "a set with an error");
    }
    free(doc);
    return 0;
}
