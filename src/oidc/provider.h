/* SPDX-License-Identifier: Apache-2.0
 * The OpenID Provider as authgate sees it: discovery (OpenID Connect Discovery 1.0 section 4), the
 * JWKS with rate-limited refetch on an unknown kid, ID token verification (OIDC Core 3.1.3.7), the
 * token endpoint (RFC 6749 4.1.3 code redemption, 6 refresh, 2.3.1 client authentication) and
 * userinfo (OIDC Core 5.3). Long-lived and thread-safe: one per configuration. */
#ifndef AG_OIDC_PROVIDER_H
#define AG_OIDC_PROVIDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "common.h"
#include "config.h"
#include "token/jwt.h"

/* What the provider offers. Published once, when the provider becomes ready, and never changed
 * afterwards, so readers need no lock. Strings are never NULL except userinfo_endpoint and
 * end_session_endpoint, which are NULL when the provider has none. */
struct ag_provider_meta {
    char *issuer, *authorization_endpoint, *token_endpoint, *userinfo_endpoint, *jwks_uri,
        *end_session_endpoint;
    bool s256;       /* code_challenge_methods_supported lists S256 (discovery skipped: the config asks
                      * for S256) */
    bool auth_basic; /* token_endpoint_auth_methods_supported allows client_secret_basic (the
                      * default when absent, OIDC Discovery section 3) */
};

struct ag_provider;

/* Seconds of clock skew allowed on exp/nbf/iat. */
#define AG_PROVIDER_SKEW_S 60
/* An unknown kid triggers at most one JWKS refetch per this many seconds, across all threads (the
 * initial load and the hourly refresh do not count, so the first unknown kid always refetches). */
#define AG_PROVIDER_REFETCH_S 30

/* Build a provider from `cfg` (not NULL). Everything needed is copied, so `cfg` may be freed
 * afterwards. No network traffic. Needs client_id and oidc_issuer_url (the ID token issuer), plus
 * login_url, redeem_url and oidc_jwks_url when skip_oidc_discovery is set. On AG_OK *out is a new
 * provider the caller frees with ag_provider_free(); otherwise *out is NULL and `err` (errlen bytes,
 * may be NULL when errlen is 0) says what is missing. */
enum ag_rc ag_provider_new(const struct ag_config *cfg, struct ag_provider **out, char *err, size_t errlen);

/* Start the background thread: discovery (GET <issuer>/.well-known/openid-configuration, whose
 * issuer must equal the configured one exactly), then the JWKS; on any failure it logs and retries
 * with exponential backoff from 0.5 s up to 30 s. With skip_oidc_discovery only the JWKS is fetched.
 * Once ready, the thread refetches the JWKS every hour (a failure keeps the current set), so keys
 * the provider withdrew stop being trusted. Needs ag_http_global_init(). AG_ERR_INVALID when
 * already started, AG_ERR_INTERNAL when the thread cannot be created. */
enum ag_rc ag_provider_start(struct ag_provider *p);

/* True once the endpoints and a JWKS are known. Cheap (one atomic load); any thread. */
bool ag_provider_ready(struct ag_provider *p);

/* The endpoints, borrowed: NULL until ready, then the same immutable object until
 * ag_provider_free(). */
const struct ag_provider_meta *ag_provider_meta(struct ag_provider *p);

/* Verify an ID token (NUL-terminated `token`) against the issuer, the audiences client_id +
 * oidc_extra_audiences, the algs oidc_enabled_signing_algs, azp = client_id and AG_PROVIDER_SKEW_S.
 * `nonce` may be NULL (not checked); `now` is seconds since the epoch. On an unknown kid the JWKS
 * is refetched (at most once per AG_PROVIDER_REFETCH_S across all threads; the new set replaces
 * the old one whole) and the token is checked once more.
 * Returns AG_OK with *claims (may be NULL: not wanted) set to the payload, owned by the caller
 * (json_decref); AG_ERR_UNAUTHENTICATED when the token fails a check; AG_ERR_UNAVAILABLE when not
 * ready yet; AG_ERR_INTERNAL for NULL arguments or out of memory. *why (may be NULL) receives the
 * verification result either way (AG_JWT_INTERNAL when not ready). Tokens are never logged. */
enum ag_rc ag_provider_verify_id_token(struct ag_provider *p, const char *token, const char *nonce,
                                       int64_t now, json_t **claims, enum ag_jwt_result *why);

/* The same for a bearer JWT access token (--skip-jwt-bearer-tokens): the provider's issuer, the same
 * audiences and algs, no nonce or azp, and typ may be RFC 9068 "at+jwt". */
enum ag_rc ag_provider_verify_access_token(struct ag_provider *p, const char *token, int64_t now,
                                           json_t **claims, enum ag_jwt_result *why);

/* RFC 7662: ask `url` about an opaque token, authenticating as our client. AG_OK with the answer (a JSON
 * object the caller decrefs; `active` and the rest are for the caller to judge); AG_ERR_UNAVAILABLE when
 * the endpoint cannot be reached or fails; AG_ERR_INVALID for any other answer. */
enum ag_rc ag_provider_introspect(struct ag_provider *p, const char *url, const char *token, json_t **out);

/* A token endpoint answer. All strings are owned (NULL when absent); release with
 * ag_token_response_clear(). */
struct ag_token_response {
    char *access_token, *id_token, *refresh_token, *token_type, *error, *error_description;
    char *scope;        /* granted scopes (RFC 6749 5.1); NULL when absent: as requested */
    int64_t expires_in; /* seconds; 0 when absent */
};

/* Redeem an authorization code (RFC 6749 4.1.3). `code` and `redirect_uri` must not be NULL;
 * `code_verifier` (PKCE, RFC 7636) may be NULL. The client authenticates with client_secret_basic
 * when the provider allows it, else client_secret_post; the secret is re-read from
 * client_secret_file on every call when one is configured, so a rotated secret needs no restart.
 * *out is overwritten. Returns:
 *   AG_OK               200 with a JSON object holding access_token (other fields when present);
 *   AG_ERR_DENIED       400/401 with error "invalid_grant" (error and error_description filled);
 *   AG_ERR_INVALID      any other error answer (filled when the body says), a non-object body, or a
 *                       200 without access_token;
 *   AG_ERR_UNAVAILABLE  not ready, unreachable, timed out, 429 or 5xx;
 *   AG_ERR_TOO_LARGE    a body over AG_HTTP_MAX_BODY; AG_ERR_NOMEM.
 * Codes, tokens and the secret are never logged. */
enum ag_rc ag_provider_redeem(struct ag_provider *p, const char *code, const char *redirect_uri,
                              const char *code_verifier, struct ag_token_response *out);

/* Use a refresh token (RFC 6749 6; not NULL). Results as for ag_provider_redeem(); AG_ERR_DENIED
 * (invalid_grant) means the session must end. */
enum ag_rc ag_provider_refresh(struct ag_provider *p, const char *refresh_token,
                               struct ag_token_response *out);

/* GET the userinfo endpoint with `access_token` (not NULL) as bearer. On AG_OK *out is the JSON
 * object, owned by the caller (json_decref); otherwise *out is NULL and the result is
 * AG_ERR_NOT_FOUND (the provider has no userinfo endpoint), AG_ERR_UNAUTHENTICATED (401/403: the
 * token is not accepted), AG_ERR_INVALID (other status, or not a JSON object, e.g. a signed
 * application/jwt answer), AG_ERR_UNAVAILABLE (not ready, unreachable, 429, 5xx), AG_ERR_TOO_LARGE
 * or AG_ERR_NOMEM. */
enum ag_rc ag_provider_userinfo(struct ag_provider *p, const char *access_token, json_t **out);

/* Cleanse and free every string of `r` and zero it. NULL is fine. */
void ag_token_response_clear(struct ag_token_response *r);

/* Stop the background thread (an HTTP request in flight is cancelled within about a second), join
 * it, and free everything. Call when no other thread uses `p` any more. NULL is fine. */
void ag_provider_free(struct ag_provider *p);

#endif
