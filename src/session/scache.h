/* SPDX-License-Identifier: Apache-2.0
 * An in-process cache of sealed sessions in front of Redis, kept exact by Redis itself (client-side
 * caching, RESP2 form): every worker connection runs CLIENT TRACKING with its invalidations redirected to
 * one subscriber connection (session/redis.c), and every key that any instance changes or deletes (a
 * sign-out, a refresh) is dropped here as soon as that message arrives. Entries hold the sealed bytes
 * as Redis has them: they open only with the key in the user's ticket, as before.
 *
 * The race a client-side cache must not lose: a worker reads a value, the key changes and its
 * invalidation arrives, and only then the worker stores what it read. Each set has a generation that
 * every invalidation touching it bumps; a worker takes a snapshot before its GET and stores only if the
 * generation is still the same afterwards. A reset (the subscriber lost its connection) empties
 * everything and bumps every generation. */
#ifndef AG_SESSION_SCACHE_H
#define AG_SESSION_SCACHE_H

#include <stdint.h>

#include "common.h"

#define AG_SCACHE_KEY_MAX 96

struct ag_scache;

/* A cache of up to `entries` sealed sessions (rounded up to a multiple of 4; 0: NULL, no cache). */
enum ag_rc ag_scache_new(size_t entries, struct ag_scache **out);
void ag_scache_free(struct ag_scache *c);

/* A copy of the cached value of `key` (malloc'd, caller frees) or AG_ERR_NOT_FOUND. */
enum ag_rc ag_scache_get(struct ag_scache *c, const char *key, unsigned char **val, size_t *len);

/* The generation to pass to ag_scache_put() for `key`: take it before reading the key from Redis. */
uint64_t ag_scache_snapshot(struct ag_scache *c, const char *key);

/* Store a copy of `key`'s value as read from Redis, unless `key` was invalidated since `snapshot`. */
void ag_scache_put(struct ag_scache *c, const char *key, uint64_t snapshot, const unsigned char *val,
                   size_t len);

/* Drop `key` (an invalidation message, or our own write). */
void ag_scache_invalidate(struct ag_scache *c, const char *key, size_t keylen);

/* Drop everything (the invalidation channel was lost). */
void ag_scache_reset(struct ag_scache *c);

#endif
