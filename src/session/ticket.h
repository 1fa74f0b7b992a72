/* SPDX-License-Identifier: Apache-2.0
 * The session ticket: what the session cookie carries (DESIGN.md section 5). A random 128-bit id (the
 * Redis key) and a random 256-bit per-session key (which seals the session in Redis), with the expiry,
 * MAC'd with a key derived from --cookie-secret and bound to the cookie name. A Redis dump alone reveals
 * nothing; a cookie alone is only a pointer. */
#ifndef AG_SESSION_TICKET_H
#define AG_SESSION_TICKET_H

#include "common.h"

#define AG_TICKET_ID_LEN  16
#define AG_TICKET_KEY_LEN 32
/* Longest encoded ticket, NUL included. */
#define AG_TICKET_TEXT_MAX 160
/* Store key for a ticket: "authgate:s:" + 32 hex digits + NUL. */
#define AG_TICKET_STORE_KEY_MAX 48

struct ag_ticket {
    unsigned char id[AG_TICKET_ID_LEN];
    unsigned char key[AG_TICKET_KEY_LEN];
    int64_t expires_at; /* unix seconds: a ticket past this is refused before any store lookup */
};

/* Derive the MAC key for tickets from the decoded cookie secret (16, 24 or 32 bytes). */
enum ag_rc ag_ticket_mac_key(const unsigned char *secret, size_t len, unsigned char mac_key[32]);

/* A fresh ticket with random id and key, expiring at expires_at. */
enum ag_rc ag_ticket_new(struct ag_ticket *t, int64_t expires_at);

/* Encode t for the cookie named cookie_name into out (AG_TICKET_TEXT_MAX bytes). */
enum ag_rc ag_ticket_encode(const struct ag_ticket *t, const unsigned char mac_key[32],
                            const char *cookie_name, char *out, size_t cap);

/* Decode and authenticate a cookie value (len bytes, need not be NUL-terminated). AG_ERR_INVALID for
 * anything malformed, tampered, made for another cookie name or secret, or expired at `now`. */
enum ag_rc ag_ticket_decode(const char *value, size_t len, const unsigned char mac_key[32],
                            const char *cookie_name, int64_t now, struct ag_ticket *out);

/* The store key for t ("authgate:s:<hex id>") into out (AG_TICKET_STORE_KEY_MAX bytes). */
void ag_ticket_store_key(const struct ag_ticket *t, char *out, size_t cap);

/* Wipe the per-session key. */
void ag_ticket_clear(struct ag_ticket *t);

#endif
