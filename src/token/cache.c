/* SPDX-License-Identifier: Apache-2.0
 * Verified-token cache: 4096 slots in sets of 4 (a token may sit in any slot of its set, the least
 * recently used one is replaced), the sets spread over 64 mutexes. Four ways instead of one slot per
 * token: with 1,000 live tokens a direct-mapped table lost about 20% of them to collisions (bench/). */
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "token/cache.h"
#include "util/crypto.h"

#define SHARDS 64
#define WAYS   4
#define SETS   (AG_TOKEN_CACHE_SLOTS / WAYS)

struct slot {
    unsigned char hash[32];
    const void *owner;
    int64_t until;      /* 0 = empty */
    uint64_t last_used; /* the set's clock at the last hit or put: the smallest goes first */
    struct ag_token_identity id;
};

struct ag_token_cache {
    pthread_mutex_t lock[SHARDS];
    uint64_t clock[SETS]; /* per set, under its shard's lock */
    struct slot slots[AG_TOKEN_CACHE_SLOTS];
};

void ag_token_identity_clear(struct ag_token_identity *id)
{
    if (id == NULL)
        return;
    free(id->sub);
    free(id->email);
    free(id->preferred_username);
    free(id->scope);
    ag_strlist_clear(&id->groups);
    ag_strlist_clear(&id->claims);
    memset(id, 0, sizeof(*id));
}

static bool dup_or_null(const char *s, char **out)
{
    *out = s ? strdup(s) : NULL;
    return s == NULL || *out != NULL;
}

static enum ag_rc copy_identity(const struct ag_token_identity *src, struct ag_token_identity *dst)
{
    memset(dst, 0, sizeof(*dst));
    if (dup_or_null(src->sub, &dst->sub) && dup_or_null(src->email, &dst->email) &&
        dup_or_null(src->preferred_username, &dst->preferred_username) &&
        dup_or_null(src->scope, &dst->scope) && ag_strlist_copy(&dst->groups, &src->groups) == AG_OK &&
        ag_strlist_copy(&dst->claims, &src->claims) == AG_OK)
        return AG_OK;
    ag_token_identity_clear(dst);
    return AG_ERR_NOMEM;
}

enum ag_rc ag_token_cache_new(struct ag_token_cache **out)
{
    struct ag_token_cache *c = calloc(1, sizeof(*c));
    *out = NULL;
    if (c == NULL)
        return AG_ERR_NOMEM;
    for (size_t i = 0; i < SHARDS; i++)
        pthread_mutex_init(&c->lock[i], NULL);
    *out = c;
    return AG_OK;
}

void ag_token_cache_free(struct ag_token_cache *c)
{
    if (c == NULL)
        return;
    for (size_t i = 0; i < AG_TOKEN_CACHE_SLOTS; i++)
        ag_token_identity_clear(&c->slots[i].id);
    for (size_t i = 0; i < SHARDS; i++)
        pthread_mutex_destroy(&c->lock[i]);
    free(c);
}

enum ag_rc ag_token_key_make(const void *owner, const char *token, struct ag_token_key *key)
{
    key->owner = owner;
    return ag_sha256(token, strlen(token), key->hash);
}

/* The set of a hash; the shard lock is a function of the set, so one lock covers all its slots. */
static size_t set_of(const unsigned char h[32])
{
    return ((size_t)h[0] << 8 | h[1]) % SETS;
}

static bool slot_is(const struct slot *s, const struct ag_token_key *key)
{
    return s->owner == key->owner && CRYPTO_memcmp(s->hash, key->hash, sizeof(s->hash)) == 0;
}

enum ag_rc ag_token_cache_get(struct ag_token_cache *c, const struct ag_token_key *key, int64_t now,
                              struct ag_token_identity *out)
{
    enum ag_rc rc = AG_ERR_NOT_FOUND;
    size_t set;

    if (c == NULL)
        return AG_ERR_NOT_FOUND;
    set = set_of(key->hash);
    pthread_mutex_lock(&c->lock[set % SHARDS]);
    for (size_t w = 0; w < WAYS; w++) {
        struct slot *s = &c->slots[set * WAYS + w];
        if (s->until > now && slot_is(s, key)) {
            s->last_used = ++c->clock[set];
            rc = copy_identity(&s->id, out);
            break;
        }
    }
    pthread_mutex_unlock(&c->lock[set % SHARDS]);
    return rc == AG_OK ? AG_OK : AG_ERR_NOT_FOUND;
}

void ag_token_cache_put(struct ag_token_cache *c, const struct ag_token_key *key, int64_t until, int64_t now,
                        const struct ag_token_identity *id)
{
    struct ag_token_identity copy;
    struct slot *victim = NULL;
    size_t set;

    if (c == NULL || until <= now || copy_identity(id, &copy) != AG_OK)
        return;
    set = set_of(key->hash);
    pthread_mutex_lock(&c->lock[set % SHARDS]);
    /* the same token's slot, else an empty or expired one, else the least recently used */
    for (size_t w = 0; w < WAYS; w++) {
        struct slot *s = &c->slots[set * WAYS + w];
        if (s->until > 0 && slot_is(s, key)) {
            victim = s;
            break;
        }
        if (victim == NULL || (victim->until > now && (s->until <= now || s->last_used < victim->last_used)))
            victim = s;
    }
    ag_token_identity_clear(&victim->id);
    memcpy(victim->hash, key->hash, sizeof(key->hash));
    victim->owner = key->owner;
    victim->until = until < now + AG_TOKEN_CACHE_TTL ? until : now + AG_TOKEN_CACHE_TTL;
    victim->last_used = ++c->clock[set];
    victim->id = copy;
    pthread_mutex_unlock(&c->lock[set % SHARDS]);
}
