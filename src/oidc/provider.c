/* SPDX-License-Identifier: Apache-2.0
 * The provider: a background thread does discovery and loads the JWKS (retrying with backoff), then
 * publishes the immutable metadata with one atomic store; request threads read it without a lock.
 * The JWKS is a reference-counted set swapped whole under a mutex, so verifications in flight keep
 * the set they started with while an unknown kid triggers a (rate-limited) refetch. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/crypto.h>

#include "log.h"
#include "net/http_client.h"
#include "oidc/provider.h"

#define BACKOFF_FIRST_MS 500
#define BACKOFF_MAX_MS   30000
#define JWKS_REFRESH_MS  (3600 * 1000)
#define SECRET_FILE_MAX  65536 /* as the config loader: a secret file is never this large */
#define WELL_KNOWN       "/.well-known/openid-configuration"
#define MAX_TOKEN_FIELDS 20

struct ag_provider {
    /* Copied from the config at ag_provider_new(); read-only afterwards. */
    char *issuer, *client_id, *secret_value, *secret_file, *ca_file;
    char *login_url, *redeem_url, *jwks_url, *profile_url;
    char **audiences; /* client_id first, then oidc_extra_audiences */
    size_t naudiences;
    char **algs;
    size_t nalgs;
    int64_t timeout_ms;
    bool skip_discovery, want_s256;

    pthread_t thread;
    bool started;
    atomic_bool stop;                      /* also cancels the thread's HTTP transfer in flight */
    struct ag_provider_meta *_Atomic meta; /* NULL until ready, then immutable */
    pthread_mutex_t lock;                  /* guards jwks; with `wake`, the thread's sleeps */
    pthread_cond_t wake;
    struct ag_jwks *jwks;         /* current set, one reference held here */
    pthread_mutex_t refetch_lock; /* serialises unknown-kid refetches */
    int64_t last_refetch_ms;      /* monotonic; guarded by refetch_lock */
    bool refetched;               /* an unknown-kid refetch happened; guarded by refetch_lock */
};

static int64_t mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void set_err(char *err, size_t errlen, const char *msg)
{
    if (err && errlen > 0)
        snprintf(err, errlen, "%s", msg);
}

/* A copy of a config string; "" and NULL both mean unset and give NULL. */
static bool dup_opt(const char *s, char **out)
{
    *out = NULL;
    if (!s || s[0] == '\0')
        return true;
    *out = strdup(s);
    return *out != NULL;
}

static void free_list(char **v, size_t n)
{
    for (size_t i = 0; v && i < n; i++)
        free(v[i]);
    free(v);
}

static void free_secret(char *s)
{
    if (s) {
        OPENSSL_cleanse(s, strlen(s));
        free(s);
    }
}

static void meta_free(struct ag_provider_meta *m)
{
    if (!m)
        return;
    free(m->issuer);
    free(m->authorization_endpoint);
    free(m->token_endpoint);
    free(m->userinfo_endpoint);
    free(m->jwks_uri);
    free(m->end_session_endpoint);
    free(m);
}

enum ag_rc ag_provider_new(const struct ag_config *cfg, struct ag_provider **out, char *err, size_t errlen)
{
    struct ag_provider *p = NULL;
    enum ag_rc rc = AG_ERR_NOMEM;
    bool ok;
    size_t nextra;

    *out = NULL;
    if (!cfg) {
        set_err(err, errlen, "no configuration");
        return AG_ERR_INVALID;
    }
    p = calloc(1, sizeof(*p));
    if (!p)
        goto out;
    /* Mutexes and the condition variable exist from here on, so ag_provider_free() may always
     * destroy them. */
    {
        pthread_condattr_t ca;
        pthread_condattr_init(&ca);
        /* Sleeps are measured on the monotonic clock: a wall-clock jump must not stall retries. */
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&p->wake, &ca);
        pthread_condattr_destroy(&ca);
        pthread_mutex_init(&p->lock, NULL);
        pthread_mutex_init(&p->refetch_lock, NULL);
    }
    atomic_init(&p->stop, false);
    atomic_init(&p->meta, NULL);
    p->skip_discovery = cfg->skip_oidc_discovery;
    p->want_s256 = cfg->code_challenge_method && strcmp(cfg->code_challenge_method, "S256") == 0;
    p->timeout_ms = cfg->provider_timeout > 0 ? cfg->provider_timeout : 10000;

    ok = dup_opt(cfg->oidc_issuer_url, &p->issuer) && dup_opt(cfg->client_id, &p->client_id) &&
         dup_opt(cfg->client_secret.value, &p->secret_value) &&
         dup_opt(cfg->client_secret.file, &p->secret_file) && dup_opt(cfg->provider_ca_file, &p->ca_file) &&
         dup_opt(cfg->login_url, &p->login_url) && dup_opt(cfg->redeem_url, &p->redeem_url) &&
         dup_opt(cfg->oidc_jwks_url, &p->jwks_url) && dup_opt(cfg->profile_url, &p->profile_url);
    if (!ok)
        goto out;

    rc = AG_ERR_INVALID;
    if (!p->client_id) {
        set_err(err, errlen, "client_id is required");
        goto out;
    }
    /* Even without discovery the issuer is needed: every ID token's iss is checked against it. */
    if (!p->issuer) {
        set_err(err, errlen, "oidc_issuer_url is required (it is the expected ID token issuer)");
        goto out;
    }
    if (p->skip_discovery && (!p->login_url || !p->redeem_url || !p->jwks_url)) {
        set_err(err, errlen, "skip_oidc_discovery needs login_url, redeem_url and oidc_jwks_url");
        goto out;
    }

    rc = AG_ERR_NOMEM;
    nextra = cfg->oidc_extra_audiences.v ? cfg->oidc_extra_audiences.n : 0;
    p->audiences = calloc(nextra + 1, sizeof(char *));
    if (!p->audiences)
        goto out;
    p->audiences[p->naudiences++] = strdup(p->client_id);
    for (size_t i = 0; i < nextra; i++)
        p->audiences[p->naudiences++] = strdup(cfg->oidc_extra_audiences.v[i]);
    for (size_t i = 0; i < p->naudiences; i++)
        if (!p->audiences[i])
            goto out;
    if (cfg->oidc_enabled_signing_algs.n > 0 && cfg->oidc_enabled_signing_algs.v) {
        p->algs = calloc(cfg->oidc_enabled_signing_algs.n, sizeof(char *));
        if (!p->algs)
            goto out;
        for (size_t i = 0; i < cfg->oidc_enabled_signing_algs.n; i++)
            p->algs[p->nalgs++] = strdup(cfg->oidc_enabled_signing_algs.v[i]);
    } else {
        /* OIDC Core 15.1: RS256 is the one alg every provider must support. */
        p->algs = calloc(1, sizeof(char *));
        if (!p->algs)
            goto out;
        p->algs[p->nalgs++] = strdup("RS256");
    }
    for (size_t i = 0; i < p->nalgs; i++)
        if (!p->algs[i])
            goto out;
    rc = AG_OK;
out:
    if (rc == AG_ERR_NOMEM)
        set_err(err, errlen, "out of memory");
    if (rc != AG_OK) {
        ag_provider_free(p);
        p = NULL;
    }
    *out = p;
    return rc;
}

static struct ag_http_opts http_opts(struct ag_provider *p, bool cancellable)
{
    struct ag_http_opts o = {p->timeout_ms, p->timeout_ms, p->ca_file, cancellable ? &p->stop : NULL};
    return o;
}

/* A JSON string member copied; false when present but not a string, or when it holds a NUL
 * (a value that C code would silently truncate). Absent gives true with *out NULL. */
static bool json_str_dup(const json_t *obj, const char *key, char **out)
{
    const json_t *v = json_object_get(obj, key);

    *out = NULL;
    if (!v || json_is_null(v))
        return true;
    if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v))
        return false;
    *out = strdup(json_string_value(v));
    return *out != NULL;
}

static bool is_http_url(const char *s)
{
    return s && (strncasecmp(s, "https://", 8) == 0 || strncasecmp(s, "http://", 7) == 0) &&
           s[strcspn(s, ":") + 3] != '\0';
}

static bool array_has(const json_t *arr, const char *want)
{
    size_t i;
    const json_t *v;

    json_array_foreach(arr, i, v)
    {
        if (json_is_string(v) && strcmp(json_string_value(v), want) == 0)
            return true;
    }
    return false;
}

/* OIDC Discovery 4: GET <issuer>/.well-known/openid-configuration (a trailing '/' of the issuer
 * removed first), then section 4.3: the document's issuer must be exactly ours. */
static enum ag_rc discover(struct ag_provider *p, struct ag_provider_meta **out)
{
    struct ag_http_opts opts = http_opts(p, true);
    struct ag_http_response resp = {0};
    struct ag_provider_meta *m = NULL;
    json_t *doc = NULL;
    const json_t *methods;
    const char *iss;
    enum ag_rc rc;
    char *url = NULL;
    size_t ilen = strlen(p->issuer);

    *out = NULL;
    if (ilen > 0 && p->issuer[ilen - 1] == '/')
        ilen--;
    rc = AG_ERR_NOMEM;
    url = malloc(ilen + sizeof(WELL_KNOWN));
    if (!url)
        goto out;
    memcpy(url, p->issuer, ilen);
    memcpy(url + ilen, WELL_KNOWN, sizeof(WELL_KNOWN));
    rc = ag_http_get(&opts, url, NULL, &resp);
    if (rc != AG_OK)
        goto out;
    rc = AG_ERR_UNAVAILABLE;
    if (resp.status != 200) {
        ag_log_warn("OIDC discovery for issuer %s answered HTTP %ld", p->issuer, resp.status);
        goto out;
    }
    rc = AG_ERR_INVALID;
    doc = json_loadb(resp.body, resp.len, JSON_REJECT_DUPLICATES, NULL);
    if (!json_is_object(doc)) {
        ag_log_error("OIDC discovery for issuer %s: the document is not a JSON object", p->issuer);
        goto out;
    }
    iss = json_string_value(json_object_get(doc, "issuer"));
    if (!iss || strcmp(iss, p->issuer) != 0) {
        /* Section 4.3: a mismatch may mean an impersonation attempt; never use the document. */
        ag_log_error("OIDC discovery: the document's issuer \"%.200s\" is not the configured \"%s\"",
                     iss ? iss : "(missing)", p->issuer);
        goto out;
    }
    m = calloc(1, sizeof(*m));
    if (!m) {
        rc = AG_ERR_NOMEM;
        goto out;
    }
    if (!json_str_dup(doc, "issuer", &m->issuer) ||
        !json_str_dup(doc, "authorization_endpoint", &m->authorization_endpoint) ||
        !json_str_dup(doc, "token_endpoint", &m->token_endpoint) ||
        !json_str_dup(doc, "userinfo_endpoint", &m->userinfo_endpoint) ||
        !json_str_dup(doc, "jwks_uri", &m->jwks_uri) ||
        !json_str_dup(doc, "end_session_endpoint", &m->end_session_endpoint) ||
        !is_http_url(m->authorization_endpoint) || !is_http_url(m->token_endpoint) ||
        !is_http_url(m->jwks_uri) || (m->userinfo_endpoint && !is_http_url(m->userinfo_endpoint)) ||
        (m->end_session_endpoint && !is_http_url(m->end_session_endpoint))) {
        ag_log_error("OIDC discovery for issuer %s: authorization_endpoint, token_endpoint and jwks_uri "
                     "must be http(s) URLs (and userinfo_endpoint, end_session_endpoint when present)",
                     p->issuer);
        goto out;
    }
    m->s256 = array_has(json_object_get(doc, "code_challenge_methods_supported"), "S256");
    methods = json_object_get(doc, "token_endpoint_auth_methods_supported");
    m->auth_basic = !methods || array_has(methods, "client_secret_basic");
    if (methods && !m->auth_basic && !array_has(methods, "client_secret_post"))
        ag_log_warn("OIDC discovery for issuer %s: the token endpoint supports neither client_secret_basic "
                    "nor client_secret_post; trying client_secret_post",
                    p->issuer);
    *out = m;
    m = NULL;
    rc = AG_OK;
out:
    meta_free(m);
    json_decref(doc);
    ag_http_response_clear(&resp);
    free(url);
    return rc;
}

/* Without discovery the endpoints come from the config as given. */
static enum ag_rc static_meta(struct ag_provider *p, struct ag_provider_meta **out)
{
    struct ag_provider_meta *m = calloc(1, sizeof(*m));
    bool ok;

    *out = NULL;
    if (!m)
        return AG_ERR_NOMEM;
    ok = dup_opt(p->issuer, &m->issuer) && dup_opt(p->login_url, &m->authorization_endpoint) &&
         dup_opt(p->redeem_url, &m->token_endpoint) && dup_opt(p->jwks_url, &m->jwks_uri) &&
         dup_opt(p->profile_url, &m->userinfo_endpoint);
    if (!ok) {
        meta_free(m);
        return AG_ERR_NOMEM;
    }
    m->s256 = p->want_s256;
    m->auth_basic = true;
    *out = m;
    return AG_OK;
}

static enum ag_rc fetch_jwks(struct ag_provider *p, const char *uri, bool cancellable, struct ag_jwks **out)
{
    struct ag_http_opts opts = http_opts(p, cancellable);
    struct ag_http_response resp = {0};
    char err[512];
    enum ag_rc rc;

    *out = NULL;
    rc = ag_http_get(&opts, uri, NULL, &resp);
    if (rc != AG_OK)
        goto out;
    rc = AG_ERR_UNAVAILABLE;
    if (resp.status != 200) {
        ag_log_warn("the JWKS of issuer %s answered HTTP %ld", p->issuer, resp.status);
        goto out;
    }
    err[0] = '\0';
    rc = ag_jwks_parse(resp.body, resp.len, out, err, sizeof(err));
    if (rc != AG_OK)
        ag_log_error("the JWKS of issuer %s is unusable (%s): %s", p->issuer, ag_rc_str(rc), err);
    else if (ag_jwks_skipped(*out) > 0)
        ag_log_info("the JWKS of issuer %s: %zu key(s) skipped: %s", p->issuer, ag_jwks_skipped(*out), err);
out:
    ag_http_response_clear(&resp);
    return rc;
}

/* The current set with one reference for the caller. */
static struct ag_jwks *jwks_get(struct ag_provider *p)
{
    struct ag_jwks *set;

    pthread_mutex_lock(&p->lock);
    set = ag_jwks_ref(p->jwks);
    pthread_mutex_unlock(&p->lock);
    return set;
}

/* Install `set` (its reference passes to the provider); readers keep the old one until done. */
static void jwks_swap(struct ag_provider *p, struct ag_jwks *set)
{
    struct ag_jwks *old;

    pthread_mutex_lock(&p->lock);
    old = p->jwks;
    p->jwks = set;
    pthread_mutex_unlock(&p->lock);
    ag_jwks_unref(old);
}

/* Sleep up to `ms`, waking early when the provider is being freed. Returns true when stopping. */
static bool sleep_or_stop(struct ag_provider *p, int64_t ms)
{
    struct timespec until;
    bool stop;

    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += (time_t)(ms / 1000);
    until.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&p->lock);
    while (!atomic_load(&p->stop) && pthread_cond_timedwait(&p->wake, &p->lock, &until) != ETIMEDOUT)
        ;
    stop = atomic_load(&p->stop);
    pthread_mutex_unlock(&p->lock);
    return stop;
}

static void *run(void *arg)
{
    struct ag_provider *p = arg;
    struct ag_provider_meta *m = NULL;
    struct ag_jwks *set = NULL;
    int64_t delay = BACKOFF_FIRST_MS;
    enum ag_rc rc;

    while (!atomic_load(&p->stop)) {
        rc = AG_OK;
        if (!m)
            rc = p->skip_discovery ? static_meta(p, &m) : discover(p, &m);
        if (rc == AG_OK)
            rc = fetch_jwks(p, m->jwks_uri, true, &set);
        if (rc == AG_OK) {
            jwks_swap(p, set);
            ag_log_info("OIDC provider %s ready (%zu signing key(s))", p->issuer, ag_jwks_count(set));
            atomic_store_explicit(&p->meta, m, memory_order_release);
            m = NULL;
            break;
        }
        if (atomic_load(&p->stop) || sleep_or_stop(p, delay))
            break;
        delay = delay * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : delay * 2;
    }
    /* Not ready: the metadata found so far was never published and is ours to drop. */
    meta_free(m);
    m = NULL;

    /* Ready: an hourly refetch drops keys the provider withdrew (an unknown kid only ever adds). */
    while (atomic_load(&p->meta) && !sleep_or_stop(p, JWKS_REFRESH_MS)) {
        if (fetch_jwks(p, atomic_load(&p->meta)->jwks_uri, true, &set) == AG_OK)
            jwks_swap(p, set);
    }
    return NULL;
}

enum ag_rc ag_provider_start(struct ag_provider *p)
{
    if (!p || p->started)
        return AG_ERR_INVALID;
    if (pthread_create(&p->thread, NULL, run, p) != 0) {
        ag_log_error("cannot start the OIDC provider thread");
        return AG_ERR_INTERNAL;
    }
    p->started = true;
    return AG_OK;
}

bool ag_provider_ready(struct ag_provider *p)
{
    return p && atomic_load_explicit(&p->meta, memory_order_acquire) != NULL;
}

const struct ag_provider_meta *ag_provider_meta(struct ag_provider *p)
{
    return p ? atomic_load_explicit(&p->meta, memory_order_acquire) : NULL;
}

/* After an unknown kid seen with `seen`: refetch unless another thread already replaced `seen`
 * (then its new set is what we want) or an unknown-kid refetch happened in the last
 * AG_PROVIDER_REFETCH_S seconds (a flood of made-up kids must not become a flood of JWKS requests).
 * Comparing with `seen` is safe: the caller's reference keeps that address from being reused. */
static void refetch_for_kid(struct ag_provider *p, const struct ag_provider_meta *m,
                            const struct ag_jwks *seen)
{
    struct ag_jwks *set = NULL;
    bool replaced;
    int64_t now;

    pthread_mutex_lock(&p->refetch_lock);
    pthread_mutex_lock(&p->lock);
    replaced = p->jwks != seen;
    pthread_mutex_unlock(&p->lock);
    now = mono_ms();
    if (replaced || (p->refetched && now - p->last_refetch_ms < AG_PROVIDER_REFETCH_S * 1000))
        goto out;
    p->refetched = true;
    p->last_refetch_ms = now;
    ag_log_info("an ID token names a key not in the JWKS of issuer %s: refetching it", p->issuer);
    if (fetch_jwks(p, m->jwks_uri, false, &set) == AG_OK)
        jwks_swap(p, set);
out:
    pthread_mutex_unlock(&p->refetch_lock);
}

static enum ag_rc verify(struct ag_provider *p, const char *token, const char *nonce, bool access,
                         int64_t now, json_t **claims, enum ag_jwt_result *why)
{
    const struct ag_provider_meta *m;
    struct ag_jwt_expect ex;
    struct ag_jwks *set = NULL;
    enum ag_jwt_result res = AG_JWT_INTERNAL;
    enum ag_rc rc = AG_ERR_INTERNAL;
    size_t len;

    if (claims)
        *claims = NULL;
    if (!p || !token)
        goto out;
    m = ag_provider_meta(p);
    if (!m) {
        rc = AG_ERR_UNAVAILABLE;
        goto out;
    }
    ex = (struct ag_jwt_expect){.issuer = m->issuer,
                                .audiences = (const char *const *)p->audiences,
                                .naudiences = p->naudiences,
                                .algs = (const char *const *)p->algs,
                                .nalgs = p->nalgs,
                                .nonce = nonce,
                                /* azp names our client in ID tokens; in an access token it names whichever
                                 * client asked for it */
                                .client_id = access ? NULL : p->client_id,
                                .now = now,
                                .skew_s = AG_PROVIDER_SKEW_S,
                                .access_token = access};
    len = strlen(token);
    set = jwks_get(p);
    res = ag_jwt_verify(token, len, set, &ex, claims);
    if (res == AG_JWT_UNKNOWN_KID) {
        refetch_for_kid(p, m, set);
        ag_jwks_unref(set);
        set = jwks_get(p);
        res = ag_jwt_verify(token, len, set, &ex, claims);
    }
    rc = res == AG_JWT_OK ? AG_OK : res == AG_JWT_INTERNAL ? AG_ERR_INTERNAL : AG_ERR_UNAUTHENTICATED;
out:
    ag_jwks_unref(set);
    if (why)
        *why = res;
    return rc;
}

enum ag_rc ag_provider_verify_id_token(struct ag_provider *p, const char *token, const char *nonce,
                                       int64_t now, json_t **claims, enum ag_jwt_result *why)
{
    return verify(p, token, nonce, false, now, claims, why);
}

enum ag_rc ag_provider_verify_access_token(struct ag_provider *p, const char *token, int64_t now,
                                           json_t **claims, enum ag_jwt_result *why)
{
    return verify(p, token, NULL, true, now, claims, why);
}

/* The client secret as of now: client_secret_file is read again on each use so a rotated secret
 * takes effect without a restart; if the file cannot be read right now (a rotation tool replacing
 * it), the secret loaded at start is used. Returns a copy the caller cleanses (free_secret), or
 * NULL with *rc AG_OK when the client has no secret (a public client). */
static char *client_secret(struct ag_provider *p, enum ag_rc *rc)
{
    FILE *f = NULL;
    char *buf = NULL, *res = NULL;
    size_t len = 0;

    *rc = AG_OK;
    if (p->secret_file) {
        buf = malloc(SECRET_FILE_MAX + 1);
        if (!buf) {
            *rc = AG_ERR_NOMEM;
            goto out;
        }
        f = fopen(p->secret_file, "re");
        if (f) {
            len = fread(buf, 1, SECRET_FILE_MAX + 1, f);
            if (ferror(f))
                len = 0;
        }
        if (len > SECRET_FILE_MAX || memchr(buf, '\0', len))
            len = 0;
        /* One trailing line break is what `echo secret > file` adds (as the config loader). */
        if (len > 0 && buf[len - 1] == '\n')
            len--;
        if (len > 0 && buf[len - 1] == '\r')
            len--;
        if (len > 0) {
            buf[len] = '\0';
            res = buf;
            buf = NULL;
            goto out;
        }
        ag_log_warn("cannot read a secret from client_secret_file %s; using the one read at start",
                    p->secret_file);
    }
    if (p->secret_value) {
        res = strdup(p->secret_value);
        if (!res)
            *rc = AG_ERR_NOMEM;
    }
out:
    if (f)
        fclose(f);
    if (buf) {
        OPENSSL_cleanse(buf, SECRET_FILE_MAX + 1);
        free(buf);
    }
    return res;
}

void ag_token_response_clear(struct ag_token_response *r)
{
    if (!r)
        return;
    free_secret(r->access_token);
    free_secret(r->id_token);
    free_secret(r->refresh_token);
    free(r->token_type);
    free(r->scope);
    free(r->error);
    free(r->error_description);
    memset(r, 0, sizeof(*r));
}

/* Turn a token endpoint answer into *out (RFC 6749 5.1 success, 5.2 error). */
static enum ag_rc token_parse(struct ag_provider *p, const struct ag_http_response *resp,
                              struct ag_token_response *out)
{
    json_t *doc = NULL;
    const json_t *exp;
    enum ag_rc rc = AG_ERR_INVALID;

    if (resp->status == 429 || resp->status >= 500) {
        ag_log_warn("the token endpoint of issuer %s answered HTTP %ld", p->issuer, resp->status);
        rc = AG_ERR_UNAVAILABLE;
        goto out;
    }
    doc = json_loadb(resp->body, resp->len, JSON_REJECT_DUPLICATES, NULL);
    if (!json_is_object(doc)) {
        ag_log_warn("the token endpoint of issuer %s answered HTTP %ld without a JSON object", p->issuer,
                    resp->status);
        goto out;
    }
    if (resp->status == 200) {
        if (!json_str_dup(doc, "access_token", &out->access_token) ||
            !json_str_dup(doc, "id_token", &out->id_token) ||
            !json_str_dup(doc, "refresh_token", &out->refresh_token) ||
            !json_str_dup(doc, "token_type", &out->token_type) || !json_str_dup(doc, "scope", &out->scope) ||
            !out->access_token) {
            ag_log_warn("the token endpoint of issuer %s answered 200 without a usable access_token",
                        p->issuer);
            goto out;
        }
        exp = json_object_get(doc, "expires_in");
        /* Some providers send it as a string ("3600"); anything unparsable counts as unknown. */
        if (json_is_integer(exp) && json_integer_value(exp) > 0) {
            out->expires_in = json_integer_value(exp);
        } else if (json_is_string(exp)) {
            char *end = NULL;
            long long v;
            errno = 0;
            v = strtoll(json_string_value(exp), &end, 10);
            if (errno == 0 && end && *end == '\0' && end != json_string_value(exp) && v > 0)
                out->expires_in = v;
        }
        rc = AG_OK;
        goto out;
    }
    if ((resp->status == 400 || resp->status == 401) && json_str_dup(doc, "error", &out->error) &&
        out->error) {
        /* Best effort: a malformed description does not change the outcome. */
        if (!json_str_dup(doc, "error_description", &out->error_description))
            out->error_description = NULL;
        rc = strcmp(out->error, "invalid_grant") == 0 ? AG_ERR_DENIED : AG_ERR_INVALID;
        ag_log_warn("the token endpoint of issuer %s refused the request: HTTP %ld, error %.64s", p->issuer,
                    resp->status, out->error);
        goto out;
    }
    ag_log_warn("the token endpoint of issuer %s answered HTTP %ld", p->issuer, resp->status);
out:
    json_decref(doc);
    /* Only an error answer's error/error_description survive a failure. */
    if (rc != AG_OK && !out->error)
        ag_token_response_clear(out);
    return rc;
}

/* POST `grant` (name,value pairs, NULL-terminated, at most 4 pairs) to `url` (the token or the
 * introspection endpoint) with client authentication (RFC 6749 2.3.1): HTTP Basic of the form-encoded
 * id and secret when the provider allows it, else both in the body; a public client (no secret) sends
 * only client_id. The answer in *resp (the caller clears it). */
static enum ag_rc client_post(struct ag_provider *p, const char *url, const char *const *grant,
                              struct ag_http_response *resp)
{
    const struct ag_provider_meta *m = ag_provider_meta(p);
    struct ag_http_opts opts = http_opts(p, false);
    const char *fields[MAX_TOKEN_FIELDS];
    char *secret = NULL, *user = NULL, *pass = NULL;
    size_t n = 0;
    enum ag_rc rc;

    if (!m)
        return AG_ERR_UNAVAILABLE;
    secret = client_secret(p, &rc);
    if (rc != AG_OK)
        goto out;
    for (size_t i = 0; grant[i] && n + 4 < MAX_TOKEN_FIELDS - 1; i += 2) {
        fields[n++] = grant[i];
        fields[n++] = grant[i + 1];
    }
    if (secret && m->auth_basic) {
        user = ag_http_form_encode(p->client_id);
        pass = ag_http_form_encode(secret);
        if (!user || !pass) {
            rc = AG_ERR_NOMEM;
            goto out;
        }
    } else {
        fields[n++] = "client_id";
        fields[n++] = p->client_id;
        if (secret) {
            fields[n++] = "client_secret";
            fields[n++] = secret;
        }
    }
    fields[n] = NULL;
    rc = ag_http_post_form(&opts, url ? url : m->token_endpoint, fields, user, pass, resp);
out:
    free_secret(secret);
    free_secret(user);
    free_secret(pass);
    return rc;
}

static enum ag_rc token_call(struct ag_provider *p, const char *const *grant, struct ag_token_response *out)
{
    struct ag_http_response resp = {0};
    enum ag_rc rc;

    memset(out, 0, sizeof(*out));
    rc = client_post(p, NULL, grant, &resp);
    if (rc == AG_OK)
        rc = token_parse(p, &resp, out);
    ag_http_response_clear(&resp);
    return rc;
}

enum ag_rc ag_provider_introspect(struct ag_provider *p, const char *url, const char *token, json_t **out)
{
    const char *grant[] = {"token", token, "token_type_hint", "access_token", NULL};
    struct ag_http_response resp = {0};
    enum ag_rc rc;

    *out = NULL;
    rc = client_post(p, url, grant, &resp);
    if (rc == AG_OK) {
        json_t *doc =
            resp.status == 200 ? json_loadb(resp.body, resp.len, JSON_REJECT_DUPLICATES, NULL) : NULL;
        if (json_is_object(doc)) {
            *out = doc;
        } else {
            json_decref(doc);
            ag_log_warn("the introspection endpoint answered HTTP %ld without a JSON object", resp.status);
            rc = resp.status >= 500 ? AG_ERR_UNAVAILABLE : AG_ERR_INVALID;
        }
    }
    ag_http_response_clear(&resp);
    return rc;
}

enum ag_rc ag_provider_redeem(struct ag_provider *p, const char *code, const char *redirect_uri,
                              const char *code_verifier, struct ag_token_response *out)
{
    const char *grant[] = {"grant_type", "authorization_code", "code", code, "redirect_uri", redirect_uri,
                           /* a NULL value is skipped by the form encoder */
                           "code_verifier", code_verifier, NULL};

    if (!out)
        return AG_ERR_INTERNAL;
    memset(out, 0, sizeof(*out));
    if (!p || !code || !redirect_uri)
        return AG_ERR_INTERNAL;
    return token_call(p, grant, out);
}

enum ag_rc ag_provider_refresh(struct ag_provider *p, const char *refresh_token,
                               struct ag_token_response *out)
{
    const char *grant[] = {"grant_type", "refresh_token", "refresh_token", refresh_token, NULL};

    if (!out)
        return AG_ERR_INTERNAL;
    memset(out, 0, sizeof(*out));
    if (!p || !refresh_token)
        return AG_ERR_INTERNAL;
    return token_call(p, grant, out);
}

enum ag_rc ag_provider_userinfo(struct ag_provider *p, const char *access_token, json_t **out)
{
    const struct ag_provider_meta *m;
    struct ag_http_opts opts;
    struct ag_http_response resp = {0};
    json_t *doc = NULL;
    enum ag_rc rc = AG_ERR_INTERNAL;

    if (!out)
        return AG_ERR_INTERNAL;
    *out = NULL;
    if (!p || !access_token)
        goto out;
    m = ag_provider_meta(p);
    rc = AG_ERR_UNAVAILABLE;
    if (!m)
        goto out;
    rc = AG_ERR_NOT_FOUND;
    if (!m->userinfo_endpoint)
        goto out;
    opts = http_opts(p, false);
    rc = ag_http_get(&opts, m->userinfo_endpoint, access_token, &resp);
    if (rc != AG_OK)
        goto out;
    if (resp.status == 401 || resp.status == 403) {
        rc = AG_ERR_UNAUTHENTICATED;
        goto out;
    }
    if (resp.status == 429 || resp.status >= 500) {
        ag_log_warn("the userinfo endpoint of issuer %s answered HTTP %ld", p->issuer, resp.status);
        rc = AG_ERR_UNAVAILABLE;
        goto out;
    }
    rc = AG_ERR_INVALID;
    if (resp.status != 200) {
        ag_log_warn("the userinfo endpoint of issuer %s answered HTTP %ld", p->issuer, resp.status);
        goto out;
    }
    /* OIDC Core 5.3.2 allows a signed or encrypted answer; authgate does not ask for one. */
    if (strncasecmp(resp.content_type, "application/jwt", 15) == 0) {
        ag_log_warn("the userinfo endpoint of issuer %s answered application/jwt, which is not supported",
                    p->issuer);
        goto out;
    }
    doc = json_loadb(resp.body, resp.len, JSON_REJECT_DUPLICATES, NULL);
    if (!json_is_object(doc)) {
        ag_log_warn("the userinfo endpoint of issuer %s did not answer a JSON object", p->issuer);
        goto out;
    }
    *out = doc;
    doc = NULL;
    rc = AG_OK;
out:
    json_decref(doc);
    ag_http_response_clear(&resp);
    return rc;
}

void ag_provider_free(struct ag_provider *p)
{
    if (!p)
        return;
    if (p->started) {
        pthread_mutex_lock(&p->lock);
        atomic_store(&p->stop, true);
        pthread_cond_broadcast(&p->wake);
        pthread_mutex_unlock(&p->lock);
        pthread_join(p->thread, NULL);
        p->started = false;
    }
    meta_free(atomic_load(&p->meta));
    ag_jwks_unref(p->jwks);
    free(p->issuer);
    free(p->client_id);
    free_secret(p->secret_value);
    free(p->secret_file);
    free(p->ca_file);
    free(p->login_url);
    free(p->redeem_url);
    free(p->jwks_url);
    free(p->profile_url);
    free_list(p->audiences, p->naudiences);
    free_list(p->algs, p->nalgs);
    pthread_cond_destroy(&p->wake);
    pthread_mutex_destroy(&p->lock);
    pthread_mutex_destroy(&p->refetch_lock);
    free(p);
}
