/* SPDX-License-Identifier: Apache-2.0
 * Unit tests for src/token/cache.c: hits only for the same token and verifier, never past exp or the
 * TTL bound, replacement in a full cache, and copies the caller owns. */
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "token/cache.h"

#define NOW 1800000000

/* The key of token for owner, in one of a few per-thread slots (a test passes at most two at once). */
static const struct ag_token_key *key(const void *owner, const char *token)
{
    static _Thread_local struct ag_token_key keys[4];
    static _Thread_local unsigned next;
    struct ag_token_key *k = &keys[next++ % 4];
    ck_assert_int_eq(ag_token_key_make(owner, token, k), AG_OK);
    return k;
}

static struct ag_token_identity alice(void)
{
    static char *groups[] = {"admins", "devs"}, *claims[] = {"X-Tenant", "acme"};
    struct ag_token_identity id = {.sub = "alice",
                                   .email = "alice@example.com",
                                   .preferred_username = "al",
                                   .scope = "api:read api:write"};
    id.groups.n = 2;
    id.groups.v = groups;
    id.claims.n = 2;
    id.claims.v = claims;
    return id;
}

START_TEST(hit_miss_and_copies)
{
    struct ag_token_cache *c = NULL;
    struct ag_token_identity id = alice(), out;
    int a, b;
    ck_assert_int_eq(ag_token_cache_new(&c), AG_OK);
    ck_assert_int_eq(ag_token_cache_get(c, key(&a, "tok1"), NOW, &out), AG_ERR_NOT_FOUND);
    ag_token_cache_put(c, key(&a, "tok1"), NOW + 60, NOW, &id);
    ck_assert_int_eq(ag_token_cache_get(c, key(&a, "tok1"), NOW + 1, &out), AG_OK);
    ck_assert_str_eq(out.sub, "alice");
    ck_assert_str_eq(out.email, "alice@example.com");
    ck_assert_uint_eq(out.groups.n, 2);
    ck_assert_str_eq(out.groups.v[1], "devs");
    ck_assert_str_eq(out.scope, "api:read api:write"); /* what the token grants, re-checked per request */
    ck_assert_uint_eq(out.claims.n, 2);
    ck_assert_str_eq(out.claims.v[1], "acme");
    ck_assert_ptr_ne(out.sub, id.sub); /* a copy */
    ck_assert_ptr_ne(out.claims.v[0], id.claims.v[0]);
    ag_token_identity_clear(&out);
    /* another verifier, another token, a token differing in one byte */
    ck_assert_int_eq(ag_token_cache_get(c, key(&b, "tok1"), NOW + 1, &out), AG_ERR_NOT_FOUND);
    ck_assert_int_eq(ag_token_cache_get(c, key(&a, "tok2"), NOW + 1, &out), AG_ERR_NOT_FOUND);
    ck_assert_int_eq(ag_token_cache_get(c, key(&a, "tok1 "), NOW + 1, &out), AG_ERR_NOT_FOUND);
    /* never at or past exp */
    ck_assert_int_eq(ag_token_cache_get(c, key(&a, "tok1"), NOW + 60, &out), AG_ERR_NOT_FOUND);
    ag_token_cache_free(c);
}
END_TEST

START_TEST(ttl_bound_and_expired_puts)
{
    struct ag_token_cache *c = NULL;
    struct ag_token_identity id = alice(), out;
    int a;
    ck_assert_int_eq(ag_token_cache_new(&c), AG_OK);
    ag_token_cache_put(c, key(&a, "long"), NOW + 86400, NOW, &id);
    ck_assert_int_eq(ag_token_cache_get(c, key(&a, "long"), NOW + AG_TOKEN_CACHE_TTL - 1, &out), AG_OK);
    ag_token_identity_clear(&out);
    ck_assert_int_eq(ag_token_cache_get(c, key(&a, "long"), NOW + AG_TOKEN_CACHE_TTL, &out),
                     AG_ERR_NOT_FOUND);
    ag_token_cache_put(c, key(&a, "dead"), NOW, NOW, &id);
    ck_assert_int_eq(ag_token_cache_get(c, key(&a, "dead"), NOW - 1, &out), AG_ERR_NOT_FOUND);
    ck_assert_int_eq(ag_token_cache_get(NULL, key(&a, "long"), NOW, &out), AG_ERR_NOT_FOUND);
    ag_token_cache_free(c);
    ag_token_cache_free(NULL);
}
END_TEST

START_TEST(bounded_under_many_tokens)
{
    struct ag_token_cache *c = NULL;
    struct ag_token_identity id = alice(), out;
    char tok[32];
    int a, hits = 0;
    ck_assert_int_eq(ag_token_cache_new(&c), AG_OK);
    for (int i = 0; i < 5 * AG_TOKEN_CACHE_SLOTS; i++) {
        snprintf(tok, sizeof(tok), "t%d", i);
        ag_token_cache_put(c, key(&a, tok), NOW + 60, NOW, &id);
    }
    for (int i = 0; i < 5 * AG_TOKEN_CACHE_SLOTS; i++) {
        snprintf(tok, sizeof(tok), "t%d", i);
        if (ag_token_cache_get(c, key(&a, tok), NOW, &out) == AG_OK) {
            hits++;
            ag_token_identity_clear(&out);
        }
    }
    ck_assert_int_le(hits, AG_TOKEN_CACHE_SLOTS); /* fixed size: older entries were replaced */
    ck_assert_int_gt(hits, AG_TOKEN_CACHE_SLOTS / 2);
    ag_token_cache_free(c); /* no leak of replaced or remaining entries (LeakSanitizer) */
}
END_TEST

/* A working set of a quarter of the slots stays whole (4 ways: a direct-mapped table lost ~12% of it to
 * collisions), and under pressure the tokens in use survive the ones not used since. */
START_TEST(working_set_and_lru)
{
    struct ag_token_cache *c = NULL;
    struct ag_token_identity id = alice(), out;
    char tok[32];
    int a, hits = 0;
    ck_assert_int_eq(ag_token_cache_new(&c), AG_OK);
    for (int i = 0; i < AG_TOKEN_CACHE_SLOTS / 4; i++) {
        snprintf(tok, sizeof(tok), "hot%d", i);
        ag_token_cache_put(c, key(&a, tok), NOW + 60, NOW, &id);
    }
    for (int i = 0; i < AG_TOKEN_CACHE_SLOTS / 4; i++) {
        snprintf(tok, sizeof(tok), "hot%d", i);
        if (ag_token_cache_get(c, key(&a, tok), NOW, &out) == AG_OK) {
            hits++;
            ag_token_identity_clear(&out);
        }
    }
    ck_assert_int_ge(hits, AG_TOKEN_CACHE_SLOTS / 4 - 8); /* a set overfilled now and then, not 12% */
    /* "hot0" is used between every put of 3 * SLOTS cold tokens: it stays */
    for (int i = 0; i < 3 * AG_TOKEN_CACHE_SLOTS; i++) {
        snprintf(tok, sizeof(tok), "cold%d", i);
        ag_token_cache_put(c, key(&a, tok), NOW + 60, NOW, &id);
        ck_assert_int_eq(ag_token_cache_get(c, key(&a, "hot0"), NOW, &out), AG_OK);
        ag_token_identity_clear(&out);
    }
    ag_token_cache_free(c);
}
END_TEST

static struct ag_token_cache *shared;

static void *worker(void *arg)
{
    struct ag_token_identity id = alice(), out;
    char tok[32];
    for (int i = 0; i < 20000; i++) {
        snprintf(tok, sizeof(tok), "w%d", (i * 7 + (int)(intptr_t)arg) % 500);
        if (i % 3 == 0)
            ag_token_cache_put(shared, key(NULL, tok), NOW + 60, NOW, &id);
        else if (ag_token_cache_get(shared, key(NULL, tok), NOW, &out) == AG_OK)
            ag_token_identity_clear(&out);
    }
    return NULL;
}

START_TEST(threads)
{
    pthread_t t[4];
    ck_assert_int_eq(ag_token_cache_new(&shared), AG_OK);
    for (intptr_t i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, worker, (void *)i);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    ag_token_cache_free(shared);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("token_cache");
    TCase *tc = tcase_create("token_cache");
    tcase_set_timeout(tc, 60); /* the thread test is slow under sanitizers on a loaded machine */
    tcase_add_test(tc, hit_miss_and_copies);
    tcase_add_test(tc, ttl_bound_and_expired_puts);
    tcase_add_test(tc, bounded_under_many_tokens);
    tcase_add_test(tc, working_set_and_lru);
    tcase_add_test(tc, threads);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
