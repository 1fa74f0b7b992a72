/* SPDX-License-Identifier: Apache-2.0
 * Runtime state from the config: derived keys, Redis, the provider, whitelist, trusted proxies,
 * policy and route rules. */
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "auth/policy.h"
#include "auth/rules.h"
#include "handle/identity.h"
#include "handle/proxy.h"
#include "net/cidr.h"
#include "net/redirect.h"
#include "oidc/provider.h"
#include "session/redis.h"
#include "session/scache.h"
#include "session/ticket.h"
#include "token/cache.h"
#include "util/crypto.h"

static const char *const *list(const struct ag_strlist *l)
{
    return (const char *const *)l->v;
}

/* --upstream: in this release only static://N (what Istio's ext_authz use needs); none means 200. */
static void scache_invalidate(void *cls, const char *key, size_t len)
{
    ag_scache_invalidate(cls, key, len);
}

static void scache_reset(void *cls)
{
    ag_scache_reset(cls);
}

/* --upstream: one static://CODE (answer CODE to allowed checks), or http(s):// URLs to proxy to. */
static enum ag_rc parse_upstreams(struct ag_app *app, const struct ag_config *cfg, char *err, size_t errlen)
{
    app->static_status = 200;
    for (size_t i = 0; i < cfg->upstreams.n; i++) {
        const char *u = cfg->upstreams.v[i];
        char why[160];
        if (strncmp(u, "static://", 9) == 0) {
            unsigned long code = 0;
            const char *p = u + 9;
            for (; *p >= '0' && *p <= '9' && code < 1000; p++)
                code = code * 10 + (unsigned long)(*p - '0');
            if (*p != '\0' || code < 200 || code > 299 || cfg->upstreams.n > 1) {
                snprintf(err, errlen, "upstreams: \"%.100s\": expected one static://CODE with a 2xx code", u);
                return AG_ERR_INVALID;
            }
            app->static_status = (unsigned)code;
            continue;
        }
        if (app->upstreams.v == NULL) {
            app->upstreams.v = calloc(cfg->upstreams.n, sizeof(*app->upstreams.v));
            if (app->upstreams.v == NULL)
                return AG_ERR_NOMEM;
        }
        enum ag_rc rc = ag_upstream_parse(u, &app->upstreams.v[app->upstreams.n], why, sizeof(why));
        if (rc != AG_OK) {
            snprintf(err, errlen, "upstreams: \"%.100s\": %s", u, why);
            return rc;
        }
        app->upstreams.n++;
    }
    if (app->upstreams.n == 0)
        return AG_OK;
    struct ag_proxy_conf pc = {(unsigned)cfg->workers, (unsigned)cfg->upstream_max_connections,
                               (unsigned)app->upstreams.n};
    return ag_proxy_shared_new(&pc, &app->proxy);
}

/* --extra-jwt-issuers=issuer=audience: each a provider of its own (discovery, JWKS), used only to
 * verify bearer tokens, built from a copy of the config naming that issuer and audience. */
static enum ag_rc extra_issuers(struct ag_app *app, const struct ag_config *cfg, char *err, size_t errlen)
{
    enum ag_rc rc = AG_OK;

    if (cfg->extra_jwt_issuers.n == 0)
        return AG_OK;
    app->extra = calloc(cfg->extra_jwt_issuers.n, sizeof(*app->extra));
    if (app->extra == NULL)
        return AG_ERR_NOMEM;
    for (size_t i = 0; i < cfg->extra_jwt_issuers.n && rc == AG_OK; i++) {
        const char *entry = cfg->extra_jwt_issuers.v[i], *eq = strrchr(entry, '=');
        struct ag_config one = *cfg;
        char *issuer = eq ? strndup(entry, (size_t)(eq - entry)) : NULL;
        if (issuer == NULL) {
            snprintf(err, errlen, "extra_jwt_issuers: \"%.100s\": expected issuer=audience", entry);
            return eq ? AG_ERR_NOMEM : AG_ERR_INVALID;
        }
        one.oidc_issuer_url = issuer;
        one.client_id = (char *)(eq + 1);
        one.client_secret.value = NULL;
        one.client_secret.file = NULL;
        one.skip_oidc_discovery = false;
        one.oidc_extra_audiences.n = 0;
        one.oidc_extra_audiences.v = NULL;
        rc = ag_provider_new(&one, &app->extra[app->nextra], err, errlen);
        free(issuer);
        if (rc == AG_OK) {
            app->nextra++;
            rc = ag_provider_start(app->extra[app->nextra - 1]);
        }
    }
    return rc;
}

struct ag_provider *ag_app_issuer(struct ag_app *app, const char *iss)
{
    const struct ag_provider_meta *m;

    if (iss == NULL)
        return NULL;
    m = app->provider ? ag_provider_meta(app->provider) : NULL;
    if (m != NULL && strcmp(m->issuer, iss) == 0)
        return app->provider;
    for (size_t i = 0; i < app->nextra; i++) {
        m = ag_provider_meta(app->extra[i]);
        if (m != NULL && strcmp(m->issuer, iss) == 0)
            return app->extra[i];
    }
    return NULL;
}

enum ag_rc ag_app_init(struct ag_app *app, const struct ag_config *cfg, char *err, size_t errlen)
{
    unsigned char secret[32];
    size_t slen = 0;
    enum ag_rc rc;

    memset(app, 0, sizeof(*app));
    app->cfg = cfg;
    atomic_init(&app->draining, false);
    atomic_init(&app->inflight, 0);

    rc = ag_config_cookie_key(cfg->cookie_secret.value, secret, &slen);
    if (rc != AG_OK) {
        snprintf(err, errlen, "cookie_secret: must be 16, 24 or 32 bytes");
        goto fail;
    }
    rc = ag_ticket_mac_key(secret, slen, app->ticket_key);
    if (rc == AG_OK) {
        static const char label[] = "authgate csrf cookie v1";
        rc = ag_hmac_sha256(secret, slen, label, sizeof(label) - 1, app->csrf_key);
    }
    OPENSSL_cleanse(secret, sizeof(secret));
    if (rc != AG_OK)
        goto fail;
    rc = parse_upstreams(app, cfg, err, errlen);
    if (rc != AG_OK)
        goto fail;
    rc = ag_identity_strip_init(&app->strip, cfg);
    if (rc != AG_OK)
        goto fail;
    rc = ag_whitelist_new(list(&cfg->whitelist_domains), cfg->whitelist_domains.n, &app->whitelist, err,
                          errlen);
    if (rc != AG_OK)
        goto fail;
    rc = ag_cidrs_new(list(&cfg->trusted_proxy_ips), cfg->trusted_proxy_ips.n, &app->trusted, err, errlen);
    if (rc != AG_OK)
        goto fail;
    rc = ag_rules_new(list(&cfg->skip_auth_routes), cfg->skip_auth_routes.n, &app->skip_rules, err, errlen);
    if (rc != AG_OK)
        goto fail;
    rc = ag_rules_new(list(&cfg->api_routes), cfg->api_routes.n, &app->api_rules, err, errlen);
    if (rc != AG_OK)
        goto fail;
    rc = ag_rules_new_scoped(list(&cfg->required_scope_routes), cfg->required_scope_routes.n,
                             &app->scope_rules, err, errlen);
    if (rc != AG_OK)
        goto fail;
    rc = ag_policy_new(cfg, &app->policy, err, errlen);
    if (rc != AG_OK)
        goto fail;
    rc = ag_redis_new(cfg->redis_connection_url, cfg->redis_password.value, cfg->redis_timeout, &app->redis,
                      err, errlen);
    if (rc != AG_OK)
        goto fail;
    rc = ag_scache_new((size_t)cfg->session_cache_entries, &app->scache);
    if (rc == AG_OK && app->scache != NULL)
        rc = ag_redis_tracking_start(app->redis, scache_invalidate, scache_reset, app->scache);
    if (rc != AG_OK) {
        snprintf(err, errlen, "session_cache_entries: cannot start the session cache");
        goto fail;
    }
    rc = ag_provider_new(cfg, &app->provider, err, errlen);
    if (rc != AG_OK)
        goto fail;
    rc = ag_provider_start(app->provider);
    if (rc != AG_OK) {
        snprintf(err, errlen, "cannot start the provider discovery thread");
        goto fail;
    }
    rc = extra_issuers(app, cfg, err, errlen);
    if (rc == AG_OK && cfg->skip_jwt_bearer_tokens)
        rc = ag_token_cache_new(&app->tokens);
    if (rc != AG_OK)
        goto fail;
    return AG_OK;
fail:
    ag_app_fini(app);
    return rc;
}

void ag_app_fini(struct ag_app *app)
{
    ag_token_cache_free(app->tokens);
    app->tokens = NULL;
    for (size_t i = 0; i < app->nextra; i++)
        ag_provider_free(app->extra[i]);
    free(app->extra);
    app->extra = NULL;
    app->nextra = 0;
    ag_provider_free(app->provider);
    ag_redis_free(app->redis); /* stops the invalidation thread first: then the cache can go */
    ag_scache_free(app->scache);
    app->scache = NULL;
    ag_policy_free(app->policy);
    ag_rules_free(app->api_rules);
    ag_rules_free(app->scope_rules);
    for (size_t i = 0; i < app->upstreams.n; i++)
        ag_upstream_clear(&app->upstreams.v[i]);
    free(app->upstreams.v);
    app->upstreams.v = NULL;
    app->upstreams.n = 0;
    ag_proxy_shared_free(app->proxy);
    app->proxy = NULL;
    ag_identity_strip_clear(&app->strip);
    ag_rules_free(app->skip_rules);
    ag_cidrs_free(app->trusted);
    ag_whitelist_free(app->whitelist);
    OPENSSL_cleanse(app->ticket_key, sizeof(app->ticket_key));
    OPENSSL_cleanse(app->csrf_key, sizeof(app->csrf_key));
    app->provider = NULL;
    app->redis = NULL;
    app->policy = NULL;
    app->api_rules = app->skip_rules = app->scope_rules = NULL;
    app->trusted = NULL;
    app->whitelist = NULL;
}

bool ag_app_ready(struct ag_app *app)
{
    if (atomic_load(&app->draining))
        return false;
    if (app->provider != NULL && !ag_provider_ready(app->provider))
        return false;
    return app->redis == NULL || ag_redis_ping(app->redis) == AG_OK;
}
