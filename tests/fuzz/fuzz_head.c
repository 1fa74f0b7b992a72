/* SPDX-License-Identifier: Apache-2.0
 * Request head validation (src/net/head.c). The input is a head: a request line, then header lines
 * "name:value" separated by '\n'; a line that starts with '\t' is laid out as a folded continuation of
 * the previous field, the way libmicrohttpd 0.9.75 leaves one (the name moved after the value). Oracles
 * against a reference reading written here: an accepted head has token names, values without control
 * characters but HTAB, no folded field, exactly one Host on HTTP/1.1, at most one all-digit
 * Content-Length, at most one Transfer-Encoding of "chunked" and never both. */
#include <stdbool.h>
#include <strings.h>

#include "fuzz.h"
#include "net/head.h"

#define MAX_FIELDS 64

static bool tchar(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_in in = fuzz_in(data, size);
    static char buf[1 << 16];
    struct ag_head_field f[MAX_FIELDS];
    bool folded[MAX_FIELDS];
    size_t n = 0, used = 0, moved_used = 0; /* the buffer's first half: lines; second: moved names */
    char *line = fuzz_field(&in, '\n', NULL), *method = line, *target, *version;

    if (size > sizeof(buf) / 4) {
        free(line);
        return 0;
    }
    target = strchr(method, ' ');
    if (target != NULL)
        *target++ = '\0';
    version = target != NULL ? strchr(target, ' ') : NULL;
    if (version != NULL)
        *version++ = '\0';
    while (fuzz_left(&in) && n < MAX_FIELDS) {
        size_t len;
        char *l = fuzz_field(&in, '\n', &len);
        char *colon = memchr(l, ':', len);
        bool fold = len > 0 && l[0] == '\t' && n > 0;
        if (fold) {
            /* libmicrohttpd appends the continuation to the previous NAME, at fresh memory after the buffer
             */
            struct ag_head_field *prev = &f[n - 1];
            char *moved = buf + sizeof(buf) / 2 + moved_used;
            if (moved_used + prev->name_len + len + 1 > sizeof(buf) / 2) {
                free(l);
                break;
            }
            memcpy(moved, prev->name, prev->name_len);
            memcpy(moved + prev->name_len, l + 1, len - 1);
            moved[prev->name_len + len - 1] = '\0';
            prev->name = moved;
            prev->name_len += len - 1;
            folded[n - 1] = true;
            moved_used += prev->name_len + 1;
        } else if (colon != NULL) {
            size_t nl = (size_t)(colon - l), vl = len - nl - 1;
            char *p = buf + used;
            memcpy(p, l, nl);
            p[nl] = '\0';
            size_t ows = 0;
            while (ows < vl && (colon[1 + ows] == ' ' || colon[1 + ows] == '\t'))
                ows++;
            memcpy(p + nl + 1, colon + 1, vl);
            p[nl + 1 + vl] = '\0';
            f[n] = (struct ag_head_field){p, p + nl + 1 + ows, nl, vl - ows};
            folded[n++] = false;
            used += nl + vl + 2;
        }
        free(l);
    }
    const char *why = ag_head_refusal(method, target, version, f, n);
    if (why == NULL) {
        unsigned hosts = 0, lengths = 0, encodings = 0;
        FUZZ_CHECK(target != NULL && target[0] != '\0', "no target accepted");
        for (const char *p = target; *p; p++)
            FUZZ_CHECK((unsigned char)*p > 0x20 && *p != 0x7f && *p != '#', "target byte 0x%02x", *p);
        for (size_t i = 0; i < n; i++) {
            FUZZ_CHECK(!folded[i], "a folded field accepted");
            FUZZ_CHECK(f[i].name_len > 0, "an empty name accepted");
            for (size_t k = 0; k < f[i].name_len; k++)
                FUZZ_CHECK(tchar((unsigned char)f[i].name[k]), "name byte 0x%02x", f[i].name[k]);
            for (size_t k = 0; k < f[i].value_len; k++) {
                unsigned char c = (unsigned char)f[i].value[k];
                FUZZ_CHECK(c == '\t' || (c >= 0x20 && c != 0x7f), "value byte 0x%02x", c);
            }
            if (f[i].name_len == 4 && strncasecmp(f[i].name, "host", 4) == 0)
                hosts++;
            if (f[i].name_len == 14 && strncasecmp(f[i].name, "content-length", 14) == 0) {
                lengths++;
                FUZZ_CHECK(f[i].value_len > 0 && strspn(f[i].value, "0123456789") == f[i].value_len,
                           "length");
            }
            if (f[i].name_len == 17 && strncasecmp(f[i].name, "transfer-encoding", 17) == 0) {
                encodings++;
                FUZZ_CHECK(f[i].value_len == 7 && strncasecmp(f[i].value, "chunked", 7) == 0, "encoding");
            }
        }
        FUZZ_CHECK(hosts <= 1 && lengths <= 1 && encodings <= 1 && !(lengths && encodings), "framing");
        FUZZ_CHECK(hosts == 1 || (version != NULL && strcmp(version, "HTTP/1.0") == 0), "no Host on 1.1");
    }
    free(line);
    return 0;
}
