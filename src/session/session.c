/* SPDX-License-Identifier: Apache-2.0
 * Session (de)serialization as a small JSON object, sealed with the ticket's key. */
#include <jansson.h>
#include <openssl/crypto.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "session/session.h"
#include "util/crypto.h"

static void wipe_free(char *s)
{
    if (s == NULL)
        return;
    OPENSSL_cleanse(s, strlen(s));
    free(s);
}

void ag_session_clear(struct ag_session *s)
{
    if (s == NULL)
        return;
    free(s->sub);
    free(s->email);
    free(s->preferred_username);
    free(s->scope);
    ag_strlist_clear(&s->groups);
    ag_strlist_clear(&s->claims);
    wipe_free(s->access_token);
    wipe_free(s->id_token);
    wipe_free(s->refresh_token);
    memset(s, 0, sizeof(*s));
}

/* JSON member names of the session fields (short: this is stored once per session). */
struct field {
    const char *key;
    size_t off;
};

static const struct field str_fields[] = {
    {"sub", offsetof(struct ag_session, sub)},
    {"email", offsetof(struct ag_session, email)},
    {"user", offsetof(struct ag_session, preferred_username)},
    {"sc", offsetof(struct ag_session, scope)},
    {"at", offsetof(struct ag_session, access_token)},
    {"it", offsetof(struct ag_session, id_token)},
    {"rt", offsetof(struct ag_session, refresh_token)},
};

static const struct field int_fields[] = {
    {"c", offsetof(struct ag_session, created_at)},
    {"e", offsetof(struct ag_session, expires_at)},
    {"r", offsetof(struct ag_session, refresh_due_at)},
    {"ae", offsetof(struct ag_session, access_expires_at)},
};

static int set_str(json_t *o, const char *k, const char *v)
{
    return v == NULL ? 0 : json_object_set_new(o, k, json_string(v));
}

static int set_list(json_t *o, const char *k, const struct ag_strlist *l)
{
    json_t *a = json_array();
    if (a == NULL)
        return -1;
    for (size_t i = 0; i < l->n; i++)
        if (json_array_append_new(a, json_string(l->v[i])) != 0) {
            json_decref(a);
            return -1;
        }
    return json_object_set_new(o, k, a);
}

/* The array member k into l (empty when absent and optional). */
static enum ag_rc get_list(json_t *o, const char *k, bool required, struct ag_strlist *l)
{
    json_t *a = json_object_get(o, k);
    if (a == NULL && !required)
        return AG_OK;
    if (!json_is_array(a))
        return AG_ERR_INVALID;
    for (size_t i = 0; i < json_array_size(a); i++) {
        json_t *g = json_array_get(a, i);
        if (!json_is_string(g))
            return AG_ERR_INVALID;
        if (ag_strlist_push(l, json_string_value(g), json_string_length(g)) != AG_OK)
            return AG_ERR_NOMEM;
    }
    return AG_OK;
}

enum ag_rc ag_session_seal(const struct ag_session *s, const struct ag_ticket *t, unsigned char **out,
                           size_t *outlen)
{
    json_t *o = json_object();
    char *text = NULL;
    unsigned char *buf = NULL;
    size_t len;
    enum ag_rc rc = AG_ERR_NOMEM;

    *out = NULL;
    if (o == NULL || json_object_set_new(o, "v", json_integer(1)) != 0 ||
        set_list(o, "groups", &s->groups) != 0 || (s->claims.n > 0 && set_list(o, "hdr", &s->claims) != 0))
        goto out;
    for (size_t i = 0; i < AG_ARRAY_LEN(str_fields); i++)
        if (set_str(o, str_fields[i].key, *(char *const *)((const char *)s + str_fields[i].off)) != 0)
            goto out;
    for (size_t i = 0; i < AG_ARRAY_LEN(int_fields); i++)
        if (json_object_set_new(o, int_fields[i].key,
                                json_integer(*(const int64_t *)((const char *)s + int_fields[i].off))) != 0)
            goto out;
    text = json_dumps(o, JSON_COMPACT);
    if (text == NULL)
        goto out;
    len = strlen(text);
    rc = AG_ERR_TOO_LARGE;
    if (len > AG_SESSION_MAX_BYTES)
        goto out;
    rc = AG_ERR_NOMEM;
    buf = malloc(len + AG_SEAL_OVERHEAD);
    if (buf == NULL)
        goto out;
    rc = ag_seal(t->key, t->id, sizeof(t->id), text, len, buf, outlen);
    if (rc != AG_OK)
        goto out;
    *out = buf;
    buf = NULL;
out:
    if (text != NULL) {
        OPENSSL_cleanse(text, strlen(text));
        free(text);
    }
    free(buf);
    json_decref(o);
    return rc;
}

static enum ag_rc get_str(json_t *o, const char *k, char **out)
{
    json_t *v = json_object_get(o, k);
    if (v == NULL)
        return AG_OK;
    if (!json_is_string(v))
        return AG_ERR_INVALID;
    *out = strdup(json_string_value(v));
    return *out ? AG_OK : AG_ERR_NOMEM;
}

static enum ag_rc get_int(json_t *o, const char *k, int64_t *out)
{
    json_t *v = json_object_get(o, k);
    if (!json_is_integer(v))
        return AG_ERR_INVALID;
    *out = (int64_t)json_integer_value(v);
    return AG_OK;
}

enum ag_rc ag_session_open(const unsigned char *in, size_t inlen, const struct ag_ticket *t,
                           struct ag_session *s)
{
    unsigned char *pt = NULL;
    size_t ptlen = 0;
    json_t *o = NULL;
    json_error_t jerr;
    enum ag_rc rc = AG_ERR_INVALID;

    memset(s, 0, sizeof(*s));
    if (inlen < AG_SEAL_OVERHEAD || inlen > AG_SESSION_MAX_BYTES + AG_SEAL_OVERHEAD)
        return AG_ERR_INVALID;
    pt = malloc(inlen - AG_SEAL_OVERHEAD + 1);
    if (pt == NULL)
        return AG_ERR_NOMEM;
    if (ag_open(t->key, t->id, sizeof(t->id), in, inlen, pt, &ptlen) != AG_OK)
        goto out;
    o = json_loadb((const char *)pt, ptlen, JSON_REJECT_DUPLICATES, &jerr);
    if (!json_is_object(o) || json_integer_value(json_object_get(o, "v")) != 1)
        goto out;
    for (size_t i = 0; i < AG_ARRAY_LEN(str_fields); i++) {
        rc = get_str(o, str_fields[i].key, (char **)((char *)s + str_fields[i].off));
        if (rc != AG_OK)
            goto out;
    }
    for (size_t i = 0; i < AG_ARRAY_LEN(int_fields); i++) {
        rc = get_int(o, int_fields[i].key, (int64_t *)((char *)s + int_fields[i].off));
        if (rc != AG_OK)
            goto out;
    }
    rc = get_list(o, "groups", true, &s->groups);
    if (rc == AG_OK)
        rc = get_list(o, "hdr", false, &s->claims);
    if (rc == AG_OK && s->claims.n % 2 != 0)
        rc = AG_ERR_INVALID;
    if (rc != AG_OK)
        goto out;
    rc = AG_OK;
out:
    if (rc != AG_OK)
        ag_session_clear(s);
    json_decref(o);
    OPENSSL_cleanse(pt, inlen - AG_SEAL_OVERHEAD);
    free(pt);
    return rc;
}
