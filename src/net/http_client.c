/* SPDX-License-Identifier: Apache-2.0
 * libcurl easy interface, one handle per thread kept in a pthread key (freed by the key's destructor
 * when the thread exits) so connections to the provider are reused without a lock. The handle is
 * reset after every transfer: curl_easy_reset() keeps live connections but drops the options, so no
 * credential or dangling body pointer outlives the call. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <openssl/crypto.h>

#include "build-config.h"
#include "log.h"
#include "net/http_client.h"

#define DEFAULT_TIMEOUT_MS 10000
#define FIRST_CHUNK        4096

static pthread_key_t handle_key;
static bool key_made;
static bool curl_ready;

/* A growing byte buffer whose old copies are cleansed when it moves: response bodies and form
 * bodies carry tokens and secrets, and realloc() would leave them behind in freed memory. */
struct buf {
    char *p;
    size_t len, cap;
    size_t max;
    bool too_large, nomem;
};

static void buf_free(struct buf *b)
{
    if (b->p) {
        OPENSSL_cleanse(b->p, b->cap);
        free(b->p);
    }
    b->p = NULL;
    b->len = 0;
    b->cap = 0;
}

static bool buf_append(struct buf *b, const char *data, size_t n)
{
    size_t need, cap;
    char *np;

    if (n > b->max - b->len) {
        b->too_large = true;
        return false;
    }
    need = b->len + n + 1;
    if (need > b->cap) {
        cap = b->cap ? b->cap : FIRST_CHUNK;
        while (cap < need)
            cap *= 2;
        if (cap > b->max + 1)
            cap = b->max + 1;
        np = malloc(cap);
        if (!np) {
            b->nomem = true;
            return false;
        }
        if (b->p)
            memcpy(np, b->p, b->len);
        if (b->p) {
            OPENSSL_cleanse(b->p, b->cap);
            free(b->p);
        }
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->len, data, n);
    b->len += n;
    b->p[b->len] = '\0';
    return true;
}

static void handle_free(void *h)
{
    curl_easy_cleanup(h);
}

enum ag_rc ag_http_global_init(void)
{
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        ag_log_error("libcurl initialisation failed");
        return AG_ERR_INTERNAL;
    }
    curl_ready = true;
    if (pthread_key_create(&handle_key, handle_free) != 0) {
        ag_log_error("cannot create the HTTP client's thread key");
        return AG_ERR_INTERNAL;
    }
    key_made = true;
    return AG_OK;
}

void ag_http_global_cleanup(void)
{
    CURL *h;

    if (key_made) {
        /* The main thread never runs key destructors (it leaves through exit()), so its handle is
         * freed here. */
        h = pthread_getspecific(handle_key);
        if (h) {
            pthread_setspecific(handle_key, NULL);
            curl_easy_cleanup(h);
        }
        pthread_key_delete(handle_key);
        key_made = false;
    }
    if (curl_ready)
        curl_global_cleanup();
    curl_ready = false;
}

static CURL *thread_handle(void)
{
    CURL *h;

    if (!key_made)
        return NULL;
    h = pthread_getspecific(handle_key);
    if (h)
        return h;
    h = curl_easy_init();
    if (h && pthread_setspecific(handle_key, h) != 0) {
        curl_easy_cleanup(h);
        h = NULL;
    }
    return h;
}

/* scheme://host[:port]/path of `url` for log lines: the query and fragment may hold codes or
 * tokens and the userinfo a password, so they never reach the log. */
static void safe_url(const char *url, char *out, size_t outlen)
{
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL, *port = NULL, *path = NULL;

    snprintf(out, outlen, "(malformed URL)");
    if (!u || curl_url_set(u, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME) != CURLUE_OK)
        goto out;
    if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK)
        goto out;
    /* Port and path are optional parts: a missing one just stays NULL. */
    curl_url_get(u, CURLUPART_PORT, &port, 0);
    curl_url_get(u, CURLUPART_PATH, &path, 0);
    snprintf(out, outlen, "%s://%s%s%s%s", scheme, host, port ? ":" : "", port ? port : "", path ? path : "");
out:
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_free(path);
    curl_url_cleanup(u);
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *ud)
{
    struct buf *b = ud;
    size_t n = size * nmemb;

    /* Returning less than n makes libcurl abort the transfer with CURLE_WRITE_ERROR. */
    if (!buf_append(b, data, n))
        return 0;
    return n;
}

static int on_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow)
{
    const atomic_bool *cancel = ud;

    AG_UNUSED(dltotal);
    AG_UNUSED(dlnow);
    AG_UNUSED(ultotal);
    AG_UNUSED(ulnow);
    return atomic_load(cancel) ? 1 : 0;
}

static long clamp_ms(int64_t ms, int64_t def)
{
    if (ms <= 0)
        ms = def;
    if (ms > 3600000)
        ms = 3600000;
    return (long)ms;
}

/* One transfer. `form` is the POST body (NULL for GET). Every option is set here, on a handle that
 * curl_easy_reset() cleared after the previous transfer. */
static enum ag_rc perform(const struct ag_http_opts *opts, const char *url, const struct buf *form,
                          const char *bearer, const char *user, const char *pass,
                          struct ag_http_response *out)
{
    static const struct ag_http_opts defaults = {0, 0, NULL, NULL};
    enum ag_rc rc = AG_ERR_INTERNAL;
    struct buf body = {.max = AG_HTTP_MAX_BODY};
    struct curl_slist *hdrs = NULL, *h2;
    char where[512], errbuf[CURL_ERROR_SIZE];
    const char *ctype = NULL;
    long timeout;
    CURLcode cc;
    CURL *h;

    memset(out, 0, sizeof(*out));
    if (!opts)
        opts = &defaults;
    if (!url) {
        rc = AG_ERR_INVALID;
        goto out;
    }
    h = thread_handle();
    if (!h) {
        ag_log_error("HTTP client unavailable (ag_http_global_init not called, or out of memory)");
        rc = AG_ERR_INTERNAL;
        goto out;
    }
    errbuf[0] = '\0';
    hdrs = curl_slist_append(NULL, "Accept: application/json");
    if (!hdrs) {
        rc = AG_ERR_NOMEM;
        goto reset;
    }
    if (form) {
        /* Set explicitly: without it libcurl already sends this type, but say it rather than rely on it. */
        h2 = curl_slist_append(hdrs, "Content-Type: application/x-www-form-urlencoded");
        if (!h2) {
            rc = AG_ERR_NOMEM;
            goto reset;
        }
        hdrs = h2;
    }
    timeout = clamp_ms(opts->timeout_ms, DEFAULT_TIMEOUT_MS);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    /* A provider that redirects its token or JWKS endpoint is misconfigured; following it could
     * send credentials to another host. */
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    /* Worker threads: libcurl must not use signals (SIGALRM) for its timeouts. */
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, clamp_ms(opts->connect_timeout_ms, timeout));
    if (opts->ca_file && opts->ca_file[0] != '\0')
        curl_easy_setopt(h, CURLOPT_CAINFO, opts->ca_file);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "authgate/" PACKAGE_VERSION);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &body);
    /* Refuses early when Content-Length announces too much; on_body catches chunked bodies. */
    curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)AG_HTTP_MAX_BODY);
    if (opts->cancel) {
        curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
        curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
        curl_easy_setopt(h, CURLOPT_XFERINFODATA, (void *)opts->cancel);
    }
    if (bearer) {
        curl_easy_setopt(h, CURLOPT_HTTPAUTH, (long)CURLAUTH_BEARER);
        curl_easy_setopt(h, CURLOPT_XOAUTH2_BEARER, bearer);
    } else if (user) {
        curl_easy_setopt(h, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
        curl_easy_setopt(h, CURLOPT_USERNAME, user);
        curl_easy_setopt(h, CURLOPT_PASSWORD, pass ? pass : "");
    }
    if (form) {
        curl_easy_setopt(h, CURLOPT_POST, 1L);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)form->len);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, form->p ? form->p : "");
    }

    cc = curl_easy_perform(h);
    if (cc != CURLE_OK) {
        safe_url(url, where, sizeof(where));
        if (body.nomem || cc == CURLE_OUT_OF_MEMORY) {
            rc = AG_ERR_NOMEM;
        } else if (body.too_large || cc == CURLE_FILESIZE_EXCEEDED) {
            ag_log_warn("response from %s is larger than %u bytes; refused", where, AG_HTTP_MAX_BODY);
            rc = AG_ERR_TOO_LARGE;
        } else if (cc == CURLE_URL_MALFORMAT || cc == CURLE_UNSUPPORTED_PROTOCOL) {
            ag_log_error("cannot request %s: %s", where, curl_easy_strerror(cc));
            rc = AG_ERR_INVALID;
        } else if (cc == CURLE_ABORTED_BY_CALLBACK) {
            /* Cancelled by our owner, who is shutting down: nothing to report. */
            rc = AG_ERR_UNAVAILABLE;
        } else {
            ag_log_warn("request to %s failed: %s", where, errbuf[0] ? errbuf : curl_easy_strerror(cc));
            rc = AG_ERR_UNAVAILABLE;
        }
        goto reset;
    }
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &out->status);
    if (curl_easy_getinfo(h, CURLINFO_CONTENT_TYPE, &ctype) == CURLE_OK && ctype)
        snprintf(out->content_type, sizeof(out->content_type), "%s", ctype);
    if (!body.p && !buf_append(&body, "", 0)) {
        rc = AG_ERR_NOMEM;
        goto reset;
    }
    out->body = body.p;
    out->len = body.len;
    body.p = NULL;
    rc = AG_OK;
reset:
    curl_easy_reset(h);
out:
    curl_slist_free_all(hdrs);
    buf_free(&body);
    if (rc != AG_OK)
        ag_http_response_clear(out);
    return rc;
}

enum ag_rc ag_http_get(const struct ag_http_opts *opts, const char *url, const char *bearer,
                       struct ag_http_response *out)
{
    return perform(opts, url, NULL, bearer, NULL, NULL, out);
}

char *ag_http_form_encode(const char *in)
{
    char *esc = NULL, *copy = NULL;
    size_t n;

    if (!in)
        goto out;
    /* libcurl >= 7.82 accepts a NULL handle here. */
    esc = curl_easy_escape(NULL, in, 0);
    if (!esc)
        goto out;
    n = strlen(esc);
    copy = malloc(n + 1);
    if (copy)
        memcpy(copy, esc, n + 1);
    OPENSSL_cleanse(esc, n);
out:
    curl_free(esc);
    return copy;
}

/* Append "name=value" (both percent-encoded), preceded by '&' unless first. */
static bool form_add(struct buf *b, const char *name, const char *value)
{
    char *en = ag_http_form_encode(name), *ev = ag_http_form_encode(value);
    bool ok = en && ev;

    if (ok && b->len > 0)
        ok = buf_append(b, "&", 1);
    if (ok)
        ok = buf_append(b, en, strlen(en)) && buf_append(b, "=", 1) && buf_append(b, ev, strlen(ev));
    if (!en || !ev)
        b->nomem = true;
    if (en)
        OPENSSL_cleanse(en, strlen(en));
    if (ev)
        OPENSSL_cleanse(ev, strlen(ev));
    free(en);
    free(ev);
    return ok;
}

enum ag_rc ag_http_post_form(const struct ag_http_opts *opts, const char *url, const char *const *fields,
                             const char *basic_user, const char *basic_pass, struct ag_http_response *out)
{
    struct buf form = {.max = AG_HTTP_MAX_BODY};
    enum ag_rc rc;

    memset(out, 0, sizeof(*out));
    for (size_t i = 0; fields && fields[i]; i += 2) {
        if (!fields[i + 1])
            continue;
        if (!form_add(&form, fields[i], fields[i + 1])) {
            rc = form.nomem ? AG_ERR_NOMEM : AG_ERR_TOO_LARGE;
            goto out;
        }
    }
    /* An empty form still has to be a POST: give perform() a non-NULL body. */
    if (!form.p && !buf_append(&form, "", 0)) {
        rc = AG_ERR_NOMEM;
        goto out;
    }
    rc = perform(opts, url, &form, NULL, basic_user, basic_pass ? basic_pass : "", out);
out:
    buf_free(&form);
    return rc;
}

void ag_http_response_clear(struct ag_http_response *r)
{
    if (!r)
        return;
    if (r->body) {
        OPENSSL_cleanse(r->body, r->len);
        free(r->body);
    }
    memset(r, 0, sizeof(*r));
}
