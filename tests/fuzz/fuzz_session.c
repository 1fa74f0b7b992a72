/* SPDX-License-Identifier: Apache-2.0
 * The session record (src/session/session.c) after decryption: the input is the plaintext, sealed here
 * with the ticket's key the way the store would hold it, then opened by ag_session_open(), which runs the
 * record reader (format 2) or the JSON reader (format 1) on it. Oracles: no crash or leak; an accepted
 * session seals again and opens to the same fields (the reader keeps nothing it cannot write back), with
 * claim headers in pairs; the sealed bytes with one bit flipped are refused. */
#include "fuzz.h"
#include "session/session.h"
#include "util/crypto.h"

static struct ag_ticket ticket;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    for (size_t i = 0; i < sizeof(ticket.id); i++)
        ticket.id[i] = (unsigned char)i;
    for (size_t i = 0; i < sizeof(ticket.key); i++)
        ticket.key[i] = (unsigned char)(0xa0 + i);
    ticket.expires_at = 1800000000;
    return 0;
}

static bool str_eq(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static bool list_eq(const struct ag_strlist *a, const struct ag_strlist *b)
{
    if (a->n != b->n)
        return false;
    for (size_t i = 0; i < a->n; i++)
        if (strcmp(a->v[i], b->v[i]) != 0)
            return false;
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    unsigned char *sealed = malloc(size + AG_SEAL_OVERHEAD), *again = NULL;
    size_t slen = 0, alen = 0;
    struct ag_session s, r;

    if (sealed == NULL)
        abort();
    if (ag_seal(ticket.key, ticket.id, sizeof(ticket.id), data, size, sealed, &slen) != AG_OK)
        abort();
    if (ag_session_open(sealed, slen, &ticket, &s) == AG_OK) {
        FUZZ_CHECK(s.claims.n % 2 == 0, "claim headers not in pairs");
        FUZZ_CHECK(ag_session_seal(&s, &ticket, &again, &alen) == AG_OK, "an opened session does not seal");
        FUZZ_CHECK(ag_session_open(again, alen, &ticket, &r) == AG_OK, "a sealed session does not open");
        FUZZ_CHECK(str_eq(s.sub, r.sub) && str_eq(s.email, r.email) &&
                       str_eq(s.preferred_username, r.preferred_username) && str_eq(s.scope, r.scope) &&
                       str_eq(s.access_token, r.access_token) && str_eq(s.id_token, r.id_token) &&
                       str_eq(s.refresh_token, r.refresh_token) && list_eq(&s.groups, &r.groups) &&
                       list_eq(&s.claims, &r.claims) && s.created_at == r.created_at &&
                       s.expires_at == r.expires_at && s.refresh_due_at == r.refresh_due_at &&
                       s.access_expires_at == r.access_expires_at,
                   "the session changed on a round trip");
        ag_session_clear(&r);
        free(again);
        ag_session_clear(&s);
    }
    if (slen > 0) {
        sealed[size % slen] ^= 0x01;
        FUZZ_CHECK(ag_session_open(sealed, slen, &ticket, &s) == AG_ERR_INVALID,
                   "a changed byte is accepted");
    }
    free(sealed);
    return 0;
}
