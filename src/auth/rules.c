/* SPDX-License-Identifier: Apache-2.0
 * Route rules: POSIX extended regular expressions on the readings of a request path (auth/path.h). */
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "auth/path.h"
#include "auth/rules.h"

struct rule {
    char method[16]; /* "" = any */
    bool negate;     /* != : the rule applies when the path does NOT match */
    regex_t re;      /* REG_ICASE when strict != negate: see rule_applies() */
    char *payload;   /* scope rules: what follows the first space; NULL otherwise */
};

struct ag_rules {
    bool strict;
    size_t n;
    struct rule *v;
};

/* Whether rule ru applies to the readings of a path that is not ambiguous. Each reading (raw, decoded)
 * is taken with letters as written and in any case; a lenient rule must apply to all four, a strict
 * one to any. Since a case-sensitive match implies a case-insensitive one, one regex per rule decides:
 * compiled with REG_ICASE exactly when strict != negate (a lenient `!=` rule must miss in every case,
 * a strict plain rule may hit in any), and taken as written otherwise. */
static bool rule_applies(const struct rule *ru, bool strict, const struct ag_path *p)
{
    bool raw = (regexec(&ru->re, p->raw, 0, NULL, 0) == 0) != ru->negate;
    bool dec =
        strcmp(p->raw, p->decoded) == 0 ? raw : (regexec(&ru->re, p->decoded, 0, NULL, 0) == 0) != ru->negate;
    return strict ? raw || dec : raw && dec;
}

static bool method_fits(const struct rule *ru, bool strict, const char *method)
{
    if (ru->method[0] == '\0')
        return true;
    if (method == NULL)
        return false;
    return strict ? strcasecmp(ru->method, method) == 0 : strcmp(ru->method, method) == 0;
}

/* What glibc's regcomp() can compile in bounded time and memory. Its cost grows exponentially with
 * repetition applied to repetition (`a++`, `((a+)*)+`, `a{2}{2}`: 24 stacked '+' take 4 GB) and with the
 * product of counted repetitions it copies out (`((a{255}){255}){255}`), so a typo in a route would hang
 * startup. Route patterns need little of either. */
#define REGEX_MAX_BYTES  1024
#define REGEX_MAX_DEPTH  4    /* repetitions nested in repetitions */
#define REGEX_MAX_COPIES 1000 /* product of the counts of nested {m,n} */

struct atom {
    unsigned depth;  /* repetitions nested in it */
    unsigned copies; /* how many times its deepest part is copied out */
};

static void widest(struct atom *a, struct atom b)
{
    if (b.depth > a->depth)
        a->depth = b.depth;
    if (b.copies > a->copies)
        a->copies = b.copies;
}

/* Why the POSIX extended regex re is refused for its cost, or NULL. A light reading: escapes, bracket
 * expressions, groups and the repetitions applied to each atom; regcomp() still judges the syntax. */
static const char *regex_too_costly(const char *re)
{
    struct atom stack[32], cur = {0, 1}, last = {0, 1}; /* cur: the group being read; last: its last atom */
    size_t top = 0;

    if (strlen(re) > REGEX_MAX_BYTES)
        return "the regex is longer than 1024 bytes";
    for (const char *p = re; *p != '\0'; p++) {
        unsigned count = 0;
        switch (*p) {
        case '\\':
            last = (struct atom){0, 1};
            if (p[1] != '\0')
                p++;
            break;
        case '[': /* a bracket expression: ']' right after '[' or "[^" is a member, [:x:] [.x.] [=x=] too */
            p += p[1] == '^' ? 2 : 1;
            if (*p == ']')
                p++;
            while (*p != '\0' && *p != ']') {
                if (*p == '[' && (p[1] == ':' || p[1] == '.' || p[1] == '=')) {
                    const char *close = strchr(p + 2, p[1]);
                    p = close != NULL && close[1] == ']' ? close + 1 : p;
                }
                p++;
            }
            if (*p == '\0')
                p--;
            last = (struct atom){0, 1};
            break;
        case '(':
            if (top == AG_ARRAY_LEN(stack))
                return "the regex nests groups too deeply";
            stack[top++] = cur;
            cur = (struct atom){0, 1};
            last = cur;
            break;
        case ')':
            if (top == 0)
                break; /* regcomp() says what is wrong */
            last = cur;
            cur = stack[--top];
            widest(&cur, last);
            break;
        case '*':
        case '+':
        case '?':
        case '{':
            if (*p == '{') {
                unsigned lo = 0, hi = 0;
                const char *q = p + 1;
                for (; *q >= '0' && *q <= '9' && lo <= REGEX_MAX_COPIES; q++)
                    lo = lo * 10 + (unsigned)(*q - '0');
                hi = lo;
                if (*q == ',') {
                    hi = 0;
                    for (q++; *q >= '0' && *q <= '9' && hi <= REGEX_MAX_COPIES; q++)
                        hi = hi * 10 + (unsigned)(*q - '0');
                    if (hi < lo)
                        hi = lo; /* {m,} */
                }
                if (*q != '}')
                    break; /* not a bound: regcomp() decides */
                count = hi > 0 ? hi : 1;
                p = q;
            }
            last.depth++;
            if (count > REGEX_MAX_COPIES || last.copies * (count ? count : 1) > REGEX_MAX_COPIES)
                return "the regex repeats a part more than 1000 times";
            last.copies *= count ? count : 1;
            if (last.depth > REGEX_MAX_DEPTH)
                return "the regex nests repetition more than 4 deep (like a++ or ((a+)*)+)";
            widest(&cur, last);
            break;
        default:
            last = (struct atom){0, 1};
            break;
        }
    }
    return NULL;
}

/* Compile rule text s into ru (zeroed by the caller); a scope rule (payload) is strict. On AG_ERR_INVALID
 * msg says why. */
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
    const char *costly = regex_too_costly(re);
    if (costly != NULL) {
        snprintf(msg, msglen, "%s", costly);
        free(own);
        free(ru->payload);
        ru->payload = NULL;
        return AG_ERR_INVALID;
    }
    e = regcomp(&ru->re, re, REG_EXTENDED | REG_NOSUB | (payload != ru->negate ? REG_ICASE : 0));
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
    r->strict = payload;
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
    struct ag_path p;

    if (r == NULL || r->n == 0)
        return false;
    ag_path_read(raw_uri, &p);
    if (p.ambiguous)
        return false;
    for (size_t i = 0; i < r->n; i++)
        if (method_fits(&r->v[i], r->strict, method) && rule_applies(&r->v[i], r->strict, &p))
            return true;
    return false;
}

enum ag_rc ag_rules_collect(const struct ag_rules *r, const char *method, const char *raw_uri,
                            const char **payloads, size_t cap, size_t *n)
{
    struct ag_path p;

    *n = 0;
    if (r == NULL || r->n == 0)
        return AG_OK;
    ag_path_read(raw_uri, &p);
    for (size_t i = 0; i < r->n; i++) {
        const struct rule *ru = &r->v[i];
        if (!method_fits(ru, r->strict, method) || (!p.ambiguous && !rule_applies(ru, r->strict, &p)))
            continue;
        if (*n == cap)
            return AG_ERR_TOO_LARGE;
        payloads[(*n)++] = ru->payload;
    }
    return AG_OK;
}
