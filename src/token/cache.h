/* SPDX-License-Identifier: Apache-2.0
 * A bounded cache of verified bearer tokens, so a token used again costs a hash lookup instead of a
 * signature check. Keyed by the SHA-256 of the token and the provider that verified it; an entry lives
 * until the token's exp, and at most AG_TOKEN_CACHE_TTL seconds (so a key the provider withdraws stops
 * counting soon). Fixed size, 4-way set-associative: a new token replaces the least recently used of
 * its set.
 * An entry holds what the token says (identity, scopes, claim headers), never a decision: every request
 * checks it again against its own rules (policy, required scopes), so an answer cached for one route
 * cannot open another (Oathkeeper CVE-2021-32701). */
#ifndef AG_TOKEN_CACHE_H
#define AG_TOKEN_CACHE_H

#include "config.h"

#define AG_TOKEN_CACHE_SLOTS 4096
#define AG_TOKEN_CACHE_TTL   300

struct ag_token_cache;

/* The identity a verified token names (owned by the caller after a hit; free with ag_token_identity_clear).
 */
struct ag_token_identity {
    char *sub, *email, *preferred_username;
    struct ag_strlist groups;
    char *scope;              /* granted scopes, space-delimited (from scope or scp); NULL = none */
    struct ag_strlist claims; /* --claim-header values in pairs: header name, value */
};

enum ag_rc ag_token_cache_new(struct ag_token_cache **out);
void ag_token_cache_free(struct ag_token_cache *c);

/* What the cache knows a token by: its SHA-256 and its verifier `owner` (any pointer naming who verified
 * it). Made once per request and used for both the lookup and the insert. */
struct ag_token_key {
    unsigned char hash[32];
    const void *owner;
};

/* The key of `token` for verifier `owner`; AG_ERR_INTERNAL if it cannot be hashed (then do not cache). */
enum ag_rc ag_token_key_make(const void *owner, const char *token, struct ag_token_key *key);

/* Look a token up at time now. AG_OK with a copy of the identity in *out, or AG_ERR_NOT_FOUND. */
enum ag_rc ag_token_cache_get(struct ag_token_cache *c, const struct ag_token_key *key, int64_t now,
                              struct ag_token_identity *out);

/* Remember a verified token until min(until, now + AG_TOKEN_CACHE_TTL): its exp, or an earlier time the
 * caller chooses. Copies id. */
void ag_token_cache_put(struct ag_token_cache *c, const struct ag_token_key *key, int64_t until, int64_t now,
                        const struct ag_token_identity *id);

void ag_token_identity_clear(struct ag_token_identity *id);

#endif
