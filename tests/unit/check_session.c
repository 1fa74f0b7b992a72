/* SPDX-License-Identifier: Apache-2.0
 * Unit tests for src/session/ticket.c and src/session/session.c: ticket cookies that refuse every
 * tampered, truncated, foreign or expired value, and sessions sealed to their ticket. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "session/session.h"
#include "session/ticket.h"
#include "util/crypto.h"

static unsigned char mac_key[32];
#define NOW 1800000000

static void setup(void)
{
    ck_assert_int_eq(
        ag_ticket_mac_key((const unsigned char *)"0123456789abcdef0123456789abcdef", 32, mac_key), AG_OK);
}

START_TEST(ticket_round_trip)
{
    struct ag_ticket t, u;
    char text[AG_TICKET_TEXT_MAX], key1[AG_TICKET_STORE_KEY_MAX], key2[AG_TICKET_STORE_KEY_MAX];
    ck_assert_int_eq(ag_ticket_new(&t, NOW + 3600), AG_OK);
    ck_assert_int_eq(ag_ticket_encode(&t, mac_key, "_oauth2_proxy", text, sizeof(text)), AG_OK);
    ck_assert_int_eq(strncmp(text, "v1.", 3), 0);
    ck_assert_uint_eq(strspn(text, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_."),
                      strlen(text));
    ck_assert_int_eq(ag_ticket_decode(text, strlen(text), mac_key, "_oauth2_proxy", NOW, &u), AG_OK);
    ck_assert(memcmp(t.id, u.id, sizeof(t.id)) == 0 && memcmp(t.key, u.key, sizeof(t.key)) == 0);
    ck_assert_int_eq(u.expires_at, NOW + 3600);
    ag_ticket_store_key(&t, key1, sizeof(key1));
    ag_ticket_store_key(&u, key2, sizeof(key2));
    ck_assert_str_eq(key1, key2);
    ck_assert_uint_eq(strlen(key1), strlen("authgate:s:") + 32);
    /* two tickets never share an id or key */
    ck_assert_int_eq(ag_ticket_new(&u, NOW + 3600), AG_OK);
    ck_assert(memcmp(t.id, u.id, sizeof(t.id)) != 0 && memcmp(t.key, u.key, sizeof(t.key)) != 0);
}
END_TEST

START_TEST(ticket_refuses_bad_values)
{
    struct ag_ticket t, u;
    char text[AG_TICKET_TEXT_MAX], bad[AG_TICKET_TEXT_MAX + 64];
    unsigned char other_key[32];
    size_t len;
    ck_assert_int_eq(ag_ticket_new(&t, NOW + 60), AG_OK);
    ck_assert_int_eq(ag_ticket_encode(&t, mac_key, "c", text, sizeof(text)), AG_OK);
    len = strlen(text);
    /* every single-character change */
    for (size_t i = 0; i < len; i++) {
        memcpy(bad, text, len + 1);
        bad[i] = bad[i] == 'A' ? 'B' : 'A';
        ck_assert_msg(ag_ticket_decode(bad, len, mac_key, "c", NOW, &u) == AG_ERR_INVALID, "changed at %zu",
                      i);
    }
    /* every truncation */
    for (size_t i = 0; i < len; i++)
        ck_assert_int_eq(ag_ticket_decode(text, i, mac_key, "c", NOW, &u), AG_ERR_INVALID);
    /* another cookie name, another secret, expired */
    ck_assert_int_eq(ag_ticket_decode(text, len, mac_key, "d", NOW, &u), AG_ERR_INVALID);
    ck_assert_int_eq(
        ag_ticket_mac_key((const unsigned char *)"another-secret-of-32-bytes-long!", 32, other_key), AG_OK);
    ck_assert_int_eq(ag_ticket_decode(text, len, other_key, "c", NOW, &u), AG_ERR_INVALID);
    ck_assert_int_eq(ag_ticket_decode(text, len, mac_key, "c", NOW + 60, &u), AG_ERR_INVALID);
    ck_assert_int_eq(ag_ticket_decode(text, len, mac_key, "c", NOW + 59, &u), AG_OK);
    /* swapped parts, junk, format strings, padding, oversize */
    const char *dot = strrchr(text, '.');
    snprintf(bad, sizeof(bad), "v1.%s.%.*s", dot + 1, (int)(dot - text - 3), text + 3);
    ck_assert_int_eq(ag_ticket_decode(bad, strlen(bad), mac_key, "c", NOW, &u), AG_ERR_INVALID);
    static const char *const junk[] = {"",           ";",      "v1.",  "v1..", "v1.%s%s%s%n%x",
                                       "v2.abc.def", "v1.abc", "....."};
    for (size_t i = 0; i < sizeof(junk) / sizeof(junk[0]); i++)
        ck_assert_int_eq(ag_ticket_decode(junk[i], strlen(junk[i]), mac_key, "c", NOW, &u), AG_ERR_INVALID);
    snprintf(bad, sizeof(bad), "%s=", text);
    ck_assert_int_eq(ag_ticket_decode(bad, strlen(bad), mac_key, "c", NOW, &u), AG_ERR_INVALID);
    memset(bad, 'A', sizeof(bad) - 1);
    bad[sizeof(bad) - 1] = '\0';
    ck_assert_int_eq(ag_ticket_decode(bad, strlen(bad), mac_key, "c", NOW, &u), AG_ERR_INVALID);
    ck_assert_int_eq(ag_ticket_decode(NULL, 0, mac_key, "c", NOW, &u), AG_ERR_INVALID);
}
END_TEST

START_TEST(session_seal_open)
{
    struct ag_ticket t, other;
    struct ag_session s = {0}, o;
    char *groups[] = {"admins", "devs"}, *claims[] = {"X-Tenant", "acme"};
    unsigned char *blob = NULL, *blob2 = NULL;
    size_t n, n2;

    ck_assert_int_eq(ag_ticket_new(&t, NOW + 60), AG_OK);
    ck_assert_int_eq(ag_ticket_new(&other, NOW + 60), AG_OK);
    s.sub = "alice";
    s.email = "alice@example.com";
    s.preferred_username = "alice";
    s.groups.n = 2;
    s.groups.v = groups;
    s.scope = "openid email api:read";
    s.claims.n = 2;
    s.claims.v = claims;
    s.id_token = "eyJ.id.token";
    s.refresh_token = "refresh-SECRET";
    s.created_at = NOW;
    s.expires_at = NOW + 60;
    s.refresh_due_at = NOW + 30;
    ck_assert_int_eq(ag_session_seal(&s, &t, &blob, &n), AG_OK);
    ck_assert_ptr_null(memmem(blob, n, "alice", 5)); /* sealed, not merely encoded */
    ck_assert_ptr_null(memmem(blob, n, "SECRET", 6));
    ck_assert_int_eq(ag_session_open(blob, n, &t, &o), AG_OK);
    ck_assert_str_eq(o.sub, "alice");
    ck_assert_str_eq(o.email, "alice@example.com");
    ck_assert_str_eq(o.preferred_username, "alice");
    ck_assert_uint_eq(o.groups.n, 2);
    ck_assert_str_eq(o.groups.v[1], "devs");
    ck_assert_str_eq(o.scope, "openid email api:read");
    ck_assert_uint_eq(o.claims.n, 2);
    ck_assert_str_eq(o.claims.v[0], "X-Tenant");
    ck_assert_str_eq(o.claims.v[1], "acme");
    ck_assert_ptr_null(o.access_token);
    ck_assert_str_eq(o.refresh_token, "refresh-SECRET");
    ck_assert_int_eq(o.refresh_due_at, NOW + 30);
    ag_session_clear(&o);
    /* sealing again gives another ciphertext */
    ck_assert_int_eq(ag_session_seal(&s, &t, &blob2, &n2), AG_OK);
    ck_assert(n != n2 || memcmp(blob, blob2, n) != 0);
    /* another ticket's key cannot open it; a flipped byte cannot either */
    ck_assert_int_eq(ag_session_open(blob, n, &other, &o), AG_ERR_INVALID);
    blob[n / 2] ^= 1;
    ck_assert_int_eq(ag_session_open(blob, n, &t, &o), AG_ERR_INVALID);
    ck_assert_int_eq(ag_session_open(blob, 3, &t, &o), AG_ERR_INVALID);
    free(blob);
    free(blob2);
}
END_TEST

START_TEST(session_too_large)
{
    struct ag_ticket t;
    struct ag_session s = {0};
    unsigned char *blob = NULL;
    size_t n;
    char *big = malloc(AG_SESSION_MAX_BYTES + 1);
    memset(big, 'x', AG_SESSION_MAX_BYTES);
    big[AG_SESSION_MAX_BYTES] = '\0';
    s.id_token = big;
    ck_assert_int_eq(ag_ticket_new(&t, NOW + 60), AG_OK);
    ck_assert_int_eq(ag_session_seal(&s, &t, &blob, &n), AG_ERR_TOO_LARGE);
    ck_assert_ptr_null(blob);
    free(big);
}
END_TEST

/* Seal `pt` (len bytes) for ticket t as the store would hold it, and try to open it. */
static enum ag_rc open_plain(const struct ag_ticket *t, const void *pt, size_t len, struct ag_session *o)
{
    unsigned char *blob = malloc(len + AG_SEAL_OVERHEAD);
    size_t n = 0;
    ck_assert_ptr_nonnull(blob);
    ck_assert_int_eq(ag_seal(t->key, t->id, sizeof(t->id), pt, len, blob, &n), AG_OK);
    enum ag_rc rc = ag_session_open(blob, n, t, o);
    free(blob);
    return rc;
}

/* A format-2 record: tag, 4-byte little-endian length, bytes. */
static size_t rec(unsigned char *buf, size_t o, unsigned char tag, const void *v, size_t len)
{
    buf[o] = tag;
    buf[o + 1] = (unsigned char)len;
    buf[o + 2] = (unsigned char)(len >> 8);
    buf[o + 3] = buf[o + 4] = 0;
    memcpy(buf + o + 5, v, len);
    return o + 5 + len;
}

/* The four integers every session has (tags 16-19). */
static size_t ints(unsigned char *buf, size_t o)
{
    const unsigned char eight[8] = {1, 0, 0, 0, 0, 0, 0, 0};
    for (unsigned char tag = 16; tag <= 19; tag++)
        o = rec(buf, o, tag, eight, 8);
    return o;
}

START_TEST(session_formats)
{
    struct ag_ticket t;
    struct ag_session o;
    unsigned char buf[512];
    size_t n;

    ck_assert_int_eq(ag_ticket_new(&t, NOW + 60), AG_OK);
    /* format 1 (JSON), as earlier releases wrote it, still opens */
    const char *v1 = "{\"v\":1,\"groups\":[\"g\"],\"sub\":\"bob\",\"c\":1,\"e\":2,\"r\":0,\"ae\":0}";
    ck_assert_int_eq(open_plain(&t, v1, strlen(v1), &o), AG_OK);
    ck_assert_str_eq(o.sub, "bob");
    ck_assert_str_eq(o.groups.v[0], "g");
    ck_assert_int_eq(o.expires_at, 2);
    ag_session_clear(&o);
    /* a well-formed format 2 */
    memcpy(buf, "AGS2", 4);
    n = ints(buf, rec(buf, rec(buf, 4, 1, "carol", 5), 32, "devs", 4));
    ck_assert_int_eq(open_plain(&t, buf, n, &o), AG_OK);
    ck_assert_str_eq(o.sub, "carol");
    ck_assert_uint_eq(o.groups.n, 1);
    ck_assert_int_eq(o.created_at, 1);
    ag_session_clear(&o);
    /* refused: a string twice, an unknown tag, a NUL in a string, a missing integer, a short record,
     * a length past the end, one claim without its value, an integer of 7 bytes */
    memcpy(buf, "AGS2", 4);
    n = ints(buf, rec(buf, rec(buf, 4, 1, "a", 1), 1, "b", 1));
    ck_assert_int_eq(open_plain(&t, buf, n, &o), AG_ERR_INVALID);
    n = ints(buf, rec(buf, 4, 99, "x", 1));
    ck_assert_int_eq(open_plain(&t, buf, n, &o), AG_ERR_INVALID);
    n = ints(buf, rec(buf, 4, 2, "a\0b", 3));
    ck_assert_int_eq(open_plain(&t, buf, n, &o), AG_ERR_INVALID);
    n = rec(buf, 4, 1, "a", 1);
    ck_assert_int_eq(open_plain(&t, buf, n, &o), AG_ERR_INVALID);
    n = ints(buf, 4);
    ck_assert_int_eq(open_plain(&t, buf, n + 3, &o), AG_ERR_INVALID); /* 3 stray bytes: a short record */
    n = ints(buf, rec(buf, 4, 1, "abc", 3));
    buf[5] = 200; /* sub's length now points past the end */
    ck_assert_int_eq(open_plain(&t, buf, n, &o), AG_ERR_INVALID);
    n = ints(buf, rec(buf, 4, 33, "X-Tenant", 8));
    ck_assert_int_eq(open_plain(&t, buf, n, &o), AG_ERR_INVALID);
    n = ints(buf, 4);
    buf[5] = 7; /* the first integer (tag 16) is 7 bytes long now; one stray byte ends the buffer */
    ck_assert_int_eq(open_plain(&t, buf, n, &o), AG_ERR_INVALID);
    ck_assert_ptr_null(o.sub); /* nothing half-filled is left */
}
END_TEST

int main(void)
{
    Suite *s = suite_create("session");
    TCase *tc = tcase_create("session");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, ticket_round_trip);
    tcase_add_test(tc, ticket_refuses_bad_values);
    tcase_add_test(tc, session_seal_open);
    tcase_add_test(tc, session_too_large);
    tcase_add_test(tc, session_formats);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
