/* SPDX-License-Identifier: Apache-2.0
 * Ticket cookie <-> sealed session in Redis, and refresh.
 *
 * A refresh updates the session in place (same Redis key, so every copy of the cookie, and a
 * sign-out, keep meaning the same login), extends its life by --cookie-expire and re-issues the
 * cookie with the new expiry; the answer carries it (through Envoy's headersToDownstreamOnAllow or
 * nginx's auth_request_set). A front end that cannot pass it on (Caddy's forward_auth) loses nothing:
 * the old cookie names the same session until its own expiry. One refresh at a time per session
 * (a Redis lock), and whoever gets the lock re-reads the session first: someone may have just
 * refreshed it, and a refresh token the provider has rotated must never be used twice. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth/policy.h"
#include "log.h"
#include "net/cookie.h"
#include "oidc/flow.h"
#include "oidc/provider.h"
#include "session/redis.h"
#include "session/scache.h"
#include "session/web.h"
#include "util/b64.h"
#include "util/crypto.h"

#define REFRESH_LOCK_MS 10000

static enum ag_rc save(struct ag_request *rq, const struct ag_session *s, const struct ag_ticket *t)
{
    int64_t ttl_ms = (s->expires_at - (int64_t)time(NULL)) * 1000;
    unsigned char *blob = NULL;
    size_t n = 0;
    char key[AG_TICKET_STORE_KEY_MAX];
    enum ag_rc rc = ag_session_seal(s, t, &blob, &n);

    if (rc != AG_OK)
        return rc;
    ag_ticket_store_key(t, key, sizeof(key));
    rc = ag_redis_set(rq->app->redis, key, blob, n, ttl_ms);
    ag_scache_invalidate(rq->app->scache, key, strlen(key)); /* Redis tells us too; do not wait for it */
    free(blob);
    return rc;
}

/* Read and open the session stored for ticket t: from the session cache while Redis' invalidation
 * channel vouches for it (session/scache.h), else from Redis. `fresh`: from Redis in any case (the
 * re-read under the refresh lock, which must see the very latest refresh token). */
static enum ag_rc fetch(struct ag_request *rq, const struct ag_ticket *t, struct ag_session *s, bool fresh)
{
    struct ag_scache *cache = rq->app->scache;
    char key[AG_TICKET_STORE_KEY_MAX];
    unsigned char *blob = NULL;
    size_t n = 0;
    bool tracked = false;
    uint64_t snapshot;
    enum ag_rc rc;

    ag_ticket_store_key(t, key, sizeof(key));
    if (cache != NULL && !fresh && ag_redis_cache_usable(rq->app->redis) &&
        ag_scache_get(cache, key, &blob, &n) == AG_OK) {
        rc = ag_session_open(blob, n, t, s);
        free(blob);
        return rc == AG_OK ? AG_OK : AG_ERR_UNAUTHENTICATED;
    }
    snapshot = ag_scache_snapshot(cache, key);
    rc = ag_redis_get_tracked(rq->app->redis, key, &blob, &n, cache != NULL ? &tracked : NULL);
    if (rc == AG_ERR_NOT_FOUND)
        return AG_ERR_UNAUTHENTICATED;
    if (rc != AG_OK)
        return AG_ERR_UNAVAILABLE;
    if (tracked)
        ag_scache_put(cache, key, snapshot, blob, n);
    rc = ag_session_open(blob, n, t, s);
    free(blob);
    return rc == AG_OK ? AG_OK : AG_ERR_UNAUTHENTICATED;
}

static void take(char **dst, char **src)
{
    if (*src == NULL)
        return;
    free(*dst);
    *dst = *src;
    *src = NULL;
}

/* Store the refreshed s under t with a life extended by --cookie-expire, and the re-issued cookie
 * (same ticket, new expiry) in *set_cookie. */
static enum ag_rc reissue(struct ag_request *rq, struct ag_session *s, const struct ag_ticket *t,
                          const char **set_cookie)
{
    const struct ag_config *cfg = rq->app->cfg;
    struct ag_ticket t2 = *t;
    char text[AG_TICKET_TEXT_MAX];
    enum ag_rc rc;

    s->expires_at = (int64_t)time(NULL) + cfg->cookie_expire / 1000;
    t2.expires_at = s->expires_at;
    rc = save(rq, s, t);
    if (rc == AG_OK)
        rc = ag_ticket_encode(&t2, rq->app->ticket_key, cfg->cookie_name, text, sizeof(text));
    ag_ticket_clear(&t2);
    if (rc != AG_OK)
        return rc;
    *set_cookie = ag_cookie_make(rq, cfg->cookie_name, text, cfg->cookie_expire / 1000);
    return *set_cookie ? AG_OK : AG_ERR_NOMEM;
}

/* The login of ticket t is over: delete its session everywhere. Returns AG_ERR_UNAUTHENTICATED, what the
 * request then gets. */
static enum ag_rc end_session(struct ag_request *rq, const struct ag_ticket *t, const char *why)
{
    char key[AG_TICKET_STORE_KEY_MAX];

    ag_log_rq(AG_LOG_INFO, rq->request_id, "%s: session ended", why);
    ag_ticket_store_key(t, key, sizeof(key));
    ag_redis_del(rq->app->redis, key);
    ag_scache_invalidate(rq->app->scache, key, strlen(key));
    return AG_ERR_UNAUTHENTICATED;
}

static void take_list(struct ag_strlist *dst, struct ag_strlist *src)
{
    ag_strlist_clear(dst);
    *dst = *src;
    memset(src, 0, sizeof(*src));
}

/* A refreshed ID token stands for the same login (OIDC Core 12.2): verified like the login's (signature
 * by kid, alg, iss, aud, azp, exp, iat), naming the same user, and that user still allowed (a verified
 * email, the policy). Then the session's identity is updated from it (a changed email or group counts
 * from now on). AG_ERR_DENIED with *why when it must end the session. */
static enum ag_rc refreshed_identity(struct ag_request *rq, struct ag_session *s, const char *id_token,
                                     int64_t now, const char **why)
{
    struct ag_session fresh;
    enum ag_jwt_result jr = AG_JWT_OK;
    json_t *claims = NULL;
    enum ag_rc rc;

    memset(&fresh, 0, sizeof(fresh));
    rc = ag_provider_verify_id_token(rq->app->provider, id_token, NULL, now, &claims, &jr);
    if (rc != AG_OK) {
        *why = ag_jwt_result_str(jr);
        rc = rc == AG_ERR_NOMEM || rc == AG_ERR_INTERNAL ? rc : AG_ERR_DENIED;
        goto out;
    }
    rc = ag_flow_identity(rq->app->cfg, claims, &fresh, why);
    if (rc != AG_OK)
        goto out;
    if (fresh.sub == NULL || s->sub == NULL || strcmp(fresh.sub, s->sub) != 0) {
        *why = "it names another user";
        rc = AG_ERR_DENIED;
        goto out;
    }
    rc = ag_policy_check(rq->app->policy, fresh.email, &fresh.groups, why);
    if (rc != AG_OK)
        goto out;
    take(&s->email, &fresh.email);
    take(&s->preferred_username, &fresh.preferred_username);
    take_list(&s->groups, &fresh.groups);
    take_list(&s->claims, &fresh.claims);
out:
    ag_session_clear(&fresh);
    json_decref(claims);
    return rc;
}

/* Refresh the tokens when due. Another request may hold the lock: then this one goes on with the
 * session it has. invalid_grant (revoked or expired refresh token) ends the session. */
static enum ag_rc refresh(struct ag_request *rq, struct ag_session *s, const struct ag_ticket *t,
                          const char **set_cookie)
{
    struct ag_token_response tr;
    struct ag_session cur;
    char key[AG_TICKET_STORE_KEY_MAX + 64], token[24];
    unsigned char raw[16];
    int64_t now = (int64_t)time(NULL);
    const char *why = "ok";
    bool locked = false;
    enum ag_rc rc;

    if (s->refresh_token == NULL || rq->app->provider == NULL)
        return AG_OK;
    ag_ticket_store_key(t, key, sizeof(key) - 8);
    strncat(key, ":lock", sizeof(key) - strlen(key) - 1);
    if (ag_random(raw, sizeof(raw)) != AG_OK)
        return AG_ERR_INTERNAL;
    ag_b64url_encode(raw, sizeof(raw), token, sizeof(token));
    rc = ag_redis_lock(rq->app->redis, key, token, REFRESH_LOCK_MS, &locked);
    if (rc != AG_OK || !locked)
        return rc;

    /* someone may have refreshed this login between our read and the lock */
    memset(&cur, 0, sizeof(cur));
    rc = fetch(rq, t, &cur, true);
    if (rc != AG_OK) {
        ag_redis_unlock(rq->app->redis, key, token);
        return rc;
    }
    if (cur.refresh_due_at > now || cur.refresh_token == NULL) {
        ag_session_clear(s);
        *s = cur;
        ag_redis_unlock(rq->app->redis, key, token);
        return AG_OK;
    }
    memset(&tr, 0, sizeof(tr));
    rc = ag_provider_refresh(rq->app->provider, cur.refresh_token, &tr);
    ag_session_clear(&cur);
    if (rc == AG_ERR_DENIED) {
        rc = end_session(rq, t, "refresh token refused by the provider");
    } else if (rc == AG_OK && tr.id_token != NULL &&
               (rc = refreshed_identity(rq, s, tr.id_token, now, &why)) != AG_OK) {
        ag_log_rq(AG_LOG_WARN, rq->request_id, "refreshed ID token refused: %s", why);
        rc = end_session(rq, t, "the refreshed ID token was refused");
    } else if (rc == AG_OK) {
        take(&s->access_token, &tr.access_token);
        take(&s->id_token, &tr.id_token);
        take(&s->refresh_token, &tr.refresh_token);
        take(&s->scope, &tr.scope);
        s->access_expires_at = tr.expires_in > 0 ? now + tr.expires_in : 0;
        s->refresh_due_at = now + rq->app->cfg->cookie_refresh / 1000;
        rc = reissue(rq, s, t, set_cookie);
        if (rc == AG_OK)
            ag_log_rq(AG_LOG_INFO, rq->request_id, "session refreshed");
    } else {
        /* the provider is unreachable: keep serving the current session, try again next time */
        rc = AG_OK;
    }
    ag_token_response_clear(&tr);
    ag_redis_unlock(rq->app->redis, key, token);
    return rc;
}

enum ag_rc ag_session_load(struct ag_request *rq, struct ag_session *s, struct ag_ticket *t,
                           const char **set_cookie)
{
    const struct ag_config *cfg = rq->app->cfg;
    const char *value = ag_cookie_get(rq, cfg->cookie_name);
    int64_t now = (int64_t)time(NULL);
    enum ag_rc rc;

    memset(s, 0, sizeof(*s));
    memset(t, 0, sizeof(*t));
    if (set_cookie != NULL)
        *set_cookie = NULL;
    if (value == NULL || rq->app->redis == NULL)
        return AG_ERR_UNAUTHENTICATED;
    if (ag_ticket_decode(value, strlen(value), rq->app->ticket_key, cfg->cookie_name, now, t) != AG_OK)
        return AG_ERR_UNAUTHENTICATED;
    rc = fetch(rq, t, s, false);
    if (rc != AG_OK)
        return rc;
    if (s->expires_at <= now) {
        ag_session_clear(s);
        return AG_ERR_UNAUTHENTICATED;
    }
    if (s->refresh_due_at > 0 && now >= s->refresh_due_at && set_cookie != NULL) {
        rc = refresh(rq, s, t, set_cookie);
        if (rc != AG_OK) {
            ag_session_clear(s);
            return rc;
        }
    }
    return AG_OK;
}

enum ag_rc ag_session_create(struct ag_request *rq, const struct ag_session *s, struct ag_reply *reply)
{
    const struct ag_config *cfg = rq->app->cfg;
    struct ag_ticket t;
    char text[AG_TICKET_TEXT_MAX];
    const char *cookie;
    enum ag_rc rc;

    rc = ag_ticket_new(&t, s->expires_at);
    if (rc != AG_OK)
        return rc;
    rc = save(rq, s, &t);
    if (rc == AG_OK)
        rc = ag_ticket_encode(&t, rq->app->ticket_key, cfg->cookie_name, text, sizeof(text));
    ag_ticket_clear(&t);
    if (rc != AG_OK)
        return rc;
    cookie = ag_cookie_make(rq, cfg->cookie_name, text, cfg->cookie_expire / 1000);
    if (cookie == NULL)
        return AG_ERR_NOMEM;
    return ag_reply_header(reply, MHD_HTTP_HEADER_SET_COOKIE, cookie);
}

enum ag_rc ag_session_destroy(struct ag_request *rq, struct ag_reply *reply)
{
    const struct ag_config *cfg = rq->app->cfg;
    const char *value = ag_cookie_get(rq, cfg->cookie_name);
    struct ag_ticket t;
    enum ag_rc rc = AG_OK;

    /* an expired ticket still names a key worth deleting, so decode with "now" at the epoch */
    if (value != NULL && rq->app->redis != NULL &&
        ag_ticket_decode(value, strlen(value), rq->app->ticket_key, cfg->cookie_name, 0, &t) == AG_OK) {
        char key[AG_TICKET_STORE_KEY_MAX];
        ag_ticket_store_key(&t, key, sizeof(key));
        ag_ticket_clear(&t);
        rc = ag_redis_del(rq->app->redis, key);
        ag_scache_invalidate(rq->app->scache, key, strlen(key));
    }
    const char *cookie = ag_cookie_make(rq, cfg->cookie_name, "", -1);
    if (cookie == NULL)
        return AG_ERR_NOMEM;
    enum ag_rc hrc = ag_reply_header(reply, MHD_HTTP_HEADER_SET_COOKIE, cookie);
    return rc != AG_OK ? rc : hrc;
}
