/* SPDX-License-Identifier: Apache-2.0
 * What verified claims grant (src/token/claims.c): claim paths, claim values turned into header values,
 * scopes from `scope`/`scp`, and scope coverage. Input: a claim path and a required-scope string (two
 * lines), then the claims JSON. Oracles: a header value never holds a control byte other than tab (a
 * header must not be split) and fits its buffer; a scope string from an `scp` array has only RFC 6749
 * scope tokens; a scope list covers itself and every one of its tokens, and nothing covers a token it
 * does not have. */
#include <jansson.h>

#include "fuzz.h"
#include "token/claims.h"

static bool scope_token_char(unsigned char c)
{
    return c >= 0x21 && c <= 0x7e && c != '"' && c != '\\';
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_in in = fuzz_in(data, size);
    char *path = fuzz_field(&in, '\n', NULL), *required = fuzz_field(&in, '\n', NULL);
    size_t jl;
    char *js = fuzz_rest(&in, &jl), value[AG_CLAIM_VALUE_MAX], small[8];
    json_t *claims = json_loadb(js, jl, 0, NULL), *v;
    char *scope = NULL;

    v = ag_claims_get(claims, path);
    if (ag_claims_header_value(v, value, sizeof(value))) {
        size_t n = strlen(value);
        FUZZ_CHECK(n < sizeof(value), "length");
        for (size_t i = 0; i < n; i++)
            FUZZ_CHECK(((unsigned char)value[i] >= 0x20 || value[i] == '\t') && value[i] != 0x7f,
                       "control byte 0x%02x in a header value", (unsigned char)value[i]);
        /* a smaller buffer either holds the same text or refuses */
        if (ag_claims_header_value(v, small, sizeof(small)))
            FUZZ_CHECK(strcmp(small, value) == 0, "a smaller buffer gave other text");
    }
    if (ag_claims_scope(claims, &scope) == AG_OK && scope != NULL) {
        json_t *sv = json_object_get(claims, "scope");
        if (!json_is_string(sv) && json_is_array(json_object_get(claims, "scp"))) {
            for (const char *p = scope; *p; p++)
                FUZZ_CHECK(scope_token_char((unsigned char)*p) ||
                               (*p == ' ' && p[1] != ' ' && p[1] != '\0' && p != scope),
                           "scp array gave \"%s\"", scope);
        }
        FUZZ_CHECK(ag_scopes_cover(scope, scope), "\"%s\" does not cover itself", scope);
    }
    /* tokens of `required` one by one: covered exactly when present in the granted list */
    {
        const char *granted = scope != NULL ? scope : "openid email";
        for (const char *p = required; *p;) {
            size_t n;
            char tok[256];
            p += strspn(p, " ");
            n = strcspn(p, " ");
            if (n > 0 && n < sizeof(tok)) {
                bool found = false;
                memcpy(tok, p, n);
                tok[n] = '\0';
                for (const char *g = granted; *g && !found;) {
                    size_t m;
                    g += strspn(g, " ");
                    m = strcspn(g, " ");
                    found = m == n && memcmp(g, tok, n) == 0;
                    g += m;
                }
                FUZZ_CHECK(ag_scopes_cover(granted, tok) == found, "token \"%s\" in \"%s\"", tok, granted);
            }
            p += n;
        }
    }
    free(scope);
    json_decref(claims);
    free(path);
    free(required);
    free(js);
    return 0;
}
