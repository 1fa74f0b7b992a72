/* SPDX-License-Identifier: Apache-2.0
 * authgate configuration: the option table and everything generated from it (flags, the TOML subset
 * oauth2-proxy users write, OAUTH2_PROXY_<KEY>/AUTHGATE_<KEY> environment, --help, the README
 * reference), merged as default < file < env < flag and checked once. Every problem is reported, one
 * line each: "authgate: config: <where>: <option>: <what>, expected <what>"; secrets never appear. */
#include "config.h"
#include "auth/rules.h"
#include "net/upstream.h"
#include "util/b64.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <openssl/crypto.h>

#define AG_PRINTF(a, b) __attribute__((format(printf, a, b)))

#define AG_KEY_MAX         64    /* longest key or flag name we look up; longer ones are unknown */
#define AG_NAME_BUF        96    /* an option name, flag or env var name plus a suffix */
#define AG_WHERE_BUF       4200  /* "flag --x", "env X" or "<path>:<line>" */
#define AG_SHOW_BUF        96    /* a user value quoted for an error line */
#define AG_SECRET_FILE_MAX 65536 /* a secret file is a password or key, never this large */
#define AG_VERSION_TEXT    "authgate 0.1"

static const char ag_env_ag[] = "AUTHGATE_";
static const char ag_env_op[] = "OAUTH2_PROXY_";

/* ------------------------------------------------------------------------------------------------
 * The option table. The key is the struct field's name (stringized), so the two cannot drift. */

#define AG_OFF(field) offsetof(struct ag_config, field)
#define AG_OPT(field, flag, type, def, choices, min, max, flags, group, help)                                \
    {                                                                                                        \
#field, flag, type, AG_OFF(field), def, choices, min, max, flags, group, help                        \
    }
#define AG_P       AG_OPTF_PLANNED
#define AG_SEC(n)  ((int64_t)(n)*1000)
#define AG_MIN(n)  ((int64_t)(n)*60 * 1000)
#define AG_HOUR(n) ((int64_t)(n)*3600 * 1000)

static const char *const ag_ch_provider[] = {"oidc", NULL};
static const char *const ag_ch_logfmt[] = {"standard", "json", NULL};
static const char *const ag_ch_samesite[] = {"", "lax", "strict", "none", NULL};
static const char *const ag_ch_store[] = {"redis", "cookie", NULL};
static const char *const ag_ch_pkce[] = {"", "S256", "plain", NULL};

const struct ag_option ag_options[] = {
    /* Server */
    AG_OPT(http_address, "http-address", AG_OPT_STRING, "127.0.0.1:4180", NULL, 0, 0, 0, "Server",
           "address to listen on for HTTP clients: host:port, [ipv6]:port, unix:///path or fd:N"),
    AG_OPT(https_address, "https-address", AG_OPT_STRING, "", NULL, 0, 0, AG_P, "Server",
           "address to listen on for HTTPS clients"),
    AG_OPT(tls_cert_file, "tls-cert-file", AG_OPT_STRING, NULL, NULL, 0, 0, AG_P, "Server",
           "path to the TLS certificate chain (PEM) for https_address"),
    AG_OPT(tls_key_file, "tls-key-file", AG_OPT_STRING, NULL, NULL, 0, 0, AG_P, "Server",
           "path to the TLS private key (PEM) for https_address"),
    AG_OPT(proxy_prefix, "proxy-prefix", AG_OPT_STRING, "/oauth2", NULL, 0, 0, 0, "Server",
           "URL path prefix of authgate's own endpoints (/start, /callback, /auth...)"),
    AG_OPT(ping_path, "ping-path", AG_OPT_STRING, "/ping", NULL, 0, 0, 0, "Server",
           "liveness endpoint: always answers 200 OK"),
    AG_OPT(ready_path, "ready-path", AG_OPT_STRING, "/ready", NULL, 0, 0, 0, "Server",
           "readiness endpoint: answers 200 only when the session store is reachable"),
    AG_OPT(metrics_address, "metrics-address", AG_OPT_STRING, NULL, NULL, 0, 0, AG_P, "Server",
           "address to serve Prometheus metrics on (/metrics)"),
    AG_OPT(workers, "workers", AG_OPT_INT, "0", NULL, 0, 256, 0, "Server",
           "request worker threads; 0 = four per CPU (they wait on Redis and the provider); reverse "
           "proxy: event loops, 0 = one per CPU"),
    AG_OPT(max_connections, "max-connections", AG_OPT_INT, "10000", NULL, 1, 1000000, 0, "Server",
           "most client connections open at once; more are refused"),
    AG_OPT(max_connections_per_ip, "max-connections-per-ip", AG_OPT_INT, "0", NULL, 0, 1000000, 0, "Server",
           "most connections open at once from one client address; 0 = unlimited"),
    AG_OPT(max_header_bytes, "max-header-bytes", AG_OPT_INT, "32768", NULL, 4096, 1048576, 0, "Server",
           "memory per connection for the request line and headers; larger requests get 431"),
    AG_OPT(connection_timeout, "connection-timeout", AG_OPT_DURATION, "30s", NULL, AG_SEC(1), AG_HOUR(1), 0,
           "Server", "idle time after which a connection is closed"),
    AG_OPT(read_header_timeout, "read-header-timeout", AG_OPT_DURATION, "10s", NULL, 100, AG_MIN(10), 0,
           "Server",
           "time a client has to send a request line and headers, however slowly it trickles them (slowloris "
           "guard); a keep-alive connection gets connection_timeout more for the next request"),
    AG_OPT(shutdown_timeout, "shutdown-timeout", AG_OPT_DURATION, "30s", NULL, 0, AG_MIN(10), 0, "Server",
           "after SIGTERM, how long in-flight requests may take to finish before authgate exits"),
    AG_OPT(reverse_proxy, "reverse-proxy", AG_OPT_BOOL, "false", NULL, 0, 0, 0, "Server",
           "trust X-Forwarded-* headers from trusted_proxy_ips (authgate runs behind a proxy)"),
    AG_OPT(trusted_proxy_ips, "trusted-proxy-ip", AG_OPT_LIST, NULL, NULL, 0, 0, 0, "Server",
           "addresses or CIDRs of proxies whose X-Forwarded-* headers are believed"),
    AG_OPT(check_path_prefix, "check-path-prefix", AG_OPT_STRING, "", NULL, 0, 0, 0, "Server",
           "path prefix to strip from Envoy/Istio ext_authz check requests"),

    /* Logging */
    AG_OPT(logging_format, "logging-format", AG_OPT_STRING, "standard", ag_ch_logfmt, 0, 0, 0, "Logging",
           "log line format"),
    AG_OPT(standard_logging, "standard-logging", AG_OPT_BOOL, "true", NULL, 0, 0, 0, "Logging",
           "log application messages (startup, errors)"),
    AG_OPT(request_logging, "request-logging", AG_OPT_BOOL, "true", NULL, 0, 0, 0, "Logging",
           "log one line per HTTP request"),
    AG_OPT(auth_logging, "auth-logging", AG_OPT_BOOL, "true", NULL, 0, 0, 0, "Logging",
           "log authentication events (logins, failures)"),
    AG_OPT(request_id_header, "request-id-header", AG_OPT_STRING, "X-Request-Id", NULL, 0, 0, 0, "Logging",
           "request header whose value is logged as the request id (one is generated when absent)"),
    AG_OPT(silence_ping_logging, "silence-ping-logging", AG_OPT_BOOL, "false", NULL, 0, 0, 0, "Logging",
           "do not log requests to ping_path and ready_path"),

    /* Provider */
    AG_OPT(provider, "provider", AG_OPT_STRING, "oidc", ag_ch_provider, 0, 0, 0, "Provider",
           "OAuth provider type"),
    AG_OPT(provider_display_name, "provider-display-name", AG_OPT_STRING, "OpenID Connect", NULL, 0, 0, 0,
           "Provider", "provider name shown on the sign-in page"),
    AG_OPT(client_id, "client-id", AG_OPT_STRING, NULL, NULL, 0, 0, 0, "Provider",
           "OAuth client ID registered with the provider"),
    AG_OPT(client_secret, "client-secret", AG_OPT_SECRET, NULL, NULL, 0, 0, 0, "Provider",
           "OAuth client secret"),
    AG_OPT(oidc_issuer_url, "oidc-issuer-url", AG_OPT_STRING, NULL, NULL, 0, 0, 0, "Provider",
           "OpenID Connect issuer URL; endpoints are discovered from it"),
    AG_OPT(skip_oidc_discovery, "skip-oidc-discovery", AG_OPT_BOOL, "false", NULL, 0, 0, 0, "Provider",
           "do not use discovery; login_url, redeem_url and oidc_jwks_url must then be set"),
    AG_OPT(login_url, "login-url", AG_OPT_STRING, NULL, NULL, 0, 0, 0, "Provider",
           "authorization endpoint, when discovery is skipped"),
    AG_OPT(redeem_url, "redeem-url", AG_OPT_STRING, NULL, NULL, 0, 0, 0, "Provider",
           "token endpoint, when discovery is skipped"),
    AG_OPT(oidc_jwks_url, "oidc-jwks-url", AG_OPT_STRING, NULL, NULL, 0, 0, 0, "Provider",
           "JWKS endpoint with the keys that sign ID tokens, when discovery is skipped"),
    AG_OPT(profile_url, "profile-url", AG_OPT_STRING, NULL, NULL, 0, 0, 0, "Provider",
           "userinfo endpoint, when discovery is skipped"),
    AG_OPT(redirect_url, "redirect-url", AG_OPT_STRING, NULL, NULL, 0, 0, 0, "Provider",
           "OAuth redirect URL, e.g. https://app.example.com/oauth2/callback"),
    AG_OPT(scope, "scope", AG_OPT_STRING, "openid email profile", NULL, 0, 0, 0, "Provider",
           "OAuth scopes requested at login"),
    AG_OPT(prompt, "prompt", AG_OPT_STRING, NULL, NULL, 0, 0, 0, "Provider",
           "OIDC prompt parameter (none, login, consent, select_account)"),
    AG_OPT(acr_values, "acr-values", AG_OPT_STRING, NULL, NULL, 0, 0, 0, "Provider",
           "OIDC acr_values parameter"),
    AG_OPT(code_challenge_method, "code-challenge-method", AG_OPT_STRING, "", ag_ch_pkce, 0, 0, 0, "Provider",
           "PKCE code challenge method; empty = S256 when the provider's discovery lists it, S256 = always "
           "(plain is refused: it protects nothing S256 does not)"),
    AG_OPT(oidc_extra_audiences, "oidc-extra-audience", AG_OPT_LIST, NULL, NULL, 0, 0, 0, "Provider",
           "audiences accepted in ID tokens besides client_id"),
    AG_OPT(oidc_enabled_signing_algs, "oidc-enabled-signing-alg", AG_OPT_LIST,
           "RS256,RS384,RS512,ES256,ES384,ES512", NULL, 0, 0, 0, "Provider",
           "JWS algorithms accepted for ID token signatures"),
    AG_OPT(oidc_email_claim, "oidc-email-claim", AG_OPT_STRING, "email", NULL, 0, 0, 0, "Provider",
           "ID token claim holding the email address"),
    AG_OPT(oidc_groups_claim, "oidc-groups-claim", AG_OPT_STRING, "groups", NULL, 0, 0, 0, "Provider",
           "ID token claim holding the groups"),
    AG_OPT(user_id_claim, "user-id-claim", AG_OPT_STRING, "sub", NULL, 0, 0, 0, "Provider",
           "ID token claim identifying the user"),
    AG_OPT(insecure_oidc_allow_unverified_email, "insecure-oidc-allow-unverified-email", AG_OPT_BOOL, "false",
           NULL, 0, 0, 0, "Provider", "accept ID tokens whose email_verified is false"),
    AG_OPT(skip_provider_button, "skip-provider-button", AG_OPT_BOOL, "false", NULL, 0, 0, 0, "Provider",
           "go straight to the provider instead of showing the sign-in page"),
    AG_OPT(backend_logout_url, "backend-logout-url", AG_OPT_STRING, NULL, NULL, 0, 0, 0, "Provider",
           "provider URL called on sign-out; {id_token} is replaced by the session's ID token"),
    AG_OPT(provider_ca_file, "provider-ca-file", AG_OPT_STRING, NULL, NULL, 0, 0, 0, "Provider",
           "CA bundle (PEM) trusted for connections to the provider"),
    AG_OPT(provider_timeout, "provider-timeout", AG_OPT_DURATION, "10s", NULL, 0, 0, 0, "Provider",
           "timeout of each request to the provider"),

    /* Authorization */
    AG_OPT(email_domains, "email-domain", AG_OPT_LIST, NULL, NULL, 0, 0, 0, "Authorization",
           "authorize emails in these domains; use email-domain=* to authorize all email addresses"),
    AG_OPT(authenticated_emails_file, "authenticated-emails-file", AG_OPT_STRING, NULL, NULL, 0, 0, 0,
           "Authorization", "file with one authorized email address per line"),
    AG_OPT(allowed_groups, "allowed-group", AG_OPT_LIST, NULL, NULL, 0, 0, 0, "Authorization",
           "authorize only members of these groups"),

    /* Cookie */
    AG_OPT(cookie_name, "cookie-name", AG_OPT_STRING, "_oauth2_proxy", NULL, 0, 0, 0, "Cookie",
           "name of the session cookie"),
    AG_OPT(
        cookie_secret, "cookie-secret", AG_OPT_SECRET, NULL, NULL, 0, 0, 0, "Cookie",
        "key that encrypts and signs cookies: 16, 24 or 32 bytes, raw or base64 (openssl rand -base64 32)"),
    AG_OPT(cookie_domains, "cookie-domain", AG_OPT_LIST, NULL, NULL, 0, 0, 0, "Cookie",
           "Domain attribute of cookies; the longest that matches the request host is used"),
    AG_OPT(cookie_path, "cookie-path", AG_OPT_STRING, "/", NULL, 0, 0, 0, "Cookie",
           "Path attribute of cookies"),
    AG_OPT(cookie_expire, "cookie-expire", AG_OPT_DURATION, "168h", NULL, 0, 0, 0, "Cookie",
           "lifetime of the session cookie"),
    AG_OPT(cookie_refresh, "cookie-refresh", AG_OPT_DURATION, "0", NULL, 0, 0, 0, "Cookie",
           "refresh the session with the provider after this long; 0 = never"),
    AG_OPT(cookie_secure, "cookie-secure", AG_OPT_BOOL, "true", NULL, 0, 0, 0, "Cookie",
           "set the Secure attribute on cookies"),
    AG_OPT(cookie_httponly, "cookie-httponly", AG_OPT_BOOL, "true", NULL, 0, 0, 0, "Cookie",
           "set the HttpOnly attribute on cookies"),
    AG_OPT(cookie_samesite, "cookie-samesite", AG_OPT_STRING, "", ag_ch_samesite, 0, 0, 0, "Cookie",
           "SameSite attribute of cookies; empty = not set"),
    AG_OPT(cookie_csrf_expire, "cookie-csrf-expire", AG_OPT_DURATION, "15m", NULL, 0, 0, 0, "Cookie",
           "lifetime of the CSRF cookie set during login"),
    AG_OPT(cookie_csrf_per_request, "cookie-csrf-per-request", AG_OPT_BOOL, "false", NULL, 0, 0, 0, "Cookie",
           "one CSRF cookie per login request, so parallel logins do not clash"),

    /* Session */
    AG_OPT(session_store_type, "session-store-type", AG_OPT_STRING, "redis", ag_ch_store, 0, 0, 0, "Session",
           "where sessions are kept"),
    AG_OPT(redis_connection_url, "redis-connection-url", AG_OPT_STRING, NULL, NULL, 0, 0, 0, "Session",
           "Redis URL: redis://host:6379/0 or unix:///path"),
    AG_OPT(redis_password, "redis-password", AG_OPT_SECRET, NULL, NULL, 0, 0, 0, "Session", "Redis password"),
    AG_OPT(redis_use_sentinel, "redis-use-sentinel", AG_OPT_BOOL, "false", NULL, 0, 0, AG_P, "Session",
           "find the Redis master through Sentinel"),
    AG_OPT(redis_sentinel_master_name, "redis-sentinel-master-name", AG_OPT_STRING, NULL, NULL, 0, 0, AG_P,
           "Session", "Sentinel master name"),
    AG_OPT(redis_sentinel_connection_urls, "redis-sentinel-connection-urls", AG_OPT_LIST, NULL, NULL, 0, 0,
           AG_P, "Session", "Sentinel URLs"),
    AG_OPT(redis_timeout, "redis-timeout", AG_OPT_DURATION, "1s", NULL, 0, 0, 0, "Session",
           "timeout of each Redis command"),
    AG_OPT(
        session_cache_entries, "session-cache-entries", AG_OPT_INT, "4096", NULL, 0, 1000000, 0, "Session",
        "sessions kept in memory, dropped the moment Redis reports a change (client-side caching); 0 = off"),

    /* Upstream */
    AG_OPT(upstreams, "upstream", AG_OPT_LIST, NULL, NULL, 0, 0, 0, "Upstream",
           "where allowed requests go: http(s)://host[:port][/path] (the path routes: /prefix/ or /exact), "
           "unix:///socket[#/path], file:///dir[#/path], host=URL for one Host; static://200 answers 200 "
           "itself"),
    AG_OPT(pass_host_header, "pass-host-header", AG_OPT_BOOL, "true", NULL, 0, 0, 0, "Upstream",
           "send the client's Host header upstream"),
    AG_OPT(proxy_websockets, "proxy-websockets", AG_OPT_BOOL, "true", NULL, 0, 0, 0, "Upstream",
           "proxy WebSocket upgrades"),
    AG_OPT(flush_interval, "flush-interval", AG_OPT_DURATION, "1s", NULL, 0, 0, 0, "Upstream",
           "accepted for oauth2-proxy configs: streamed responses are always flushed at once"),
    AG_OPT(upstream_timeout, "upstream-timeout", AG_OPT_DURATION, "30s", NULL, 0, 0, 0, "Upstream",
           "how long to wait for the upstream's response headers (then 504)"),
    AG_OPT(upstream_max_connections, "upstream-max-connections", AG_OPT_INT, "0", NULL, 0, 1000000, 0,
           "Upstream",
           "connections open to one upstream at most (kept alive and reused); further requests wait for "
           "one, within upstream_timeout; 0 = no limit (a stream, SSE or long poll, holds one)"),
    AG_OPT(ssl_upstream_insecure_skip_verify, "ssl-upstream-insecure-skip-verify", AG_OPT_BOOL, "false", NULL,
           0, 0, 0, "Upstream", "do not verify upstream TLS certificates"),

    /* Headers */
    AG_OPT(set_xauthrequest, "set-xauthrequest", AG_OPT_BOOL, "false", NULL, 0, 0, 0, "Headers",
           "add X-Auth-Request-User, -Email, -Groups, -Preferred-Username to /auth responses"),
    AG_OPT(pass_access_token, "pass-access-token", AG_OPT_BOOL, "false", NULL, 0, 0, 0, "Headers",
           "pass the access token (X-Forwarded-Access-Token, X-Auth-Request-Access-Token)"),
    AG_OPT(set_authorization_header, "set-authorization-header", AG_OPT_BOOL, "false", NULL, 0, 0, 0,
           "Headers", "add Authorization: Bearer <id_token> to /auth responses"),
    AG_OPT(pass_authorization_header, "pass-authorization-header", AG_OPT_BOOL, "false", NULL, 0, 0, 0,
           "Headers", "pass Authorization: Bearer <id_token> upstream"),
    AG_OPT(pass_user_headers, "pass-user-headers", AG_OPT_BOOL, "true", NULL, 0, 0, 0, "Headers",
           "pass X-Forwarded-User, -Email, -Groups, -Preferred-Username upstream"),

    /* Routing */
    AG_OPT(whitelist_domains, "whitelist-domain", AG_OPT_LIST, NULL, NULL, 0, 0, 0, "Routing",
           "domains allowed as redirect targets after login; a leading . allows subdomains"),
    AG_OPT(skip_auth_routes, "skip-auth-route", AG_OPT_LIST, NULL, NULL, 0, 0, 0, "Routing",
           "[METHOD=]path regex of requests that need no authentication"),
    AG_OPT(skip_auth_preflight, "skip-auth-preflight", AG_OPT_BOOL, "false", NULL, 0, 0, 0, "Routing",
           "let CORS preflight (OPTIONS) requests through without authentication"),
    AG_OPT(api_routes, "api-route", AG_OPT_LIST, NULL, NULL, 0, 0, 0, "Routing",
           "path regex of API requests, which get 401 instead of a redirect to login"),
    AG_OPT(force_json_errors, "force-json-errors", AG_OPT_BOOL, "false", NULL, 0, 0, 0, "Routing",
           "answer errors with JSON instead of HTML pages or redirects"),

    /* API tokens */
    AG_OPT(skip_jwt_bearer_tokens, "skip-jwt-bearer-tokens", AG_OPT_BOOL, "false", NULL, 0, 0, 0,
           "API tokens", "accept requests with a verified JWT bearer token without a session"),
    AG_OPT(extra_jwt_issuers, "extra-jwt-issuers", AG_OPT_LIST, NULL, NULL, 0, 0, 0, "API tokens",
           "issuer=audience pairs of other IdPs whose bearer tokens are accepted"),
    AG_OPT(bearer_token_login_fallback, "bearer-token-login-fallback", AG_OPT_BOOL, "true", NULL, 0, 0, 0,
           "API tokens", "when a bearer token is invalid, fall back to the login flow instead of 403"),
    AG_OPT(introspection_url, "introspection-url", AG_OPT_STRING, NULL, NULL, 0, 0, 0, "API tokens",
           "RFC 7662 endpoint for opaque bearer tokens"),
    AG_OPT(introspection_cache_ttl, "introspection-cache-ttl", AG_OPT_DURATION, "5m", NULL, 0, 0, 0,
           "API tokens", "how long an introspection result is cached"),
    AG_OPT(required_scope, "required-scope", AG_OPT_STRING, NULL, NULL, 0, 0, 0, "API tokens",
           "space-delimited scopes every access token (bearer or session) must carry, else 403"),
    AG_OPT(required_scope_routes, "required-scope-route", AG_OPT_LIST, NULL, NULL, 0, 0, 0, "API tokens",
           "\"[METHOD=]regex scope...\": scopes the access token must carry on matching paths"),
    AG_OPT(claim_headers, "claim-header", AG_OPT_LIST, NULL, NULL, 0, 0, 0, "API tokens",
           "Header-Name=claim: send a token claim (nested with .) as a header on allowed checks"),
};

const size_t ag_options_count = AG_ARRAY_LEN(ag_options);

/* ------------------------------------------------------------------------------------------------
 * Small helpers. */

static char *ag_strndup(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    if (d == NULL)
        return NULL;
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

static char *ag_strdup(const char *s)
{
    return ag_strndup(s, strlen(s));
}

/* Free a string that may hold key material. */
static void ag_free_secret(char *s)
{
    if (s == NULL)
        return;
    OPENSSL_cleanse(s, strlen(s));
    free(s);
}

void ag_strlist_clear(struct ag_strlist *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

/* Lists are only ever built by appending, so their capacity is implied: 4, then the next power of
 * two. Growing geometrically keeps a 1 MiB array of tiny items linear, not quadratic. */
enum ag_rc ag_strlist_push(struct ag_strlist *l, const char *s, size_t len)
{
    char **v = l->v;
    char *copy = ag_strndup(s, len);

    if (copy == NULL)
        return AG_ERR_NOMEM;
    if (l->n == 0 || (l->n >= 4 && (l->n & (l->n - 1)) == 0)) {
        size_t cap = l->n == 0 ? 4 : l->n * 2;
        v = realloc(l->v, cap * sizeof(*v));
        if (v == NULL) {
            free(copy);
            return AG_ERR_NOMEM;
        }
    }
    v[l->n++] = copy;
    l->v = v;
    return AG_OK;
}

/* Append the comma-separated items of s, each trimmed of blanks; empty items are dropped, so
 * "a, b,," is two items and "" none. */
static enum ag_rc ag_strlist_split(struct ag_strlist *l, const char *s)
{
    while (*s != '\0') {
        const char *comma = strchr(s, ',');
        const char *e = comma != NULL ? comma : s + strlen(s);
        const char *b = s;
        while (b < e && (*b == ' ' || *b == '\t'))
            b++;
        while (e > b && (e[-1] == ' ' || e[-1] == '\t'))
            e--;
        if (e > b && ag_strlist_push(l, b, (size_t)(e - b)) != AG_OK)
            return AG_ERR_NOMEM;
        if (comma == NULL)
            break;
        s = comma + 1;
    }
    return AG_OK;
}

enum ag_rc ag_strlist_copy(struct ag_strlist *dst, const struct ag_strlist *src)
{
    ag_strlist_clear(dst);
    for (size_t i = 0; i < src->n; i++) {
        if (ag_strlist_push(dst, src->v[i], strlen(src->v[i])) != AG_OK)
            return AG_ERR_NOMEM;
    }
    return AG_OK;
}

static void ag_secret_clear(struct ag_secret *s)
{
    ag_free_secret(s->value);
    s->value = NULL;
    free(s->file);
    s->file = NULL;
}

static char ag_upper(char c)
{
    return (c >= 'a' && c <= 'z') ? (char)(c - 'a' + 'A') : c;
}

static bool ag_is_digit(int c)
{
    return c >= '0' && c <= '9';
}

static bool ag_is_alnum(int c)
{
    return ag_is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* Quote a (non-secret) user value for an error line: control bytes escaped so a hostile value cannot
 * forge extra lines, and cut short so one bad value cannot flood the log. */
/* A URL's password never leaves the process: "redis://user:pw@host" is shown as "redis://user:****@host". */
static const char *ag_redact_url(const char *s, char *buf, size_t size)
{
    const char *scheme = strstr(s, "://"), *auth, *at, *colon;
    size_t hostpart;

    if (scheme == NULL)
        return s;
    auth = scheme + 3;
    hostpart = strcspn(auth, "/?#");
    at = memchr(auth, '@', hostpart);
    if (at == NULL)
        return s;
    colon = memchr(auth, ':', (size_t)(at - auth));
    if (colon == NULL)
        return s;
    snprintf(buf, size, "%.*s:****%s", (int)(colon - s), s, at);
    return buf;
}

static const char *ag_show(const char *s, char *buf, size_t size)
{
    char redacted[AG_SHOW_BUF * 4];
    size_t o = 0;
    const unsigned char *p;

    s = ag_redact_url(s, redacted, sizeof(redacted));
    p = (const unsigned char *)s;

    buf[o++] = '"';
    for (; *p != '\0'; p++) {
        if (o + 4 + 5 >= size) { /* room for one escape, then `..."` and the NUL */
            memcpy(buf + o, "...", 3);
            o += 3;
            break;
        }
        if (*p == '"' || *p == '\\') {
            buf[o++] = '\\';
            buf[o++] = (char)*p;
        } else if (*p < 0x20 || *p == 0x7f) {
            o += (size_t)snprintf(buf + o, size - o, "\\x%02x", *p);
        } else {
            buf[o++] = (char)*p;
        }
    }
    buf[o++] = '"';
    buf[o] = '\0';
    return buf;
}

/* Levenshtein distance, for "did you mean" hints; strings longer than AG_KEY_MAX count as far. */
static size_t ag_edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    size_t row[AG_KEY_MAX + 1];

    if (la > AG_KEY_MAX || lb > AG_KEY_MAX)
        return SIZE_MAX;
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t best = diag + (a[i - 1] == b[j - 1] ? 0 : 1);
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

/* ------------------------------------------------------------------------------------------------
 * Value parsers. */

enum ag_rc ag_config_parse_bool(const char *s, bool *out)
{
    static const char *const yes[] = {"1", "t", "T", "TRUE", "true", "True"};
    static const char *const no[] = {"0", "f", "F", "FALSE", "false", "False"};

    if (s == NULL)
        return AG_ERR_INVALID;
    for (size_t i = 0; i < AG_ARRAY_LEN(yes); i++) {
        if (strcmp(s, yes[i]) == 0) {
            *out = true;
            return AG_OK;
        }
        if (strcmp(s, no[i]) == 0) {
            *out = false;
            return AG_OK;
        }
    }
    return AG_ERR_INVALID;
}

enum ag_rc ag_config_parse_int(const char *s, int64_t *out)
{
    bool neg = false;
    uint64_t acc = 0, limit;

    if (s == NULL)
        return AG_ERR_INVALID;
    if (*s == '+' || *s == '-') {
        neg = *s == '-';
        s++;
    }
    if (!ag_is_digit((unsigned char)*s))
        return AG_ERR_INVALID;
    limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    for (; *s != '\0'; s++) {
        uint64_t d;
        if (!ag_is_digit((unsigned char)*s))
            return AG_ERR_INVALID;
        d = (uint64_t)(*s - '0');
        if (acc > (limit - d) / 10)
            return AG_ERR_INVALID;
        acc = acc * 10 + d;
    }
    if (neg)
        *out = acc == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)acc;
    else
        *out = (int64_t)acc;
    return AG_OK;
}

/* Go's time.ParseDuration grammar: [+]{number[.fraction]unit}..., or a bare "0". Computed in
 * nanoseconds with Go's overflow limit (about 292 years), then truncated to milliseconds; a nonzero
 * duration below 1 ms is refused rather than silently becoming 0 (which means "off" for some). */
enum ag_rc ag_config_parse_duration(const char *s, int64_t *ms_out)
{
    static const struct {
        const char *name;
        int64_t ns;
    } units[] = {
        {"ns", 1LL},           {"us", 1000LL},      {"\xc2\xb5s", 1000LL}, /* U+00B5 micro sign */
        {"\xce\xbcs", 1000LL},                                             /* U+03BC Greek mu */
        {"ms", 1000000LL},     {"s", 1000000000LL}, {"m", 60000000000LL},  {"h", 3600000000000LL},
    };
    int64_t total = 0;

    if (s == NULL || *s == '\0')
        return AG_ERR_INVALID;
    if (*s == '+')
        s++;
    if (strcmp(s, "0") == 0) {
        *ms_out = 0;
        return AG_OK;
    }
    if (*s == '\0')
        return AG_ERR_INVALID;
    while (*s != '\0') {
        int64_t v = 0, unit = 0, frac = 0;
        double scale = 1;
        bool digits = false;
        size_t ulen = 0;

        if (!ag_is_digit((unsigned char)*s) && *s != '.')
            return AG_ERR_INVALID;
        for (; ag_is_digit((unsigned char)*s); s++) {
            if (v > (INT64_MAX - (*s - '0')) / 10)
                return AG_ERR_INVALID;
            v = v * 10 + (*s - '0');
            digits = true;
        }
        if (*s == '.') {
            s++;
            for (; ag_is_digit((unsigned char)*s); s++) {
                digits = true;
                if (frac > INT64_MAX / 100) /* more digits than can matter: ignore the rest */
                    continue;
                frac = frac * 10 + (*s - '0');
                scale *= 10;
            }
        }
        if (!digits)
            return AG_ERR_INVALID;
        while (s[ulen] != '\0' && s[ulen] != '.' && !ag_is_digit((unsigned char)s[ulen]))
            ulen++;
        for (size_t i = 0; i < AG_ARRAY_LEN(units); i++) {
            if (strlen(units[i].name) == ulen && strncmp(s, units[i].name, ulen) == 0)
                unit = units[i].ns;
        }
        if (unit == 0)
            return AG_ERR_INVALID; /* missing or unknown unit */
        s += ulen;
        if (v > INT64_MAX / unit)
            return AG_ERR_INVALID;
        v *= unit;
        if (frac > 0) {
            /* The fraction's nanoseconds are less than one unit (under 3.6e12), so the cast is exact
             * enough and in range; the sum is checked in integers: a check in doubles rounds INT64_MAX
             * and v alike and let 9223372036854775.9us overflow. */
            int64_t f = (int64_t)((double)frac * ((double)unit / scale));
            if (f > INT64_MAX - v)
                return AG_ERR_INVALID;
            v += f;
        }
        if (v > INT64_MAX - total)
            return AG_ERR_INVALID;
        total += v;
    }
    if (total > 0 && total < 1000000)
        return AG_ERR_INVALID;
    *ms_out = total / 1000000;
    return AG_OK;
}

void ag_config_format_duration(int64_t ms, char *buf, size_t size)
{
    static const struct {
        const char *name;
        int64_t ms;
    } parts[] = {{"h", 3600000}, {"m", 60000}, {"s", 1000}, {"ms", 1}};
    size_t o = 0;

    if (size == 0)
        return;
    buf[0] = '\0';
    if (ms <= 0) {
        snprintf(buf, size, "%s", ms == 0 ? "0s" : "invalid");
        return;
    }
    for (size_t i = 0; i < AG_ARRAY_LEN(parts) && o < size; i++) {
        int64_t n = ms / parts[i].ms;
        int w;
        if (n == 0)
            continue;
        ms -= n * parts[i].ms;
        w = snprintf(buf + o, size - o, "%lld%s", (long long)n, parts[i].name);
        if (w < 0)
            return;
        o += (size_t)w;
    }
}

static bool ag_aes_len(size_t n)
{
    return n == 16 || n == 24 || n == 32;
}

enum ag_rc ag_config_cookie_key(const char *secret, unsigned char key[32], size_t *len)
{
    unsigned char tmp[32];
    size_t n = 0, slen;
    enum ag_rc rc = AG_ERR_INVALID;

    if (secret == NULL)
        return AG_ERR_INVALID;
    slen = strlen(secret);
    /* Like oauth2-proxy: prefer the base64 reading, but only when it yields an AES key length, so
     * a 32-character ASCII secret that happens to be valid base64 keeps working. */
    if (ag_b64_decode(secret, slen, AG_B64_STANDARD | AG_B64_PADDING | AG_B64_LAX_TAIL, tmp, sizeof(tmp),
                      &n) == AG_OK &&
        ag_aes_len(n)) {
        memcpy(key, tmp, n);
        *len = n;
        rc = AG_OK;
    } else if (ag_aes_len(slen)) {
        memcpy(key, secret, slen);
        *len = slen;
        rc = AG_OK;
    }
    OPENSSL_cleanse(tmp, sizeof(tmp));
    return rc;
}

/* ------------------------------------------------------------------------------------------------
 * Table lookups and names. */

int ag_config_find(const char *key)
{
    if (key == NULL)
        return -1;
    for (size_t i = 0; i < ag_options_count; i++) {
        if (strcmp(ag_options[i].key, key) == 0)
            return (int)i;
    }
    return -1;
}

/* Does `name` (len bytes) equal `base` followed by `suffix`? */
static bool ag_name_is(const char *name, size_t len, const char *base, const char *suffix)
{
    size_t bl = strlen(base), sl = strlen(suffix);
    return len == bl + sl && strncmp(name, base, bl) == 0 && strncmp(name + bl, suffix, sl) == 0;
}

/* Find a config key, or the <key>_file variant of a secret. */
static int ag_find_key(const char *name, size_t len, bool *file_variant)
{
    for (size_t i = 0; i < ag_options_count; i++) {
        if (ag_name_is(name, len, ag_options[i].key, "")) {
            *file_variant = false;
            return (int)i;
        }
        if (ag_options[i].type == AG_OPT_SECRET && ag_name_is(name, len, ag_options[i].key, "_file")) {
            *file_variant = true;
            return (int)i;
        }
    }
    return -1;
}

static int ag_find_flag(const char *name, size_t len, bool *file_variant)
{
    for (size_t i = 0; i < ag_options_count; i++) {
        if (ag_name_is(name, len, ag_options[i].flag, "")) {
            *file_variant = false;
            return (int)i;
        }
        if (ag_options[i].type == AG_OPT_SECRET && ag_name_is(name, len, ag_options[i].flag, "-file")) {
            *file_variant = true;
            return (int)i;
        }
    }
    return -1;
}

static const char *const ag_special_flags[] = {"config", "config-test", "help", "print-config-reference",
                                               "version"};

/* The closest key (flags == false) or flag within edit distance 2 of `name`, written to buf;
 * false when none is that close. */
static bool ag_suggest(const char *name, bool flags, char *buf, size_t size)
{
    size_t best = 3;
    char cand[AG_NAME_BUF];

    buf[0] = '\0';
    for (size_t i = 0; i < ag_options_count; i++) {
        for (int variant = 0; variant < 2; variant++) {
            size_t d;
            if (variant == 1 && ag_options[i].type != AG_OPT_SECRET)
                continue;
            if (flags)
                snprintf(cand, sizeof(cand), "%s%s", ag_options[i].flag, variant ? "-file" : "");
            else
                snprintf(cand, sizeof(cand), "%s%s", ag_options[i].key, variant ? "_file" : "");
            d = ag_edit_distance(name, cand);
            if (d < best) {
                best = d;
                snprintf(buf, size, "%s", cand);
            }
        }
    }
    for (size_t i = 0; flags && i < AG_ARRAY_LEN(ag_special_flags); i++) {
        size_t d = ag_edit_distance(name, ag_special_flags[i]);
        if (d < best) {
            best = d;
            snprintf(buf, size, "%s", ag_special_flags[i]);
        }
    }
    return buf[0] != '\0';
}

enum ag_rc ag_config_env_name(size_t idx, const char *prefix, bool file_variant, char *buf, size_t size)
{
    const char *key;
    size_t o = 0, pl;

    if (idx >= ag_options_count || prefix == NULL || buf == NULL || size == 0)
        return AG_ERR_INVALID;
    if (file_variant && ag_options[idx].type != AG_OPT_SECRET)
        return AG_ERR_INVALID;
    key = ag_options[idx].key;
    pl = strlen(prefix);
    if (pl + strlen(key) + (file_variant ? 5 : 0) + 1 > size) {
        buf[0] = '\0';
        return AG_ERR_TOO_LARGE;
    }
    memcpy(buf, prefix, pl);
    o = pl;
    for (; *key != '\0'; key++)
        buf[o++] = ag_upper(*key);
    if (file_variant) {
        memcpy(buf + o, "_FILE", 5);
        o += 5;
    }
    buf[o] = '\0';
    return AG_OK;
}

static const char *ag_type_name(enum ag_opt_type t)
{
    switch (t) {
    case AG_OPT_STRING:
        return "string";
    case AG_OPT_BOOL:
        return "bool";
    case AG_OPT_INT:
        return "int";
    case AG_OPT_DURATION:
        return "duration";
    case AG_OPT_LIST:
        return "list";
    case AG_OPT_SECRET:
        return "secret";
    }
    return "?";
}

/* ------------------------------------------------------------------------------------------------
 * Loading state and error reporting. */

struct ag_load {
    struct ag_config *cfg;
    FILE *errf;
    unsigned nerr;
    bool nomem;
};

/* Where one value came from. */
struct ag_from {
    enum ag_source src;
    const char *where; /* "flag --x", "env X", "<path>:<line>"; NULL for defaults */
    int line;
};

AG_PRINTF(4, 5)
static void ag_err(struct ag_load *ld, const char *where, const char *opt, const char *fmt, ...)
{
    va_list ap;

    ld->nerr++;
    if (ld->errf == NULL)
        return;
    fputs("authgate: config: ", ld->errf);
    if (where != NULL)
        fprintf(ld->errf, "%s: ", where);
    if (opt != NULL)
        fprintf(ld->errf, "%s: ", opt);
    va_start(ap, fmt);
    vfprintf(ld->errf, fmt, ap);
    va_end(ap);
    fputc('\n', ld->errf);
}

static void ag_nomem(struct ag_load *ld)
{
    if (!ld->nomem)
        ag_err(ld, NULL, NULL, "out of memory");
    ld->nomem = true;
}

/* Where the current value of option idx came from, for messages about it. */
static const char *ag_where(const struct ag_config *cfg, size_t idx)
{
    return cfg->src_where[idx] != NULL ? cfg->src_where[idx] : "default";
}

static void ag_set_source(struct ag_load *ld, size_t idx, const struct ag_from *from)
{
    struct ag_config *cfg = ld->cfg;

    free(cfg->src_where[idx]);
    cfg->src_where[idx] = NULL;
    cfg->src[idx] = from->src;
    cfg->src_line[idx] = from->line;
    if (from->src != AG_SRC_DEFAULT && from->where != NULL) {
        cfg->src_where[idx] = ag_strdup(from->where);
        if (cfg->src_where[idx] == NULL)
            ag_nomem(ld);
    }
}

/* One value as a source gave it. Flags, env and defaults give text (typed == false) that the option's
 * type parses; the config file gives typed TOML values (typed == true), which must match. */
enum ag_vkind { AG_V_STR, AG_V_BOOL, AG_V_INT, AG_V_ARRAY };

struct ag_val {
    enum ag_vkind kind;
    bool typed;
    char *s; /* AG_V_STR, owned */
    bool b;
    int64_t i;
    struct ag_strlist arr; /* AG_V_ARRAY: the string items, owned */
    const char *arr_bad;   /* AG_V_ARRAY: what the first non-string item was, or NULL */
};

static void ag_val_clear(struct ag_val *v)
{
    ag_free_secret(v->s); /* the value may be a secret: cleanse whatever it was */
    v->s = NULL;
    for (size_t i = 0; i < v->arr.n; i++)
        OPENSSL_cleanse(v->arr.v[i], strlen(v->arr.v[i]));
    ag_strlist_clear(&v->arr);
    v->arr_bad = NULL;
}

static const char *ag_vkind_name(enum ag_vkind k)
{
    switch (k) {
    case AG_V_STR:
        return "a string";
    case AG_V_BOOL:
        return "a boolean";
    case AG_V_INT:
        return "an integer";
    case AG_V_ARRAY:
        return "an array";
    }
    return "?";
}

static const char *ag_expect(const struct ag_option *o, bool file_variant)
{
    if (file_variant)
        return "a file path string";
    switch (o->type) {
    case AG_OPT_STRING:
        return "a string";
    case AG_OPT_SECRET:
        return "a string";
    case AG_OPT_BOOL:
        return "true or false";
    case AG_OPT_INT:
        return "an integer";
    case AG_OPT_DURATION:
        return "a duration string like \"168h\", \"15m\", \"30s\" or \"1h30m\"";
    case AG_OPT_LIST:
        return "an array of strings like [\"a\", \"b\"]";
    }
    return "?";
}

static void ag_choices_text(const char *const *choices, char *buf, size_t size)
{
    size_t o = 0;

    buf[0] = '\0';
    for (size_t i = 0; choices[i] != NULL && o < size; i++) {
        int w = snprintf(buf + o, size - o, "%s\"%s\"", i == 0 ? "" : ", ", choices[i]);
        if (w < 0)
            return;
        o += (size_t)w;
    }
}

static bool ag_choice_ok(const char *const *choices, const char *s)
{
    for (size_t i = 0; choices[i] != NULL; i++) {
        if (strcmp(choices[i], s) == 0)
            return true;
    }
    return false;
}

static bool ag_val_empty(const struct ag_val *v)
{
    return (v->kind == AG_V_STR && v->s[0] == '\0') ||
           (v->kind == AG_V_ARRAY && v->arr.n == 0 && v->arr_bad == NULL);
}

static bool ag_in_bounds(const struct ag_option *o, int64_t n)
{
    if (o->min == 0 && o->max == 0)
        return true;
    return n >= o->min && n <= o->max;
}

/* Store one value from one source into option idx, replacing what a lower source set. A value that
 * does not fit is reported (naming the source) and leaves the lower source's value in place. */
static void ag_apply(struct ag_load *ld, size_t idx, bool file_variant, const struct ag_val *v,
                     const struct ag_from *from)
{
    const struct ag_option *o = &ag_options[idx];
    void *field = (char *)ld->cfg + o->offset;
    const char *where = from->where != NULL ? from->where : "default";
    char name[AG_NAME_BUF];
    char shown[AG_SHOW_BUF];
    char a[32], b[32];
    bool bv = false;
    int64_t n = 0;

    snprintf(name, sizeof(name), "%s%s", o->key, file_variant ? "_file" : "");
    /* Planned options are refused when a source sets them; setting one to empty is the same as
     * not using it (https_address = "" is what a plain-HTTP oauth2-proxy config says). */
    if ((o->flags & AG_OPTF_PLANNED) && from->src != AG_SRC_DEFAULT) {
        if (!ag_val_empty(v))
            ag_err(ld, where, name, "not supported yet in " AG_VERSION_TEXT " (planned)");
        return;
    }
    if (v->kind == AG_V_ARRAY && o->type != AG_OPT_LIST) {
        ag_err(ld, where, name, "got an array, expected a single value: %s", ag_expect(o, file_variant));
        return;
    }
    if (file_variant || o->type == AG_OPT_STRING || o->type == AG_OPT_SECRET) {
        if (v->kind != AG_V_STR) {
            ag_err(ld, where, name, "got %s, expected %s", ag_vkind_name(v->kind),
                   ag_expect(o, file_variant));
            return;
        }
    }

    if (file_variant) {
        struct ag_secret *sec = field;
        char *path;
        if (v->s[0] == '\0') {
            ag_err(ld, where, name, "empty path, expected the path of a file holding %s", o->key);
            return;
        }
        path = ag_strdup(v->s);
        if (path == NULL) {
            ag_nomem(ld);
            return;
        }
        ag_secret_clear(sec);
        sec->file = path;
        ag_set_source(ld, idx, from);
        return;
    }

    switch (o->type) {
    case AG_OPT_STRING: {
        char **sp = field;
        char *copy;
        if (o->choices != NULL && !ag_choice_ok(o->choices, v->s)) {
            char list[256];
            ag_choices_text(o->choices, list, sizeof(list));
            ag_err(ld, where, name, "invalid value %s, expected one of %s",
                   ag_show(v->s, shown, sizeof(shown)), list);
            return;
        }
        copy = ag_strdup(v->s);
        if (copy == NULL) {
            ag_nomem(ld);
            return;
        }
        free(*sp);
        *sp = copy;
        break;
    }
    case AG_OPT_SECRET: {
        struct ag_secret *sec = field;
        char *copy = ag_strdup(v->s);
        if (copy == NULL) {
            ag_nomem(ld);
            return;
        }
        ag_secret_clear(sec);
        sec->value = copy;
        break;
    }
    case AG_OPT_BOOL:
        if (v->kind == AG_V_BOOL) {
            bv = v->b;
        } else if (v->kind == AG_V_STR && !v->typed) {
            if (ag_config_parse_bool(v->s, &bv) != AG_OK) {
                ag_err(
                    ld, where, name,
                    "invalid boolean %s, expected true or false (1, t, T, TRUE, true, True, 0, f, F, FALSE, "
                    "false, False)",
                    ag_show(v->s, shown, sizeof(shown)));
                return;
            }
        } else {
            ag_err(ld, where, name, "got %s, expected true or false (unquoted)", ag_vkind_name(v->kind));
            return;
        }
        *(bool *)field = bv;
        break;
    case AG_OPT_INT:
        if (v->kind == AG_V_INT) {
            n = v->i;
        } else if (v->kind == AG_V_STR && !v->typed) {
            if (ag_config_parse_int(v->s, &n) != AG_OK) {
                ag_err(ld, where, name, "invalid integer %s, expected a decimal integer",
                       ag_show(v->s, shown, sizeof(shown)));
                return;
            }
        } else {
            ag_err(ld, where, name, "got %s, expected an integer (unquoted)", ag_vkind_name(v->kind));
            return;
        }
        if (!ag_in_bounds(o, n)) {
            ag_err(ld, where, name, "%lld is out of range, expected an integer from %lld to %lld",
                   (long long)n, (long long)o->min, (long long)o->max);
            return;
        }
        *(int64_t *)field = n;
        break;
    case AG_OPT_DURATION:
        if (v->kind != AG_V_STR) {
            ag_err(ld, where, name, "got %s, expected %s", ag_vkind_name(v->kind), ag_expect(o, false));
            return;
        }
        if (ag_config_parse_duration(v->s, &n) != AG_OK) {
            ag_err(
                ld, where, name,
                "invalid duration %s, expected a duration like 168h, 15m, 30s, 1h30m or 250ms (units h, m, "
                "s, ms; not negative)",
                ag_show(v->s, shown, sizeof(shown)));
            return;
        }
        if (!ag_in_bounds(o, n)) {
            ag_config_format_duration(o->min, a, sizeof(a));
            ag_config_format_duration(o->max, b, sizeof(b));
            ag_err(ld, where, name, "%s is out of range, expected a duration from %s to %s",
                   ag_show(v->s, shown, sizeof(shown)), a, b);
            return;
        }
        *(int64_t *)field = n;
        break;
    case AG_OPT_LIST: {
        struct ag_strlist tmp = {0, NULL};
        enum ag_rc rc;
        if (v->kind == AG_V_ARRAY && v->arr_bad != NULL) {
            ag_err(ld, where, name, "the array holds %s, expected %s", v->arr_bad, ag_expect(o, false));
            return;
        }
        if (v->kind == AG_V_ARRAY) {
            rc = ag_strlist_copy(&tmp, &v->arr);
        } else if (v->kind == AG_V_STR && !v->typed) {
            rc = ag_strlist_split(&tmp, v->s);
        } else {
            ag_err(ld, where, name, "got %s, expected %s", ag_vkind_name(v->kind), ag_expect(o, false));
            return;
        }
        if (rc != AG_OK) {
            ag_strlist_clear(&tmp);
            ag_nomem(ld);
            return;
        }
        /* A list from a higher source replaces the lower one, it does not extend it. */
        ag_strlist_clear(field);
        *(struct ag_strlist *)field = tmp;
        break;
    }
    }
    ag_set_source(ld, idx, from);
}

static void ag_apply_text(struct ag_load *ld, size_t idx, bool file_variant, const char *text,
                          const struct ag_from *from)
{
    struct ag_val v = {.kind = AG_V_STR, .typed = false};

    /* ag_apply never keeps v.s, so lend it the caller's text instead of copying it. */
    v.s = (char *)(uintptr_t)text;
    ag_apply(ld, idx, file_variant, &v, from);
}

static void ag_apply_defaults(struct ag_load *ld)
{
    const struct ag_from from = {AG_SRC_DEFAULT, NULL, 0};

    for (size_t i = 0; i < ag_options_count; i++) {
        const struct ag_option *o = &ag_options[i];
        if (o->def != NULL)
            ag_apply_text(ld, i, false, o->def, &from);
        else if (o->type == AG_OPT_STRING)
            ag_apply_text(ld, i, false, "", &from); /* strings are never NULL, see config.h */
    }
}

/* ------------------------------------------------------------------------------------------------
 * Files. */

/* Read a whole file of at most `max` bytes into a new NUL-terminated buffer. AG_ERR_IO with *err_no
 * set, or AG_ERR_TOO_LARGE. The buffer starts at the file's size and grows by copying, never by
 * realloc, so no stale copy of a secret is left in freed memory; the caller cleanses it. */
static enum ag_rc ag_read_file(const char *path, size_t max, char **out, size_t *outlen, int *err_no)
{
    FILE *f = NULL;
    char *buf = NULL;
    size_t len = 0, cap = 4096;
    struct stat st;
    enum ag_rc rc = AG_ERR_IO;

    *out = NULL;
    *outlen = 0;
    *err_no = 0;
    f = fopen(path, "rb");
    if (f == NULL) {
        *err_no = errno;
        goto out;
    }
    if (fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode) && st.st_size >= 0 && (uintmax_t)st.st_size <= max)
        cap = (size_t)st.st_size + 1;
    if (cap > max + 1)
        cap = max + 1;
    buf = malloc(cap);
    if (buf == NULL) {
        rc = AG_ERR_NOMEM;
        goto out;
    }
    for (;;) {
        size_t got;
        if (len == cap) {
            size_t ncap = cap > (max + 1) / 2 ? max + 1 : cap * 2;
            char *nbuf;
            if (cap == max + 1) {
                rc = AG_ERR_TOO_LARGE;
                goto out;
            }
            nbuf = malloc(ncap);
            if (nbuf == NULL) {
                rc = AG_ERR_NOMEM;
                goto out;
            }
            memcpy(nbuf, buf, len);
            OPENSSL_cleanse(buf, len);
            free(buf);
            buf = nbuf;
            cap = ncap;
        }
        got = fread(buf + len, 1, cap - len, f);
        if (got == 0)
            break;
        len += got;
    }
    if (ferror(f)) {
        *err_no = errno != 0 ? errno : EIO;
        goto out;
    }
    buf[len] = '\0'; /* len < cap: a full buffer grows before the next read */
    *out = buf;
    *outlen = len;
    buf = NULL;
    rc = AG_OK;
out:
    if (buf != NULL) {
        OPENSSL_cleanse(buf, len);
        free(buf);
    }
    if (f != NULL)
        fclose(f);
    return rc;
}

/* ------------------------------------------------------------------------------------------------
 * The config file: the TOML subset oauth2-proxy users write. Flat key = value lines; values are
 * basic or literal strings, true/false, decimal integers and arrays of those (arrays may span lines,
 * hold comments and end with a comma). Everything else is reported with file:line and the parser
 * resumes on the next line, so one run shows every problem. */

struct ag_toml {
    struct ag_load *ld;
    const char *path;
    const char *p, *end;
    const char *bol; /* start of the current line */
    int line;
    int *seen; /* per option and variant: the line that set it, 0 = not yet */
    char where[AG_WHERE_BUF];
};

static const char *ag_toml_where(struct ag_toml *t, int line)
{
    snprintf(t->where, sizeof(t->where), "%s:%d", t->path, line);
    return t->where;
}

static bool ag_toml_eol(const struct ag_toml *t)
{
    return t->p >= t->end || *t->p == '\n' || (*t->p == '\r' && t->p + 1 < t->end && t->p[1] == '\n');
}

/* Step over the line break at p (callers check ag_toml_eol first). */
static void ag_toml_newline(struct ag_toml *t)
{
    if (t->p < t->end && *t->p == '\r')
        t->p++;
    if (t->p < t->end && *t->p == '\n') {
        t->p++;
        t->line++;
        t->bol = t->p;
    }
}

static void ag_toml_next_line(struct ag_toml *t)
{
    while (t->p < t->end && *t->p != '\n')
        t->p++;
    ag_toml_newline(t);
}

static void ag_toml_blank(struct ag_toml *t)
{
    while (t->p < t->end && (*t->p == ' ' || *t->p == '\t'))
        t->p++;
}

static bool ag_is_ctl(unsigned char c)
{
    return (c < 0x20 && c != '\t') || c == 0x7f;
}

/* p is at '#': skip the comment up to the line break. Control characters are refused in comments
 * as TOML says, since they are a sign of a binary or mangled file. */
static bool ag_toml_comment(struct ag_toml *t)
{
    bool ok = true;

    while (!ag_toml_eol(t)) {
        unsigned char c = (unsigned char)*t->p;
        if (ok && ag_is_ctl(c)) {
            ag_err(t->ld, ag_toml_where(t, t->line), NULL,
                   "control character 0x%02x in a comment, expected text", c);
            ok = false;
        }
        t->p++;
    }
    return ok;
}

/* Skip blanks, line breaks and comments (inside arrays). */
static bool ag_toml_space(struct ag_toml *t)
{
    for (;;) {
        ag_toml_blank(t);
        if (t->p >= t->end)
            return true;
        if (*t->p == '#') {
            if (!ag_toml_comment(t))
                return false;
        } else if (ag_toml_eol(t)) {
            ag_toml_newline(t);
        } else {
            return true;
        }
    }
}

static void ag_utf8_put(char *out, size_t *o, uint32_t cp)
{
    if (cp < 0x80) {
        out[(*o)++] = (char)cp;
    } else if (cp < 0x800) {
        out[(*o)++] = (char)(0xc0 | (cp >> 6));
        out[(*o)++] = (char)(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
        out[(*o)++] = (char)(0xe0 | (cp >> 12));
        out[(*o)++] = (char)(0x80 | ((cp >> 6) & 0x3f));
        out[(*o)++] = (char)(0x80 | (cp & 0x3f));
    } else {
        out[(*o)++] = (char)(0xf0 | (cp >> 18));
        out[(*o)++] = (char)(0x80 | ((cp >> 12) & 0x3f));
        out[(*o)++] = (char)(0x80 | ((cp >> 6) & 0x3f));
        out[(*o)++] = (char)(0x80 | (cp & 0x3f));
    }
}

/* p is at the opening quote of a basic ("...") or literal ('...') string. Strings end on their line;
 * the content is never echoed in errors since it may be a secret. */
static bool ag_toml_string(struct ag_toml *t, const char *key, char **out)
{
    const char quote = *t->p;
    const bool basic = quote == '"';
    const char *s = t->p + 1, *q;
    char *buf = NULL;
    size_t o = 0;

    *out = NULL;
    if (t->end - t->p >= 3 && t->p[1] == quote && t->p[2] == quote) {
        ag_err(t->ld, ag_toml_where(t, t->line), key, "multi-line strings are not supported, expected a %s",
               basic ? "\"string\" on one line" : "'string' on one line");
        return false;
    }
    /* Find the closing quote first, so the buffer is sized by this string, not by the rest of the file. */
    for (q = s; q < t->end && *q != quote && *q != '\n'; q++) {
        if (basic && *q == '\\' && q + 1 < t->end && q[1] != '\n')
            q++;
    }
    if (q >= t->end || *q != quote) {
        ag_err(t->ld, ag_toml_where(t, t->line), key,
               "unterminated string, expected a closing %c on the same line", quote);
        return false;
    }
    buf = malloc((size_t)(q - s) + 1);
    if (buf == NULL) {
        ag_nomem(t->ld);
        return false;
    }
    while (s < q) {
        unsigned char c = (unsigned char)*s;
        if (ag_is_ctl(c)) {
            ag_err(t->ld, ag_toml_where(t, t->line), key,
                   "control character 0x%02x in a string, expected printable text (write \\n, \\t... in "
                   "double quotes)",
                   c);
            goto fail;
        }
        if (!basic || c != '\\') {
            buf[o++] = (char)c;
            s++;
            continue;
        }
        s++; /* the escape */
        switch (*s) {
        case '"':
            buf[o++] = '"';
            s++;
            break;
        case '\\':
            buf[o++] = '\\';
            s++;
            break;
        case 'n':
            buf[o++] = '\n';
            s++;
            break;
        case 't':
            buf[o++] = '\t';
            s++;
            break;
        case 'r':
            buf[o++] = '\r';
            s++;
            break;
        case 'b':
            buf[o++] = '\b';
            s++;
            break;
        case 'f':
            buf[o++] = '\f';
            s++;
            break;
        case 'u':
        case 'U': {
            size_t digits = *s == 'u' ? 4 : 8;
            uint32_t cp = 0;
            s++;
            if ((size_t)(q - s) < digits)
                goto bad_unicode;
            for (size_t i = 0; i < digits; i++) {
                int h = ag_hex_digit((unsigned char)s[i]);
                if (h < 0)
                    goto bad_unicode;
                cp = (cp << 4) | (uint32_t)h;
            }
            if (cp == 0 || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
                goto bad_unicode;
            s += digits;
            ag_utf8_put(buf, &o, cp);
            break;
        }
        default:
            if (ag_is_ctl((unsigned char)*s))
                ag_err(t->ld, ag_toml_where(t, t->line), key,
                       "invalid escape (backslash before control character 0x%02x), expected \\\", \\\\, "
                       "\\n, \\t, "
                       "\\r, \\b, \\f, \\uXXXX or \\UXXXXXXXX",
                       (unsigned char)*s);
            else
                ag_err(t->ld, ag_toml_where(t, t->line), key,
                       "invalid escape \\%c, expected \\\", \\\\, \\n, \\t, \\r, \\b, \\f, \\uXXXX or "
                       "\\UXXXXXXXX",
                       *s);
            goto fail;
        }
    }
    buf[o] = '\0';
    t->p = q + 1;
    *out = buf;
    return true;
bad_unicode:
    ag_err(t->ld, ag_toml_where(t, t->line), key,
           "invalid unicode escape, expected \\uXXXX or \\UXXXXXXXX with hex digits naming a non-NUL, "
           "non-surrogate "
           "code point");
fail:
    OPENSSL_cleanse(buf, (size_t)(q - (t->p + 1)) + 1);
    free(buf);
    return false;
}

/* A bare token (true, false, a number, or a mistake) ends at a blank, a line break, a comment,
 * a comma or a closing bracket. */
static bool ag_toml_token_end(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '#' || c == ',' || c == ']' ||
           ag_is_ctl(c);
}

/* TOML decimal integer: optional sign, no leading zero, '_' only between digits. */
static bool ag_toml_int(const char *tok, size_t len, int64_t *out)
{
    char digits[32];
    size_t o = 0, i = 0;

    if (len > 0 && (tok[0] == '+' || tok[0] == '-'))
        digits[o++] = tok[i++];
    if (i >= len || !ag_is_digit((unsigned char)tok[i]))
        return false;
    if (tok[i] == '0' && i + 1 < len)
        return false; /* leading zero (also 0x, 0o, 0b) */
    for (; i < len; i++) {
        if (tok[i] == '_') {
            if (!ag_is_digit((unsigned char)tok[i - 1]) || i + 1 >= len ||
                !ag_is_digit((unsigned char)tok[i + 1]))
                return false;
            continue;
        }
        if (!ag_is_digit((unsigned char)tok[i]) || o + 1 >= sizeof(digits))
            return false;
        digits[o++] = tok[i];
    }
    digits[o] = '\0';
    return ag_config_parse_int(digits, out) == AG_OK;
}

static bool ag_toml_value(struct ag_toml *t, const char *key, struct ag_val *v, bool in_array);

/* p is at '['. Arrays hold strings for list options; other item kinds are parsed (so the syntax is
 * checked) and remembered, to be refused when the value is applied. Nested arrays are refused. */
static bool ag_toml_array(struct ag_toml *t, const char *key, struct ag_val *v)
{
    const int open_line = t->line;

    v->kind = AG_V_ARRAY;
    t->p++;
    for (;;) {
        struct ag_val item = {.kind = AG_V_STR, .typed = true};
        if (!ag_toml_space(t))
            return false;
        if (t->p >= t->end) {
            ag_err(t->ld, ag_toml_where(t, open_line), key, "unterminated array, expected a closing ]");
            return false;
        }
        if (*t->p == ']') {
            t->p++;
            return true;
        }
        if (!ag_toml_value(t, key, &item, true))
            return false;
        if (item.kind == AG_V_STR) {
            if (ag_strlist_push(&v->arr, item.s, strlen(item.s)) != AG_OK) {
                ag_val_clear(&item);
                ag_nomem(t->ld);
                return false;
            }
        } else if (v->arr_bad == NULL) {
            v->arr_bad = ag_vkind_name(item.kind);
        }
        ag_val_clear(&item);
        if (!ag_toml_space(t))
            return false;
        if (t->p < t->end && *t->p == ',') {
            t->p++;
            continue;
        }
        if (t->p < t->end && *t->p == ']') {
            t->p++;
            return true;
        }
        if (t->p >= t->end)
            ag_err(t->ld, ag_toml_where(t, open_line), key, "unterminated array, expected a closing ]");
        else
            ag_err(t->ld, ag_toml_where(t, t->line), key,
                   "unexpected text in the array opened at line %d, expected , or ]", open_line);
        return false;
    }
}

static bool ag_toml_value(struct ag_toml *t, const char *key, struct ag_val *v, bool in_array)
{
    const char *tok = t->p;
    size_t len = 0;
    unsigned char c;

    v->typed = true;
    if (t->p >= t->end || ag_toml_eol(t)) {
        ag_err(t->ld, ag_toml_where(t, t->line), key, "missing value, expected a value after =");
        return false;
    }
    c = (unsigned char)*t->p;
    if (c == '"' || c == '\'') {
        v->kind = AG_V_STR;
        return ag_toml_string(t, key, &v->s);
    }
    if (c == '[') {
        if (in_array) {
            ag_err(t->ld, ag_toml_where(t, t->line), key,
                   "nested arrays are not supported, expected strings");
            return false;
        }
        return ag_toml_array(t, key, v);
    }
    if (c == '{') {
        ag_err(t->ld, ag_toml_where(t, t->line), key,
               "inline tables are not supported, expected a string, true/false, an integer or an array");
        return false;
    }
    while (tok + len < t->end && !ag_toml_token_end((unsigned char)tok[len]))
        len++;
    if (len == 0) {
        if (ag_is_ctl(c))
            ag_err(t->ld, ag_toml_where(t, t->line), key, "control character 0x%02x, expected a value", c);
        else if (c == '#')
            ag_err(t->ld, ag_toml_where(t, t->line), key, "missing value, expected a value after =");
        else
            ag_err(t->ld, ag_toml_where(t, t->line), key, "unexpected '%c', expected a value", c);
        return false;
    }
    if (len == 4 && strncmp(tok, "true", 4) == 0) {
        v->kind = AG_V_BOOL;
        v->b = true;
    } else if (len == 5 && strncmp(tok, "false", 5) == 0) {
        v->kind = AG_V_BOOL;
        v->b = false;
    } else if (ag_is_digit(c) || c == '+' || c == '-') {
        if (!ag_toml_int(tok, len, &v->i)) {
            ag_err(t->ld, ag_toml_where(t, t->line), key,
                   "invalid number, expected a decimal integer (durations are strings: \"30s\")");
            return false;
        }
        v->kind = AG_V_INT;
    } else {
        /* Not echoed: an unquoted value is often a pasted secret. */
        ag_err(t->ld, ag_toml_where(t, t->line), key,
               "unquoted value, expected a \"quoted string\", true, false, an integer or an array");
        return false;
    }
    t->p += len;
    return true;
}

/* Does the line at p look like `key =`? Used to resume after a broken multi-line array. */
static bool ag_toml_looks_like_keyval(const struct ag_toml *t)
{
    const char *p = t->p;

    while (p < t->end && (*p == ' ' || *p == '\t'))
        p++;
    if (p >= t->end || !(ag_is_alnum((unsigned char)*p) || *p == '_' || *p == '-'))
        return false;
    while (p < t->end && (ag_is_alnum((unsigned char)*p) || *p == '_' || *p == '-'))
        p++;
    while (p < t->end && (*p == ' ' || *p == '\t'))
        p++;
    return p < t->end && *p == '=';
}

/* After an error, find a place to go on from: the next line, or for a broken array the first line
 * that looks like `key =` or that closes the array, so its remaining items do not each add an error. */
static void ag_toml_recover(struct ag_toml *t, int key_line, bool array)
{
    if (!array || t->line == key_line) {
        ag_toml_next_line(t);
        if (!array)
            return;
    } else {
        t->p = t->bol;
    }
    while (t->p < t->end) {
        const char *e = t->p;
        if (ag_toml_looks_like_keyval(t))
            return;
        while (e < t->end && *e != '\n' && *e != ']')
            e++;
        ag_toml_next_line(t);
        if (e < t->end && *e == ']')
            return;
    }
}

static void ag_toml_keyval(struct ag_toml *t, const char *key, int key_line, struct ag_val *v)
{
    bool file_variant = false;
    int idx = ag_find_key(key, strlen(key), &file_variant);
    char hint[AG_NAME_BUF];
    const char *where = ag_toml_where(t, key_line);
    struct ag_from from = {AG_SRC_FILE, where, key_line};
    size_t slot;

    if (idx < 0) {
        if (ag_suggest(key, false, hint, sizeof(hint)))
            ag_err(t->ld, where, key, "unknown key, expected a known option (did you mean %s?)", hint);
        else
            ag_err(t->ld, where, key, "unknown key, expected a known option (see --help)");
        return;
    }
    slot = (size_t)idx * 2 + (file_variant ? 1 : 0);
    if (t->seen[slot] != 0) {
        ag_err(t->ld, where, key, "duplicate key, first set at line %d, expected each key once",
               t->seen[slot]);
        return;
    }
    t->seen[slot] = key_line;
    if (t->seen[slot ^ 1] != 0) {
        char other[AG_NAME_BUF];
        snprintf(other, sizeof(other), "%s%s", ag_options[idx].key, file_variant ? "" : "_file");
        ag_err(t->ld, where, key, "%s is also set at line %d, expected only one of %s and %s_file", other,
               t->seen[slot ^ 1], ag_options[idx].key, ag_options[idx].key);
        return;
    }
    ag_apply(t->ld, (size_t)idx, file_variant, v, &from);
}

static void ag_toml_parse(struct ag_toml *t)
{
    /* A UTF-8 byte order mark from Windows editors is harmless. */
    if (t->end - t->p >= 3 && memcmp(t->p, "\xef\xbb\xbf", 3) == 0)
        t->p += 3;
    while (t->p < t->end) {
        char key[AG_KEY_MAX + 1];
        const char *k;
        size_t klen;
        int key_line;
        struct ag_val v = {.kind = AG_V_STR, .typed = true};
        unsigned char c;

        ag_toml_blank(t);
        if (t->p >= t->end)
            break;
        if (ag_toml_eol(t)) {
            ag_toml_newline(t);
            continue;
        }
        c = (unsigned char)*t->p;
        if (c == '#') {
            ag_toml_comment(t);
            continue;
        }
        if (c == '[') {
            ag_err(t->ld, ag_toml_where(t, t->line), NULL,
                   "tables ([section] headers) are not supported, expected top-level key = value lines");
            ag_toml_next_line(t);
            continue;
        }
        k = t->p;
        while (t->p < t->end && (ag_is_alnum((unsigned char)*t->p) || *t->p == '_' || *t->p == '-'))
            t->p++;
        klen = (size_t)(t->p - k);
        if (klen == 0) {
            if (c == '"' || c == '\'')
                ag_err(t->ld, ag_toml_where(t, t->line), NULL,
                       "quoted keys are not supported, expected a bare key");
            else if (ag_is_ctl(c))
                ag_err(t->ld, ag_toml_where(t, t->line), NULL, "control character 0x%02x, expected a key", c);
            else
                ag_err(t->ld, ag_toml_where(t, t->line), NULL, "unexpected character, expected key = value");
            ag_toml_next_line(t);
            continue;
        }
        if (klen > AG_KEY_MAX) {
            ag_err(t->ld, ag_toml_where(t, t->line), NULL,
                   "key too long (%zu characters), expected a known option", klen);
            ag_toml_next_line(t);
            continue;
        }
        memcpy(key, k, klen);
        key[klen] = '\0';
        key_line = t->line;
        ag_toml_blank(t);
        if (t->p < t->end && *t->p == '.') {
            ag_err(t->ld, ag_toml_where(t, t->line), key,
                   "dotted keys are not supported, expected key = value");
            ag_toml_next_line(t);
            continue;
        }
        if (t->p >= t->end || *t->p != '=') {
            ag_err(t->ld, ag_toml_where(t, t->line), key, "missing =, expected key = value");
            ag_toml_next_line(t);
            continue;
        }
        t->p++;
        ag_toml_blank(t);
        if (!ag_toml_value(t, key, &v, false)) {
            bool array = v.kind == AG_V_ARRAY;
            ag_val_clear(&v);
            ag_toml_recover(t, key_line, array);
            continue;
        }
        ag_toml_blank(t);
        if (t->p < t->end && *t->p == '#') {
            ag_toml_comment(t);
        } else if (!ag_toml_eol(t)) {
            ag_err(t->ld, ag_toml_where(t, t->line), key,
                   "unexpected text after the value, expected a line break or a # comment");
            ag_val_clear(&v);
            ag_toml_next_line(t);
            continue;
        }
        ag_toml_keyval(t, key, key_line, &v);
        ag_val_clear(&v);
        if (!ag_toml_eol(t))
            ag_toml_next_line(t); /* a comment was cut short by a control character */
    }
}

static void ag_load_file(struct ag_load *ld, const char *path, const char *given_by)
{
    struct ag_toml t;
    char *buf = NULL;
    size_t len = 0;
    int err_no = 0;
    enum ag_rc rc;

    memset(&t, 0, sizeof(t));
    rc = ag_read_file(path, AG_CONFIG_FILE_MAX, &buf, &len, &err_no);
    if (rc == AG_ERR_NOMEM) {
        ag_nomem(ld);
        goto out;
    }
    if (rc == AG_ERR_TOO_LARGE) {
        ag_err(ld, given_by, "config", "%s is larger than %d bytes, expected a config file of at most 1 MiB",
               path, AG_CONFIG_FILE_MAX);
        goto out;
    }
    if (rc != AG_OK) {
        ag_err(ld, given_by, "config", "cannot read %s: %s, expected a readable config file", path,
               strerror(err_no));
        goto out;
    }
    t.seen = calloc(ag_options_count * 2, sizeof(*t.seen));
    if (t.seen == NULL) {
        ag_nomem(ld);
        goto out;
    }
    t.ld = ld;
    t.path = path;
    t.p = buf;
    t.bol = buf;
    t.end = buf + len;
    t.line = 1;
    ag_toml_parse(&t);
out:
    free(t.seen);
    if (buf != NULL) {
        OPENSSL_cleanse(buf, len); /* the file may hold secrets */
        free(buf);
    }
}

/* ------------------------------------------------------------------------------------------------
 * Environment and command line. */

static const char *ag_env_get(char *const envp[], const char *name)
{
    size_t n = strlen(name);

    for (size_t i = 0; envp != NULL && envp[i] != NULL; i++) {
        if (strncmp(envp[i], name, n) == 0 && envp[i][n] == '=')
            return envp[i][n + 1] != '\0' ? envp[i] + n + 1 : NULL; /* empty = unset, as viper does */
    }
    return NULL;
}

static void ag_load_env(struct ag_load *ld, char *const envp[])
{
    for (size_t i = 0; i < ag_options_count; i++) {
        const bool secret = ag_options[i].type == AG_OPT_SECRET;
        char nv[2][AG_NAME_BUF], nf[2][AG_NAME_BUF], where[sizeof(nv) + 8];
        const char *vv[2] = {NULL, NULL}, *vf[2] = {NULL, NULL};
        const char *prefixes[2] = {ag_env_ag, ag_env_op};
        int use;

        for (int p = 0; p < 2; p++) {
            if (ag_config_env_name(i, prefixes[p], false, nv[p], sizeof(nv[p])) != AG_OK)
                continue;
            vv[p] = ag_env_get(envp, nv[p]);
            if (secret && ag_config_env_name(i, prefixes[p], true, nf[p], sizeof(nf[p])) == AG_OK)
                vf[p] = ag_env_get(envp, nf[p]);
        }
        /* AUTHGATE_ wins over OAUTH2_PROXY_ as a whole, value and _FILE together. */
        use = (vv[0] != NULL || vf[0] != NULL) ? 0 : 1;
        if (vv[use] != NULL && vf[use] != NULL) {
            snprintf(where, sizeof(where), "env %s", nf[use]);
            ag_err(ld, where, ag_options[i].key, "%s is also set, expected only one of %s and %s", nv[use],
                   nv[use], nf[use]);
            continue;
        }
        if (vv[use] != NULL) {
            snprintf(where, sizeof(where), "env %s", nv[use]);
            const struct ag_from from = {AG_SRC_ENV, where, 0};
            ag_apply_text(ld, i, false, vv[use], &from);
        } else if (vf[use] != NULL) {
            snprintf(where, sizeof(where), "env %s", nf[use]);
            const struct ag_from from = {AG_SRC_ENV, where, 0};
            ag_apply_text(ld, i, true, vf[use], &from);
        }
    }
}

/* The flags of one option (or its -file variant) as given, applied after file and env. */
struct ag_pending {
    struct ag_strlist vals;
    unsigned count;
};

struct ag_args {
    struct ag_pending *pend; /* 2 per option: value, file variant */
    const char *config;      /* --config value */
    unsigned config_count;
    enum ag_config_action action;
};

/* Print a flag for an error line without its value: what follows '=' may be a secret. */
static void ag_flag_name(const char *arg, char *buf, size_t size)
{
    const char *eq = strchr(arg, '=');
    size_t n = eq != NULL ? (size_t)(eq - arg) : strlen(arg);
    char tmp[AG_NAME_BUF];
    char shown[AG_SHOW_BUF];

    if (n >= sizeof(tmp))
        n = sizeof(tmp) - 1;
    memcpy(tmp, arg, n);
    tmp[n] = '\0';
    ag_show(tmp, shown, sizeof(shown));
    /* drop the quotes ag_show adds: flags read better bare */
    snprintf(buf, size, "%.*s", (int)(strlen(shown) - 2), shown + 1);
}

static void ag_set_action(struct ag_args *a, enum ag_config_action act)
{
    /* --help beats --version beats --print-config-reference beats --config-test. */
    static const int rank[] = {[AG_ACTION_RUN] = 0,
                               [AG_ACTION_CONFIG_TEST] = 1,
                               [AG_ACTION_REFERENCE] = 2,
                               [AG_ACTION_VERSION] = 3,
                               [AG_ACTION_HELP] = 4};
    if (rank[act] > rank[a->action])
        a->action = act;
}

static void ag_parse_args(struct ag_load *ld, int argc, char *const argv[], struct ag_args *a)
{
    bool flags_done = false;

    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        const char *name, *eq, *value;
        size_t nlen;
        bool file_variant = false;
        int idx;
        char fname[AG_NAME_BUF], where[AG_NAME_BUF + 8], shown[AG_SHOW_BUF], hint[AG_NAME_BUF];

        if (flags_done || arg[0] != '-' || arg[1] == '\0') {
            ag_err(ld, "command line", NULL, "unexpected argument %s, expected only --flags",
                   ag_show(arg, shown, sizeof(shown)));
            continue;
        }
        if (strcmp(arg, "--") == 0) {
            flags_done = true;
            continue;
        }
        if (strcmp(arg, "-h") == 0) {
            ag_set_action(a, AG_ACTION_HELP);
            continue;
        }
        ag_flag_name(arg, fname, sizeof(fname));
        if (arg[1] != '-') {
            ag_err(ld, "command line", NULL, "unknown flag %s, expected --name or --name=value", fname);
            continue;
        }
        name = arg + 2;
        eq = strchr(name, '=');
        nlen = eq != NULL ? (size_t)(eq - name) : strlen(name);
        value = eq != NULL ? eq + 1 : NULL;
        snprintf(where, sizeof(where), "flag %s", fname);

        if (ag_name_is(name, nlen, "config", "")) {
            if (value == NULL && i + 1 < argc)
                value = argv[++i];
            if (value == NULL) {
                ag_err(ld, where, "config", "missing value, expected --config FILE");
                continue;
            }
            a->config_count++;
            if (a->config_count > 1)
                ag_err(ld, where, "config", "given more than once, expected a single value");
            else
                a->config = value;
            continue;
        }
        {
            static const struct {
                const char *name;
                enum ag_config_action act;
            } specials[] = {{"help", AG_ACTION_HELP},
                            {"version", AG_ACTION_VERSION},
                            {"config-test", AG_ACTION_CONFIG_TEST},
                            {"print-config-reference", AG_ACTION_REFERENCE}};
            bool special = false;
            for (size_t s = 0; s < AG_ARRAY_LEN(specials); s++) {
                if (!ag_name_is(name, nlen, specials[s].name, ""))
                    continue;
                special = true;
                if (value != NULL)
                    ag_err(ld, where, NULL, "does not take a value, expected %s alone", fname);
                else
                    ag_set_action(a, specials[s].act);
            }
            if (special)
                continue;
        }

        idx = ag_find_flag(name, nlen, &file_variant);
        if (idx < 0) {
            char bare[AG_NAME_BUF];
            snprintf(bare, sizeof(bare), "%s", fname + 2);
            if (ag_suggest(bare, true, hint, sizeof(hint)))
                ag_err(ld, "command line", NULL,
                       "unknown flag %s, expected a known flag (did you mean --%s?)", fname, hint);
            else
                ag_err(ld, "command line", NULL, "unknown flag %s, expected a known flag (see --help)",
                       fname);
            /* Its value, if it had one, is not echoed as a stray argument: it may be a secret. */
            if (value == NULL && i + 1 < argc && argv[i + 1][0] != '-')
                i++;
            continue;
        }
        if (value == NULL) {
            if (ag_options[idx].type == AG_OPT_BOOL && !file_variant) {
                value = "true"; /* a bare bool flag never takes the next argument */
            } else if (i + 1 < argc) {
                value = argv[++i];
            } else {
                ag_err(ld, where, ag_options[idx].key, "missing value, expected %s %s", fname,
                       ag_expect(&ag_options[idx], file_variant));
                continue;
            }
        }
        {
            struct ag_pending *pd = &a->pend[(size_t)idx * 2 + (file_variant ? 1 : 0)];
            enum ag_rc rc;
            pd->count++;
            /* Lists: repeated flags add items, and like pflag's StringSlice a comma separates items
             * too (--email-domain=a.com,b.com). */
            if (ag_options[idx].type == AG_OPT_LIST)
                rc = ag_strlist_split(&pd->vals, value);
            else
                rc = ag_strlist_push(&pd->vals, value, strlen(value));
            if (rc != AG_OK)
                ag_nomem(ld);
        }
    }
}

static void ag_apply_flags(struct ag_load *ld, const struct ag_args *a)
{
    for (size_t i = 0; i < ag_options_count; i++) {
        const struct ag_option *o = &ag_options[i];
        for (int variant = 0; variant < 2; variant++) {
            const struct ag_pending *pd = &a->pend[i * 2 + (size_t)variant];
            char where[AG_NAME_BUF + 16], name[AG_NAME_BUF];
            const struct ag_from from = {AG_SRC_FLAG, where, 0};

            if (pd->count == 0)
                continue;
            snprintf(where, sizeof(where), "flag --%s%s", o->flag, variant ? "-file" : "");
            snprintf(name, sizeof(name), "%s%s", o->key, variant ? "_file" : "");
            if (variant == 1 && a->pend[i * 2].count > 0) {
                ag_err(ld, where, name, "--%s is also given, expected only one of --%s and --%s-file",
                       o->flag, o->flag, o->flag);
                continue;
            }
            if (o->type == AG_OPT_LIST && variant == 0) {
                struct ag_val v = {.kind = AG_V_ARRAY, .typed = false};
                v.arr = pd->vals; /* borrowed: ag_apply copies */
                ag_apply(ld, i, false, &v, &from);
                continue;
            }
            if (pd->count > 1) {
                ag_err(ld, where, name, "given more than once, expected a single value");
                continue;
            }
            ag_apply_text(ld, i, variant == 1, pd->vals.v[0], &from);
        }
    }
}

/* ------------------------------------------------------------------------------------------------
 * After merging: read secret files, then the checks that look at more than one value. */

static void ag_read_secrets(struct ag_load *ld)
{
    struct ag_config *cfg = ld->cfg;

    for (size_t i = 0; i < ag_options_count; i++) {
        struct ag_secret *sec;
        char *buf = NULL;
        size_t len = 0;
        int err_no = 0;
        enum ag_rc rc;

        if (ag_options[i].type != AG_OPT_SECRET)
            continue;
        sec = (struct ag_secret *)(void *)((char *)cfg + ag_options[i].offset);
        if (sec->file != NULL) {
            rc = ag_read_file(sec->file, AG_SECRET_FILE_MAX, &buf, &len, &err_no);
            if (rc == AG_ERR_NOMEM) {
                ag_nomem(ld);
            } else if (rc == AG_ERR_TOO_LARGE) {
                ag_err(ld, ag_where(cfg, i), ag_options[i].key,
                       "%s is larger than %d bytes, expected a file holding only the secret", sec->file,
                       AG_SECRET_FILE_MAX);
            } else if (rc != AG_OK) {
                ag_err(ld, ag_where(cfg, i), ag_options[i].key,
                       "cannot read %s: %s, expected a readable file", sec->file, strerror(err_no));
            } else if (memchr(buf, '\0', len) != NULL) {
                ag_err(ld, ag_where(cfg, i), ag_options[i].key,
                       "%s holds a NUL byte, expected a text secret (value hidden)", sec->file);
            } else {
                /* One trailing line break is what `echo secret > file` adds; it is not part of it. */
                if (len > 0 && buf[len - 1] == '\n')
                    buf[--len] = '\0';
                if (len > 0 && buf[len - 1] == '\r')
                    buf[--len] = '\0';
                if (len == 0) {
                    ag_err(ld, ag_where(cfg, i), ag_options[i].key, "%s is empty, expected the secret",
                           sec->file);
                } else {
                    ag_free_secret(sec->value);
                    sec->value = buf;
                    buf = NULL;
                }
            }
            if (buf != NULL) {
                OPENSSL_cleanse(buf, len);
                free(buf);
            }
        }
        if (sec->value != NULL && sec->value[0] == '\0') {
            free(sec->value);
            sec->value = NULL;
        }
    }
}

#define AG_FIELD(cfg, idx, type) ((type *)(void *)((char *)(cfg) + ag_options[idx].offset))

static size_t ag_idx(const char *key)
{
    int i = ag_config_find(key);
    return i < 0 ? 0 : (size_t)i; /* every key used below is in the table; the tests hold that */
}

static void ag_require(struct ag_load *ld, const char *key, const char *hint)
{
    size_t i = ag_idx(key);
    char env[AG_NAME_BUF];

    ag_config_env_name(i, ag_env_op, false, env, sizeof(env));
    ag_err(ld, ag_where(ld->cfg, i), key, "not set, expected --%s, %s in the config file or %s%s%s",
           ag_options[i].flag, key, env, hint != NULL ? " " : "", hint != NULL ? hint : "");
}

static bool ag_is_url(const char *s)
{
    if (strncmp(s, "https://", 8) == 0)
        return s[8] != '\0' && s[8] != '/';
    if (strncmp(s, "http://", 7) == 0)
        return s[7] != '\0' && s[7] != '/';
    return false;
}

static bool ag_port_ok(const char *s)
{
    unsigned long v = 0;
    size_t n = 0;

    for (; ag_is_digit((unsigned char)s[n]); n++) {
        if (n >= 5)
            return false;
        v = v * 10 + (unsigned long)(s[n] - '0');
    }
    return n > 0 && s[n] == '\0' && v <= 65535;
}

/* Syntax only; the listener (src/net/addr.c) parses the address for real. Same forms it takes:
 * [http://]host:port, [http://][v6]:port, unix:///abs/path, fd:N (N >= 3). */
static bool ag_listen_addr_ok(const char *a)
{
    const char *colon;

    if (strncmp(a, "unix://", 7) == 0)
        return a[7] == '/' && a[8] != '\0' && strlen(a + 7) < 108;
    if (strncmp(a, "fd:", 3) == 0) {
        unsigned long v = 0;
        size_t n = 0;
        for (; ag_is_digit((unsigned char)a[3 + n]) && n < 6; n++)
            v = v * 10 + (unsigned long)(a[3 + n] - '0');
        return n > 0 && a[3 + n] == '\0' && v >= 3 && v <= 65535;
    }
    if (strncmp(a, "http://", 7) == 0)
        a += 7;
    if (a[0] == '[') {
        const char *close = strchr(a, ']');
        bool has_colon = false;
        if (close == NULL || close == a + 1 || close[1] != ':')
            return false;
        for (const char *p = a + 1; p < close; p++) {
            if (!(ag_hex_digit((unsigned char)*p) >= 0 || *p == ':' || *p == '.' || *p == '%' ||
                  ag_is_alnum((unsigned char)*p)))
                return false;
            has_colon = has_colon || *p == ':';
        }
        return has_colon && ag_port_ok(close + 2);
    }
    colon = strrchr(a, ':');
    if (colon == NULL)
        return false;
    for (const char *p = a; p < colon; p++) {
        if (!(ag_is_alnum((unsigned char)*p) || *p == '.' || *p == '-' || *p == '_'))
            return false;
    }
    return ag_port_ok(colon + 1);
}

/* RFC 9110 token: header field names and cookie names. */
static bool ag_is_token(const char *s)
{
    if (*s == '\0')
        return false;
    for (; *s != '\0'; s++) {
        if (!ag_is_alnum((unsigned char)*s) && strchr("!#$%&'*+-.^_`|~", *s) == NULL)
            return false;
    }
    return true;
}

/* Space-delimited scope tokens (RFC 6749 3.3: %x21 / %x23-5B / %x5D-7E), single spaces; empty only when
 * allowed. */
static bool ag_scopes_ok(const char *s, bool empty_ok)
{
    if (*s == '\0')
        return empty_ok;
    for (const char *p = s; *p != '\0'; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == ' ') {
            if (p == s || p[1] == ' ' || p[1] == '\0')
                return false;
        } else if (c < 0x21 || c > 0x7e || c == '"' || c == '\\') {
            return false;
        }
    }
    return true;
}

/* A claim path: names joined by '.', none empty, printable ASCII, at most 256 bytes. */
static bool ag_claim_path_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 256 || s[0] == '.' || s[n - 1] == '.' || strstr(s, "..") != NULL)
        return false;
    for (; *s != '\0'; s++)
        if ((unsigned char)*s < 0x21 || (unsigned char)*s > 0x7e)
            return false;
    return true;
}

/* How many '-' or '_' a header name has. */
static size_t ag_separators(const char *name)
{
    size_t n = 0;
    for (; *name != '\0'; name++)
        n += *name == '-' || *name == '_';
    return n;
}

/* Headers a claim must not be mapped to: ours (identity, challenges, cookies) and HTTP's own. */
static bool ag_reserved_header(const char *spelled)
{
    /* '_' read as '-': WSGI, PHP and Rack merge the two, so X_Auth_Request_User is X-Auth-Request-User */
    char name[128];
    size_t n = 0;
    for (; spelled[n] != '\0' && n + 1 < sizeof(name); n++)
        name[n] = spelled[n] == '_' ? '-' : spelled[n];
    name[n] = '\0';
    static const char *const reserved[] = {
        "Authorization",
        "Cookie",
        "Set-Cookie",
        "Host",
        "Content-Length",
        "Content-Type",
        "Transfer-Encoding",
        "Connection",
        "Keep-Alive",
        "Upgrade",
        "TE",
        "Trailer",
        "Proxy-Authorization",
        "Proxy-Authenticate",
        "Location",
        "WWW-Authenticate",
        "X-Request-Id",
        "X-Envoy-Auth-Headers-To-Remove",
    };
    if (strncasecmp(name, "X-Auth-Request-", 15) == 0 &&
        (strcasecmp(name + 15, "User") == 0 || strcasecmp(name + 15, "Email") == 0 ||
         strcasecmp(name + 15, "Groups") == 0 || strcasecmp(name + 15, "Preferred-Username") == 0 ||
         strcasecmp(name + 15, "Access-Token") == 0 || strcasecmp(name + 15, "Redirect") == 0))
        return true;
    if (strncasecmp(name, "X-Forwarded-", 12) == 0 || strncasecmp(name, "X-Envoy-", 8) == 0)
        return true;
    for (size_t i = 0; i < AG_ARRAY_LEN(reserved); i++)
        if (strcasecmp(name, reserved[i]) == 0)
            return true;
    return false;
}

static void ag_check(struct ag_load *ld)
{
    struct ag_config *cfg = ld->cfg;
    char shown[AG_SHOW_BUF], a[32], b[32];
    size_t i;

    /* cookie_secret: required, and a valid AES key length. */
    i = ag_idx("cookie_secret");
    if (cfg->cookie_secret.value == NULL) {
        if (cfg->cookie_secret.file == NULL) /* else the file error was already reported */
            ag_require(ld, "cookie_secret", "(16, 24 or 32 bytes, e.g. from: openssl rand -base64 32)");
    } else {
        unsigned char key[32];
        size_t klen = 0;
        if (ag_config_cookie_key(cfg->cookie_secret.value, key, &klen) != AG_OK)
            ag_err(
                ld, ag_where(cfg, i), "cookie_secret",
                "must be 16, 24 or 32 bytes (raw or base64), got %zu bytes (value hidden), expected e.g. the "
                "output of: openssl rand -base64 32",
                strlen(cfg->cookie_secret.value));
        OPENSSL_cleanse(key, sizeof(key));
    }
    if (cfg->cookie_refresh != 0 && cfg->cookie_refresh >= cfg->cookie_expire) {
        ag_config_format_duration(cfg->cookie_refresh, a, sizeof(a));
        ag_config_format_duration(cfg->cookie_expire, b, sizeof(b));
        ag_err(ld, ag_where(cfg, ag_idx("cookie_refresh")), "cookie_refresh",
               "%s is not less than cookie_expire %s (from %s), expected a shorter refresh interval, or 0 to "
               "disable",
               a, b, ag_where(cfg, ag_idx("cookie_expire")));
    }
    if (!ag_is_token(cfg->cookie_name))
        ag_err(ld, ag_where(cfg, ag_idx("cookie_name")), "cookie_name",
               "invalid cookie name %s, expected letters, digits and !#$%%&'*+-.^_`|~",
               ag_show(cfg->cookie_name, shown, sizeof(shown)));

    /* PKCE "plain" sends the verifier itself as the challenge: anyone who sees the authorization request
     * can redeem an intercepted code. Refused, rather than silently sending no PKCE at all. */
    if (strcmp(cfg->code_challenge_method, "plain") == 0)
        ag_err(ld, ag_where(cfg, ag_idx("code_challenge_method")), "code_challenge_method",
               "\"plain\" is refused: it offers no protection against a stolen code; use \"S256\", or leave "
               "it empty for S256 whenever the provider lists it");

    /* Provider: oidc needs a client and either discovery or all three endpoints. */
    if (cfg->client_id[0] == '\0')
        ag_require(ld, "client_id", NULL);
    if (cfg->client_secret.value == NULL && cfg->client_secret.file == NULL)
        ag_require(ld, "client_secret", "(or client_secret_file)");
    if (!cfg->skip_oidc_discovery) {
        if (cfg->oidc_issuer_url[0] == '\0')
            ag_require(ld, "oidc_issuer_url",
                       "(or skip_oidc_discovery with login_url, redeem_url, oidc_jwks_url)");
    } else {
        static const char *const endpoints[] = {"login_url", "redeem_url", "oidc_jwks_url"};
        for (size_t e = 0; e < AG_ARRAY_LEN(endpoints); e++) {
            if (**AG_FIELD(cfg, ag_idx(endpoints[e]), char *) == '\0')
                ag_require(ld, endpoints[e], "(skip_oidc_discovery is set)");
        }
    }
    {
        static const char *const urls[] = {"oidc_issuer_url", "login_url",          "redeem_url",
                                           "oidc_jwks_url",   "backend_logout_url", "introspection_url"};
        for (size_t u = 0; u < AG_ARRAY_LEN(urls); u++) {
            const char *val = *AG_FIELD(cfg, ag_idx(urls[u]), char *);
            if (val[0] != '\0' && !ag_is_url(val))
                ag_err(ld, ag_where(cfg, ag_idx(urls[u])), urls[u],
                       "invalid URL %s, expected http://... or https://...",
                       ag_show(val, shown, sizeof(shown)));
        }
    }

    /* Authorization: oauth2-proxy refuses to start without a rule, rather than let everyone in. */
    if (cfg->email_domains.n == 0 && cfg->authenticated_emails_file[0] == '\0') {
        ag_err(ld, ag_where(cfg, ag_idx("email_domains")), "email_domains",
               "no email domain and no authenticated_emails_file, expected --email-domain (use "
               "email-domain=* to "
               "authorize all email addresses) or --authenticated-emails-file");
    }
    if (cfg->authenticated_emails_file[0] != '\0') {
        FILE *f = fopen(cfg->authenticated_emails_file, "r");
        if (f == NULL)
            ag_err(ld, ag_where(cfg, ag_idx("authenticated_emails_file")), "authenticated_emails_file",
                   "cannot read %s: %s, expected a readable file",
                   ag_show(cfg->authenticated_emails_file, shown, sizeof(shown)), strerror(errno));
        else
            fclose(f);
    }

    /* Sessions: Redis is the store of this release. */
    if (strcmp(cfg->session_store_type, "cookie") == 0)
        ag_err(ld, ag_where(cfg, ag_idx("session_store_type")), "session_store_type",
               "\"cookie\" is not supported yet in authgate 0.1 (planned), expected \"redis\"");
    else if (cfg->redis_connection_url[0] == '\0')
        ag_require(ld, "redis_connection_url",
                   "(redis://host:port/db or unix:///path; session_store_type is redis)");
    else if ((strncmp(cfg->redis_connection_url, "redis://", 8) != 0 ||
              cfg->redis_connection_url[8] == '\0' || cfg->redis_connection_url[8] == '/') &&
             (strncmp(cfg->redis_connection_url, "unix:///", 8) != 0 || cfg->redis_connection_url[8] == '\0'))
        ag_err(
            ld, ag_where(cfg, ag_idx("redis_connection_url")), "redis_connection_url",
            "invalid URL %s, expected redis://[user:password@]host[:port][/db] or unix:///path (rediss:// is "
            "not supported by this build)",
            ag_show(cfg->redis_connection_url, shown, sizeof(shown)));

    /* --extra-jwt-issuers: issuer=audience, the issuer an http(s) URL. */
    for (size_t e = 0; e < cfg->extra_jwt_issuers.n; e++) {
        const char *v = cfg->extra_jwt_issuers.v[e], *eq = strrchr(v, '=');
        if (eq == NULL || eq[1] == '\0' || !ag_is_url(v))
            ag_err(ld, ag_where(cfg, ag_idx("extra_jwt_issuers")), "extra_jwt_issuers",
                   "invalid entry %s, expected issuer=audience like https://issuer.example=my-api",
                   ag_show(v, shown, sizeof(shown)));
    }

    /* Path rules: every regex must compile. A scope rule's shape is checked below. */
    {
        static const char *const keys[] = {"skip_auth_routes", "api_routes", "required_scope_routes"};
        for (size_t k = 0; k < AG_ARRAY_LEN(keys); k++) {
            const struct ag_strlist *l =
                (const struct ag_strlist *)((const char *)cfg + ag_options[ag_idx(keys[k])].offset);
            for (size_t j = 0; j < l->n; j++) {
                char why[128];
                const char *sp = strchr(l->v[j], ' ');
                if (k == 2 && (sp == NULL || !ag_scopes_ok(sp + 1, false)))
                    continue;
                if (ag_rules_check(l->v[j], k == 2, why, sizeof(why)) == AG_ERR_INVALID)
                    ag_err(ld, ag_where(cfg, ag_idx(keys[k])), keys[k],
                           "invalid regex in %s: %s, expected a POSIX extended regex",
                           ag_show(l->v[j], shown, sizeof(shown)), why);
            }
        }
    }

    /* Scopes (RFC 6749 3.3: scope-token = 1*NQCHAR) and the claim-to-header map. */
    if (!ag_scopes_ok(cfg->required_scope, true))
        ag_err(ld, ag_where(cfg, ag_idx("required_scope")), "required_scope",
               "invalid scopes %s, expected space-delimited scope names like \"api:read api:write\"",
               ag_show(cfg->required_scope, shown, sizeof(shown)));
    for (size_t r = 0; r < cfg->required_scope_routes.n; r++) {
        const char *v = cfg->required_scope_routes.v[r], *sp = strchr(v, ' ');
        if (sp == NULL || sp == v || !ag_scopes_ok(sp + 1, false))
            ag_err(ld, ag_where(cfg, ag_idx("required_scope_routes")), "required_scope_routes",
                   "invalid rule %s, expected \"[METHOD=]regex scope [scope...]\" like \"^/api/admin/ "
                   "api:admin\" (write a space in the regex as [[:space:]])",
                   ag_show(v, shown, sizeof(shown)));
    }
    if (cfg->claim_headers.n > AG_MAX_CLAIM_HEADERS)
        ag_err(ld, ag_where(cfg, ag_idx("claim_headers")), "claim_headers",
               "%zu entries, expected at most %d", cfg->claim_headers.n, AG_MAX_CLAIM_HEADERS);
    for (size_t c = 0; c < cfg->claim_headers.n; c++) {
        const char *v = cfg->claim_headers.v[c], *eq = strchr(v, '=');
        char name[128] = "";
        if (eq != NULL && (size_t)(eq - v) < sizeof(name))
            memcpy(name, v, (size_t)(eq - v)), name[eq - v] = '\0';
        if (eq == NULL || !ag_is_token(name) || !ag_claim_path_ok(eq + 1))
            ag_err(ld, ag_where(cfg, ag_idx("claim_headers")), "claim_headers",
                   "invalid entry %s, expected Header-Name=claim like X-Tenant=org.tenant (a claim path "
                   "of names joined by ., no empty name)",
                   ag_show(v, shown, sizeof(shown)));
        else if (ag_reserved_header(name))
            ag_err(ld, ag_where(cfg, ag_idx("claim_headers")), "claim_headers",
                   "header %s is set by authgate or by HTTP itself, expected another name (like "
                   "X-Auth-Request-Tenant)",
                   ag_show(name, shown, sizeof(shown)));
        else if (ag_separators(name) > AG_MAX_CLAIM_HEADER_SEPARATORS)
            ag_err(ld, ag_where(cfg, ag_idx("claim_headers")), "claim_headers",
                   "header %s has more than %d '-' or '_', expected a shorter name (every spelling of it "
                   "with '-' or '_' is listed for Envoy to remove)",
                   ag_show(name, shown, sizeof(shown)), AG_MAX_CLAIM_HEADER_SEPARATORS);
        for (size_t d = 0; d < c && eq != NULL; d++)
            if (strncasecmp(cfg->claim_headers.v[d], v, (size_t)(eq - v) + 1) == 0)
                ag_err(ld, ag_where(cfg, ag_idx("claim_headers")), "claim_headers",
                       "header %s is mapped twice, expected one claim per header",
                       ag_show(name, shown, sizeof(shown)));
    }

    /* Upstreams: one static://CODE (a 2xx), or http(s):// URLs to proxy to. */
    for (size_t u = 0; u < cfg->upstreams.n; u++) {
        const char *up = cfg->upstreams.v[u];
        struct ag_upstream parsed;
        char why[160];
        if (strncmp(up, "static://", 9) == 0) {
            if (strlen(up) != 12 || up[9] != '2' || !ag_is_digit(up[10]) || !ag_is_digit(up[11]))
                ag_err(ld, ag_where(cfg, ag_idx("upstreams")), "upstreams",
                       "invalid upstream %s, expected static://CODE with a 2xx code",
                       ag_show(up, shown, sizeof(shown)));
            else if (cfg->upstreams.n > 1)
                ag_err(ld, ag_where(cfg, ag_idx("upstreams")), "upstreams",
                       "%s among several upstreams, expected static://CODE alone (it answers every allowed "
                       "request)",
                       ag_show(up, shown, sizeof(shown)));
        } else if (ag_upstream_parse(up, &parsed, why, sizeof(why)) != AG_OK) {
            ag_err(ld, ag_where(cfg, ag_idx("upstreams")), "upstreams", "invalid upstream %s, %s",
                   ag_show(up, shown, sizeof(shown)), why);
        } else {
            for (size_t d = 0; d < u; d++) {
                struct ag_upstream other;
                if (ag_upstream_parse(cfg->upstreams.v[d], &other, why, sizeof(why)) == AG_OK &&
                    strcmp(other.path, parsed.path) == 0 &&
                    (other.host == NULL ? parsed.host == NULL
                                        : parsed.host && strcmp(other.host, parsed.host) == 0))
                    ag_err(ld, ag_where(cfg, ag_idx("upstreams")), "upstreams",
                           "%s routes the same host and path as %s, expected one upstream per path",
                           ag_show(up, shown, sizeof(shown)), cfg->upstreams.v[d]);
                ag_upstream_clear(&other);
            }
            ag_upstream_clear(&parsed);
        }
    }
    if (cfg->check_path_prefix[0] != '\0') {
        size_t cl = strlen(cfg->check_path_prefix);
        if (cfg->check_path_prefix[0] != '/' || cfg->check_path_prefix[cl - 1] == '/')
            ag_err(ld, ag_where(cfg, ag_idx("check_path_prefix")), "check_path_prefix",
                   "invalid prefix %s, expected a path that starts with / and does not end with / (like "
                   "/ext-authz)",
                   ag_show(cfg->check_path_prefix, shown, sizeof(shown)));
    }

    /* Server. */
    if (!ag_listen_addr_ok(cfg->http_address))
        ag_err(ld, ag_where(cfg, ag_idx("http_address")), "http_address",
               "invalid address %s, expected host:port, [ipv6]:port, unix:///absolute/path or fd:N",
               ag_show(cfg->http_address, shown, sizeof(shown)));
    {
        size_t pl = strlen(cfg->proxy_prefix);
        if (pl == 0 || cfg->proxy_prefix[0] != '/' || cfg->proxy_prefix[pl - 1] == '/')
            ag_err(ld, ag_where(cfg, ag_idx("proxy_prefix")), "proxy_prefix",
                   "invalid prefix %s, expected a path that starts with / and does not end with / (like "
                   "/oauth2)",
                   ag_show(cfg->proxy_prefix, shown, sizeof(shown)));
    }
    if (cfg->ping_path[0] != '/')
        ag_err(ld, ag_where(cfg, ag_idx("ping_path")), "ping_path",
               "invalid path %s, expected a path starting with /",
               ag_show(cfg->ping_path, shown, sizeof(shown)));
    if (cfg->ready_path[0] != '/')
        ag_err(ld, ag_where(cfg, ag_idx("ready_path")), "ready_path",
               "invalid path %s, expected a path starting with /",
               ag_show(cfg->ready_path, shown, sizeof(shown)));
    if (!ag_is_token(cfg->request_id_header))
        ag_err(ld, ag_where(cfg, ag_idx("request_id_header")), "request_id_header",
               "invalid header name %s, expected a token of letters, digits and !#$%%&'*+-.^_`|~ (like "
               "X-Request-Id)",
               ag_show(cfg->request_id_header, shown, sizeof(shown)));
}

/* ------------------------------------------------------------------------------------------------
 * Load and free. */

void ag_config_free(struct ag_config *cfg)
{
    if (cfg == NULL)
        return;
    for (size_t i = 0; i < ag_options_count; i++) {
        void *field = (char *)cfg + ag_options[i].offset;
        switch (ag_options[i].type) {
        case AG_OPT_STRING:
            free(*(char **)field);
            *(char **)field = NULL;
            break;
        case AG_OPT_SECRET:
            ag_secret_clear(field);
            break;
        case AG_OPT_LIST:
            ag_strlist_clear(field);
            break;
        case AG_OPT_BOOL:
        case AG_OPT_INT:
        case AG_OPT_DURATION:
            break;
        }
        if (cfg->src_where != NULL)
            free(cfg->src_where[i]);
    }
    free(cfg->src_where);
    free(cfg->src);
    free(cfg->src_line);
    free(cfg->config_file);
    free(cfg);
}

static struct ag_config *ag_config_new(void)
{
    struct ag_config *cfg = calloc(1, sizeof(*cfg));

    if (cfg == NULL)
        return NULL;
    cfg->src = calloc(ag_options_count, sizeof(*cfg->src));
    cfg->src_line = calloc(ag_options_count, sizeof(*cfg->src_line));
    cfg->src_where = calloc(ag_options_count, sizeof(*cfg->src_where));
    if (cfg->src == NULL || cfg->src_line == NULL || cfg->src_where == NULL) {
        ag_config_free(cfg);
        return NULL;
    }
    return cfg;
}

enum ag_rc ag_config_load(int argc, char *const argv[], char *const envp[], struct ag_config **out,
                          enum ag_config_action *action, FILE *errf)
{
    struct ag_load ld = {.errf = errf};
    struct ag_args args;
    unsigned arg_errors;
    enum ag_rc rc = AG_ERR_INVALID;
    const char *path = NULL;
    char given_by[AG_NAME_BUF];

    memset(&args, 0, sizeof(args));
    *out = NULL;
    *action = AG_ACTION_RUN;
    ld.cfg = ag_config_new();
    args.pend = calloc(ag_options_count * 2, sizeof(*args.pend));
    if (ld.cfg == NULL || args.pend == NULL) {
        ag_nomem(&ld);
        rc = AG_ERR_NOMEM;
        goto out;
    }
    ag_apply_defaults(&ld);
    if (ld.nerr > 0) {
        rc = ld.nomem ? AG_ERR_NOMEM : AG_ERR_INTERNAL; /* a default that does not parse is a bug */
        goto out;
    }

    /* Parse argv with errors held back: --help, --version and --print-config-reference answer even
     * when the rest of the command line is wrong, and read neither the file nor the environment. */
    {
        struct ag_load quiet = {.cfg = ld.cfg, .errf = NULL};
        ag_parse_args(&quiet, argc, argv, &args);
        arg_errors = quiet.nerr;
        if (quiet.nomem) {
            ag_nomem(&ld);
            rc = AG_ERR_NOMEM;
            goto out;
        }
    }
    if (args.action == AG_ACTION_HELP || args.action == AG_ACTION_VERSION ||
        args.action == AG_ACTION_REFERENCE) {
        *action = args.action;
        *out = ld.cfg;
        ld.cfg = NULL;
        rc = AG_OK;
        goto out;
    }
    if (arg_errors > 0) {
        /* Parse again, this time reporting; parsing is cheap and side-effect free. */
        for (size_t i = 0; i < ag_options_count * 2; i++) {
            ag_strlist_clear(&args.pend[i].vals);
            args.pend[i].count = 0;
        }
        args.config = NULL;
        args.config_count = 0;
        ag_parse_args(&ld, argc, argv, &args);
    }

    if (args.config != NULL) {
        path = args.config;
        snprintf(given_by, sizeof(given_by), "flag --config");
    } else if (ag_env_get(envp, "AUTHGATE_CONFIG") != NULL) {
        path = ag_env_get(envp, "AUTHGATE_CONFIG");
        snprintf(given_by, sizeof(given_by), "env AUTHGATE_CONFIG");
    } else if (ag_env_get(envp, "OAUTH2_PROXY_CONFIG") != NULL) {
        path = ag_env_get(envp, "OAUTH2_PROXY_CONFIG");
        snprintf(given_by, sizeof(given_by), "env OAUTH2_PROXY_CONFIG");
    }
    if (path != NULL) {
        ld.cfg->config_file = ag_strdup(path);
        if (ld.cfg->config_file == NULL)
            ag_nomem(&ld);
        else
            ag_load_file(&ld, path, given_by);
    }
    ag_load_env(&ld, envp);
    ag_apply_flags(&ld, &args);
    ag_read_secrets(&ld);
    ag_check(&ld);

    if (ld.nerr > 0) {
        rc = ld.nomem ? AG_ERR_NOMEM : AG_ERR_INVALID;
        goto out;
    }
    *action = args.action;
    *out = ld.cfg;
    ld.cfg = NULL;
    rc = AG_OK;
out:
    if (args.pend != NULL) {
        for (size_t i = 0; i < ag_options_count * 2; i++) {
            for (size_t j = 0; j < args.pend[i].vals.n; j++)
                OPENSSL_cleanse(args.pend[i].vals.v[j], strlen(args.pend[i].vals.v[j]));
            ag_strlist_clear(&args.pend[i].vals);
        }
        free(args.pend);
    }
    ag_config_free(ld.cfg);
    if (errf != NULL)
        fflush(errf);
    return rc;
}

/* ------------------------------------------------------------------------------------------------
 * Output: --help, the README reference, --config-test. */

static void ag_print_quoted(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        switch (*p) {
        case '"':
            fputs("\\\"", f);
            break;
        case '\\':
            fputs("\\\\", f);
            break;
        case '\n':
            fputs("\\n", f);
            break;
        case '\t':
            fputs("\\t", f);
            break;
        case '\r':
            fputs("\\r", f);
            break;
        default:
            if (*p < 0x20 || *p == 0x7f)
                fprintf(f, "\\u%04x", *p);
            else
                fputc(*p, f);
        }
    }
    fputc('"', f);
}

/* Groups in table order, each once. */
static size_t ag_groups(const char *groups[], size_t max)
{
    size_t n = 0;

    for (size_t i = 0; i < ag_options_count; i++) {
        bool known = false;
        for (size_t g = 0; g < n; g++)
            known = known || strcmp(groups[g], ag_options[i].group) == 0;
        if (!known && n < max)
            groups[n++] = ag_options[i].group;
    }
    return n;
}

static const char *ag_arg_name(const struct ag_option *o)
{
    switch (o->type) {
    case AG_OPT_BOOL:
        return "";
    case AG_OPT_INT:
        return " int";
    case AG_OPT_DURATION:
        return " duration";
    case AG_OPT_LIST:
        return " string";
    case AG_OPT_STRING:
    case AG_OPT_SECRET:
        return " string";
    }
    return "";
}

/* A default as the docs show it; secrets have none, and an empty default shows as nothing. */
static void ag_default_text(const struct ag_option *o, char *buf, size_t size)
{
    buf[0] = '\0';
    if (o->type == AG_OPT_SECRET || o->def == NULL)
        return;
    if (o->type == AG_OPT_LIST) {
        /* "a,b" -> "a, b" */
        size_t n = 0;
        for (const char *p = o->def; *p != '\0' && n + 3 < size; p++) {
            buf[n++] = *p;
            if (*p == ',')
                buf[n++] = ' ';
        }
        buf[n] = '\0';
        return;
    }
    snprintf(buf, size, "%s", o->def);
}

/* One --help entry: the flag in a 41-column gutter, the text word-wrapped to 110 columns. */
static void ag_help_line(FILE *f, const char *left, const char *text)
{
    const size_t col = 41, width = 110;
    size_t pos = col;

    if (strlen(left) + 3 <= col)
        fprintf(f, "  %-*s ", (int)(col - 3), left);
    else
        fprintf(f, "  %s\n%*s", left, (int)col, "");
    while (*text != '\0') {
        const char *sp = strchr(text, ' ');
        size_t wl = sp != NULL ? (size_t)(sp - text) : strlen(text);
        if (pos > col && pos + 1 + wl > width) {
            fprintf(f, "\n%*s", (int)col, "");
            pos = col;
        } else if (pos > col) {
            fputc(' ', f);
            pos++;
        }
        fwrite(text, 1, wl, f);
        pos += wl;
        text += wl;
        while (*text == ' ')
            text++;
    }
    fputc('\n', f);
}

void ag_config_print_help(FILE *f)
{
    const char *groups[32];
    size_t ng = ag_groups(groups, AG_ARRAY_LEN(groups));

    fputs(
        "Usage: authgate [--config FILE] [--flag=value]...\n"
        "\n"
        "authgate is an OAuth2/OpenID Connect authorization proxy with oauth2-proxy's option names.\n"
        "Every option is a flag, a key in the config file (key = value, TOML) and an environment variable\n"
        "(OAUTH2_PROXY_<KEY>, or AUTHGATE_<KEY>, which wins). Precedence: defaults < config file <\n"
        "environment < flags. Secrets can also be read from a file: --<flag>-file, <key>_file, <ENV>_FILE.\n"
        "\n"
        "General:\n",
        f);
    ag_help_line(f, "--config FILE",
                 "read options from this file (also AUTHGATE_CONFIG, OAUTH2_PROXY_CONFIG)");
    ag_help_line(f, "--config-test",
                 "check the configuration, print the settings that are not defaults, exit");
    ag_help_line(f, "--print-config-reference", "print the option reference (markdown) and exit");
    ag_help_line(f, "--version", "print the version and exit");
    ag_help_line(f, "-h, --help", "print this help and exit");
    for (size_t g = 0; g < ng; g++) {
        fprintf(f, "\n%s:\n", groups[g]);
        for (size_t i = 0; i < ag_options_count; i++) {
            const struct ag_option *o = &ag_options[i];
            char left[AG_NAME_BUF + 16], text[1024], def[256], choices[256];
            size_t n;
            if (strcmp(o->group, groups[g]) != 0 || (o->flags & AG_OPTF_HIDDEN))
                continue;
            snprintf(left, sizeof(left), "--%s%s", o->flag, ag_arg_name(o));
            n = (size_t)snprintf(text, sizeof(text), "%s", o->help);
            if (o->choices != NULL && n < sizeof(text)) {
                ag_choices_text(o->choices, choices, sizeof(choices));
                n += (size_t)snprintf(text + n, sizeof(text) - n, " (one of %s)", choices);
            }
            if (o->type == AG_OPT_LIST && n < sizeof(text))
                n += (size_t)snprintf(text + n, sizeof(text) - n, " (repeatable)");
            ag_default_text(o, def, sizeof(def));
            if (def[0] != '\0' && n < sizeof(text)) {
                if (o->type == AG_OPT_STRING)
                    n += (size_t)snprintf(text + n, sizeof(text) - n, " (default \"%s\")", def);
                else if (o->type != AG_OPT_BOOL || strcmp(def, "true") == 0)
                    n += (size_t)snprintf(text + n, sizeof(text) - n, " (default %s)", def);
            }
            if ((o->flags & AG_OPTF_PLANNED) && n < sizeof(text))
                snprintf(text + n, sizeof(text) - n, " (not supported yet)");
            ag_help_line(f, left, text);
            if (o->type == AG_OPT_SECRET) {
                snprintf(left, sizeof(left), "--%s-file path", o->flag);
                snprintf(text, sizeof(text), "read %s from this file (one trailing newline is ignored)%s",
                         o->key, (o->flags & AG_OPTF_PLANNED) ? " (not supported yet)" : "");
                ag_help_line(f, left, text);
            }
        }
    }
}

/* Markdown table cells: a | would end the cell. */
static void ag_md_text(FILE *f, const char *s)
{
    for (; *s != '\0'; s++) {
        if (*s == '|')
            fputs("\\|", f);
        else
            fputc(*s, f);
    }
}

void ag_config_print_reference(FILE *f)
{
    const char *groups[32];
    size_t ng = ag_groups(groups, AG_ARRAY_LEN(groups));

    fputs(
        "<!-- Generated by `authgate --print-config-reference` from the option table in src/config.c; "
        "do not edit by hand. -->\n"
        "\n"
        "Every option can be given as a command-line flag, a key in the config file (`--config FILE`, the "
        "TOML "
        "subset oauth2-proxy uses) or an environment variable. The environment variable is "
        "`OAUTH2_PROXY_<KEY>`; `AUTHGATE_<KEY>` is also read and wins over it. Precedence: defaults < config "
        "file < environment < flags. A list given by a higher source replaces the lower one. Secrets can be "
        "read from a file instead: `--<flag>-file`, `<key>_file`, `<ENV>_FILE`.\n",
        f);
    for (size_t g = 0; g < ng; g++) {
        fprintf(f, "\n### %s\n\n", groups[g]);
        fputs("| Flag | Config key | Env | Type | Default | Description |\n", f);
        fputs("|---|---|---|---|---|---|\n", f);
        for (size_t i = 0; i < ag_options_count; i++) {
            const struct ag_option *o = &ag_options[i];
            char env[AG_NAME_BUF], envf[AG_NAME_BUF], def[256], choices[256];
            if (strcmp(o->group, groups[g]) != 0 || (o->flags & AG_OPTF_HIDDEN))
                continue;
            ag_config_env_name(i, ag_env_op, false, env, sizeof(env));
            ag_default_text(o, def, sizeof(def));
            if (o->type == AG_OPT_SECRET) {
                ag_config_env_name(i, ag_env_op, true, envf, sizeof(envf));
                fprintf(f, "| `--%s`, `--%s-file` | `%s`, `%s_file` | `%s`, `%s` | %s | ", o->flag, o->flag,
                        o->key, o->key, env, envf, ag_type_name(o->type));
            } else {
                fprintf(f, "| `--%s` | `%s` | `%s` | %s | ", o->flag, o->key, env, ag_type_name(o->type));
            }
            if (def[0] != '\0') {
                fputc('`', f);
                ag_md_text(f, def);
                fputc('`', f);
            }
            fputs(" | ", f);
            ag_md_text(f, o->help);
            if (o->choices != NULL) {
                ag_choices_text(o->choices, choices, sizeof(choices));
                fputs(" (one of ", f);
                ag_md_text(f, choices);
                fputc(')', f);
            }
            if (o->type == AG_OPT_LIST)
                fputs(" (repeat the flag; comma-separated in the environment)", f);
            if (o->flags & AG_OPTF_PLANNED)
                fputs(" (not supported yet)", f);
            fputs(" |\n", f);
        }
    }
}

void ag_config_print_effective(const struct ag_config *cfg, FILE *f)
{
    if (cfg == NULL)
        return;
    for (size_t i = 0; i < ag_options_count; i++) {
        const struct ag_option *o = &ag_options[i];
        const void *field = (const char *)cfg + o->offset;
        char dur[32];

        if (cfg->src[i] == AG_SRC_DEFAULT)
            continue;
        fprintf(f, "%s = ", o->key);
        switch (o->type) {
        case AG_OPT_STRING: {
            char redacted[1024];
            ag_print_quoted(f, ag_redact_url(*(char *const *)field, redacted, sizeof(redacted)));
            break;
        }
        case AG_OPT_SECRET:
            fputs(((const struct ag_secret *)field)->value != NULL ? "(set)" : "(empty)", f);
            break;
        case AG_OPT_BOOL:
            fputs(*(const bool *)field ? "true" : "false", f);
            break;
        case AG_OPT_INT:
            fprintf(f, "%lld", (long long)*(const int64_t *)field);
            break;
        case AG_OPT_DURATION:
            ag_config_format_duration(*(const int64_t *)field, dur, sizeof(dur));
            fprintf(f, "\"%s\"", dur);
            break;
        case AG_OPT_LIST: {
            const struct ag_strlist *l = field;
            fputc('[', f);
            for (size_t j = 0; j < l->n; j++) {
                char redacted[1024];
                if (j > 0)
                    fputs(", ", f);
                ag_print_quoted(f, ag_redact_url(l->v[j], redacted, sizeof(redacted)));
            }
            fputc(']', f);
            break;
        }
        }
        fputs(" (", f);
        if (cfg->src[i] == AG_SRC_FILE)
            fputs("file ", f);
        fputs(cfg->src_where != NULL && cfg->src_where[i] != NULL ? cfg->src_where[i] : "?", f);
        if (o->type == AG_OPT_SECRET && ((const struct ag_secret *)field)->file != NULL)
            fprintf(f, ", read from %s", ((const struct ag_secret *)field)->file);
        fputs(")\n", f);
    }
}
