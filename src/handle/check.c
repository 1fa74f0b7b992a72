/* SPDX-License-Identifier: Apache-2.0
 * The authorization checks: /oauth2/auth for nginx auth_request, Caddy forward_auth and Traefik
 * forwardAuth (202 / 401 / 403, never a redirect), and every other path for Istio ext_authz and
 * --upstream=static://N (exactly N, 200 by default, when allowed; a login redirect, a sign-in page or a
 * 401 JSON when not). */
#include <string.h>
#include <strings.h>
#include <time.h>

#include "auth/policy.h"
#include "auth/rules.h"
#include "handle/handlers.h"
#include "handle/identity.h"
#include "handle/pages.h"
#include "log.h"
#include "oidc/flow.h"
#include "oidc/provider.h"
#include "token/cache.h"
#include "token/claims.h"
#include "util/b64.h"
#include "session/web.h"

/* The method of the request being judged: a trusted proxy's X-Forwarded-Method when authgate is asked about
 * another request, never when it forwards this one (the upstream then gets this method). */
static const char *forwarded_method(struct ag_request *rq)
{
    const char *m = !rq->forwarding && ag_request_from_trusted_proxy(rq)
                        ? ag_request_header(rq, "X-Forwarded-Method")
                        : NULL;
    return m ? m : rq->method;
}

static bool skipped(struct ag_request *rq)
{
    const struct ag_config *cfg = rq->app->cfg;
    const char *method = forwarded_method(rq);

    if (cfg->skip_auth_preflight && strcmp(method, "OPTIONS") == 0)
        return true;
    return ag_rules_match(rq->app->skip_rules, method, ag_request_target(rq));
}

/* allowed_groups=a,b on /oauth2/auth narrows who passes this one check (oauth2-proxy does the same). */
static bool groups_allowed_here(struct ag_request *rq, const struct ag_session *s)
{
    const char *q = ag_request_arg(rq, "allowed_groups");
    char *copy, *save = NULL;
    const char *list[64];
    size_t n = 0;

    if (q == NULL || q[0] == '\0')
        return true;
    copy = ag_request_strdup(rq, q);
    if (copy == NULL)
        return false;
    for (char *g = strtok_r(copy, ",", &save); g != NULL && n < AG_ARRAY_LEN(list);
         g = strtok_r(NULL, ",", &save))
        list[n++] = g;
    return ag_policy_groups_allowed(&s->groups, list, n);
}

/* What this request demands beyond the policy, checked on every request against the identity's own
 * groups and scopes (also when it comes from the token cache, so an answer cached for one route never
 * opens another): --required-scope, the scopes of every --required-scope-route rule that applies and,
 * at /oauth2/auth, the allowed_groups= and required_scope= arguments the proxy's config adds. AG_OK, or
 * AG_ERR_DENIED with *why. */
static enum ag_rc demands_met(struct ag_request *rq, const struct ag_session *s, bool auth_endpoint,
                              const char **why)
{
    const char *need[32], *q;
    size_t n = 0;

    if (auth_endpoint && !groups_allowed_here(rq, s)) {
        *why = "not in an allowed group";
        return AG_ERR_DENIED;
    }
    /* fails closed: more matching rules than we look at (an ambiguous path brings every rule) */
    if (ag_rules_collect(rq->app->scope_rules, forwarded_method(rq), ag_request_target(rq), need,
                         AG_ARRAY_LEN(need), &n) != AG_OK) {
        *why = "the request path cannot be matched against the scope rules";
        return AG_ERR_DENIED;
    }
    q = auth_endpoint ? ag_request_arg(rq, "required_scope") : NULL;
    if (q != NULL && ag_request_arg_count(rq, "required_scope") != 1) {
        *why = "required_scope is given more than once";
        return AG_ERR_DENIED;
    }
    *why = "the access token lacks a required scope";
    if (!ag_scopes_cover(s->scope, rq->app->cfg->required_scope) || !ag_scopes_cover(s->scope, q))
        return AG_ERR_DENIED;
    for (size_t i = 0; i < n; i++)
        if (!ag_scopes_cover(s->scope, need[i]))
            return AG_ERR_DENIED;
    return AG_OK;
}

/* The bearer token of the request: Authorization: Bearer <token>, or Basic auth whose password is the
 * token (as oauth2-proxy accepts it). NULL when there is none. In the arena or borrowed. */
static const char *bearer_token(struct ag_request *rq)
{
    const char *h = ag_request_header(rq, MHD_HTTP_HEADER_AUTHORIZATION);
    unsigned char raw[AG_JWT_MAX_LEN];
    size_t n = 0, len;
    char *colon;

    if (h == NULL)
        return NULL;
    if (strncasecmp(h, "Bearer ", 7) == 0)
        return h[7] != '\0' ? h + 7 : NULL;
    if (strncasecmp(h, "Basic ", 6) != 0)
        return NULL;
    /* standard base64 of user:password (up to its padding) */
    len = strcspn(h + 6, "=");
    if (len > AG_B64URL_LEN(sizeof(raw)) ||
        ag_b64_decode(h + 6, len, AG_B64_STANDARD, raw, sizeof(raw) - 1, &n) != AG_OK)
        return NULL;
    raw[n] = '\0';
    if (memchr(raw, '\0', n) != NULL)
        return NULL;
    colon = strchr((char *)raw, ':');
    return colon != NULL && strchr(colon + 1, '.') != NULL ? ag_request_strdup(rq, colon + 1) : NULL;
}

/* Which provider vouches for the token: the one whose issuer its (not yet verified) iss names, so that
 * verification then checks iss, audience and signature against that provider only. Unknown issuers go to
 * the login provider, which refuses them as "wrong issuer". */
static struct ag_provider *token_issuer(struct ag_request *rq, const char *token)
{
    const char *dot1 = strchr(token, '.'), *dot2 = dot1 ? strchr(dot1 + 1, '.') : NULL;
    unsigned char payload[AG_JWT_MAX_LEN];
    struct ag_provider *p = NULL;
    size_t n = 0;
    json_t *o;

    if (rq->app->nextra == 0 || dot2 == NULL ||
        ag_b64url_decode(dot1 + 1, (size_t)(dot2 - dot1 - 1), payload, sizeof(payload), &n) != AG_OK)
        return rq->app->provider;
    o = json_loadb((const char *)payload, n, 0, NULL);
    p = ag_app_issuer(rq->app, json_string_value(json_object_get(o, "iss")));
    json_decref(o);
    return p ? p : rq->app->provider;
}

/* A session and a token-cache entry share the four identity fields: identity_into_session() moves them
 * (the entry gives them up), identity_of() lends the session's (for ag_token_cache_put(), which copies). */
static void identity_into_session(struct ag_token_identity *id, struct ag_session *s)
{
    s->sub = id->sub;
    s->email = id->email;
    s->preferred_username = id->preferred_username;
    s->groups = id->groups;
    s->scope = id->scope;
    s->claims = id->claims;
    memset(id, 0, sizeof(*id));
}

static struct ag_token_identity identity_of(const struct ag_session *s)
{
    struct ag_token_identity id = {s->sub, s->email, s->preferred_username, s->groups, s->scope, s->claims};
    return id;
}

/* A token that is not a compact JWS (three dot-separated parts) is opaque: only introspection can judge it.
 */
static bool is_opaque(const char *token)
{
    const char *d1 = strchr(token, '.'), *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
    return d2 == NULL || strchr(d2 + 1, '.') != NULL;
}

static bool has_audience(const struct ag_config *cfg, const char *aud)
{
    if (strcmp(aud, cfg->client_id) == 0)
        return true;
    for (size_t i = 0; i < cfg->oidc_extra_audiences.n; i++)
        if (strcmp(aud, cfg->oidc_extra_audiences.v[i]) == 0)
            return true;
    return false;
}

/* RFC 7662 introspection of an opaque token at --introspection-url, as our client. The answer must say
 * active, not be past exp, name our provider as issuer and one of our audiences when it names any. An
 * accepted answer is cached under (token hash, introspection URL) until exp, at most
 * --introspection-cache-ttl; refusals are not cached. */
static enum ag_rc introspect(struct ag_request *rq, const char *token, int64_t now, struct ag_session *s,
                             const char **why)
{
    const struct ag_config *cfg = rq->app->cfg;
    const void *owner = cfg->introspection_url; /* the URL is part of the cache key */
    const struct ag_provider_meta *m = ag_provider_meta(rq->app->provider);
    struct ag_token_identity id = {0};
    struct ag_token_key key;
    bool keyed = ag_token_key_make(owner, token, &key) == AG_OK;
    json_t *doc = NULL, *v;
    int64_t until;
    enum ag_rc rc;

    if (keyed && ag_token_cache_get(rq->app->tokens, &key, now, &id) == AG_OK) {
        identity_into_session(&id, s);
        return AG_OK;
    }
    rc = ag_provider_introspect(rq->app->provider, cfg->introspection_url, token, &doc);
    if (rc == AG_ERR_UNAVAILABLE)
        return rc;
    rc = AG_ERR_UNAUTHENTICATED;
    *why = "introspection failed";
    if (doc == NULL)
        goto out;
    *why = "token is not active";
    if (!json_is_true(json_object_get(doc, "active")))
        goto out;
    v = json_object_get(doc, "exp");
    *why = "token expired";
    if (json_is_number(v) && json_number_value(v) <= (double)now)
        goto out;
    until = json_is_number(v) ? (int64_t)json_number_value(v) : now + cfg->introspection_cache_ttl / 1000;
    if (until > now + cfg->introspection_cache_ttl / 1000)
        until = now + cfg->introspection_cache_ttl / 1000;
    v = json_object_get(doc, "iss");
    *why = "wrong issuer";
    if (v != NULL && (!json_is_string(v) || m == NULL || strcmp(json_string_value(v), m->issuer) != 0))
        goto out;
    v = json_object_get(doc, "aud");
    *why = "wrong audience";
    if (json_is_string(v) && !has_audience(cfg, json_string_value(v)))
        goto out;
    if (json_is_array(v)) {
        size_t i;
        json_t *a;
        bool ok = false;
        json_array_foreach(v, i, a) ok = ok || (json_is_string(a) && has_audience(cfg, json_string_value(a)));
        if (!ok)
            goto out;
    }
    rc = ag_flow_identity(cfg, doc, s, why);
    if (rc != AG_OK)
        goto out;
    id = identity_of(s);
    if (keyed)
        ag_token_cache_put(rq->app->tokens, &key, until, now, &id);
    *why = "ok";
out:
    if (rc == AG_ERR_UNAUTHENTICATED)
        ag_log_rq(AG_LOG_INFO, rq->request_id, "opaque bearer token refused: %s", *why);
    json_decref(doc);
    return rc;
}

/* RFC 6750 section 3: the challenge for a refused token. The description is our own fixed text. */
static void bearer_challenge(struct ag_request *rq, struct ag_reply *reply, const char *error,
                             const char *desc)
{
    const char *v = ag_request_printf(rq, "Bearer error=\"%s\", error_description=\"%s\"", error, desc);
    if (v != NULL)
        ag_reply_header(reply, MHD_HTTP_HEADER_WWW_AUTHENTICATE, v);
}

/* Whether the policy (email domains, authenticated emails, allowed groups) allows the identity in s now:
 * a session's user is checked again on every request, so a narrower policy applies at once. A machine
 * token has no email: the email rule then passes only with email_domains = "*". */
static enum ag_rc policy_allows(struct ag_request *rq, const struct ag_session *s, const char **why)
{
    const struct ag_config *cfg = rq->app->cfg;
    bool any = false;

    if (s->email != NULL)
        return ag_policy_check(rq->app->policy, s->email, &s->groups, why);
    for (size_t i = 0; i < cfg->email_domains.n; i++)
        any = any || strcmp(cfg->email_domains.v[i], "*") == 0;
    if (any && ag_policy_groups_allowed(&s->groups, (const char *const *)cfg->allowed_groups.v,
                                        cfg->allowed_groups.n)) {
        *why = "ok";
        return AG_OK;
    }
    *why = "the token names no allowed email or group";
    return AG_ERR_DENIED;
}

enum ag_rc ag_check_identity_allowed(struct ag_request *rq, const struct ag_session *s, const char **why)
{
    enum ag_rc rc = policy_allows(rq, s, why);
    return rc == AG_OK ? demands_met(rq, s, false, why) : rc;
}

/* --skip-jwt-bearer-tokens: a valid bearer JWT from the provider stands in for a session. AG_OK with *s
 * filled (identity and the token); AG_ERR_NOT_FOUND when there is no bearer token (go on with the
 * session); AG_ERR_UNAUTHENTICATED when the token is invalid (*why says why); AG_ERR_DENIED when it is
 * valid but the policy refuses its subject. */
static enum ag_rc bearer(struct ag_request *rq, struct ag_session *s, const char **why)
{
    const struct ag_config *cfg = rq->app->cfg;
    const char *token;
    struct ag_provider *issuer;
    struct ag_token_identity id = {0};
    struct ag_token_key key;
    bool keyed;
    json_t *claims = NULL;
    int64_t now = (int64_t)time(NULL);
    enum ag_jwt_result jr = AG_JWT_OK;
    enum ag_rc rc;

    memset(s, 0, sizeof(*s));
    if (!cfg->skip_jwt_bearer_tokens || rq->app->provider == NULL)
        return AG_ERR_NOT_FOUND;
    token = bearer_token(rq);
    if (token == NULL)
        return AG_ERR_NOT_FOUND;
    if (is_opaque(token)) {
        rc = cfg->introspection_url[0] != '\0' ? introspect(rq, token, now, s, why) : AG_ERR_UNAUTHENTICATED;
        if (rc == AG_ERR_UNAUTHENTICATED && cfg->introspection_url[0] == '\0')
            *why = "not a JWT";
        if (rc != AG_OK)
            return rc;
        goto policy;
    }
    issuer = token_issuer(rq, token);
    keyed = ag_token_key_make(issuer, token, &key) == AG_OK;
    if (!keyed || ag_token_cache_get(rq->app->tokens, &key, now, &id) != AG_OK) {
        rc = ag_provider_verify_access_token(issuer, token, now, &claims, &jr);
        if (rc == AG_ERR_UNAVAILABLE)
            return rc;
        if (rc != AG_OK) {
            *why = ag_jwt_result_str(jr);
            ag_log_rq(AG_LOG_INFO, rq->request_id, "bearer token refused: %s", *why);
            return AG_ERR_UNAUTHENTICATED;
        }
        rc = ag_flow_identity(cfg, claims, s, why);
        if (rc == AG_OK && keyed) {
            id = identity_of(s); /* borrowed from s: put() copies */
            ag_token_cache_put(rq->app->tokens, &key,
                               (int64_t)json_number_value(json_object_get(claims, "exp")), now, &id);
        }
        json_decref(claims);
        if (rc != AG_OK)
            return rc;
    } else {
        identity_into_session(&id, s); /* a cache hit */
    }
policy:
    s->access_token = strdup(token);
    s->id_token = strdup(token);
    if (s->access_token == NULL || s->id_token == NULL)
        return AG_ERR_NOMEM;
    return policy_allows(rq, s, why);
}

/* Answer for a bearer token that was not accepted; AG_ERR_NOT_FOUND means "go on with the session". */
static enum ag_rc bearer_refused(struct ag_request *rq, struct ag_reply *reply, enum ag_rc rc,
                                 const char *why)
{
    if (rc == AG_ERR_DENIED) {
        enum ag_rc prc = ag_page_error(rq, reply, 403, "insufficient_scope", why);
        bearer_challenge(rq, reply, "insufficient_scope", why);
        return prc;
    }
    if (rc == AG_ERR_UNAUTHENTICATED && !rq->app->cfg->bearer_token_login_fallback) {
        enum ag_rc prc = ag_page_error(rq, reply, 403, "invalid_token", why);
        bearer_challenge(rq, reply, "invalid_token", why);
        return prc;
    }
    if (rc == AG_ERR_UNAVAILABLE)
        return ag_page_error(rq, reply, 503, "provider_unavailable", "The token issuer cannot be reached.");
    return rc == AG_ERR_UNAUTHENTICATED ? AG_ERR_NOT_FOUND : rc;
}

/* A session that is valid but does not meet this request's demands: 403, naming who was refused. */
static enum ag_rc refuse_session(struct ag_request *rq, struct ag_reply *reply, const struct ag_session *s,
                                 const char *why)
{
    rq->user = ag_request_strdup(rq, s->email ? s->email : s->sub);
    return ag_page_error(rq, reply, 403, "forbidden", why);
}

/* An allowed answer with the identity of s (and a re-issued session cookie, if any). */
static enum ag_rc allow(struct ag_request *rq, struct ag_reply *reply, unsigned status, const char *body,
                        const struct ag_session *s, const char *set_cookie)
{
    rq->user = ag_request_strdup(rq, s->email ? s->email : s->sub);
    ag_reply_text(reply, status, body);
    if (set_cookie != NULL)
        ag_reply_header(reply, MHD_HTTP_HEADER_SET_COOKIE, set_cookie);
    return ag_identity_headers(rq, s, reply);
}

enum ag_rc ag_handle_auth(struct ag_request *rq, struct ag_reply *reply)
{
    struct ag_session s;
    struct ag_ticket t;
    const char *set_cookie = NULL, *why = "invalid token";
    enum ag_rc rc, brc;

    memset(reply, 0, sizeof(*reply));
    if (skipped(rq)) {
        ag_reply_text(reply, 202, "");
        return AG_OK;
    }
    brc = bearer(rq, &s, &why);
    if (brc == AG_OK)
        brc = demands_met(rq, &s, true, &why);
    if (brc == AG_OK)
        rc = allow(rq, reply, 202, "", &s, NULL);
    else
        rc = bearer_refused(rq, reply, brc, why);
    ag_session_clear(&s);
    if (rc != AG_ERR_NOT_FOUND)
        return rc;

    rc = ag_session_load(rq, &s, &t, &set_cookie);
    ag_ticket_clear(&t);
    if (rc == AG_ERR_UNAUTHENTICATED) {
        rc = ag_page_error(rq, reply, 401, "unauthorized", "authentication required");
        if (brc == AG_ERR_UNAUTHENTICATED)
            bearer_challenge(rq, reply, "invalid_token", why);
        return rc;
    }
    if (rc != AG_OK)
        return rc;
    if (policy_allows(rq, &s, &why) != AG_OK || demands_met(rq, &s, true, &why) != AG_OK)
        rc = refuse_session(rq, reply, &s, why);
    else
        rc = allow(rq, reply, 202, "", &s, set_cookie);
    ag_session_clear(&s);
    return rc;
}

enum ag_rc ag_check_authorize(struct ag_request *rq, struct ag_reply *reply, struct ag_session *s,
                              const char **set_cookie, bool *allowed)
{
    struct ag_ticket t;
    const char *back, *why = "invalid token";
    enum ag_rc rc, brc;

    memset(reply, 0, sizeof(*reply));
    memset(s, 0, sizeof(*s));
    *set_cookie = NULL;
    *allowed = false;
    if (skipped(rq)) {
        *allowed = true; /* with no identity */
        return AG_OK;
    }
    brc = bearer(rq, s, &why);
    if (brc == AG_OK)
        brc = demands_met(rq, s, false, &why);
    if (brc == AG_OK) {
        *allowed = true;
        return AG_OK;
    }
    ag_session_clear(s);
    rc = bearer_refused(rq, reply, brc, why);
    if (rc != AG_ERR_NOT_FOUND)
        return rc;

    rc = ag_session_load(rq, s, &t, set_cookie);
    ag_ticket_clear(&t);
    if (rc == AG_OK) {
        if (ag_check_identity_allowed(rq, s, &why) == AG_OK) {
            *allowed = true;
            return AG_OK;
        }
        rc = refuse_session(rq, reply, s, why);
        ag_session_clear(s);
        return rc;
    }
    if (rc == AG_ERR_UNAVAILABLE)
        return ag_page_error(rq, reply, 503, "session_store_unavailable",
                             "The session store cannot be reached. Try again in a moment.");
    if (rc != AG_ERR_UNAUTHENTICATED)
        return rc;
    if (ag_wants_json(rq) || brc == AG_ERR_UNAUTHENTICATED) {
        /* A client that sent a bearer token is a program (browsers send none): with the fallback its
         * session was tried, and without one it gets RFC 6750's answer, not a login page. */
        rc = ag_page_error(rq, reply, 401, "unauthorized", "authentication required");
        if (brc == AG_ERR_UNAUTHENTICATED)
            bearer_challenge(rq, reply, "invalid_token", why);
        return rc;
    }
    back = ag_request_original_url(rq);
    if (back == NULL || ag_flow_redirect_allowed(rq, back) != AG_OK)
        back = "/";
    if (rq->app->cfg->skip_provider_button)
        return ag_flow_begin(rq, back, reply);
    return ag_page_sign_in(rq, reply, back);
}

enum ag_rc ag_handle_check(struct ag_request *rq, struct ag_reply *reply)
{
    struct ag_session s;
    const char *set_cookie;
    bool allowed;
    enum ag_rc rc = ag_check_authorize(rq, reply, &s, &set_cookie, &allowed);

    if (!allowed)
        return rc;
    rc = allow(rq, reply, rq->app->static_status, "Authenticated", &s, set_cookie);
    ag_session_clear(&s);
    return rc;
}
