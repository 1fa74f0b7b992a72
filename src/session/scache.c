/* SPDX-License-Identifier: Apache-2.0
 * Sealed-session cache: sets of 4 entries by key hash, least recently used replaced, one mutex per
 * set group, a generation per set against the read/invalidate race. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "session/scache.h"

#define WAYS   4
#define LOCKS  64
#define MAXVAL (64 * 1024 + 64) /* a sealed session is at most AG_SESSION_MAX_BYTES plus its seal */

struct entry {
    char key[AG_SCACHE_KEY_MAX];
    unsigned char *val; /* NULL: empty */
    size_t len;
    uint64_t last_used;
};

struct ag_scache {
    size_t sets;
    pthread_mutex_t lock[LOCKS];
    uint64_t *gen;   /* per set: bumped by every invalidation that touches it */
    uint64_t *clock; /* per set: for last_used */
    struct entry *e; /* sets * WAYS */
};

static uint64_t hash(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ULL;
    }
    return h;
}

enum ag_rc ag_scache_new(size_t entries, struct ag_scache **out)
{
    struct ag_scache *c;

    *out = NULL;
    if (entries == 0)
        return AG_OK;
    c = calloc(1, sizeof(*c));
    if (c == NULL)
        return AG_ERR_NOMEM;
    c->sets = (entries + WAYS - 1) / WAYS;
    c->gen = calloc(c->sets, sizeof(*c->gen));
    c->clock = calloc(c->sets, sizeof(*c->clock));
    c->e = calloc(c->sets * WAYS, sizeof(*c->e));
    if (c->gen == NULL || c->clock == NULL || c->e == NULL) {
        free(c->gen);
        free(c->clock);
        free(c->e);
        free(c);
        return AG_ERR_NOMEM;
    }
    for (size_t i = 0; i < LOCKS; i++)
        pthread_mutex_init(&c->lock[i], NULL);
    *out = c;
    return AG_OK;
}

void ag_scache_free(struct ag_scache *c)
{
    if (c == NULL)
        return;
    for (size_t i = 0; i < c->sets * WAYS; i++)
        free(c->e[i].val);
    for (size_t i = 0; i < LOCKS; i++)
        pthread_mutex_destroy(&c->lock[i]);
    free(c->gen);
    free(c->clock);
    free(c->e);
    free(c);
}

static size_t set_of(const struct ag_scache *c, const char *key, size_t n)
{
    return (size_t)(hash(key, n) % c->sets);
}

/* The entry of `key` in its set, or NULL. */
static struct entry *find(struct ag_scache *c, size_t set, const char *key, size_t n)
{
    for (size_t w = 0; w < WAYS; w++) {
        struct entry *e = &c->e[set * WAYS + w];
        if (e->val != NULL && strncmp(e->key, key, n) == 0 && e->key[n] == '\0')
            return e;
    }
    return NULL;
}

enum ag_rc ag_scache_get(struct ag_scache *c, const char *key, unsigned char **val, size_t *len)
{
    size_t n = strlen(key), set;
    enum ag_rc rc = AG_ERR_NOT_FOUND;
    struct entry *e;

    *val = NULL;
    if (c == NULL || n >= AG_SCACHE_KEY_MAX)
        return AG_ERR_NOT_FOUND;
    set = set_of(c, key, n);
    pthread_mutex_lock(&c->lock[set % LOCKS]);
    e = find(c, set, key, n);
    if (e != NULL) {
        *val = malloc(e->len + 1);
        if (*val != NULL) {
            memcpy(*val, e->val, e->len);
            (*val)[e->len] = '\0';
            *len = e->len;
            e->last_used = ++c->clock[set];
            rc = AG_OK;
        }
    }
    pthread_mutex_unlock(&c->lock[set % LOCKS]);
    return rc;
}

uint64_t ag_scache_snapshot(struct ag_scache *c, const char *key)
{
    size_t n = strlen(key), set;
    uint64_t g;

    if (c == NULL || n >= AG_SCACHE_KEY_MAX)
        return 0;
    set = set_of(c, key, n);
    pthread_mutex_lock(&c->lock[set % LOCKS]);
    g = c->gen[set];
    pthread_mutex_unlock(&c->lock[set % LOCKS]);
    return g;
}

void ag_scache_put(struct ag_scache *c, const char *key, uint64_t snapshot, const unsigned char *val,
                   size_t len)
{
    size_t n = strlen(key), set;
    unsigned char *copy;
    struct entry *e;

    if (c == NULL || n >= AG_SCACHE_KEY_MAX || len > MAXVAL || (copy = malloc(len)) == NULL)
        return;
    memcpy(copy, val, len);
    set = set_of(c, key, n);
    pthread_mutex_lock(&c->lock[set % LOCKS]);
    if (c->gen[set] != snapshot) { /* invalidated while we read it: what we hold may be stale */
        pthread_mutex_unlock(&c->lock[set % LOCKS]);
        free(copy);
        return;
    }
    e = find(c, set, key, n);
    for (size_t w = 0; e == NULL && w < WAYS; w++) {
        struct entry *x = &c->e[set * WAYS + w];
        if (x->val == NULL) {
            e = x;
            break;
        }
    }
    if (e == NULL) {
        e = &c->e[set * WAYS];
        for (size_t w = 1; w < WAYS; w++)
            if (c->e[set * WAYS + w].last_used < e->last_used)
                e = &c->e[set * WAYS + w];
    }
    free(e->val);
    memcpy(e->key, key, n + 1);
    e->val = copy;
    e->len = len;
    e->last_used = ++c->clock[set];
    pthread_mutex_unlock(&c->lock[set % LOCKS]);
}

void ag_scache_invalidate(struct ag_scache *c, const char *key, size_t keylen)
{
    size_t set;
    struct entry *e;

    if (c == NULL)
        return;
    set = set_of(c, key, keylen);
    pthread_mutex_lock(&c->lock[set % LOCKS]);
    c->gen[set]++;
    if (keylen < AG_SCACHE_KEY_MAX && (e = find(c, set, key, keylen)) != NULL) {
        free(e->val);
        e->val = NULL;
        e->len = 0;
    }
    pthread_mutex_unlock(&c->lock[set % LOCKS]);
}

void ag_scache_reset(struct ag_scache *c)
{
    if (c == NULL)
        return;
    for (size_t l = 0; l < LOCKS; l++) {
        pthread_mutex_lock(&c->lock[l]);
        for (size_t set = l; set < c->sets; set += LOCKS) {
            c->gen[set]++;
            for (size_t w = 0; w < WAYS; w++) {
                struct entry *e = &c->e[set * WAYS + w];
                free(e->val);
                e->val = NULL;
                e->len = 0;
            }
        }
        pthread_mutex_unlock(&c->lock[l]);
    }
}
