/* SPDX-License-Identifier: Apache-2.0
 * Skip-auth and API route rules: POSIX extended regular expressions on a normalised path. */
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "auth/rules.h"

#define PATH_MAX_BYTES 8192

struct rule {
    char method[16]; /* "" = any */
    bool negate;     /* != : the rule applies when the path does NOT match */
    regex_t re;
    char *payload; /* scope rules: what follows the first space; NULL otherwise */
};

struct ag_rules {
    size_t n;
    struct rule *v;
};

enum ag_rc ag_rules_normalize(const char *raw, char *out, size_t cap)
{
    char dec[PATH_MAX_BYTES];
    size_t n = 0, o = 0;

    if (raw == NULL || raw[0] != '/' || cap < 2)
        return AG_ERR_INVALID;
    /* decode once, stopping at the query or fragment, raw or decoded */
    for (const char *p = raw; *p && *p != '?' && *p != '#'; p++) {
        char c = *p;
        if (c == '%') {
            int h = ag_hex_digit((unsigned char)p[1]), l = h < 0 ? -1 : ag_hex_digit((unsigned char)p[2]);
            if (h < 0 || l < 0)
                return AG_ERR_INVALID;
            c = (char)(h * 16 + l);
            p += 2;
            if (c == '?' || c == '#')
                break;
        }
        if (c == '\0' || c == '\\' || (unsigned char)c < 0x20 || c == 0x7f)
            return AG_ERR_INVALID;
        if (n + 1 >= sizeof(dec))
            return AG_ERR_TOO_LARGE;
        dec[n++] = c;
    }
    dec[n] = '\0';
    /* resolve dot segments (RFC 3986 5.2.4), reading "..;x" as ".." and ".;x" as "." */
    for (size_t i = 0; i < n;) {
        size_t j = i + 1;
        while (j < n && dec[j] != '/')
            j++;
        const char *seg = dec + i + 1;
        size_t len = j - i - 1, name = strcspn(seg, ";/");
        if (name > len)
            name = len;
        if (name == 1 && seg[0] == '.') {
            /* "." : drop */
        } else if (name == 2 && seg[0] == '.' && seg[1] == '.') {
            while (o > 0 && out[o - 1] != '/')
                o--;
            if (o > 0)
                o--; /* remove the slash too; the next segment brings its own */
        } else {
            if (o + 1 + len + 1 > cap)
                return AG_ERR_TOO_LARGE;
            out[o++] = '/';
            memcpy(out + o, seg, len);
            o += len;
        }
        i = j;
    }
    /* a trailing "/." or "/.." leaves a directory: keep the slash */
    if (o == 0 || (n > 0 && dec[n - 1] == '/') || (n >= 2 && strcmp(dec + n - 2, "/.") == 0) ||
        (n >= 3 && strcmp(dec + n - 3, "/..") == 0)) {
        if (o == 0 || out[o - 1] != '/') {
            if (o + 2 > cap)
                return AG_ERR_TOO_LARGE;
            out[o++] = '/';
        }
    }
    out[o] = '\0';
    return AG_OK;
}

/* Compile rule text s into ru (zeroed by the caller); on AG_ERR_INVALID msg says why. */
static enum ag_rc rule_compile(struct rule *ru, const char *s, bool payload, char *msg, size_t msglen)
{
    const char *re = s, *sp = payload ? strchr(s, ' ') : NULL;
    char *own = NULL;
    int e;

    /* METHOD=regex / METHOD!=regex / !=regex / regex: a method is letters only */
    size_t m = strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz");
    if (s[m] == '=' && m > 0 && m < sizeof(ru->method)) {
        memcpy(ru->method, s, m);
        re = s + m + 1;
    } else if (s[m] == '!' && s[m + 1] == '=' && m < sizeof(ru->method)) {
        memcpy(ru->method, s, m);
        ru->negate = true;
        re = s + m + 2;
    }
    if (payload) {
        /* "[METHOD=]regex payload": the regex ends at the first space */
        if (sp == NULL || sp < re || sp[1] == '\0') {
            snprintf(msg, msglen, "expected a space and scopes after the regex");
            return AG_ERR_INVALID;
        }
        own = strndup(re, (size_t)(sp - re));
        ru->payload = strdup(sp + 1);
        if (own == NULL || ru->payload == NULL) {
            free(own);
            free(ru->payload);
            return AG_ERR_NOMEM;
        }
        re = own;
    }
    e = regcomp(&ru->re, re, REG_EXTENDED | REG_NOSUB);
    free(own);
    if (e != 0) {
        regerror(e, &ru->re, msg, msglen);
        free(ru->payload);
        return AG_ERR_INVALID;
    }
    return AG_OK;
}

static enum ag_rc rules_new(const char *const *rules, size_t n, bool payload, struct ag_rules **out,
                            char *err, size_t errlen)
{
    struct ag_rules *r = calloc(1, sizeof(*r));
    enum ag_rc rc = AG_ERR_NOMEM;

    *out = NULL;
    if (r == NULL)
        return AG_ERR_NOMEM;
    if (n > 0) {
        r->v = calloc(n, sizeof(*r->v));
        if (r->v == NULL)
            goto fail;
    }
    for (size_t i = 0; i < n; i++) {
        char msg[128];
        rc = rule_compile(&r->v[i], rules[i], payload, msg, sizeof(msg));
        if (rc == AG_ERR_INVALID)
            snprintf(err, errlen, "rule %zu \"%.80s\": %s", i + 1, rules[i], msg);
        if (rc != AG_OK)
            goto fail;
        r->n++;
    }
    *out = r;
    return AG_OK;
fail:
    ag_rules_free(r);
    return rc;
}

enum ag_rc ag_rules_check(const char *rule, bool scoped, char *msg, size_t msglen)
{
    struct rule ru;
    enum ag_rc rc;

    memset(&ru, 0, sizeof(ru));
    rc = rule_compile(&ru, rule, scoped, msg, msglen);
    if (rc == AG_OK) {
        regfree(&ru.re);
        free(ru.payload);
    }
    return rc;
}

enum ag_rc ag_rules_new(const char *const *rules, size_t n, struct ag_rules **out, char *err, size_t errlen)
{
    return rules_new(rules, n, false, out, err, errlen);
}

enum ag_rc ag_rules_new_scoped(const char *const *rules, size_t n, struct ag_rules **out, char *err,
                               size_t errlen)
{
    return rules_new(rules, n, true, out, err, errlen);
}

void ag_rules_free(struct ag_rules *r)
{
    if (r == NULL)
        return;
    for (size_t i = 0; i < r->n; i++) {
        regfree(&r->v[i].re);
        free(r->v[i].payload);
    }
    free(r->v);
    free(r);
}

bool ag_rules_match(const struct ag_rules *r, const char *method, const char *raw_uri)
{
    char path[PATH_MAX_BYTES];

    if (r == NULL || r->n == 0 || ag_rules_normalize(raw_uri, path, sizeof(path)) != AG_OK)
        return false;
    for (size_t i = 0; i < r->n; i++) {
        const struct rule *ru = &r->v[i];
        if (ru->method[0] != '\0' && (method == NULL || strcasecmp(ru->method, method) != 0))
            continue;
        bool hit = regexec(&ru->re, path, 0, NULL, 0) == 0;
        if (hit != ru->negate)
            return true;
    }
    return false;
}

enum ag_rc ag_rules_collect(const struct ag_rules *r, const char *method, const char *raw_uri,
                            const char **payloads, size_t cap, size_t *n)
{
    char path[PATH_MAX_BYTES];

    *n = 0;
    if (r == NULL || r->n == 0)
        return AG_OK;
    if (ag_rules_normalize(raw_uri, path, sizeof(path)) != AG_OK)
        return AG_ERR_INVALID;
    for (size_t i = 0; i < r->n; i++) {
        const struct rule *ru = &r->v[i];
        if (ru->method[0] != '\0' && (method == NULL || strcasecmp(ru->method, method) != 0))
            continue;
        if ((regexec(&ru->re, path, 0, NULL, 0) == 0) == ru->negate)
            continue;
        if (*n == cap)
            return AG_ERR_TOO_LARGE;
        payloads[(*n)++] = ru->payload;
    }
    return AG_OK;
}
