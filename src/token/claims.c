/* SPDX-License-Identifier: Apache-2.0
 * Scopes and claim headers from verified claims. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "token/claims.h"

#define PATH_MAX_BYTES 256
#define LOOKUP_BUDGET  64 /* object lookups per path: a path of many dots cannot make us search long */

static json_t *get_at(json_t *o, const char *path, size_t len, int *budget)
{
    char key[PATH_MAX_BYTES + 1];
    size_t cut = 0;

    if (!json_is_object(o) || len == 0 || len > PATH_MAX_BYTES)
        return NULL;
    for (;;) {
        json_t *v;
        /* the next name: up to the next '.', or the whole rest */
        while (cut < len && path[cut] != '.')
            cut++;
        if (--*budget < 0)
            return NULL;
        memcpy(key, path, cut);
        key[cut] = '\0';
        v = json_object_get(o, key);
        if (v != NULL) {
            if (cut == len)
                return v;
            v = get_at(v, path + cut + 1, len - cut - 1, budget);
            if (v != NULL)
                return v;
        }
        if (cut == len)
            return NULL;
        cut++; /* a longer name, with this '.' in it */
    }
}

json_t *ag_claims_get(json_t *claims, const char *path)
{
    int budget = LOOKUP_BUDGET;
    return path == NULL ? NULL : get_at(claims, path, strlen(path), &budget);
}

/* One scalar in header form at out + *len; false when it does not fit or must not be a header. */
static bool scalar(json_t *v, char *out, size_t cap, size_t *len)
{
    char num[64];
    const char *s = num;
    size_t n;

    switch (json_typeof(v)) {
    case JSON_STRING:
        s = json_string_value(v);
        n = json_string_length(v);
        for (size_t i = 0; i < n; i++) {
            unsigned char c = (unsigned char)s[i];
            if ((c < 0x20 && c != '\t') || c == 0x7f)
                return false;
        }
        break;
    case JSON_INTEGER:
        n = (size_t)snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        break;
    case JSON_REAL:
        n = (size_t)snprintf(num, sizeof(num), "%.17g", json_real_value(v));
        break;
    case JSON_TRUE:
    case JSON_FALSE:
        s = json_is_true(v) ? "true" : "false";
        n = strlen(s);
        break;
    default:
        return false;
    }
    if (n >= cap - *len)
        return false;
    memcpy(out + *len, s, n);
    *len += n;
    out[*len] = '\0';
    return true;
}

bool ag_claims_header_value(json_t *v, char *out, size_t cap)
{
    size_t len = 0, i;
    json_t *item;

    if (cap == 0)
        return false;
    out[0] = '\0';
    if (!json_is_array(v))
        return v != NULL && scalar(v, out, cap, &len);
    if (json_array_size(v) == 0)
        return false;
    json_array_foreach(v, i, item)
    {
        if (i > 0) {
            if (len + 1 >= cap)
                return false;
            out[len++] = ',';
        }
        if (!scalar(item, out, cap, &len))
            return false;
    }
    return true;
}

/* A scope token as RFC 6749 3.3 allows it: 1*( %x21 / %x23-5B / %x5D-7E ). */
static bool scope_token_ok(const char *s, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x21 || c > 0x7e || c == '"' || c == '\\')
            return false;
    }
    return true;
}

enum ag_rc ag_claims_scope(json_t *claims, char **out)
{
    json_t *v = json_object_get(claims, "scope"), *item;
    size_t len = 0, i;
    char *buf;

    *out = NULL;
    if (!json_is_string(v))
        v = json_object_get(claims, "scp");
    if (json_is_string(v)) {
        *out = strdup(json_string_value(v));
        return *out ? AG_OK : AG_ERR_NOMEM;
    }
    if (!json_is_array(v))
        return AG_OK;
    json_array_foreach(v, i, item) len += json_string_length(item) + 1;
    if (len == 0)
        return AG_OK;
    buf = malloc(len);
    if (buf == NULL)
        return AG_ERR_NOMEM;
    len = 0;
    /* only well-formed tokens: an element "a b" must not grant both a and b */
    json_array_foreach(v, i, item)
    {
        const char *s = json_string_value(item);
        size_t n = json_string_length(item);
        if (s == NULL || !scope_token_ok(s, n))
            continue;
        if (len > 0)
            buf[len++] = ' ';
        memcpy(buf + len, s, n);
        len += n;
    }
    buf[len] = '\0';
    *out = buf;
    return AG_OK;
}

enum ag_rc ag_claims_headers(const struct ag_strlist *map, json_t *claims, struct ag_strlist *out)
{
    char value[AG_CLAIM_VALUE_MAX];

    ag_strlist_clear(out);
    for (size_t i = 0; i < map->n; i++) {
        const char *eq = strchr(map->v[i], '=');
        if (eq == NULL || !ag_claims_header_value(ag_claims_get(claims, eq + 1), value, sizeof(value)))
            continue;
        if (ag_strlist_push(out, map->v[i], (size_t)(eq - map->v[i])) != AG_OK ||
            ag_strlist_push(out, value, strlen(value)) != AG_OK) {
            ag_strlist_clear(out);
            return AG_ERR_NOMEM;
        }
    }
    return AG_OK;
}

/* Whether the space-delimited list has the token s[0..n). */
static bool has_token(const char *list, const char *s, size_t n)
{
    while (list != NULL && *list != '\0') {
        size_t m = strcspn(list, " ");
        if (m == n && memcmp(list, s, n) == 0)
            return true;
        list += m;
        list += strspn(list, " ");
    }
    return false;
}

bool ag_scopes_cover(const char *granted, const char *required)
{
    while (required != NULL && *required != '\0') {
        size_t n;
        required += strspn(required, " ");
        n = strcspn(required, " ");
        if (n > 0 && !has_token(granted, required, n))
            return false;
        required += n;
    }
    return true;
}
