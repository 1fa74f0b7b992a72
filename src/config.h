/* SPDX-License-Identifier: Apache-2.0
 * authgate configuration: one const option table (src/config.c) from which the command-line flags,
 * the config file (the TOML subset oauth2-proxy users write), the environment (OAUTH2_PROXY_<KEY>,
 * AUTHGATE_<KEY>), --help and the README reference all come. Precedence: default < file < env < flag.
 * After ag_config_load() returns AG_OK the config is immutable; reload builds a new one. */
#ifndef AG_CONFIG_H
#define AG_CONFIG_H

#include <stdio.h>

#include "common.h"

enum ag_opt_type {
    AG_OPT_STRING,
    AG_OPT_BOOL,
    AG_OPT_INT,      /* int64_t, checked against min..max */
    AG_OPT_DURATION, /* int64_t milliseconds; text form like Go: 168h, 15m, 30s, 1h30m, 250ms */
    AG_OPT_LIST,     /* struct ag_strlist: repeated flag, TOML array, comma-separated env */
    AG_OPT_SECRET    /* struct ag_secret: value, or <name>_file read at load; never printed */
};

/* Where a value came from, for error messages and --config-test output. */
enum ag_source { AG_SRC_DEFAULT = 0, AG_SRC_FILE, AG_SRC_ENV, AG_SRC_FLAG };

struct ag_strlist {
    size_t n;
    char **v; /* n NUL-terminated strings, owned by the list */
};

/* Free the items and empty the list (it may be reused). */
void ag_strlist_clear(struct ag_strlist *l);
/* Append a copy of the len bytes at s. */
enum ag_rc ag_strlist_push(struct ag_strlist *l, const char *s, size_t len);
/* Make dst a copy of src (dst is cleared first). */
enum ag_rc ag_strlist_copy(struct ag_strlist *dst, const struct ag_strlist *src);

struct ag_secret {
    char *value; /* the secret itself (from the value or read from file), NULL when unset */
    char *file;  /* the _file path when the secret came from a file, else NULL */
};

/* Flags of an option-table entry. */
#define AG_OPTF_PLANNED 0x1u /* parsed, but refused with "not supported yet" when set by any source */
#define AG_OPTF_HIDDEN  0x2u /* not shown in --help or the README (internal/testing) */

struct ag_option {
    const char *key;  /* config-file key as oauth2-proxy spells it: "cookie_secret", "email_domains" */
    const char *flag; /* long flag without "--": "cookie-secret", "email-domain" (singular for lists) */
    enum ag_opt_type type;
    size_t offset;              /* offsetof(struct ag_config, field) */
    const char *def;            /* default in text form, parsed like any source; NULL = unset */
    const char *const *choices; /* NULL-terminated allowed values for a string, or NULL */
    int64_t min, max;           /* bounds for AG_OPT_INT and AG_OPT_DURATION (ms); both 0 = none */
    unsigned flags;             /* AG_OPTF_* */
    const char *group;          /* heading in --help and the README: "Server", "Provider", ... */
    const char *help;           /* one sentence */
};

extern const struct ag_option ag_options[];
extern const size_t ag_options_count;

struct ag_config {
    /* Server */
    char *http_address;  /* host:port, [v6]:port, unix:///path, fd:N */
    char *https_address; /* planned */
    char *tls_cert_file; /* planned */
    char *tls_key_file;  /* planned */
    char *proxy_prefix;
    char *ping_path;
    char *ready_path;
    char *metrics_address; /* planned */
    int64_t workers;       /* request threads; 0 = one per CPU */
    int64_t max_connections;
    int64_t max_connections_per_ip; /* 0 = unlimited */
    int64_t max_header_bytes;       /* per-connection memory for the request line and headers */
    int64_t connection_timeout;     /* ms of inactivity before a connection is closed */
    int64_t read_header_timeout;    /* ms a request head may take, in all (src/guard.h) */
    int64_t shutdown_timeout;       /* ms to let in-flight requests finish after SIGTERM */
    bool reverse_proxy;
    struct ag_strlist trusted_proxy_ips; /* CIDRs whose X-Forwarded-* we believe */
    char *check_path_prefix;             /* Istio pathPrefix to strip from check requests; planned */

    /* Logging */
    char *logging_format; /* "standard" or "json" */
    bool standard_logging;
    bool request_logging;
    bool auth_logging;
    char *request_id_header;
    bool silence_ping_logging;

    /* Provider */
    char *provider; /* "oidc" */
    char *provider_display_name;
    char *client_id;
    struct ag_secret client_secret;
    char *oidc_issuer_url;
    bool skip_oidc_discovery;
    char *login_url;
    char *redeem_url;
    char *oidc_jwks_url;
    char *profile_url; /* userinfo endpoint when discovery is skipped */
    char *redirect_url;
    char *scope;
    char *prompt;
    char *acr_values;
    char *code_challenge_method;
    struct ag_strlist oidc_extra_audiences;
    struct ag_strlist oidc_enabled_signing_algs;
    char *oidc_email_claim;
    char *oidc_groups_claim;
    char *user_id_claim;
    bool insecure_oidc_allow_unverified_email;
    bool skip_provider_button;
    char *backend_logout_url;
    char *provider_ca_file;
    int64_t provider_timeout; /* ms */

    /* Authorization */
    struct ag_strlist email_domains;
    char *authenticated_emails_file;
    struct ag_strlist allowed_groups;

    /* Cookie */
    char *cookie_name;
    struct ag_secret cookie_secret;
    struct ag_strlist cookie_domains;
    char *cookie_path;
    int64_t cookie_expire;  /* ms */
    int64_t cookie_refresh; /* ms, 0 = off */
    bool cookie_secure;
    bool cookie_httponly;
    char *cookie_samesite; /* "", "lax", "strict", "none" */
    int64_t cookie_csrf_expire;
    bool cookie_csrf_per_request;

    /* Session store */
    char *session_store_type; /* "redis" or "cookie" */
    char *redis_connection_url;
    struct ag_secret redis_password;
    bool redis_use_sentinel;
    char *redis_sentinel_master_name;
    struct ag_strlist redis_sentinel_connection_urls;
    int64_t redis_timeout;         /* ms, per command */
    int64_t session_cache_entries; /* 0 = no session cache */

    /* Upstream */
    struct ag_strlist upstreams;
    bool pass_host_header;
    bool proxy_websockets;
    int64_t flush_interval;
    int64_t upstream_timeout;
    int64_t upstream_max_connections;
    bool ssl_upstream_insecure_skip_verify;

    /* Headers */
    bool set_xauthrequest;
    bool pass_access_token;
    bool set_authorization_header;
    bool pass_authorization_header;
    bool pass_user_headers;

    /* Routing and redirects */
    struct ag_strlist whitelist_domains;
    struct ag_strlist skip_auth_routes;
    bool skip_auth_preflight;
    struct ag_strlist api_routes;
    bool force_json_errors;

    /* API tokens */
    bool skip_jwt_bearer_tokens;
    struct ag_strlist extra_jwt_issuers;
    bool bearer_token_login_fallback;
    char *introspection_url;
    int64_t introspection_cache_ttl;
    char *required_scope;                    /* space-delimited */
    struct ag_strlist required_scope_routes; /* "[METHOD=]regex scope..." */
    struct ag_strlist claim_headers;         /* "Header-Name=claim.path" */

    /* Per-option bookkeeping, indexed like ag_options[]: where each value came from and, for the
     * file, on which line. Filled by ag_config_load(). */
    enum ag_source *src;
    int *src_line;
    char *config_file; /* path given with --config, or NULL */
    /* Added: per option, where its value came from as error lines spell it ("flag --cookie-name",
     * "env AUTHGATE_COOKIE_NAME", "/etc/authgate.cfg:12"); NULL for defaults. Owned by the config. */
    char **src_where;
};

/* Value conventions after ag_config_load() (added): string options are never NULL ("" when unset);
 * an unset list has n == 0 and v == NULL; an unset secret has value == NULL (an empty secret is
 * unset), and a secret given as <key>_file has `file` set and `value` holding the file's content. */

/* What main() should do after loading. */
enum ag_config_action {
    AG_ACTION_RUN = 0,
    AG_ACTION_HELP,        /* --help: print ag_config_print_help() and exit 0 */
    AG_ACTION_VERSION,     /* --version */
    AG_ACTION_CONFIG_TEST, /* --config-test: config loaded and checked; print summary, exit 0 */
    AG_ACTION_REFERENCE    /* --print-config-reference: markdown option table for the README */
};

/* Build a config from defaults, the file named by --config (or AUTHGATE_CONFIG /
 * OAUTH2_PROXY_CONFIG), the environment `envp` (NULL-terminated, may be NULL) and argv[1..].
 * On AG_OK *out is a new config the caller frees with ag_config_free(); *action says what to do.
 * On any other code *out is NULL and every problem found was written to `errf`, one line each,
 * naming the option, its source (flag --x, env VAR, or file:line) and what was expected; secret
 * values never appear. For HELP/VERSION/REFERENCE, *out is a config with defaults only. */
enum ag_rc ag_config_load(int argc, char *const argv[], char *const envp[], struct ag_config **out,
                          enum ag_config_action *action, FILE *errf);

/* Free a config (NULL is fine); secret values are cleansed first. */
void ag_config_free(struct ag_config *cfg);

/* --help text, generated from the table, to f. */
void ag_config_print_help(FILE *f);

/* The README's configuration reference (markdown), generated from the table, to f. */
void ag_config_print_reference(FILE *f);

/* The effective settings that differ from their defaults, one "key = value (source)" line each,
 * secrets shown as "(set)". Used by --config-test. */
void ag_config_print_effective(const struct ag_config *cfg, FILE *f);

/* Index of the option with this key in ag_options[], or -1. */
int ag_config_find(const char *key);

/* Parsers shared with the tests. Each returns AG_OK or AG_ERR_INVALID. */
enum ag_rc ag_config_parse_duration(const char *s, int64_t *ms_out); /* "1h30m", "15m", "250ms", "0" */
enum ag_rc ag_config_parse_bool(const char *s, bool *out);           /* Go's strconv.ParseBool set */
enum ag_rc ag_config_parse_int(const char *s, int64_t *out);

/* Largest config file ag_config_load() reads (added); a bigger one is an error, not a truncation. */
#define AG_CONFIG_FILE_MAX   (1024 * 1024)
#define AG_MAX_CLAIM_HEADERS 32 /* --claim-header entries */
/* '-' or '_' in a --claim-header name: Envoy is told to remove every spelling (2^n of them). */
#define AG_MAX_CLAIM_HEADER_SEPARATORS 6

/* Environment variable of option `idx` (added): prefix "OAUTH2_PROXY_" or "AUTHGATE_", then the
 * upper-cased config key, then "_FILE" for the file variant of a secret. Writes a NUL-terminated
 * name to buf; AG_ERR_TOO_LARGE when it does not fit, AG_ERR_INVALID for a bad idx or a
 * file variant of a non-secret. */
enum ag_rc ag_config_env_name(size_t idx, const char *prefix, bool file_variant, char *buf, size_t size);

/* Write `ms` in the text form ag_config_parse_duration() reads back ("168h", "1h30m", "250ms",
 * "0s") to buf (added); always NUL-terminated, truncated when size is too small (32 is enough). */
void ag_config_format_duration(int64_t ms, char *buf, size_t size);

/* Decode a cookie secret as oauth2-proxy does: standard or URL-safe base64 (padding optional)
 * that decodes to 16, 24 or 32 bytes, else the raw bytes when they are 16, 24 or 32 long.
 * On AG_OK writes the key length to *len and the key to key (32 bytes of room). */
enum ag_rc ag_config_cookie_key(const char *secret, unsigned char key[32], size_t *len);

#endif
