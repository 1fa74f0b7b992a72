/* SPDX-License-Identifier: Apache-2.0
 * Login: /oauth2/start and /oauth2/callback. The CSRF cookie holds, sealed with a key derived from the
 * cookie secret, everything the callback needs (state, nonce, PKCE verifier, redirect URI, where to go
 * back to, expiry), so any instance can finish a login another one started. A state is accepted once:
 * its hash is recorded in Redis, so a replayed callback fails. */
#include <jansson.h>
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth/policy.h"
#include "handle/pages.h"
#include "log.h"
#include "net/cookie.h"
#include "net/redirect.h"
#include "oidc/flow.h"
#include "token/claims.h"
#include "oidc/provider.h"
#include "session/redis.h"
#include "session/web.h"
#include "util/b64.h"
#include "util/crypto.h"

#define CSRF_MAX 4096 /* longest plaintext read back (what format 1 wrote at most) */

/* A random value of n bytes as base64url in the arena. */
static const char *random_text(struct ag_request *rq, size_t n)
{
    unsigned char raw[32];
    char *out = ag_request_alloc(rq, AG_B64URL_LEN(sizeof(raw)) + 1);
    if (out == NULL || n > sizeof(raw) || ag_random(raw, n) != AG_OK)
        return NULL;
    ag_b64url_encode(raw, n, out, AG_B64URL_LEN(sizeof(raw)) + 1);
    return out;
}

/* The CSRF cookie's name: fixed, or one per login attempt (--cookie-csrf-per-request, so parallel
 * tabs do not overwrite each other's state), derived from the state. */
static const char *csrf_name(struct ag_request *rq, const char *state)
{
    const struct ag_config *cfg = rq->app->cfg;
    unsigned char h[32];
    char tag[16];

    if (!cfg->cookie_csrf_per_request)
        return ag_request_printf(rq, "%s_csrf", cfg->cookie_name);
    if (ag_sha256(state, strlen(state), h) != AG_OK)
        return NULL;
    ag_b64url_encode(h, 9, tag, sizeof(tag));
    return ag_request_printf(rq, "%s_csrf_%s", cfg->cookie_name, tag);
}

static const char *redirect_uri(struct ag_request *rq)
{
    const struct ag_config *cfg = rq->app->cfg;
    const char *host;

    if (cfg->redirect_url != NULL && cfg->redirect_url[0] != '\0')
        return cfg->redirect_url;
    host = ag_request_host(rq);
    if (host == NULL)
        return NULL;
    return ag_request_printf(rq, "%s://%s%s/callback", ag_request_scheme(rq), host, cfg->proxy_prefix);
}

enum ag_rc ag_flow_redirect_allowed(struct ag_request *rq, const char *target)
{
    const char *why = NULL;
    enum ag_rc rc = ag_redirect_check(rq->app->whitelist, target, ag_request_host(rq), &why);
    if (rc != AG_OK)
        ag_log_rq(AG_LOG_WARN, rq->request_id, "redirect target refused (%s)", why);
    return rc;
}

const char *ag_flow_redirect_target(struct ag_request *rq)
{
    const char *rd = ag_request_arg(rq, "rd");

    if (rd == NULL || rd[0] == '\0')
        rd = ag_request_header(rq, "X-Auth-Request-Redirect");
    if (rd == NULL || rd[0] == '\0')
        return "/";
    return ag_flow_redirect_allowed(rq, rd) == AG_OK ? rd : "/";
}

/* The cookie's plaintext, format 2: "AGC2", then state, nonce, verifier, redirect URI and return target,
 * each as a 2-byte big-endian length and its bytes (an empty verifier: no PKCE), then the expiry as 8
 * bytes big-endian. Format 1 (a JSON object, written before 0.1) is still read.
 * CSRF_RECORD_MAX bounds what is written: sealed and in base64url that is 3,792 bytes, so the cookie with
 * its name and attributes stays within the 4,096 bytes a browser keeps (RFC 6265 section 6.1); a longer
 * cookie would be dropped and the callback would find none. */
#define CSRF_MAGIC      "AGC2"
#define CSRF_RECORD_MAX 2816

static size_t put_field(unsigned char *buf, size_t o, const char *v)
{
    size_t n = v ? strlen(v) : 0;
    buf[o] = (unsigned char)(n >> 8);
    buf[o + 1] = (unsigned char)n;
    if (n > 0)
        memcpy(buf + o + 2, v, n);
    return o + 2 + n;
}

/* The plaintext's length for these fields. */
static size_t record_len(const char *const fields[5])
{
    size_t n = sizeof(CSRF_MAGIC) - 1 + 8;
    for (size_t i = 0; i < 5; i++)
        n += 2 + (fields[i] ? strnlen(fields[i], CSRF_RECORD_MAX) : 0);
    return n;
}

/* A return target over AG_FLOW_RD_MAX, or one that would not leave the record room, is not kept: the user
 * logs in and lands on "/" (the redirect check lets through up to AG_REDIRECT_MAX bytes, but the target
 * travels in a cookie). Without it the record would outgrow its buffer and the login fail with a 500. */
const char *ag_flow_csrf_seal(struct ag_request *rq, const char *name, const struct ag_csrf *c)
{
    const char *fields[] = {c->state, c->nonce, c->verifier, c->uri, c->rd};
    unsigned char buf[CSRF_RECORD_MAX], sealed[CSRF_RECORD_MAX + AG_SEAL_OVERHEAD];
    size_t o = sizeof(CSRF_MAGIC) - 1, n = 0, rdlen = c->rd ? strnlen(c->rd, AG_REDIRECT_MAX + 1) : 0;
    char *out = NULL;

    if (rdlen > AG_FLOW_RD_MAX || record_len(fields) > sizeof(buf)) {
        ag_log_rq(AG_LOG_WARN, rq->request_id,
                  "return target of %zu bytes not kept (at most %d): the login will return to /", rdlen,
                  AG_FLOW_RD_MAX);
        fields[4] = "/";
    }
    if (record_len(fields) > sizeof(buf))
        return NULL; /* only a configured redirect URL of kilobytes gets here */
    memcpy(buf, CSRF_MAGIC, o);
    for (size_t i = 0; i < AG_ARRAY_LEN(fields); i++)
        o = put_field(buf, o, fields[i]);
    for (int i = 0; i < 8; i++)
        buf[o++] = (unsigned char)((uint64_t)c->expires_at >> (56 - 8 * i));
    if (ag_seal(rq->app->csrf_key, name, strlen(name), buf, o, sealed, &n) == AG_OK) {
        out = ag_request_alloc(rq, AG_B64URL_LEN(n) + 1);
        if (out != NULL)
            ag_b64url_encode(sealed, n, out, AG_B64URL_LEN(n) + 1);
    }
    OPENSSL_cleanse(buf, o);
    return out;
}

/* Format 2, strictly: every field present and only the verifier empty, no NUL inside one, nothing after
 * the expiry. */
static bool read_csrf_v2(struct ag_request *rq, const unsigned char *p, size_t n, struct ag_csrf *c)
{
    const char **fields[] = {&c->state, &c->nonce, &c->verifier, &c->uri, &c->rd};
    size_t o = sizeof(CSRF_MAGIC) - 1;
    uint64_t e = 0;

    if (n < o || memcmp(p, CSRF_MAGIC, o) != 0)
        return false;
    for (size_t i = 0; i < AG_ARRAY_LEN(fields); i++) {
        size_t len;
        if (n - o < 2)
            return false;
        len = (size_t)p[o] << 8 | p[o + 1];
        o += 2;
        if (n - o < len || memchr(p + o, '\0', len) != NULL)
            return false;
        *fields[i] = ag_request_strndup(rq, (const char *)p + o, len);
        if (*fields[i] == NULL)
            return false;
        o += len;
    }
    if (n - o != 8 || c->state[0] == '\0' || c->nonce[0] == '\0' || c->uri[0] == '\0' || c->rd[0] == '\0')
        return false;
    for (int i = 0; i < 8; i++)
        e = e << 8 | p[o + (size_t)i];
    c->expires_at = (int64_t)e;
    if (c->verifier[0] == '\0')
        c->verifier = NULL;
    return true;
}

/* Format 1: a JSON object {"s", "n", "u", "r", "e", and "v" with PKCE}, held to format 2's rules: no
 * field empty (an empty state would match a callback's empty state), the verifier absent or not empty. */
static bool read_csrf_v1(struct ag_request *rq, const unsigned char *p, size_t n, struct ag_csrf *c)
{
    json_t *o = json_loadb((const char *)p, n, JSON_REJECT_DUPLICATES, NULL), *v;
    const char *keys[] = {"s", "n", "v", "u", "r"};
    const char **fields[] = {&c->state, &c->nonce, &c->verifier, &c->uri, &c->rd};
    bool ok = json_is_object(o);

    for (size_t i = 0; ok && i < AG_ARRAY_LEN(keys); i++) {
        v = json_object_get(o, keys[i]);
        if (json_is_string(v) && json_string_length(v) > 0)
            *fields[i] = ag_request_strdup(rq, json_string_value(v));
        ok = *fields[i] != NULL || (v == NULL && i == 2);
    }
    v = json_object_get(o, "e");
    ok = ok && json_is_integer(v);
    if (ok)
        c->expires_at = (int64_t)json_integer_value(v);
    json_decref(o);
    return ok;
}

bool ag_flow_csrf_open(struct ag_request *rq, const char *name, const char *value, struct ag_csrf *c)
{
    size_t vlen = strlen(value), n = 0, m = 0;
    unsigned char *raw = NULL, *pt = NULL;
    bool ok = false;

    memset(c, 0, sizeof(*c));
    if (vlen > AG_B64URL_LEN(CSRF_MAX + AG_SEAL_OVERHEAD))
        return false;
    raw = malloc(vlen);
    pt = malloc(vlen);
    if (raw == NULL || pt == NULL)
        goto out;
    if (ag_b64url_decode(value, vlen, raw, vlen, &n) != AG_OK)
        goto out;
    if (ag_open(rq->app->csrf_key, name, strlen(name), raw, n, pt, &m) != AG_OK)
        goto out;
    ok = m > 0 && pt[0] == '{' ? read_csrf_v1(rq, pt, m, c) : read_csrf_v2(rq, pt, m, c);
out:
    if (pt != NULL)
        OPENSSL_cleanse(pt, vlen);
    free(pt);
    free(raw);
    if (!ok)
        memset(c, 0, sizeof(*c));
    return ok;
}

enum ag_rc ag_flow_begin(struct ag_request *rq, const char *rd, struct ag_reply *reply)
{
    const struct ag_config *cfg = rq->app->cfg;
    const struct ag_provider_meta *meta = rq->app->provider ? ag_provider_meta(rq->app->provider) : NULL;
    const char *state, *nonce, *verifier = NULL, *challenge = NULL, *uri, *name, *csrf, *location, *cookie;
    int64_t now = (int64_t)time(NULL);
    struct ag_csrf cs;
    bool pkce;

    if (meta == NULL)
        return ag_page_error(rq, reply, 503, "provider_unavailable",
                             "The login provider has not been reached yet. Try again in a moment.");
    uri = redirect_uri(rq);
    if (uri == NULL)
        return ag_page_error(rq, reply, 400, "bad_request", "The request has no usable Host header.");
    state = random_text(rq, 24);
    nonce = random_text(rq, 24);
    if (state == NULL || nonce == NULL)
        return AG_ERR_NOMEM;
    /* PKCE: S256 when configured, or when the provider advertises it and nothing else is configured */
    pkce = strcmp(cfg->code_challenge_method, "S256") == 0 ||
           (cfg->code_challenge_method[0] == '\0' && meta->s256);
    if (pkce) {
        unsigned char h[32];
        char *c = ag_request_alloc(rq, AG_B64URL_LEN(32) + 1);
        verifier = random_text(rq, 32);
        if (c == NULL || verifier == NULL || ag_sha256(verifier, strlen(verifier), h) != AG_OK)
            return AG_ERR_NOMEM;
        ag_b64url_encode(h, sizeof(h), c, AG_B64URL_LEN(32) + 1);
        challenge = c;
    }
    name = csrf_name(rq, state);
    if (name == NULL)
        return AG_ERR_NOMEM;
    cs.state = state;
    cs.nonce = nonce;
    cs.verifier = verifier;
    cs.uri = uri;
    cs.rd = rd;
    cs.expires_at = now + cfg->cookie_csrf_expire / 1000;
    csrf = ag_flow_csrf_seal(rq, name, &cs);
    if (csrf == NULL)
        return AG_ERR_NOMEM;
    location = ag_request_printf(
        rq, "%s%sresponse_type=code&client_id=%s&redirect_uri=%s&scope=%s&state=%s&nonce=%s%s%s%s%s%s%s",
        meta->authorization_endpoint, strchr(meta->authorization_endpoint, '?') ? "&" : "?",
        ag_request_url_escape(rq, cfg->client_id), ag_request_url_escape(rq, uri),
        ag_request_url_escape(rq, cfg->scope), state, nonce,
        challenge ? "&code_challenge_method=S256&code_challenge=" : "", challenge ? challenge : "",
        cfg->prompt && cfg->prompt[0] ? "&prompt=" : "",
        cfg->prompt && cfg->prompt[0] ? ag_request_url_escape(rq, cfg->prompt) : "",
        cfg->acr_values && cfg->acr_values[0] ? "&acr_values=" : "",
        cfg->acr_values && cfg->acr_values[0] ? ag_request_url_escape(rq, cfg->acr_values) : "");
    cookie = ag_cookie_make(rq, name, csrf, cfg->cookie_csrf_expire / 1000);
    if (location == NULL || cookie == NULL)
        return AG_ERR_NOMEM;
    memset(reply, 0, sizeof(*reply));
    ag_reply_text(reply, 302, "Found\n");
    ag_reply_header(reply, MHD_HTTP_HEADER_LOCATION, location);
    ag_reply_header(reply, MHD_HTTP_HEADER_SET_COOKIE, cookie);
    return AG_OK;
}

/* A claim as a string: strings as they are; NULL otherwise. */
static const char *claim_str(json_t *claims, const char *name)
{
    json_t *v = json_object_get(claims, name);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

/* email_verified may be a boolean or (some providers) the string "true"/"false". */
static bool claim_false(json_t *claims, const char *name)
{
    json_t *v = json_object_get(claims, name);
    return json_is_false(v) || (json_is_string(v) && strcmp(json_string_value(v), "false") == 0);
}

static enum ag_rc groups_from(json_t *claims, const char *name, struct ag_strlist *out)
{
    json_t *v = json_object_get(claims, name);
    size_t n;

    if (json_is_string(v)) {
        out->v = calloc(1, sizeof(char *));
        if (out->v == NULL || (out->v[0] = strdup(json_string_value(v))) == NULL)
            return AG_ERR_NOMEM;
        out->n = 1;
        return AG_OK;
    }
    if (!json_is_array(v))
        return AG_OK;
    n = json_array_size(v);
    if (n == 0)
        return AG_OK;
    out->v = calloc(n, sizeof(char *));
    if (out->v == NULL)
        return AG_ERR_NOMEM;
    for (size_t i = 0; i < n; i++) {
        json_t *g = json_array_get(v, i);
        if (!json_is_string(g))
            continue;
        out->v[out->n] = strdup(json_string_value(g));
        if (out->v[out->n] == NULL)
            return AG_ERR_NOMEM;
        out->n++;
    }
    return AG_OK;
}

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

enum ag_rc ag_flow_identity(const struct ag_config *cfg, json_t *claims, struct ag_session *s,
                            const char **why)
{
    memset(s, 0, sizeof(*s));
    if (!cfg->insecure_oidc_allow_unverified_email && claim_false(claims, "email_verified")) {
        *why = "email address not verified";
        return AG_ERR_DENIED;
    }
    s->sub = dup_or_null(claim_str(claims, cfg->user_id_claim));
    if (s->sub == NULL)
        s->sub = dup_or_null(claim_str(claims, "sub"));
    s->email = dup_or_null(claim_str(claims, cfg->oidc_email_claim));
    s->preferred_username = dup_or_null(claim_str(claims, "preferred_username"));
    if (groups_from(claims, cfg->oidc_groups_claim, &s->groups) != AG_OK ||
        ag_claims_scope(claims, &s->scope) != AG_OK ||
        ag_claims_headers(&cfg->claim_headers, claims, &s->claims) != AG_OK)
        return AG_ERR_NOMEM;
    return AG_OK;
}

/* Build the session from the verified ID token claims (and userinfo when the token lacks the email). */
static enum ag_rc session_from_claims(struct ag_request *rq, json_t *claims, struct ag_token_response *tr,
                                      struct ag_session *s, const char **why)
{
    const struct ag_config *cfg = rq->app->cfg;
    json_t *info = NULL;
    int64_t now = (int64_t)time(NULL);
    enum ag_rc rc;

    if (claim_str(claims, cfg->oidc_email_claim) == NULL && tr->access_token != NULL &&
        ag_provider_userinfo(rq->app->provider, tr->access_token, &info) == AG_OK) {
        /* userinfo must describe the same subject as the ID token (OIDC Core 5.3.2) */
        const char *a = claim_str(info, "sub"), *b = claim_str(claims, "sub");
        if (a != NULL && b != NULL && strcmp(a, b) == 0) {
            const char *k;
            json_t *v;
            json_object_foreach(info, k, v)
            {
                if (json_object_get(claims, k) == NULL)
                    json_object_set(claims, k, v);
            }
        }
        json_decref(info);
    }
    rc = ag_flow_identity(cfg, claims, s, why);
    if (rc != AG_OK)
        return rc;
    /* the access token's scopes: as the token response grants them, else as requested (RFC 6749 5.1) */
    free(s->scope);
    s->scope = tr->scope != NULL ? tr->scope : strdup(cfg->scope);
    s->access_token = tr->access_token;
    s->id_token = tr->id_token;
    s->refresh_token = tr->refresh_token;
    tr->access_token = tr->id_token = tr->refresh_token = tr->scope = NULL;
    if (s->scope == NULL)
        return AG_ERR_NOMEM;
    s->created_at = now;
    s->expires_at = now + cfg->cookie_expire / 1000;
    s->refresh_due_at = cfg->cookie_refresh > 0 ? now + cfg->cookie_refresh / 1000 : 0;
    s->access_expires_at = tr->expires_in > 0 ? now + tr->expires_in : 0;
    if (s->sub == NULL) {
        *why = "the ID token names no user";
        return AG_ERR_DENIED;
    }
    return AG_OK;
}

enum ag_rc ag_flow_callback(struct ag_request *rq, struct ag_reply *reply)
{
    const struct ag_config *cfg = rq->app->cfg;
    const char *state = ag_request_arg(rq, "state"), *code = ag_request_arg(rq, "code");
    const char *error = ag_request_arg(rq, "error"), *why = "ok", *name, *value;
    struct ag_token_response tr;
    struct ag_session s;
    struct ag_csrf csrf;
    json_t *claims = NULL;
    int64_t now = (int64_t)time(NULL);
    enum ag_jwt_result jr = AG_JWT_OK;
    enum ag_rc rc;

    memset(&tr, 0, sizeof(tr));
    memset(&s, 0, sizeof(s));
    if (error != NULL) {
        ag_log_auth(rq->client, rq->request_id, NULL, "AuthFailure", "the provider returned an error");
        return ag_page_error(rq, reply, 403, "login_failed",
                             ag_request_printf(rq, "The login provider answered: %s", error));
    }
    if (state == NULL || code == NULL || ag_request_arg_count(rq, "state") != 1 ||
        ag_request_arg_count(rq, "code") != 1 || strlen(state) > 256 || strlen(code) > 4096)
        return ag_page_error(rq, reply, 403, "invalid_request", "The login callback is malformed.");
    /* RFC 9207: when the provider names itself in the callback, it must be ours (mix-up defence). */
    {
        const char *iss = ag_request_arg(rq, "iss");
        const struct ag_provider_meta *meta = ag_provider_meta(rq->app->provider);
        if (iss != NULL &&
            (meta == NULL || ag_request_arg_count(rq, "iss") != 1 || strcmp(iss, meta->issuer) != 0))
            return ag_page_error(rq, reply, 403, "issuer_mismatch",
                                 "The login callback names another issuer than the configured provider.");
    }
    name = csrf_name(rq, state);
    value = name ? ag_cookie_get(rq, name) : NULL;
    if (value == NULL)
        return ag_page_error(rq, reply, 403, "csrf_missing",
                             "The login cookie is missing: the login may have started in another browser or "
                             "expired. Please start again.");
    if (!ag_flow_csrf_open(rq, name, value, &csrf) || strlen(csrf.state) != strlen(state) ||
        CRYPTO_memcmp(csrf.state, state, strlen(state)) != 0 || csrf.expires_at <= now)
        return ag_page_error(rq, reply, 403, "csrf_mismatch",
                             "The login state does not match. Please start again.");
    /* accept each state once, across every instance */
    {
        unsigned char h[32];
        char key[80], hb[48];
        bool first = false;
        ag_sha256(state, strlen(state), h);
        ag_b64url_encode(h, sizeof(h), hb, sizeof(hb));
        snprintf(key, sizeof(key), "authgate:state:%s", hb);
        rc = ag_redis_lock(rq->app->redis, key, "1", cfg->cookie_csrf_expire, &first);
        if (rc != AG_OK) {
            rc = ag_page_error(rq, reply, 503, "session_store_unavailable",
                               "The session store cannot be reached. Try again in a moment.");
            goto out;
        }
        if (!first) {
            rc = ag_page_error(rq, reply, 403, "state_replayed", "This login was already completed.");
            goto out;
        }
    }
    rc = ag_provider_redeem(rq->app->provider, code, csrf.uri, csrf.verifier, &tr);
    if (rc == AG_ERR_UNAVAILABLE) {
        rc = ag_page_error(rq, reply, 503, "provider_unavailable", "The login provider cannot be reached.");
        goto out;
    }
    if (rc != AG_OK || tr.id_token == NULL) {
        ag_log_rq(AG_LOG_WARN, rq->request_id, "code redemption failed: %s",
                  tr.error ? tr.error : (rc == AG_OK ? "no id_token" : ag_rc_str(rc)));
        rc = ag_page_error(rq, reply, 403, "login_failed", "The login could not be completed.");
        goto out;
    }
    rc = ag_provider_verify_id_token(rq->app->provider, tr.id_token, csrf.nonce, now, &claims, &jr);
    if (rc != AG_OK) {
        ag_log_rq(AG_LOG_WARN, rq->request_id, "ID token refused: %s", ag_jwt_result_str(jr));
        rc = ag_page_error(rq, reply, 403, "invalid_id_token", "The login provider's ID token was refused.");
        goto out;
    }
    rc = session_from_claims(rq, claims, &tr, &s, &why);
    if (rc == AG_OK)
        rc = ag_policy_check(rq->app->policy, s.email, &s.groups, &why);
    if (rc != AG_OK) {
        ag_log_auth(rq->client, rq->request_id, s.email, "AuthFailure", why);
        rc = ag_page_error(rq, reply, 403, "access_denied", "You are not allowed to use this application.");
        goto out;
    }
    memset(reply, 0, sizeof(*reply));
    ag_reply_text(reply, 302, "Found\n");
    rc = ag_session_create(rq, &s, reply);
    if (rc != AG_OK) {
        rc = ag_page_error(rq, reply, rc == AG_ERR_UNAVAILABLE ? 503 : 500, "session_error",
                           "The session could not be stored. Try again in a moment.");
        goto out;
    }
    ag_reply_header(reply, MHD_HTTP_HEADER_SET_COOKIE, ag_cookie_make(rq, name, "", -1));
    ag_reply_header(reply, MHD_HTTP_HEADER_LOCATION, csrf.rd);
    rq->user = ag_request_strdup(rq, s.email);
    ag_log_auth(rq->client, rq->request_id, s.email, "AuthSuccess", "authenticated via OpenID Connect");
out:
    ag_token_response_clear(&tr);
    ag_session_clear(&s);
    json_decref(claims);
    return rc;
}
