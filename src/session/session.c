/* SPDX-License-Identifier: Apache-2.0
 * Session (de)serialization in a small binary record format (format 1, JSON, is still read), sealed with
 * the ticket's key. */
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

/* The session's plaintext, format 2 (written since 0.1): "AGS2", then records of a tag byte, a 4-byte
 * little-endian length and that many bytes: the strings below by their tag, each group (32) and each
 * claim-header name and value (33) in order, the integers (8 bytes, little-endian). It replaced JSON
 * because every check opens a session: a profile of the session check had jansson at a quarter of its CPU.
 * Format 1 (JSON, the member names below) is still read. */
#define V2_MAGIC     "AGS2"
#define V2_TAG_GROUP 32
#define V2_TAG_CLAIM 33

struct field {
    const char *key;   /* format 1 */
    unsigned char tag; /* format 2 */
    size_t off;
};

static const struct field str_fields[] = {
    {"sub", 1, offsetof(struct ag_session, sub)},
    {"email", 2, offsetof(struct ag_session, email)},
    {"user", 3, offsetof(struct ag_session, preferred_username)},
    {"sc", 4, offsetof(struct ag_session, scope)},
    {"at", 5, offsetof(struct ag_session, access_token)},
    {"it", 6, offsetof(struct ag_session, id_token)},
    {"rt", 7, offsetof(struct ag_session, refresh_token)},
};

static const struct field int_fields[] = {
    {"c", 16, offsetof(struct ag_session, created_at)},
    {"e", 17, offsetof(struct ag_session, expires_at)},
    {"r", 18, offsetof(struct ag_session, refresh_due_at)},
    {"ae", 19, offsetof(struct ag_session, access_expires_at)},
};

/* Append one record to buf (which has room: see v2_size). */
static size_t v2_put(unsigned char *buf, size_t o, unsigned char tag, const void *v, size_t len)
{
    buf[o] = tag;
    for (int i = 0; i < 4; i++)
        buf[o + 1 + i] = (unsigned char)(len >> (8 * i));
    memcpy(buf + o + 5, v, len);
    return o + 5 + len;
}

/* The format-2 plaintext of s into a new buffer (*out), or AG_ERR_TOO_LARGE / AG_ERR_NOMEM. */
static enum ag_rc v2_write(const struct ag_session *s, unsigned char **out, size_t *outlen)
{
    size_t size = 4, o = 4;
    unsigned char *buf;

    for (size_t i = 0; i < AG_ARRAY_LEN(str_fields); i++) {
        const char *v = *(char *const *)((const char *)s + str_fields[i].off);
        size += v != NULL ? 5 + strlen(v) : 0;
    }
    for (size_t i = 0; i < s->groups.n; i++)
        size += 5 + strlen(s->groups.v[i]);
    for (size_t i = 0; i < s->claims.n; i++)
        size += 5 + strlen(s->claims.v[i]);
    size += AG_ARRAY_LEN(int_fields) * (5 + 8);
    if (size > AG_SESSION_MAX_BYTES)
        return AG_ERR_TOO_LARGE;
    buf = malloc(size);
    if (buf == NULL)
        return AG_ERR_NOMEM;
    memcpy(buf, V2_MAGIC, 4);
    for (size_t i = 0; i < AG_ARRAY_LEN(str_fields); i++) {
        const char *v = *(char *const *)((const char *)s + str_fields[i].off);
        if (v != NULL)
            o = v2_put(buf, o, str_fields[i].tag, v, strlen(v));
    }
    for (size_t i = 0; i < s->groups.n; i++)
        o = v2_put(buf, o, V2_TAG_GROUP, s->groups.v[i], strlen(s->groups.v[i]));
    for (size_t i = 0; i < s->claims.n; i++)
        o = v2_put(buf, o, V2_TAG_CLAIM, s->claims.v[i], strlen(s->claims.v[i]));
    for (size_t i = 0; i < AG_ARRAY_LEN(int_fields); i++) {
        uint64_t v = (uint64_t) * (const int64_t *)((const char *)s + int_fields[i].off);
        unsigned char le[8];
        for (int b = 0; b < 8; b++)
            le[b] = (unsigned char)(v >> (8 * b));
        o = v2_put(buf, o, int_fields[i].tag, le, 8);
    }
    *out = buf;
    *outlen = o;
    return AG_OK;
}

/* Read a format-2 plaintext into s (cleared by the caller on failure). Strict: every record known, no
 * string twice, no NUL inside a string, every integer present, claims in pairs. */
static enum ag_rc v2_read(const unsigned char *p, size_t n, struct ag_session *s)
{
    unsigned seen = 0; /* bit per tag below 32 */
    size_t i = 4;

    while (i < n) {
        size_t len = 0;
        unsigned char tag;
        if (n - i < 5)
            return AG_ERR_INVALID;
        tag = p[i];
        for (int b = 0; b < 4; b++)
            len |= (size_t)p[i + 1 + b] << (8 * b);
        i += 5;
        if (len > n - i)
            return AG_ERR_INVALID;
        const unsigned char *v = p + i;
        i += len;
        if (tag < 32 && (seen & (1u << tag)))
            return AG_ERR_INVALID;
        bool known = false;
        for (size_t k = 0; k < AG_ARRAY_LEN(str_fields) && !known; k++)
            if (str_fields[k].tag == tag) {
                char **dst = (char **)((char *)s + str_fields[k].off);
                if (memchr(v, '\0', len) != NULL)
                    return AG_ERR_INVALID;
                *dst = strndup((const char *)v, len);
                if (*dst == NULL)
                    return AG_ERR_NOMEM;
                known = true;
            }
        for (size_t k = 0; k < AG_ARRAY_LEN(int_fields) && !known; k++)
            if (int_fields[k].tag == tag) {
                uint64_t x = 0;
                if (len != 8)
                    return AG_ERR_INVALID;
                for (int b = 0; b < 8; b++)
                    x |= (uint64_t)v[b] << (8 * b);
                *(int64_t *)((char *)s + int_fields[k].off) = (int64_t)x;
                known = true;
            }
        if (!known && (tag == V2_TAG_GROUP || tag == V2_TAG_CLAIM)) {
            if (memchr(v, '\0', len) != NULL)
                return AG_ERR_INVALID;
            if (ag_strlist_push(tag == V2_TAG_GROUP ? &s->groups : &s->claims, (const char *)v, len) != AG_OK)
                return AG_ERR_NOMEM;
            known = true;
        }
        if (!known)
            return AG_ERR_INVALID;
        if (tag < 32)
            seen |= 1u << tag;
    }
    for (size_t k = 0; k < AG_ARRAY_LEN(int_fields); k++)
        if (!(seen & (1u << int_fields[k].tag)))
            return AG_ERR_INVALID;
    return s->claims.n % 2 == 0 ? AG_OK : AG_ERR_INVALID;
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
    unsigned char *text = NULL, *buf = NULL;
    size_t len = 0;
    enum ag_rc rc;

    *out = NULL;
    rc = v2_write(s, &text, &len);
    if (rc != AG_OK)
        return rc;
    rc = AG_ERR_NOMEM;
    buf = malloc(len + AG_SEAL_OVERHEAD);
    if (buf != NULL)
        rc = ag_seal(t->key, t->id, sizeof(t->id), text, len, buf, outlen);
    if (rc == AG_OK) {
        *out = buf;
        buf = NULL;
    }
    OPENSSL_cleanse(text, len);
    free(text);
    free(buf);
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
    if (ptlen >= 4 && memcmp(pt, V2_MAGIC, 4) == 0) {
        rc = v2_read(pt, ptlen, s);
        goto out;
    }
    /* format 1: JSON */
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
