/* SPDX-License-Identifier: Apache-2.0
 * The CSRF cookie (src/oidc/flow.c: ag_flow_csrf_open and ag_flow_csrf_seal), which carries state, nonce,
 * PKCE verifier, redirect URI and return target from /oauth2/start to the callback. The first byte picks:
 *  - the bytes as the cookie value (a forgery: nothing may open);
 *  - the bytes as the record's plaintext (format 2, or format 1 JSON), sealed here with the CSRF key as a
 *    holder of the cookie secret would, so the record reader is fuzzed behind the seal;
 *  - a record's fields (one per line) as /oauth2/start would fill them, with a return target of any
 *    length the redirect check lets through (up to 8 KiB).
 * Oracles: an opened record has every field but the verifier non-empty and NUL-free, and seals and opens
 * back to the same fields under the same name only; a record /oauth2/start can build always seals, into
 * a value that fits a browser cookie (4096 bytes with its name), and opens to what was sealed, except
 * that a return target over AG_FLOW_RD_MAX comes back as "/". */
#include "app.h"
#include "fuzz.h"
#include "net/redirect.h"
#include "oidc/flow.h"
#include "request.h"
#include "util/b64.h"
#include "util/crypto.h"

#define NAME "_oauth2_proxy_csrf"

static struct ag_app app;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    for (size_t i = 0; i < sizeof(app.csrf_key); i++)
        app.csrf_key[i] = (unsigned char)(i * 7 + 1);
    return 0;
}

static bool eq(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static void opened(struct ag_request *rq, const struct ag_csrf *c)
{
    const char *fields[] = {c->state, c->nonce, c->uri, c->rd};
    const char *again;
    struct ag_csrf r;

    for (size_t i = 0; i < 4; i++)
        FUZZ_CHECK(fields[i] != NULL && fields[i][0] != '\0', "field %zu empty", i);
    FUZZ_CHECK(c->verifier == NULL || c->verifier[0] != '\0', "empty verifier");
    again = ag_flow_csrf_seal(rq, NAME, c);
    if (again == NULL)
        return; /* a format-1 record may be larger than what format 2 writes */
    FUZZ_CHECK(ag_flow_csrf_open(rq, NAME, again, &r), "a sealed record does not open");
    FUZZ_CHECK(eq(c->state, r.state) && eq(c->nonce, r.nonce) && eq(c->verifier, r.verifier) &&
                   eq(c->uri, r.uri) && eq(c->rd, r.rd) && c->expires_at == r.expires_at,
               "the record changed on a round trip");
    FUZZ_CHECK(!ag_flow_csrf_open(rq, NAME "_x", again, &r), "opened under another name");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct ag_request *rq = calloc(1, sizeof(*rq));
    struct fuzz_in in = fuzz_in(data, size);
    uint8_t first = fuzz_byte(&in), mode = first % 3;
    struct ag_csrf c;

    if (rq == NULL)
        abort();
    rq->app = &app;
    if (mode == 0) {
        char *v = fuzz_rest(&in, NULL);
        FUZZ_CHECK(!ag_flow_csrf_open(rq, NAME, v, &c), "a forged cookie opened");
        free(v);
    } else if (mode == 1) {
        size_t n;
        char *pt = fuzz_rest(&in, &n);
        unsigned char *sealed = malloc(n + AG_SEAL_OVERHEAD);
        char *text = malloc(AG_B64URL_LEN(n + AG_SEAL_OVERHEAD) + 1);
        size_t slen = 0;
        if (sealed == NULL || text == NULL ||
            ag_seal(app.csrf_key, NAME, strlen(NAME), pt, n, sealed, &slen) != AG_OK)
            abort();
        ag_b64url_encode(sealed, slen, text, AG_B64URL_LEN(slen) + 1);
        if (ag_flow_csrf_open(rq, NAME, text, &c))
            opened(rq, &c);
        free(sealed);
        free(text);
        free(pt);
    } else {
        /* as /oauth2/start fills it: 32-character state and nonce, a 43-character verifier or none, a
         * redirect URI of this host, and a return target the redirect check accepts */
        size_t rn;
        char *uri = fuzz_field(&in, '\n', NULL), *rd = fuzz_rest(&in, &rn);
        uint8_t times = size > 1 ? data[1] : 0;
        char *longrd = malloc(rn * (times % 200 + 1) + 2);
        const char *value;
        if (longrd == NULL)
            abort();
        longrd[0] = '/';
        for (size_t i = 0; i < (size_t)(times % 200 + 1); i++)
            memcpy(longrd + 1 + i * rn, rd, rn);
        longrd[1 + rn * (times % 200 + 1)] = '\0';
        c.state = "st4te-st4te-st4te-st4te-st4te-st";
        c.nonce = "n0nce-n0nce-n0nce-n0nce-n0nce-n0";
        c.verifier = (first & 8) ? NULL : "v3rifier-v3rifier-v3rifier-v3rifier-v3rifi";
        c.uri = uri[0] != '\0' ? uri : "https://auth.example.com/oauth2/callback";
        c.rd = longrd;
        c.expires_at = 1700000900;
        if (strlen(c.uri) <= 300 + 64 && ag_redirect_check(NULL, longrd, NULL, NULL) == AG_OK) {
            struct ag_csrf r;
            value = ag_flow_csrf_seal(rq, NAME, &c);
            FUZZ_CHECK(value != NULL, "a record /oauth2/start can build (rd of %zu bytes) does not seal",
                       strlen(longrd));
            FUZZ_CHECK(strlen(NAME) + 1 + strlen(value) <= 4096, "cookie of %zu bytes", strlen(value));
            FUZZ_CHECK(ag_flow_csrf_open(rq, NAME, value, &r), "does not open");
            FUZZ_CHECK(eq(r.state, c.state) && eq(r.uri, c.uri) && r.expires_at == c.expires_at, "fields");
            FUZZ_CHECK(strlen(longrd) <= AG_FLOW_RD_MAX ? eq(r.rd, longrd) : eq(r.rd, "/"), "rd");
        }
        free(longrd);
        free(uri);
        free(rd);
    }
    ag_request_free(rq);
    return 0;
}
