/* SPDX-License-Identifier: Apache-2.0
 * Email domain, email list and group checks. Comparisons ignore ASCII case in the domain part. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "auth/policy.h"

#define EMAILS_MAX 100000

struct ag_policy {
    const struct ag_config *cfg;
    char **emails; /* lower-cased, sorted, from the authenticated emails file */
    size_t nemails;
};

static int cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void lower(char *s)
{
    for (; *s; s++)
        if (*s >= 'A' && *s <= 'Z')
            *s = (char)(*s - 'A' + 'a');
}

static enum ag_rc load_emails(struct ag_policy *p, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    char line[512];
    size_t cap = 0;

    if (f == NULL) {
        snprintf(err, errlen, "authenticated_emails_file: cannot read %s", path);
        return AG_ERR_INVALID;
    }
    while (fgets(line, sizeof(line), f) != NULL) {
        size_t n = strcspn(line, "\r\n");
        line[n] = '\0';
        char *s = line + strspn(line, " \t");
        while (n > 0 && (line[n - 1] == ' ' || line[n - 1] == '\t'))
            line[--n] = '\0';
        if (*s == '\0' || *s == '#')
            continue;
        if (p->nemails >= EMAILS_MAX) {
            snprintf(err, errlen, "authenticated_emails_file: %s has more than %d addresses", path,
                     EMAILS_MAX);
            fclose(f);
            return AG_ERR_INVALID;
        }
        if (p->nemails == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            char **v = realloc(p->emails, ncap * sizeof(*v));
            if (v == NULL) {
                fclose(f);
                return AG_ERR_NOMEM;
            }
            p->emails = v;
            cap = ncap;
        }
        p->emails[p->nemails] = strdup(s);
        if (p->emails[p->nemails] == NULL) {
            fclose(f);
            return AG_ERR_NOMEM;
        }
        lower(p->emails[p->nemails++]);
    }
    fclose(f);
    if (p->nemails > 0)
        qsort(p->emails, p->nemails, sizeof(*p->emails), cmp);
    return AG_OK;
}

enum ag_rc ag_policy_new(const struct ag_config *cfg, struct ag_policy **out, char *err, size_t errlen)
{
    struct ag_policy *p = calloc(1, sizeof(*p));
    enum ag_rc rc = AG_OK;

    *out = NULL;
    if (p == NULL)
        return AG_ERR_NOMEM;
    p->cfg = cfg;
    if (cfg->authenticated_emails_file != NULL && cfg->authenticated_emails_file[0] != '\0')
        rc = load_emails(p, cfg->authenticated_emails_file, err, errlen);
    if (rc != AG_OK) {
        ag_policy_free(p);
        return rc;
    }
    *out = p;
    return AG_OK;
}

void ag_policy_free(struct ag_policy *p)
{
    if (p == NULL)
        return;
    for (size_t i = 0; i < p->nemails; i++)
        free(p->emails[i]);
    free(p->emails);
    free(p);
}

/* Whether `domain` (lower case) is allowed by one --email-domain entry. */
static bool domain_ok(const char *entry, const char *domain)
{
    size_t dl = strlen(domain), el;

    if (strcmp(entry, "*") == 0)
        return true;
    if (entry[0] == '*' && entry[1] == '.')
        entry++; /* "*.sub" is ".sub" */
    el = strlen(entry);
    if (entry[0] == '.')
        return dl > el && strcasecmp(domain + dl - el, entry) == 0;
    return strcasecmp(domain, entry) == 0;
}

bool ag_policy_groups_allowed(const struct ag_strlist *groups, const char *const *allowed, size_t n)
{
    if (n == 0)
        return true;
    for (size_t i = 0; groups != NULL && i < groups->n; i++)
        for (size_t j = 0; j < n; j++)
            if (strcmp(groups->v[i], allowed[j]) == 0)
                return true;
    return false;
}

enum ag_rc ag_policy_check(const struct ag_policy *p, const char *email, const struct ag_strlist *groups,
                           const char **why)
{
    const struct ag_config *cfg = p->cfg;
    char lc[320];
    const char *at;
    bool ok = false;

    *why = "ok";
    if (email == NULL || email[0] == '\0') {
        *why = "no email address";
        return AG_ERR_DENIED;
    }
    at = strchr(email, '@');
    if (at == NULL || at == email || at[1] == '\0' || strchr(at + 1, '@') != NULL ||
        strlen(email) >= sizeof(lc) || strpbrk(email, " \t\r\n,;<>\"") != NULL) {
        *why = "malformed email address";
        return AG_ERR_DENIED;
    }
    snprintf(lc, sizeof(lc), "%s", email);
    lower(lc);
    for (size_t i = 0; i < cfg->email_domains.n && !ok; i++)
        ok = domain_ok(cfg->email_domains.v[i], strchr(lc, '@') + 1);
    if (!ok && p->nemails > 0) {
        const char *key = lc;
        ok = bsearch(&key, p->emails, p->nemails, sizeof(*p->emails), cmp) != NULL;
    }
    if (!ok) {
        *why = "email domain not allowed";
        return AG_ERR_DENIED;
    }
    if (!ag_policy_groups_allowed(groups, (const char *const *)cfg->allowed_groups.v,
                                  cfg->allowed_groups.n)) {
        *why = "not in an allowed group";
        return AG_ERR_DENIED;
    }
    return AG_OK;
}
