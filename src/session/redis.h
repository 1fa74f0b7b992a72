/* SPDX-License-Identifier: Apache-2.0
 * The Redis session store on hiredis 0.14 (no TLS, no cluster). Each thread gets its own connection
 * (a shared one under a lock is what makes mod_auth_openidc's session path slow), created on first use,
 * re-created after an error, and freed when the thread exits. Every command has a timeout, and values
 * always travel as binary-safe arguments, never formatted into a command string. */
#ifndef AG_SESSION_REDIS_H
#define AG_SESSION_REDIS_H

#include "common.h"

struct ag_redis;

/* Parse `url` (redis://[user:password@]host[:port][/db] or unix:///path/to/socket) and prepare a client;
 * no connection is made yet. `password` (may be NULL) overrides the URL's. timeout_ms bounds the
 * connect and each command. On error writes a reason naming the problem (never the password). */
enum ag_rc ag_redis_new(const char *url, const char *password, int64_t timeout_ms, struct ag_redis **out,
                        char *err, size_t errlen);

/* Free the client and the calling thread's connection (NULL is fine). Other threads' connections are
 * freed as those threads exit; call this after they have. */
void ag_redis_free(struct ag_redis *r);

/* SET key value PX ttl_ms. */
enum ag_rc ag_redis_set(struct ag_redis *r, const char *key, const void *val, size_t len, int64_t ttl_ms);

/* GET key into a new buffer (*val, caller frees; NUL-terminated for convenience). AG_ERR_NOT_FOUND when
 * the key does not exist. */
enum ag_rc ag_redis_get(struct ag_redis *r, const char *key, unsigned char **val, size_t *len);

/* GET as above; *tracked (when not NULL) says whether the value was read on a connection whose keys Redis
 * tracks for the live invalidation channel, so that a cache may keep it (see ag_redis_tracking_start). */
enum ag_rc ag_redis_get_tracked(struct ag_redis *r, const char *key, unsigned char **val, size_t *len,
                                bool *tracked);

/* Client-side caching (Redis 6+, RESP2 form): start a thread with its own connection subscribed to
 * __redis__:invalidate; from then on each worker connection runs CLIENT TRACKING ON REDIRECT <its id>
 * before reading tracked keys. Every key that changes in Redis (written or deleted by anyone, expired,
 * evicted) is passed to on_invalidate, and when the channel is lost or Redis flushes, on_reset is called:
 * both from that thread. The thread stops in ag_redis_free(). */
enum ag_rc ag_redis_tracking_start(struct ag_redis *r,
                                   void (*on_invalidate)(void *cls, const char *key, size_t len),
                                   void (*on_reset)(void *cls), void *cls);

/* Whether cached values may be served now: the invalidation channel is up, Redis answered it within the last
 * second (a hung Redis stops the cache within a second, and the request then waits for Redis like before),
 * and no invalidation is waiting to be applied. */
bool ag_redis_cache_usable(struct ag_redis *r);

/* DEL key (no error when it did not exist). */
enum ag_rc ag_redis_del(struct ag_redis *r, const char *key);

/* SET key token NX PX ttl_ms: *acquired says whether this caller now holds the lock. */
enum ag_rc ag_redis_lock(struct ag_redis *r, const char *key, const char *token, int64_t ttl_ms,
                         bool *acquired);

/* Release a lock only if `token` still holds it (a Lua compare-and-delete). */
enum ag_rc ag_redis_unlock(struct ag_redis *r, const char *key, const char *token);

/* PING. */
enum ag_rc ag_redis_ping(struct ag_redis *r);

/* Every failure above is AG_ERR_UNAVAILABLE (Redis unreachable, timed out, or answering an error), so
 * the caller can answer 503; the reason is logged here once. */

#endif
