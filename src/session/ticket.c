/* SPDX-License-Identifier: Apache-2.0
 * Ticket cookie: "v1." base64url(id | key | expires) "." base64url(HMAC-SHA256(mac_key, name NUL payload)).
 */
#include <openssl/crypto.h>
#include <stdio.h>
#include <string.h>

#include "session/ticket.h"
#include "util/b64.h"
#include "util/crypto.h"

#define PAYLOAD_LEN (AG_TICKET_ID_LEN + AG_TICKET_KEY_LEN + 8)
#define PREFIX      "v1."

enum ag_rc ag_ticket_mac_key(const unsigned char *secret, size_t len, unsigned char mac_key[32])
{
    static const char label[] = "authgate session ticket mac v1";
    return ag_hmac_sha256(secret, len, label, sizeof(label) - 1, mac_key);
}

enum ag_rc ag_ticket_new(struct ag_ticket *t, int64_t expires_at)
{
    t->expires_at = expires_at;
    if (ag_random(t->id, sizeof(t->id)) != AG_OK || ag_random(t->key, sizeof(t->key)) != AG_OK)
        return AG_ERR_INTERNAL;
    return AG_OK;
}

static enum ag_rc mac(const unsigned char mac_key[32], const char *cookie_name, const char *payload,
                      size_t plen, unsigned char out[32])
{
    char buf[512];
    size_t nlen = strlen(cookie_name);

    if (nlen + 1 + plen > sizeof(buf))
        return AG_ERR_TOO_LARGE;
    memcpy(buf, cookie_name, nlen);
    buf[nlen] = '\0'; /* the name cannot run into the payload */
    memcpy(buf + nlen + 1, payload, plen);
    return ag_hmac_sha256(mac_key, 32, buf, nlen + 1 + plen, out);
}

enum ag_rc ag_ticket_encode(const struct ag_ticket *t, const unsigned char mac_key[32],
                            const char *cookie_name, char *out, size_t cap)
{
    unsigned char raw[PAYLOAD_LEN], tag[32];
    uint64_t e = (uint64_t)t->expires_at;
    size_t o = sizeof(PREFIX) - 1, n;
    enum ag_rc rc = AG_ERR_TOO_LARGE;

    if (cap < AG_TICKET_TEXT_MAX)
        return AG_ERR_TOO_LARGE;
    memcpy(raw, t->id, AG_TICKET_ID_LEN);
    memcpy(raw + AG_TICKET_ID_LEN, t->key, AG_TICKET_KEY_LEN);
    for (int i = 0; i < 8; i++)
        raw[AG_TICKET_ID_LEN + AG_TICKET_KEY_LEN + i] = (unsigned char)(e >> (56 - 8 * i));
    memcpy(out, PREFIX, o);
    n = ag_b64url_encode(raw, sizeof(raw), out + o, cap - o);
    if (n == 0)
        goto out;
    o += n;
    rc = mac(mac_key, cookie_name, out, o, tag);
    if (rc != AG_OK)
        goto out;
    rc = AG_ERR_TOO_LARGE;
    if (o + 2 > cap)
        goto out;
    out[o++] = '.';
    if (ag_b64url_encode(tag, sizeof(tag), out + o, cap - o) == 0)
        goto out;
    rc = AG_OK;
out:
    OPENSSL_cleanse(raw, sizeof(raw));
    return rc;
}

enum ag_rc ag_ticket_decode(const char *value, size_t len, const unsigned char mac_key[32],
                            const char *cookie_name, int64_t now, struct ag_ticket *out)
{
    unsigned char raw[PAYLOAD_LEN], tag[32], want[32];
    const char *dot;
    size_t plen, n;
    uint64_t e = 0;
    enum ag_rc rc = AG_ERR_INVALID;

    if (value == NULL || len >= AG_TICKET_TEXT_MAX || len < sizeof(PREFIX) ||
        memcmp(value, PREFIX, sizeof(PREFIX) - 1) != 0)
        return AG_ERR_INVALID;
    dot = memchr(value + sizeof(PREFIX) - 1, '.', len - (sizeof(PREFIX) - 1));
    if (dot == NULL)
        return AG_ERR_INVALID;
    plen = (size_t)(dot - value);
    if (ag_b64url_decode(dot + 1, len - plen - 1, tag, sizeof(tag), &n) != AG_OK || n != sizeof(tag))
        return AG_ERR_INVALID;
    if (mac(mac_key, cookie_name, value, plen, want) != AG_OK || CRYPTO_memcmp(tag, want, sizeof(tag)) != 0)
        return AG_ERR_INVALID;
    if (ag_b64url_decode(value + sizeof(PREFIX) - 1, plen - (sizeof(PREFIX) - 1), raw, sizeof(raw), &n) !=
            AG_OK ||
        n != sizeof(raw))
        goto out;
    for (int i = 0; i < 8; i++)
        e = e << 8 | raw[AG_TICKET_ID_LEN + AG_TICKET_KEY_LEN + i];
    if ((int64_t)e <= now)
        goto out;
    memcpy(out->id, raw, AG_TICKET_ID_LEN);
    memcpy(out->key, raw + AG_TICKET_ID_LEN, AG_TICKET_KEY_LEN);
    out->expires_at = (int64_t)e;
    rc = AG_OK;
out:
    OPENSSL_cleanse(raw, sizeof(raw));
    return rc;
}

void ag_ticket_store_key(const struct ag_ticket *t, char *out, size_t cap)
{
    static const char hex[] = "0123456789abcdef";
    char h[2 * AG_TICKET_ID_LEN + 1];
    for (size_t i = 0; i < AG_TICKET_ID_LEN; i++) {
        h[2 * i] = hex[t->id[i] >> 4];
        h[2 * i + 1] = hex[t->id[i] & 15];
    }
    h[2 * AG_TICKET_ID_LEN] = '\0';
    snprintf(out, cap, "authgate:s:%s", h);
}

void ag_ticket_clear(struct ag_ticket *t)
{
    OPENSSL_cleanse(t, sizeof(*t));
}
