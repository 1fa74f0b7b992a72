/* SPDX-License-Identifier: Apache-2.0
 * The session ticket cookie (src/session/ticket.c), decoded the way every request decodes it. The first
 * input byte picks the reading: the raw bytes as the cookie value (a forgery: the MAC must refuse it), or
 * "v1." + the bytes + "." + the MAC the secret gives them (what a holder of the cookie secret could make,
 * so the payload reader itself is fuzzed past the MAC). Oracles: a forged value is never accepted; an
 * accepted value encodes back to exactly the same text (one spelling per ticket) and has not expired;
 * nothing reads outside the value (it is passed in a buffer of its own size, without a terminator). */
#include "fuzz.h"
#include "session/ticket.h"
#include "util/b64.h"
#include "util/crypto.h"

#define NOW  1700000000
#define NAME "_oauth2_proxy"

static unsigned char mac_key[32];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    static const unsigned char secret[32] = "0123456789abcdef0123456789abcdef";
    (void)argc;
    (void)argv;
    if (ag_ticket_mac_key(secret, sizeof(secret), mac_key) != AG_OK)
        abort();
    return 0;
}

static void accepted(const char *value, size_t len, const struct ag_ticket *t)
{
    char text[AG_TICKET_TEXT_MAX];

    FUZZ_CHECK(t->expires_at > NOW, "expired ticket accepted");
    FUZZ_CHECK(ag_ticket_encode(t, mac_key, NAME, text, sizeof(text)) == AG_OK, "cannot encode it back");
    FUZZ_CHECK(strlen(text) == len && memcmp(text, value, len) == 0, "a second spelling of a ticket: %.*s",
               (int)len, value);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct ag_ticket t;
    unsigned char tag[32];
    char *value;
    size_t len;

    if (size == 0)
        return 0;
    if (data[0] & 1) {
        /* exactly the input bytes, in a buffer of their own size: ASan sees any read past them */
        len = size - 1;
        value = fuzz_exact(data + 1, len);
        memset(&t, 0, sizeof(t));
        if (ag_ticket_decode(len ? value : NULL, len, mac_key, NAME, NOW, &t) == AG_OK) {
            FUZZ_CHECK(len >= 3 && memcmp(value, "v1.", 3) == 0, "no prefix");
            accepted(value, len, &t);
        }
        free(value);
        return 0;
    }
    /* "v1." payload "." MAC(name NUL "v1." payload), the payload from the input */
    len = 3 + (size - 1);
    value = malloc(len + 1 + AG_B64URL_LEN(32) + 1);
    if (value == NULL)
        abort();
    memcpy(value, "v1.", 3);
    memcpy(value + 3, data + 1, size - 1);
    {
        size_t nlen = strlen(NAME);
        unsigned char *msg = malloc(nlen + 1 + len);
        if (msg == NULL)
            abort();
        memcpy(msg, NAME, nlen + 1);
        memcpy(msg + nlen + 1, value, len);
        if (ag_hmac_sha256(mac_key, 32, msg, nlen + 1 + len, tag) != AG_OK)
            abort();
        free(msg);
    }
    value[len++] = '.';
    len += ag_b64url_encode(tag, sizeof(tag), value + len, AG_B64URL_LEN(32) + 1);
    {
        char *exact = fuzz_exact((const uint8_t *)value, len);
        free(value);
        value = exact;
    }
    memset(&t, 0, sizeof(t));
    if (ag_ticket_decode(value, len, mac_key, NAME, NOW, &t) == AG_OK)
        accepted(value, len, &t);
    /* the same value for another cookie name never passes */
    FUZZ_CHECK(ag_ticket_decode(value, len, mac_key, NAME "_csrf", NOW, &t) != AG_OK, "name not bound");
    free(value);
    return 0;
}
