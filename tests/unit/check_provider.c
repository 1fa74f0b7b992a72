/* SPDX-License-Identifier: Apache-2.0
 * Tests for src/oidc/provider.c and src/net/http_client.c against a fake OpenID Provider served by
 * libmicrohttpd on 127.0.0.1 inside the test: discovery, a JWKS of RSA keys generated here, a token
 * endpoint that checks client authentication and returns ID tokens signed here (RS256, built by
 * hand), and userinfo. Every wait is bounded. */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <microhttpd.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>

#include "config.h"
#include "log.h"
#include "net/http_client.h"
#include "oidc/provider.h"
#include "util/b64.h"

#define NKEYS     3
#define CLIENT_ID "authgate"
/* Characters that must be form-encoded before Basic (RFC 6749 2.3.1) or in a form body. */
#define SECRET   "s3cr:t/+ %&="
#define HUGE_LEN (2u * 1024u * 1024u)

static EVP_PKEY *keys[NKEYS]; /* generated once in main(); forked tests inherit them */
static const char *const kids[NKEYS] = {"k1", "k2", "k3"};

enum token_mode { TOK_OK = 0, TOK_INVALID_GRANT, TOK_500, TOK_HUGE, TOK_HUGE_CHUNKED, TOK_NOT_OBJECT };

/* The fake provider. Settings and what it saw are guarded by mu (the daemon answers on its own
 * thread); hit counters are atomic. */
static struct fake {
    struct MHD_Daemon *d;
    int port;
    char base[64];
    char issuer[128];
    pthread_mutex_t mu;
    int jwks_key;
    bool wrong_issuer, post_only;
    enum token_mode token_mode;
    char seen_auth[16], seen_client_id[64], seen_secret[64], seen_grant[64], seen_code[64],
        seen_redirect[128], seen_verifier[64], seen_refresh[64];
    atomic_int discovery_hits, jwks_hits, token_hits, connections;
} fk;

static struct ag_provider *prov;
static char errbuf[256];
static char secret_path[64];

/* ---- helpers ---- */

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int free_port(void)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM, 0), port;
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    port = ntohs(sa.sin_port);
    close(fd);
    return port;
}

static char *b64url(const void *in, size_t n)
{
    size_t cap = AG_B64URL_LEN(n) + 1;
    char *out = malloc(cap);
    ck_assert_ptr_nonnull(out);
    ck_assert_uint_eq(ag_b64url_encode(in, n, out, cap), cap - 1);
    return out;
}

/* A compact JWS (RS256) over `claims` with key `k` and header kid `kid`, built by hand. */
static char *mint_with(int k, const char *kid, json_t *claims)
{
    json_t *hdr = json_pack("{s:s,s:s,s:s}", "alg", "RS256", "typ", "JWT", "kid", kid);
    char *h = json_dumps(hdr, JSON_COMPACT), *c = json_dumps(claims, JSON_COMPACT);
    char *hb = b64url(h, strlen(h)), *cb = b64url(c, strlen(c)), *sb, *input, *jwt;
    unsigned char sig[1024];
    size_t siglen = sizeof(sig), n = strlen(hb) + 1 + strlen(cb);
    EVP_MD_CTX *md = EVP_MD_CTX_new();

    input = malloc(n + 1);
    ck_assert_ptr_nonnull(input);
    snprintf(input, n + 1, "%s.%s", hb, cb);
    ck_assert_ptr_nonnull(md);
    ck_assert_int_eq(EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, keys[k]), 1);
    ck_assert_int_eq(EVP_DigestSign(md, sig, &siglen, (const unsigned char *)input, n), 1);
    sb = b64url(sig, siglen);
    jwt = malloc(n + 2 + strlen(sb));
    ck_assert_ptr_nonnull(jwt);
    snprintf(jwt, n + 2 + strlen(sb), "%s.%s", input, sb);
    EVP_MD_CTX_free(md);
    json_decref(hdr);
    free(h);
    free(c);
    free(hb);
    free(cb);
    free(sb);
    free(input);
    return jwt;
}

static char *mint(int k, const char *kid, const char *nonce)
{
    int64_t now = (int64_t)time(NULL);
    json_t *c =
        json_pack("{s:s,s:s,s:s,s:s,s:I,s:I}", "iss", fk.issuer, "aud", CLIENT_ID, "sub", "alice", "email",
                  "alice@example.com", "exp", (json_int_t)(now + 300), "iat", (json_int_t)now);
    char *jwt;
    if (nonce)
        json_object_set_new(c, "nonce", json_string(nonce));
    jwt = mint_with(k, kid, c);
    json_decref(c);
    return jwt;
}

static json_t *jwk_of(int k)
{
    BIGNUM *n = NULL, *e = NULL;
    unsigned char nb[1024], eb[16];
    int nl, el;
    char *ns, *es;
    json_t *j;

    ck_assert_int_eq(EVP_PKEY_get_bn_param(keys[k], OSSL_PKEY_PARAM_RSA_N, &n), 1);
    ck_assert_int_eq(EVP_PKEY_get_bn_param(keys[k], OSSL_PKEY_PARAM_RSA_E, &e), 1);
    nl = BN_bn2bin(n, nb);
    el = BN_bn2bin(e, eb);
    ns = b64url(nb, (size_t)nl);
    es = b64url(eb, (size_t)el);
    j = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s}", "kty", "RSA", "use", "sig", "alg", "RS256", "kid", kids[k],
                  "n", ns, "e", es);
    BN_free(n);
    BN_free(e);
    free(ns);
    free(es);
    return j;
}

/* Form value decoding as a provider does it: '+' is a space, %XX a byte. */
static void form_decode(const char *in, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n && o + 1 < cap; i++) {
        unsigned v;
        if (in[i] == '+') {
            out[o++] = ' ';
        } else if (in[i] == '%' && i + 2 < n && sscanf(in + i + 1, "%2x", &v) == 1) {
            out[o++] = (char)v;
            i += 2;
        } else {
            out[o++] = in[i];
        }
    }
    out[o] = '\0';
}

/* The value of `name` in a urlencoded body, decoded, or "" when absent. */
static void form_get(const char *body, const char *name, char *out, size_t cap)
{
    size_t nl = strlen(name);
    const char *p = body;

    out[0] = '\0';
    while (p && *p) {
        const char *amp = strchr(p, '&'), *end = amp ? amp : p + strlen(p);
        if ((size_t)(end - p) > nl && strncmp(p, name, nl) == 0 && p[nl] == '=') {
            form_decode(p + nl + 1, (size_t)(end - p - (long)nl - 1), out, cap);
            return;
        }
        p = amp ? amp + 1 : NULL;
    }
}

/* ---- the fake provider ---- */

struct req {
    char body[8192];
    size_t len;
};

static enum MHD_Result answer(struct MHD_Connection *c, unsigned status, const char *ctype, const char *body)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(body), (void *)(uintptr_t)body, MHD_RESPMEM_MUST_COPY);
    enum MHD_Result ret;
    MHD_add_response_header(r, "Content-Type", ctype);
    ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result answer_json(struct MHD_Connection *c, unsigned status, json_t *j)
{
    char *s = json_dumps(j, JSON_COMPACT);
    enum MHD_Result ret = answer(c, status, "application/json", s);
    free(s);
    json_decref(j);
    return ret;
}

static ssize_t huge_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)cls;
    if (pos >= HUGE_LEN)
        return MHD_CONTENT_READER_END_OF_STREAM;
    memset(buf, 'a', max);
    return (ssize_t)max;
}

static enum MHD_Result on_discovery(struct MHD_Connection *c)
{
    json_t *j;
    atomic_fetch_add(&fk.discovery_hits, 1);
    pthread_mutex_lock(&fk.mu);
    j = json_pack("{s:s,s:s,s:s,s:s,s:s,s:[s,s],s:[s]}", "issuer",
                  fk.wrong_issuer ? "https://evil.example" : fk.issuer, "authorization_endpoint",
                  "https://login.example/authorize", "token_endpoint", "", "userinfo_endpoint", "",
                  "jwks_uri", "", "code_challenge_methods_supported", "plain", "S256",
                  "response_types_supported", "code");
    {
        char u[128];
        snprintf(u, sizeof(u), "%s/token", fk.base);
        json_object_set_new(j, "token_endpoint", json_string(u));
        snprintf(u, sizeof(u), "%s/userinfo", fk.base);
        json_object_set_new(j, "userinfo_endpoint", json_string(u));
        snprintf(u, sizeof(u), "%s/jwks", fk.base);
        json_object_set_new(j, "jwks_uri", json_string(u));
    }
    if (fk.post_only)
        json_object_set_new(j, "token_endpoint_auth_methods_supported",
                            json_pack("[s]", "client_secret_post"));
    pthread_mutex_unlock(&fk.mu);
    return answer_json(c, 200, j);
}

static enum MHD_Result on_jwks(struct MHD_Connection *c)
{
    int k;
    atomic_fetch_add(&fk.jwks_hits, 1);
    pthread_mutex_lock(&fk.mu);
    k = fk.jwks_key;
    pthread_mutex_unlock(&fk.mu);
    return answer_json(c, 200, json_pack("{s:[o]}", "keys", jwk_of(k)));
}

static enum MHD_Result on_token(struct MHD_Connection *c, const char *body)
{
    const char *authz = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    char id[64] = "", secret[64] = "", code[64];
    enum token_mode mode;
    int k;

    atomic_fetch_add(&fk.token_hits, 1);
    pthread_mutex_lock(&fk.mu);
    if (authz && strncmp(authz, "Basic ", 6) == 0) {
        unsigned char dec[256];
        size_t in = strlen(authz + 6);
        int n = in < 300 ? EVP_DecodeBlock(dec, (const unsigned char *)authz + 6, (int)in) : -1;
        char *colon;
        if (n > 0) {
            while (in > 0 && authz[6 + in - 1] == '=') {
                in--;
                n--;
            }
            dec[n] = '\0';
            colon = strchr((char *)dec, ':');
            if (colon) {
                form_decode((char *)dec, (size_t)(colon - (char *)dec), id, sizeof(id));
                form_decode(colon + 1, strlen(colon + 1), secret, sizeof(secret));
            }
        }
        snprintf(fk.seen_auth, sizeof(fk.seen_auth), "basic");
        form_get(body, "client_id", code, sizeof(code));
        if (code[0]) /* both methods at once is an error at real providers */
            snprintf(fk.seen_auth, sizeof(fk.seen_auth), "both");
    } else {
        form_get(body, "client_id", id, sizeof(id));
        form_get(body, "client_secret", secret, sizeof(secret));
        snprintf(fk.seen_auth, sizeof(fk.seen_auth), "%s", secret[0] ? "post" : "none");
    }
    snprintf(fk.seen_client_id, sizeof(fk.seen_client_id), "%s", id);
    snprintf(fk.seen_secret, sizeof(fk.seen_secret), "%s", secret);
    form_get(body, "grant_type", fk.seen_grant, sizeof(fk.seen_grant));
    form_get(body, "code", fk.seen_code, sizeof(fk.seen_code));
    form_get(body, "redirect_uri", fk.seen_redirect, sizeof(fk.seen_redirect));
    form_get(body, "code_verifier", fk.seen_verifier, sizeof(fk.seen_verifier));
    form_get(body, "refresh_token", fk.seen_refresh, sizeof(fk.seen_refresh));
    mode = fk.token_mode;
    k = fk.jwks_key;
    pthread_mutex_unlock(&fk.mu);

    switch (mode) {
    case TOK_INVALID_GRANT:
        return answer_json(
            c, 400, json_pack("{s:s,s:s}", "error", "invalid_grant", "error_description", "code expired"));
    case TOK_500:
        return answer(c, 500, "text/plain", "oops");
    case TOK_NOT_OBJECT:
        return answer(c, 200, "application/json", "[\"at-123\"]");
    case TOK_HUGE: {
        char *big = malloc(HUGE_LEN + 1);
        enum MHD_Result ret;
        memset(big, 'a', HUGE_LEN);
        big[HUGE_LEN] = '\0';
        ret = answer(c, 200, "application/json", big);
        free(big);
        return ret;
    }
    case TOK_HUGE_CHUNKED: {
        struct MHD_Response *r =
            MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 32768, huge_reader, NULL, NULL);
        enum MHD_Result ret = MHD_queue_response(c, 200, r);
        MHD_destroy_response(r);
        return ret;
    }
    case TOK_OK:
        break;
    }
    if (strcmp(id, CLIENT_ID) != 0 || secret[0] == '\0')
        return answer_json(c, 401, json_pack("{s:s}", "error", "invalid_client"));
    {
        char *idt = mint(k, kids[k], "n-1");
        json_t *j = json_pack("{s:s,s:s,s:s,s:s,s:i}", "access_token", "at-123", "token_type", "Bearer",
                              "refresh_token", "rt-2", "id_token", idt, "expires_in", 3600);
        free(idt);
        return answer_json(c, 200, j);
    }
}

static enum MHD_Result on_userinfo(struct MHD_Connection *c)
{
    const char *authz = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    if (!authz || strcmp(authz, "Bearer at-123") != 0)
        return answer_json(c, 401, json_pack("{s:s}", "error", "invalid_token"));
    return answer_json(c, 200,
                       json_pack("{s:s,s:s,s:[s,s]}", "sub", "alice", "email", "alice@example.com", "groups",
                                 "admins", "devs"));
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                               const char *version, const char *upload, size_t *upload_size, void **ctx)
{
    struct req *r = *ctx;
    char path[160];
    (void)cls;
    (void)method;
    (void)version;

    if (!r) {
        r = calloc(1, sizeof(*r));
        *ctx = r;
        return r ? MHD_YES : MHD_NO;
    }
    if (*upload_size) {
        size_t n = *upload_size < sizeof(r->body) - 1 - r->len ? *upload_size : sizeof(r->body) - 1 - r->len;
        memcpy(r->body + r->len, upload, n);
        r->len += n;
        r->body[r->len] = '\0';
        *upload_size = 0;
        return MHD_YES;
    }
    snprintf(path, sizeof(path), "%s", fk.issuer + strlen(fk.base));
    if (strncmp(url, path, strlen(path)) == 0 &&
        strcmp(url + strlen(path), "/.well-known/openid-configuration") == 0)
        return on_discovery(c);
    if (strcmp(url, "/jwks") == 0)
        return on_jwks(c);
    if (strcmp(url, "/token") == 0)
        return on_token(c, r->body);
    if (strcmp(url, "/userinfo") == 0)
        return on_userinfo(c);
    if (strcmp(url, "/redirect") == 0) {
        struct MHD_Response *resp = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
        enum MHD_Result ret;
        MHD_add_response_header(resp, "Location", "/echo");
        ret = MHD_queue_response(c, 302, resp);
        MHD_destroy_response(resp);
        return ret;
    }
    if (strcmp(url, "/huge") == 0) {
        struct MHD_Response *resp =
            MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 32768, huge_reader, NULL, NULL);
        enum MHD_Result ret = MHD_queue_response(c, 200, resp);
        MHD_destroy_response(resp);
        return ret;
    }
    if (strcmp(url, "/echo") == 0) {
        char out[512];
        const char *ua = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "User-Agent");
        const char *acc = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Accept");
        const char *ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type");
        json_t *j = json_pack("{s:s,s:s,s:s,s:s,s:s}", "method", method, "ua", ua ? ua : "", "accept",
                              acc ? acc : "", "ctype", ct ? ct : "", "body", r->body);
        char *s = json_dumps(j, JSON_COMPACT);
        snprintf(out, sizeof(out), "%s", s);
        free(s);
        json_decref(j);
        return answer(c, 202, "application/json; charset=utf-8", out);
    }
    return answer(c, 404, "text/plain", "not found");
}

static void on_connection(void *cls, struct MHD_Connection *c, void **socket_ctx,
                          enum MHD_ConnectionNotificationCode code)
{
    (void)cls;
    (void)c;
    (void)socket_ctx;
    if (code == MHD_CONNECTION_NOTIFY_STARTED)
        atomic_fetch_add(&fk.connections, 1);
}

static void completed(void *cls, struct MHD_Connection *c, void **ctx, enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)c;
    (void)toe;
    free(*ctx);
    *ctx = NULL;
}

static void fake_start(int port)
{
    struct sockaddr_in sa = {
        .sin_family = AF_INET, .sin_port = htons((uint16_t)port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    const union MHD_DaemonInfo *info;

    fk.d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO, 0, NULL, NULL, handler, NULL,
                            MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa, MHD_OPTION_LISTENING_ADDRESS_REUSE,
                            (unsigned)1, MHD_OPTION_NOTIFY_COMPLETED, completed, NULL,
                            MHD_OPTION_NOTIFY_CONNECTION, on_connection, NULL, MHD_OPTION_END);
    ck_assert_ptr_nonnull(fk.d);
    info = MHD_get_daemon_info(fk.d, MHD_DAEMON_INFO_BIND_PORT);
    ck_assert_ptr_nonnull(info);
    ck_assert(port == 0 || info->port == port);
    fk.port = info->port;
}

static void fake_stop(void)
{
    if (fk.d)
        MHD_stop_daemon(fk.d);
    fk.d = NULL;
}

static void fake_addresses(void)
{
    snprintf(fk.base, sizeof(fk.base), "http://127.0.0.1:%d", fk.port);
    snprintf(fk.issuer, sizeof(fk.issuer), "%s/realms/test", fk.base);
}

static void setup(void)
{
    memset(&fk, 0, sizeof(fk));
    pthread_mutex_init(&fk.mu, NULL);
    ck_assert_int_eq(ag_http_global_init(), AG_OK);
    fake_start(0);
    fake_addresses();
    prov = NULL;
    secret_path[0] = '\0';
}

static void teardown(void)
{
    ag_provider_free(prov);
    prov = NULL;
    fake_stop();
    ag_http_global_cleanup();
    if (secret_path[0])
        unlink(secret_path);
    pthread_mutex_destroy(&fk.mu);
}

/* A config as ag_config_load() would leave it for this fake. Strings point at static storage;
 * the provider copies what it keeps. */
static void cfg_init(struct ag_config *cfg)
{
    static char issuer[128], secret[] = SECRET;
    memset(cfg, 0, sizeof(*cfg));
    snprintf(issuer, sizeof(issuer), "%s", fk.issuer);
    cfg->client_id = CLIENT_ID;
    cfg->client_secret.value = secret;
    cfg->oidc_issuer_url = issuer;
    cfg->login_url = "";
    cfg->redeem_url = "";
    cfg->oidc_jwks_url = "";
    cfg->profile_url = "";
    cfg->provider_ca_file = "";
    cfg->code_challenge_method = "";
    cfg->provider_timeout = 2000;
}

static void wait_ready(struct ag_provider *p, long max_ms)
{
    int64_t until = mono_ms() + max_ms;
    while (!ag_provider_ready(p) && mono_ms() < until)
        sleep_ms(10);
    ck_assert_msg(ag_provider_ready(p), "provider not ready after %ld ms", max_ms);
}

static void start_default(void)
{
    struct ag_config cfg;
    cfg_init(&cfg);
    ck_assert_int_eq(ag_provider_new(&cfg, &prov, errbuf, sizeof(errbuf)), AG_OK);
    ck_assert_int_eq(ag_provider_start(prov), AG_OK);
    wait_ready(prov, 3000);
}

static void set_mode(enum token_mode m)
{
    pthread_mutex_lock(&fk.mu);
    fk.token_mode = m;
    pthread_mutex_unlock(&fk.mu);
}

static void set_jwks_key(int k)
{
    pthread_mutex_lock(&fk.mu);
    fk.jwks_key = k;
    pthread_mutex_unlock(&fk.mu);
}

/* ---- HTTP client ---- */

START_TEST(http_get_and_post)
{
    struct ag_http_response r;
    struct ag_http_opts o = {1000, 2000, NULL, NULL};
    const char *fields[] = {"a b", "x&y=z", "skipped", NULL, "empty", "", NULL};
    char url[128];
    json_t *j;
    char *enc;

    snprintf(url, sizeof(url), "%s/echo?token=secret", fk.base);
    ck_assert_int_eq(ag_http_get(&o, url, NULL, &r), AG_OK);
    ck_assert_int_eq(r.status, 202);
    ck_assert_str_eq(r.content_type, "application/json; charset=utf-8");
    ck_assert_uint_eq(strlen(r.body), r.len);
    j = json_loadb(r.body, r.len, 0, NULL);
    ck_assert_str_eq(json_string_value(json_object_get(j, "method")), "GET");
    ck_assert_str_eq(json_string_value(json_object_get(j, "accept")), "application/json");
    ck_assert(strncmp(json_string_value(json_object_get(j, "ua")), "authgate/", 9) == 0);
    json_decref(j);
    ag_http_response_clear(&r);
    ck_assert_ptr_null(r.body);

    ck_assert_int_eq(ag_http_post_form(&o, url, fields, NULL, NULL, &r), AG_OK);
    j = json_loadb(r.body, r.len, 0, NULL);
    ck_assert_str_eq(json_string_value(json_object_get(j, "method")), "POST");
    ck_assert_str_eq(json_string_value(json_object_get(j, "ctype")), "application/x-www-form-urlencoded");
    ck_assert_str_eq(json_string_value(json_object_get(j, "body")), "a%20b=x%26y%3Dz&empty=");
    json_decref(j);
    ag_http_response_clear(&r);

    /* A status is an answer, not an error: the caller judges it. */
    snprintf(url, sizeof(url), "%s/nothing", fk.base);
    ck_assert_int_eq(ag_http_get(NULL, url, "tok", &r), AG_OK);
    ck_assert_int_eq(r.status, 404);
    ag_http_response_clear(&r);

    /* Redirects are answers too, never followed. */
    snprintf(url, sizeof(url), "%s/redirect", fk.base);
    ck_assert_int_eq(ag_http_get(&o, url, NULL, &r), AG_OK);
    ck_assert_int_eq(r.status, 302);
    ck_assert_uint_eq(r.len, 0);
    ck_assert_str_eq(r.body, "");
    ag_http_response_clear(&r);
    /* Four requests from this thread, one connection: the handle keeps it alive. */
    ck_assert_int_eq(atomic_load(&fk.connections), 1);

    enc = ag_http_form_encode("a:b/c d+~");
    ck_assert_str_eq(enc, "a%3Ab%2Fc%20d%2B~");
    free(enc);
    ag_http_response_clear(NULL);
}
END_TEST

START_TEST(http_errors)
{
    struct ag_http_response r;
    struct ag_http_opts o = {500, 1000, NULL, NULL};
    char url[128];
    int port = free_port();
    char logname[] = "/tmp/check_provider_logXXXXXX", logbuf[4096];
    int logfd = mkstemp(logname);
    struct ag_log_options lo = {AG_LOG_FORMAT_STANDARD, true, true, true, logfd};
    ssize_t n;

    ck_assert_int_ge(logfd, 0);
    unlink(logname);
    ag_log_setup(&lo);
    ck_assert_int_eq(ag_http_get(&o, "ftp://127.0.0.1/x", NULL, &r), AG_ERR_INVALID);
    ck_assert_ptr_null(r.body);
    ck_assert_int_eq(ag_http_get(&o, "not a url", NULL, &r), AG_ERR_INVALID);
    snprintf(url, sizeof(url), "http://user:pw@127.0.0.1:%d/x?code=secret#frag", port);
    ck_assert_int_eq(ag_http_get(&o, url, NULL, &r), AG_ERR_UNAVAILABLE);
    ck_assert_ptr_null(r.body);
    /* Logged once, as scheme://host:port/path: no userinfo, query or fragment. */
    n = pread(logfd, logbuf, sizeof(logbuf) - 1, 0);
    ck_assert_int_gt(n, 0);
    logbuf[n] = '\0';
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/x failed", port);
    ck_assert_msg(strstr(logbuf, url) != NULL, "log: %s", logbuf);
    ck_assert(strstr(logbuf, "secret") == NULL && strstr(logbuf, "pw") == NULL &&
              strstr(logbuf, "frag") == NULL);
    lo.fd = 2;
    ag_log_setup(&lo);
    close(logfd);
    /* Chunked (no Content-Length): the write callback stops it at 1 MiB. */
    snprintf(url, sizeof(url), "%s/huge", fk.base);
    ck_assert_int_eq(ag_http_get(&o, url, NULL, &r), AG_ERR_TOO_LARGE);
    ck_assert_ptr_null(r.body);
    /* The thread's handle still works afterwards. */
    snprintf(url, sizeof(url), "%s/echo", fk.base);
    ck_assert_int_eq(ag_http_get(&o, url, NULL, &r), AG_OK);
    ck_assert_int_eq(r.status, 202);
    ag_http_response_clear(&r);
}
END_TEST

/* A handle made on another thread is freed by the key destructor when that thread exits (LSan
 * would report it otherwise). */
static void *thread_get(void *arg)
{
    struct ag_http_response r;
    char url[128];
    snprintf(url, sizeof(url), "%s/echo", fk.base);
    *(enum ag_rc *)arg = ag_http_get(NULL, url, NULL, &r);
    ag_http_response_clear(&r);
    return NULL;
}

START_TEST(http_thread_handles)
{
    pthread_t t[3];
    enum ag_rc rc[3];
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(pthread_create(&t[i], NULL, thread_get, &rc[i]), 0);
    for (int i = 0; i < 3; i++) {
        pthread_join(t[i], NULL);
        ck_assert_int_eq(rc[i], AG_OK);
    }
}
END_TEST

/* ---- provider ---- */

START_TEST(new_checks_config)
{
    struct ag_config cfg;
    cfg_init(&cfg);
    cfg.client_id = "";
    ck_assert_int_eq(ag_provider_new(&cfg, &prov, errbuf, sizeof(errbuf)), AG_ERR_INVALID);
    ck_assert_ptr_null(prov);
    ck_assert(strstr(errbuf, "client_id") != NULL);
    cfg_init(&cfg);
    cfg.oidc_issuer_url = "";
    ck_assert_int_eq(ag_provider_new(&cfg, &prov, errbuf, sizeof(errbuf)), AG_ERR_INVALID);
    cfg_init(&cfg);
    cfg.skip_oidc_discovery = true;
    cfg.login_url = "https://login.example/authorize";
    ck_assert_int_eq(ag_provider_new(&cfg, &prov, errbuf, sizeof(errbuf)), AG_ERR_INVALID);
    ck_assert(strstr(errbuf, "redeem_url") != NULL);
    /* Not started: free is immediate and nothing is fetched. */
    cfg_init(&cfg);
    ck_assert_int_eq(ag_provider_new(&cfg, &prov, errbuf, sizeof(errbuf)), AG_OK);
    ck_assert(!ag_provider_ready(prov));
    ck_assert_ptr_null(ag_provider_meta(prov));
    ag_provider_free(prov);
    prov = NULL;
    ck_assert_int_eq(atomic_load(&fk.discovery_hits), 0);
}
END_TEST

START_TEST(ready_after_start)
{
    const struct ag_provider_meta *m;
    char want[128];

    start_default();
    m = ag_provider_meta(prov);
    ck_assert_ptr_nonnull(m);
    ck_assert_str_eq(m->issuer, fk.issuer);
    ck_assert_str_eq(m->authorization_endpoint, "https://login.example/authorize");
    snprintf(want, sizeof(want), "%s/token", fk.base);
    ck_assert_str_eq(m->token_endpoint, want);
    snprintf(want, sizeof(want), "%s/jwks", fk.base);
    ck_assert_str_eq(m->jwks_uri, want);
    ck_assert_ptr_null(m->end_session_endpoint);
    ck_assert(m->s256);
    ck_assert(m->auth_basic); /* token_endpoint_auth_methods_supported absent */
    ck_assert_int_eq(atomic_load(&fk.discovery_hits), 1);
    ck_assert_int_eq(atomic_load(&fk.jwks_hits), 1);
    ck_assert_int_eq(ag_provider_start(prov), AG_ERR_INVALID); /* only once */
    ck_assert_ptr_eq(ag_provider_meta(prov), m);               /* stable */
}
END_TEST

/* A provider that accepts connections but never answers: freeing the provider cancels the
 * background thread's request instead of waiting out the 5 s timeout. */
START_TEST(free_cancels_hanging_request)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sa);
    struct ag_config cfg;
    char issuer[64];
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int64_t t0;

    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    ck_assert_int_eq(listen(fd, 8), 0); /* the kernel completes connects; nobody ever reads */
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    snprintf(issuer, sizeof(issuer), "http://127.0.0.1:%d", ntohs(sa.sin_port));
    cfg_init(&cfg);
    cfg.oidc_issuer_url = issuer;
    cfg.provider_timeout = 5000;
    ck_assert_int_eq(ag_provider_new(&cfg, &prov, errbuf, sizeof(errbuf)), AG_OK);
    ck_assert_int_eq(ag_provider_start(prov), AG_OK);
    sleep_ms(300);
    t0 = mono_ms();
    ag_provider_free(prov);
    prov = NULL;
    ck_assert_int_lt(mono_ms() - t0, 2000);
    close(fd);
}
END_TEST

START_TEST(issuer_mismatch_never_ready)
{
    struct ag_config cfg;
    enum ag_jwt_result why;
    int64_t t0;

    fk.wrong_issuer = true;
    cfg_init(&cfg);
    ck_assert_int_eq(ag_provider_new(&cfg, &prov, errbuf, sizeof(errbuf)), AG_OK);
    ck_assert_int_eq(ag_provider_start(prov), AG_OK);
    sleep_ms(1700); /* tries at about 0, 0.5 and 1.5 s */
    ck_assert(!ag_provider_ready(prov));
    ck_assert_ptr_null(ag_provider_meta(prov));
    ck_assert_int_ge(atomic_load(&fk.discovery_hits), 2);
    ck_assert_int_le(atomic_load(&fk.discovery_hits), 4); /* backoff, not a busy loop */
    ck_assert_int_eq(atomic_load(&fk.jwks_hits), 0);
    ck_assert_int_eq(ag_provider_verify_id_token(prov, "a.b.c", NULL, time(NULL), NULL, &why),
                     AG_ERR_UNAVAILABLE);
    {
        struct ag_token_response tr;
        ck_assert_int_eq(ag_provider_redeem(prov, "c", "https://app/cb", NULL, &tr), AG_ERR_UNAVAILABLE);
    }
    /* Freeing stops the thread while it sleeps in its backoff. */
    t0 = mono_ms();
    ag_provider_free(prov);
    prov = NULL;
    ck_assert_int_lt(mono_ms() - t0, 1000);
}
END_TEST

START_TEST(down_then_up)
{
    struct ag_config cfg;
    int port = fk.port;

    fake_stop();
    cfg_init(&cfg);
    ck_assert_int_eq(ag_provider_new(&cfg, &prov, errbuf, sizeof(errbuf)), AG_OK);
    ck_assert_int_eq(ag_provider_start(prov), AG_OK);
    sleep_ms(700);
    ck_assert(!ag_provider_ready(prov));
    fake_start(port);
    wait_ready(prov, 4000);
    ck_assert_int_eq(atomic_load(&fk.jwks_hits), 1);
}
END_TEST

START_TEST(redeem_basic_and_verify)
{
    struct ag_token_response tr;
    enum ag_jwt_result why;
    json_t *claims = NULL;

    start_default();
    ck_assert_int_eq(
        ag_provider_redeem(prov, "code-1", "https://app.example/oauth2/callback", "verif-1", &tr), AG_OK);
    pthread_mutex_lock(&fk.mu);
    ck_assert_str_eq(fk.seen_auth, "basic");
    ck_assert_str_eq(fk.seen_client_id, CLIENT_ID);
    ck_assert_str_eq(fk.seen_secret, SECRET);
    ck_assert_str_eq(fk.seen_grant, "authorization_code");
    ck_assert_str_eq(fk.seen_code, "code-1");
    ck_assert_str_eq(fk.seen_redirect, "https://app.example/oauth2/callback");
    ck_assert_str_eq(fk.seen_verifier, "verif-1");
    pthread_mutex_unlock(&fk.mu);
    ck_assert_str_eq(tr.access_token, "at-123");
    ck_assert_str_eq(tr.token_type, "Bearer");
    ck_assert_str_eq(tr.refresh_token, "rt-2");
    ck_assert_int_eq(tr.expires_in, 3600);
    ck_assert_ptr_null(tr.error);
    ck_assert_ptr_nonnull(tr.id_token);

    ck_assert_int_eq(ag_provider_verify_id_token(prov, tr.id_token, "n-1", time(NULL), &claims, &why), AG_OK);
    ck_assert_int_eq(why, AG_JWT_OK);
    ck_assert_str_eq(json_string_value(json_object_get(claims, "sub")), "alice");
    json_decref(claims);
    ck_assert_int_eq(ag_provider_verify_id_token(prov, tr.id_token, "other", time(NULL), &claims, &why),
                     AG_ERR_UNAUTHENTICATED);
    ck_assert_int_eq(why, AG_JWT_BAD_NONCE);
    ck_assert_ptr_null(claims);
    /* Expired: now far ahead of exp + skew. */
    ck_assert_int_eq(ag_provider_verify_id_token(prov, tr.id_token, NULL, time(NULL) + 3600, NULL, &why),
                     AG_ERR_UNAUTHENTICATED);
    ck_assert_int_eq(why, AG_JWT_EXPIRED);
    ck_assert_int_eq(atomic_load(&fk.jwks_hits), 1);
    ag_token_response_clear(&tr);
    ck_assert_ptr_null(tr.access_token);
    ag_token_response_clear(NULL);

    /* Refresh: the same client authentication, grant_type refresh_token. */
    ck_assert_int_eq(ag_provider_refresh(prov, "rt-1", &tr), AG_OK);
    pthread_mutex_lock(&fk.mu);
    ck_assert_str_eq(fk.seen_grant, "refresh_token");
    ck_assert_str_eq(fk.seen_refresh, "rt-1");
    ck_assert_str_eq(fk.seen_auth, "basic");
    pthread_mutex_unlock(&fk.mu);
    ck_assert_str_eq(tr.access_token, "at-123");
    ag_token_response_clear(&tr);
}
END_TEST

START_TEST(redeem_post_when_basic_not_offered)
{
    struct ag_token_response tr;

    fk.post_only = true;
    start_default();
    ck_assert(!ag_provider_meta(prov)->auth_basic);
    ck_assert_int_eq(ag_provider_redeem(prov, "code-2", "https://app.example/cb", NULL, &tr), AG_OK);
    pthread_mutex_lock(&fk.mu);
    ck_assert_str_eq(fk.seen_auth, "post");
    ck_assert_str_eq(fk.seen_client_id, CLIENT_ID);
    ck_assert_str_eq(fk.seen_secret, SECRET);
    ck_assert_str_eq(fk.seen_verifier, ""); /* no PKCE verifier: the field is left out */
    pthread_mutex_unlock(&fk.mu);
    ck_assert_str_eq(tr.access_token, "at-123");
    ag_token_response_clear(&tr);
}
END_TEST

START_TEST(token_errors)
{
    struct ag_token_response tr;

    start_default();
    set_mode(TOK_INVALID_GRANT);
    ck_assert_int_eq(ag_provider_redeem(prov, "old", "https://app.example/cb", NULL, &tr), AG_ERR_DENIED);
    ck_assert_str_eq(tr.error, "invalid_grant");
    ck_assert_str_eq(tr.error_description, "code expired");
    ck_assert_ptr_null(tr.access_token);
    ag_token_response_clear(&tr);
    ck_assert_int_eq(ag_provider_refresh(prov, "rt-old", &tr), AG_ERR_DENIED);
    ck_assert_str_eq(tr.error, "invalid_grant");
    ag_token_response_clear(&tr);

    set_mode(TOK_500);
    ck_assert_int_eq(ag_provider_redeem(prov, "c", "https://app.example/cb", NULL, &tr), AG_ERR_UNAVAILABLE);
    ck_assert_ptr_null(tr.error);
    ck_assert_ptr_null(tr.access_token);

    set_mode(TOK_NOT_OBJECT);
    ck_assert_int_eq(ag_provider_redeem(prov, "c", "https://app.example/cb", NULL, &tr), AG_ERR_INVALID);
    ck_assert_ptr_null(tr.access_token);

    set_mode(TOK_HUGE);
    ck_assert_int_eq(ag_provider_redeem(prov, "c", "https://app.example/cb", NULL, &tr), AG_ERR_TOO_LARGE);
    ck_assert_ptr_null(tr.access_token);
    set_mode(TOK_HUGE_CHUNKED);
    ck_assert_int_eq(ag_provider_redeem(prov, "c", "https://app.example/cb", NULL, &tr), AG_ERR_TOO_LARGE);

    /* Back to normal: a failed transfer left the handle usable. */
    set_mode(TOK_OK);
    ck_assert_int_eq(ag_provider_redeem(prov, "c", "https://app.example/cb", NULL, &tr), AG_OK);
    ag_token_response_clear(&tr);

    /* Provider gone after start: unavailable, not a crash. */
    fake_stop();
    ck_assert_int_eq(ag_provider_redeem(prov, "c", "https://app.example/cb", NULL, &tr), AG_ERR_UNAVAILABLE);
}
END_TEST

START_TEST(invalid_client_is_invalid)
{
    struct ag_config cfg;
    struct ag_token_response tr;

    cfg_init(&cfg);
    cfg.client_secret.value = NULL; /* public client: only client_id is sent */
    ck_assert_int_eq(ag_provider_new(&cfg, &prov, errbuf, sizeof(errbuf)), AG_OK);
    ck_assert_int_eq(ag_provider_start(prov), AG_OK);
    wait_ready(prov, 3000);
    ck_assert_int_eq(ag_provider_redeem(prov, "c", "https://app.example/cb", NULL, &tr), AG_ERR_INVALID);
    ck_assert_str_eq(tr.error, "invalid_client");
    ag_token_response_clear(&tr);
    pthread_mutex_lock(&fk.mu);
    ck_assert_str_eq(fk.seen_auth, "none");
    ck_assert_str_eq(fk.seen_client_id, CLIENT_ID);
    pthread_mutex_unlock(&fk.mu);
}
END_TEST

START_TEST(key_rotation_and_refetch_limit)
{
    enum ag_jwt_result why;
    char *tok2, *tok3, *tok1;

    start_default();
    ck_assert_int_eq(atomic_load(&fk.jwks_hits), 1);
    set_jwks_key(1); /* the provider rotates to k2 and withdraws k1 */
    tok2 = mint(1, "k2", NULL);
    ck_assert_int_eq(ag_provider_verify_id_token(prov, tok2, NULL, time(NULL), NULL, &why), AG_OK);
    ck_assert_int_eq(why, AG_JWT_OK);
    ck_assert_int_eq(atomic_load(&fk.jwks_hits), 2);
    /* Again: the new set is in place, no fetch. */
    ck_assert_int_eq(ag_provider_verify_id_token(prov, tok2, NULL, time(NULL), NULL, &why), AG_OK);
    ck_assert_int_eq(atomic_load(&fk.jwks_hits), 2);
    /* The set was replaced whole: the withdrawn k1 is unknown now. */
    tok1 = mint(0, "k1", NULL);
    ck_assert_int_eq(ag_provider_verify_id_token(prov, tok1, NULL, time(NULL), NULL, &why),
                     AG_ERR_UNAUTHENTICATED);
    ck_assert_int_eq(why, AG_JWT_UNKNOWN_KID);
    /* Another unknown kid within 30 s: no refetch, even once the provider has that key. */
    set_jwks_key(2);
    tok3 = mint(2, "k3", NULL);
    ck_assert_int_eq(ag_provider_verify_id_token(prov, tok3, NULL, time(NULL), NULL, &why),
                     AG_ERR_UNAUTHENTICATED);
    ck_assert_int_eq(why, AG_JWT_UNKNOWN_KID);
    ck_assert_int_eq(atomic_load(&fk.jwks_hits), 2);
    free(tok1);
    free(tok2);
    free(tok3);
}
END_TEST

struct verifier {
    const char *token;
    enum ag_rc rc;
};

static void *verify_thread(void *arg)
{
    struct verifier *v = arg;
    for (int i = 0; i < 20; i++) {
        v->rc = ag_provider_verify_id_token(prov, v->token, NULL, time(NULL), NULL, NULL);
        if (v->rc != AG_OK)
            break;
    }
    return NULL;
}

/* Several threads meet the new kid at once: one refetch serves them all. */
START_TEST(concurrent_rotation_one_refetch)
{
    pthread_t t[4];
    struct verifier v[4];
    char *tok;

    start_default();
    set_jwks_key(1);
    tok = mint(1, "k2", NULL);
    for (int i = 0; i < 4; i++) {
        v[i].token = tok;
        ck_assert_int_eq(pthread_create(&t[i], NULL, verify_thread, &v[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        ck_assert_int_eq(v[i].rc, AG_OK);
    }
    ck_assert_int_eq(atomic_load(&fk.jwks_hits), 2);
    free(tok);
}
END_TEST

static void write_secret(const char *s)
{
    FILE *f = fopen(secret_path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(s, f);
    fclose(f);
}

START_TEST(secret_file_reread)
{
    struct ag_config cfg;
    struct ag_token_response tr;
    int fd;

    snprintf(secret_path, sizeof(secret_path), "/tmp/check_provider_secretXXXXXX");
    fd = mkstemp(secret_path);
    ck_assert_int_ge(fd, 0);
    close(fd);
    write_secret("first\n");
    cfg_init(&cfg);
    cfg.client_secret.value = "first"; /* what the config loader read at start */
    cfg.client_secret.file = secret_path;
    ck_assert_int_eq(ag_provider_new(&cfg, &prov, errbuf, sizeof(errbuf)), AG_OK);
    ck_assert_int_eq(ag_provider_start(prov), AG_OK);
    wait_ready(prov, 3000);

    ck_assert_int_eq(ag_provider_redeem(prov, "c1", "https://app.example/cb", NULL, &tr), AG_OK);
    ag_token_response_clear(&tr);
    pthread_mutex_lock(&fk.mu);
    ck_assert_str_eq(fk.seen_secret, "first");
    pthread_mutex_unlock(&fk.mu);

    write_secret("second\r\n");
    ck_assert_int_eq(ag_provider_redeem(prov, "c2", "https://app.example/cb", NULL, &tr), AG_OK);
    ag_token_response_clear(&tr);
    pthread_mutex_lock(&fk.mu);
    ck_assert_str_eq(fk.seen_secret, "second");
    pthread_mutex_unlock(&fk.mu);

    /* Unreadable for a moment (a rotation tool replacing it): the secret read at start is used. */
    unlink(secret_path);
    ck_assert_int_eq(ag_provider_redeem(prov, "c3", "https://app.example/cb", NULL, &tr), AG_OK);
    ag_token_response_clear(&tr);
    pthread_mutex_lock(&fk.mu);
    ck_assert_str_eq(fk.seen_secret, "first");
    pthread_mutex_unlock(&fk.mu);
    secret_path[0] = '\0';
}
END_TEST

START_TEST(userinfo_json)
{
    json_t *u = NULL;

    start_default();
    ck_assert_int_eq(ag_provider_userinfo(prov, "at-123", &u), AG_OK);
    ck_assert(json_is_object(u));
    ck_assert_str_eq(json_string_value(json_object_get(u, "email")), "alice@example.com");
    ck_assert_uint_eq(json_array_size(json_object_get(u, "groups")), 2);
    json_decref(u);
    ck_assert_int_eq(ag_provider_userinfo(prov, "wrong", &u), AG_ERR_UNAUTHENTICATED);
    ck_assert_ptr_null(u);
}
END_TEST

START_TEST(skip_discovery)
{
    struct ag_config cfg;
    struct ag_token_response tr;
    const struct ag_provider_meta *m;
    char login[128], token[128], jwks[128];
    json_t *u = NULL;

    snprintf(login, sizeof(login), "%s/authorize", fk.base);
    snprintf(token, sizeof(token), "%s/token", fk.base);
    snprintf(jwks, sizeof(jwks), "%s/jwks", fk.base);
    cfg_init(&cfg);
    cfg.skip_oidc_discovery = true;
    cfg.login_url = login;
    cfg.redeem_url = token;
    cfg.oidc_jwks_url = jwks;
    cfg.code_challenge_method = "S256";
    ck_assert_int_eq(ag_provider_new(&cfg, &prov, errbuf, sizeof(errbuf)), AG_OK);
    ck_assert_int_eq(ag_provider_start(prov), AG_OK);
    wait_ready(prov, 3000);
    m = ag_provider_meta(prov);
    ck_assert_str_eq(m->authorization_endpoint, login);
    ck_assert_str_eq(m->token_endpoint, token);
    ck_assert_ptr_null(m->userinfo_endpoint);
    ck_assert(m->s256 && m->auth_basic);
    ck_assert_int_eq(atomic_load(&fk.discovery_hits), 0);
    ck_assert_int_eq(atomic_load(&fk.jwks_hits), 1);
    ck_assert_int_eq(ag_provider_redeem(prov, "c", "https://app.example/cb", NULL, &tr), AG_OK);
    ck_assert_int_eq(ag_provider_verify_id_token(prov, tr.id_token, "n-1", time(NULL), NULL, NULL), AG_OK);
    ag_token_response_clear(&tr);
    ck_assert_int_eq(ag_provider_userinfo(prov, "at-123", &u), AG_ERR_NOT_FOUND);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("provider");
    TCase *http = tcase_create("http_client"), *tc = tcase_create("provider");
    SRunner *sr;
    int failed;

    /* The fake is on loopback: a proxy from the environment must not get in the way. */
    unsetenv("http_proxy");
    unsetenv("HTTP_PROXY");
    unsetenv("https_proxy");
    unsetenv("HTTPS_PROXY");
    unsetenv("all_proxy");
    unsetenv("ALL_PROXY");
    for (int i = 0; i < NKEYS; i++) {
        keys[i] = EVP_RSA_gen(2048);
        if (!keys[i]) {
            fprintf(stderr, "check_provider: RSA key generation failed\n");
            return EXIT_FAILURE;
        }
    }
    tcase_add_checked_fixture(http, setup, teardown);
    tcase_set_timeout(http, 10);
    tcase_add_test(http, http_get_and_post);
    tcase_add_test(http, http_errors);
    tcase_add_test(http, http_thread_handles);
    suite_add_tcase(s, http);

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, new_checks_config);
    tcase_add_test(tc, ready_after_start);
    tcase_add_test(tc, issuer_mismatch_never_ready);
    tcase_add_test(tc, free_cancels_hanging_request);
    tcase_add_test(tc, down_then_up);
    tcase_add_test(tc, redeem_basic_and_verify);
    tcase_add_test(tc, redeem_post_when_basic_not_offered);
    tcase_add_test(tc, token_errors);
    tcase_add_test(tc, invalid_client_is_invalid);
    tcase_add_test(tc, key_rotation_and_refetch_limit);
    tcase_add_test(tc, concurrent_rotation_one_refetch);
    tcase_add_test(tc, secret_file_reread);
    tcase_add_test(tc, userinfo_json);
    tcase_add_test(tc, skip_discovery);
    suite_add_tcase(s, tc);

    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    for (int i = 0; i < NKEYS; i++)
        EVP_PKEY_free(keys[i]);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
