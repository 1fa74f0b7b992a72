/* SPDX-License-Identifier: Apache-2.0
 * Request paths and route rules (src/auth/path.c, src/auth/rules.c), against reference normalisers
 * written independently here: how nginx (decode, resolve dot segments, merge slashes), Envoy (resolve,
 * optionally merge and unescape slashes), Tomcat/Spring (cut ;params, decode, resolve) and a
 * case-insensitive app could read the same path. Oracles:
 *   - a path read as unambiguous is a fixed point of every reference reading but decoding and case, and
 *     its decoded reading is what a reference decoder gives;
 *   - the skip rule ^/public/ applies only when every reading starts with /public/;
 *   - the scope rule ^/admin/ applies whenever any reading starts with /admin/ (in any case). */
#include <ctype.h>
#include <stdbool.h>

#include "auth/path.h"
#include "auth/rules.h"
#include "fuzz.h"

#define CAP 4096

static struct ag_rules *skip, *scope;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    static const char *const s[] = {"^/public/"}, *const c[] = {"^/admin/ api:admin"};
    char err[256];
    (void)argc;
    (void)argv;
    if (ag_rules_new(s, 1, &skip, err, sizeof(err)) != AG_OK ||
        ag_rules_new_scoped(c, 1, &scope, err, sizeof(err)) != AG_OK)
        abort();
    return 0;
}

static int hex(int c)
{
    return isdigit(c)               ? c - '0'
           : (c >= 'a' && c <= 'f') ? c - 'a' + 10
           : (c >= 'A' && c <= 'F') ? c - 'A' + 10
                                    : -1;
}

/* One reading of path `in` (up to '?') into out: percent-decoded once or not, ";params" cut from each
 * segment or not, empty segments merged or not, dot segments resolved (RFC 3986 5.2.4), letters
 * lowered or not. */
static void reading(const char *in, bool decode, bool params, bool merge, bool lower, char *out)
{
    char dec[CAP];
    size_t n = 0, o = 0;
    for (const char *p = in; *p != '\0' && *p != '?' && n + 1 < CAP; p++) {
        int h, l;
        if (decode && *p == '%' && (h = hex((unsigned char)p[1])) >= 0 &&
            (l = hex((unsigned char)p[2])) >= 0) {
            dec[n++] = (char)(h * 16 + l);
            p += 2;
        } else {
            dec[n++] = *p;
        }
    }
    dec[n] = '\0';
    /* segments after the leading '/' */
    const char *s = dec[0] == '/' ? dec + 1 : dec;
    out[o++] = '/';
    size_t starts[CAP / 2], depth = 0;
    for (;;) {
        const char *e = strchr(s, '/');
        size_t len = e ? (size_t)(e - s) : strlen(s);
        size_t name = len;
        if (params) {
            const char *semi = memchr(s, ';', len);
            if (semi != NULL)
                name = (size_t)(semi - s);
        }
        if (name == 1 && s[0] == '.') {
            /* dropped */
        } else if (name == 2 && s[0] == '.' && s[1] == '.') {
            if (depth > 0)
                o = starts[--depth];
        } else if (name == 0 && merge && e != NULL) {
            /* merged */
        } else {
            if (depth < CAP / 2)
                starts[depth++] = o;
            memcpy(out + o, s, name);
            o += name;
            if (e != NULL)
                out[o++] = '/';
        }
        if (e == NULL)
            break;
        s = e + 1;
    }
    out[o] = '\0';
    if (lower)
        for (char *p = out; *p; p++)
            *p = (char)tolower((unsigned char)*p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct ag_path p;
    char *in, r[CAP], dec[CAP];
    const char *need[4];
    size_t n = 0;

    if (size >= CAP / 2)
        return 0;
    in = fuzz_copy(data, size);
    ag_path_read(in, &p);
    if (!p.ambiguous) {
        FUZZ_CHECK(p.raw[0] == '/', "%s", in);
        for (int merge = 0; merge < 2; merge++)
            for (int params = 0; params < 2; params++) {
                reading(in, false, params, merge, false, r);
                FUZZ_CHECK(strcmp(r, p.raw) == 0, "unambiguous %s reads as %s (merge %d params %d)", in, r,
                           merge, params);
                reading(in, true, params, merge, false, r);
                FUZZ_CHECK(strcmp(r, p.decoded) == 0, "unambiguous %s decodes to %s, not %s", in, r,
                           p.decoded);
            }
        reading(p.decoded, false, true, true, false, dec);
        FUZZ_CHECK(strcmp(dec, p.decoded) == 0, "the decoded reading of %s is not canonical: %s", in, dec);
    }
    bool skipped = ag_rules_match(skip, "GET", in);
    FUZZ_CHECK(ag_rules_collect(scope, "GET", in, need, 4, &n) == AG_OK, "%s", in);
    for (int bits = 0; bits < 16; bits++) {
        reading(in, bits & 1, bits & 2, bits & 4, bits & 8, r);
        if (skipped)
            FUZZ_CHECK(strncmp(r, "/public/", 8) == 0, "%s skipped, but one reading is %s", in, r);
        reading(in, bits & 1, bits & 2, bits & 4, true, r);
        if (strncmp(r, "/admin/", 7) == 0)
            FUZZ_CHECK(n == 1, "%s dodges ^/admin/: a reading is %s", in, r);
    }
    free(in);
    return 0;
}
