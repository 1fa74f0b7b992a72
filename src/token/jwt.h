/* SPDX-License-Identifier: Apache-2.0
 * Verification of a compact JWS (RFC 7515 section 7.1) carrying an ID token (OIDC Core 3.1.3.7)
 * or a JWT access token (RFC 7519 section 7.2): strict parsing, alg allow-list, key choice by kid
 * checked against key type and JWK alg, then the signature through libjwt 1.10, then claims. */
#ifndef AG_TOKEN_JWT_H
#define AG_TOKEN_JWT_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "token/jwks.h"

#define AG_JWT_MAX_LEN (16u * 1024u) /* longer tokens are AG_JWT_TOO_LARGE */

enum ag_jwt_result {
    AG_JWT_OK = 0,
    AG_JWT_MALFORMED,       /* not 3 strict base64url segments of JSON objects; duplicates; crit */
    AG_JWT_TOO_LARGE,       /* over AG_JWT_MAX_LEN */
    AG_JWT_BAD_ALG,         /* alg missing, not allowed, none or HS* */
    AG_JWT_UNKNOWN_KID,     /* kid not in the set: the caller may refetch the JWKS once (rate-limited) */
    AG_JWT_NO_KEY,          /* not exactly one key fits the alg (type, curve or JWK alg; no kid) */
    AG_JWT_BAD_SIGNATURE,   /* the chosen key does not verify the signature */
    AG_JWT_BAD_ISSUER,      /* iss missing, not a string or not the expected issuer */
    AG_JWT_BAD_AUDIENCE,    /* aud missing or without an accepted audience */
    AG_JWT_EXPIRED,         /* exp <= now - skew */
    AG_JWT_NOT_YET_VALID,   /* nbf or iat > now + skew */
    AG_JWT_MISSING_EXP,     /* exp missing or not a number */
    AG_JWT_BAD_NONCE,       /* nonce expected but missing or different */
    AG_JWT_BAD_AZP,         /* several audiences and azp is not our client id */
    AG_JWT_UNSUPPORTED_TYP, /* typ other than "JWT" (or "at+jwt" for access tokens) */
    AG_JWT_INTERNAL         /* out of memory or a caller error (NULL argument) */
};

/* Short English name of a result, safe to show to clients: never contains token data. Never NULL. */
const char *ag_jwt_result_str(enum ag_jwt_result r);

/* What the caller expects. All pointers are borrowed for the call only. */
struct ag_jwt_expect {
    const char *issuer;           /* required: exact match with iss */
    const char *const *audiences; /* accepted audiences, at least one */
    size_t naudiences;
    const char *const *algs; /* allow-list, e.g. RS256 ES256; "none" and HS* are ignored */
    size_t nalgs;
    const char *nonce;     /* NULL: not checked (access tokens) */
    const char *client_id; /* NULL: azp not checked */
    int64_t now;           /* seconds since the epoch */
    int64_t skew_s;        /* allowed clock skew in seconds; negative counts as 0 */
    bool access_token;     /* an access token: typ may also be "at+jwt" (RFC 9068); false for ID tokens */
};

/* Verify `token` (`len` bytes, need not be NUL-terminated) against `keys` and `ex`; NULL token,
 * keys, ex or ex->issuer give AG_JWT_INTERNAL. Nothing about the token is trusted before its signature checks
 * out, except to pick the key. On AG_JWT_OK, *claims_out (when claims_out is not NULL) receives the payload
 * object, owned by the caller (json_decref); on any other result it is set to NULL. Thread-safe: `keys` is
 * only read. */
enum ag_jwt_result ag_jwt_verify(const char *token, size_t len, const struct ag_jwks *keys,
                                 const struct ag_jwt_expect *ex, json_t **claims_out);

#endif
