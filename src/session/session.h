/* SPDX-License-Identifier: Apache-2.0
 * The session: who the user is and the provider's tokens, sealed with AES-256-GCM under the ticket's
 * per-session key (the ticket id is bound as associated data, so a blob cannot be moved to another
 * key). The sealed bytes are what the store keeps. */
#ifndef AG_SESSION_SESSION_H
#define AG_SESSION_SESSION_H

#include "config.h"
#include "session/ticket.h"

/* A session larger than this when serialized is refused (a bloated ID token would otherwise grow
 * every store round trip). */
#define AG_SESSION_MAX_BYTES (64 * 1024)

struct ag_session {
    char *sub; /* user id claim (--user-id-claim) */
    char *email;
    char *preferred_username;
    struct ag_strlist groups;
    char *scope;              /* scopes granted to the access token, space-delimited; NULL = unknown */
    struct ag_strlist claims; /* --claim-header values in pairs: header name, value */
    char *access_token;
    char *id_token;
    char *refresh_token;
    int64_t created_at;        /* unix seconds */
    int64_t expires_at;        /* session end (cookie expiry) */
    int64_t refresh_due_at;    /* when --cookie-refresh wants a refresh; 0 = never */
    int64_t access_expires_at; /* access token expiry reported by the provider; 0 = unknown */
};

/* Seal s for ticket t into a new buffer (*out, caller frees) of *outlen bytes. */
enum ag_rc ag_session_seal(const struct ag_session *s, const struct ag_ticket *t, unsigned char **out,
                           size_t *outlen);

/* Open sealed bytes with ticket t into *s (cleared first; free with ag_session_clear()).
 * AG_ERR_INVALID for anything that does not authenticate or parse. */
enum ag_rc ag_session_open(const unsigned char *in, size_t inlen, const struct ag_ticket *t,
                           struct ag_session *s);

/* Free the members of s and wipe the tokens; s itself may then be reused. NULL is fine. */
void ag_session_clear(struct ag_session *s);

#endif
