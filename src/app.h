/* SPDX-License-Identifier: Apache-2.0
 * Long-lived state shared by every request, built once from the config before the listener starts:
 * keys derived from the cookie secret, the Redis client, the provider, the redirect whitelist, the
 * trusted proxies, the authorization policy and the skip-auth rules. Read-only after ag_app_init()
 * apart from the two atomics; each part is thread-safe on its own. */
#ifndef AG_APP_H
#define AG_APP_H

#include <stdatomic.h>

#include "config.h"
#include "net/upstream.h"

struct ag_redis;
struct ag_scache;
struct ag_provider;
struct ag_whitelist;
struct ag_cidrs;
struct ag_policy;
struct ag_rules;
struct ag_proxy_shared;
struct ag_token_cache;

/* Every header an app could take for identity, for Envoy's x-envoy-auth-headers-to-remove: each
 * lowercase spelling, with '-' or '_' at each separator, of X-Auth-Request-{User,Email,Groups,
 * Preferred-Username,Access-Token}, X-Forwarded-{User,Email,Groups,Preferred-Username,Access-Token}
 * and every --claim-header name (handle/identity.c builds it once from the config). */
struct ag_identity_strip {
    char *spelled; /* every spelling with a '_', comma-joined: always removed */
    size_t spelled_len;
    char *all;    /* spelled and the plain names: for answers that set no identity */
    char **plain; /* the plain (hyphenated, lowercase) names: removed unless an answer sets them */
    size_t nplain;
};

struct ag_app {
    const struct ag_config *cfg;
    atomic_bool draining; /* SIGTERM seen: /ready fails, responses close the connection */
    atomic_uint inflight; /* requests whose headers arrived and that are not completed */

    unsigned char ticket_key[32]; /* MACs session tickets */
    unsigned char csrf_key[32];   /* seals the CSRF cookie */
    struct ag_redis *redis;       /* NULL only in tests that need no sessions */
    struct ag_scache *scache;     /* sealed sessions kept exact by Redis' invalidations; NULL: off */
    struct ag_provider *provider; /* NULL only in tests that need no login */
    struct ag_provider **extra;   /* --extra-jwt-issuers: bearer tokens only */
    size_t nextra;
    struct ag_token_cache *tokens; /* verified bearer tokens (with --skip-jwt-bearer-tokens) */
    struct ag_whitelist *whitelist;
    struct ag_cidrs *trusted;       /* peers whose X-Forwarded-* we believe */
    struct ag_policy *policy;       /* who may log in */
    struct ag_rules *skip_rules;    /* --skip-auth-route */
    struct ag_rules *api_rules;     /* --api-route */
    struct ag_rules *scope_rules;   /* --required-scope-route */
    unsigned static_status;         /* --upstream=static://N: answer N to authenticated checks */
    struct ag_upstreams upstreams;  /* --upstream=http(s)://...: reverse-proxy mode when n > 0 */
    struct ag_proxy_shared *proxy;  /* what proxied requests share (upstream connections) */
    struct ag_identity_strip strip; /* identity header spellings Envoy must remove */
};

/* Build the runtime state for cfg (borrowed; must outlive app). Starts the provider's background
 * discovery. On failure writes a reason naming the option to err and leaves app empty. */
enum ag_rc ag_app_init(struct ag_app *app, const struct ag_config *cfg, char *err, size_t errlen);

/* Release everything ag_app_init() built (safe on a zeroed or half-built app). */
void ag_app_fini(struct ag_app *app);

/* The provider whose issuer is exactly `iss` (the login provider or an --extra-jwt-issuers one), or NULL. */
struct ag_provider *ag_app_issuer(struct ag_app *app, const char *iss);

/* Ready to serve logins: the provider has been discovered and Redis answers. */
bool ag_app_ready(struct ag_app *app);

#endif
