/* SPDX-License-Identifier: Apache-2.0
 * Unit tests for src/session/scache.c: hits return copies, invalidation and reset drop entries, and a
 * value read before an invalidation is never stored after it (the snapshot rule). */
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "session/scache.h"

static bool has(struct ag_scache *c, const char *key, const char *want)
{
    unsigned char *v = NULL;
    size_t n = 0;
    if (ag_scache_get(c, key, &v, &n) != AG_OK)
        return false;
    bool same = want != NULL && n == strlen(want) && memcmp(v, want, n) == 0;
    free(v);
    return same;
}

START_TEST(get_put_invalidate)
{
    struct ag_scache *c = NULL;
    ck_assert_int_eq(ag_scache_new(0, &c), AG_OK);
    ck_assert_ptr_null(c); /* 0 entries: no cache, and every call is a no-op */
    ck_assert(!has(NULL, "k", "v"));
    ag_scache_put(NULL, "k", 0, (const unsigned char *)"v", 1);
    ag_scache_invalidate(NULL, "k", 1);
    ag_scache_reset(NULL);

    ck_assert_int_eq(ag_scache_new(64, &c), AG_OK);
    ck_assert(!has(c, "s:1", "a"));
    ag_scache_put(c, "s:1", ag_scache_snapshot(c, "s:1"), (const unsigned char *)"a", 1);
    ck_assert(has(c, "s:1", "a"));
    ck_assert(!has(c, "s:10", "a")); /* whole keys only */
    ag_scache_put(c, "s:1", ag_scache_snapshot(c, "s:1"), (const unsigned char *)"bb", 2);
    ck_assert(has(c, "s:1", "bb"));
    ag_scache_invalidate(c, "s:1xyz", 3); /* a prefix given with its length */
    ck_assert(!has(c, "s:1", "bb"));
    ag_scache_put(c, "s:2", ag_scache_snapshot(c, "s:2"), (const unsigned char *)"x", 1);
    ag_scache_reset(c);
    ck_assert(!has(c, "s:2", "x"));
    ag_scache_free(c);
}
END_TEST

START_TEST(stale_read_is_not_stored)
{
    struct ag_scache *c = NULL;
    ck_assert_int_eq(ag_scache_new(64, &c), AG_OK);
    /* a worker snapshots, reads "old" from Redis; meanwhile the key changes and its invalidation arrives */
    uint64_t snap = ag_scache_snapshot(c, "s:1");
    ag_scache_invalidate(c, "s:1", 3);
    ag_scache_put(c, "s:1", snap, (const unsigned char *)"old", 3);
    ck_assert(!has(c, "s:1", "old"));
    /* the same after a reset */
    snap = ag_scache_snapshot(c, "s:1");
    ag_scache_reset(c);
    ag_scache_put(c, "s:1", snap, (const unsigned char *)"old", 3);
    ck_assert(!has(c, "s:1", "old"));
    /* a read that no invalidation overtook is stored */
    snap = ag_scache_snapshot(c, "s:1");
    ag_scache_put(c, "s:1", snap, (const unsigned char *)"new", 3);
    ck_assert(has(c, "s:1", "new"));
    ag_scache_free(c);
}
END_TEST

START_TEST(bounded)
{
    struct ag_scache *c = NULL;
    char key[32];
    int hits = 0;
    ck_assert_int_eq(ag_scache_new(64, &c), AG_OK);
    for (int i = 0; i < 1000; i++) {
        snprintf(key, sizeof(key), "s:%d", i);
        ag_scache_put(c, key, ag_scache_snapshot(c, key), (const unsigned char *)"v", 1);
    }
    for (int i = 0; i < 1000; i++) {
        snprintf(key, sizeof(key), "s:%d", i);
        hits += has(c, key, "v");
    }
    ck_assert_int_le(hits, 64);
    ck_assert_int_gt(hits, 32);
    char big[200];
    memset(big, 'k', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    ag_scache_put(c, big, 0, (const unsigned char *)"v", 1); /* too long a key: not kept */
    ck_assert(!has(c, big, "v"));
    ag_scache_free(c); /* LeakSanitizer: nothing left behind */
}
END_TEST

static struct ag_scache *shared;

static void *churn(void *arg)
{
    char key[32];
    for (int i = 0; i < 20000; i++) {
        snprintf(key, sizeof(key), "s:%d", (i * 7 + (int)(intptr_t)arg) % 300);
        if (i % 5 == 0)
            ag_scache_invalidate(shared, key, strlen(key));
        else if (i % 97 == 0)
            ag_scache_reset(shared);
        else if (i % 2 == 0)
            ag_scache_put(shared, key, ag_scache_snapshot(shared, key), (const unsigned char *)"v", 1);
        else
            (void)has(shared, key, "v");
    }
    return NULL;
}

START_TEST(threads)
{
    pthread_t t[4];
    ck_assert_int_eq(ag_scache_new(256, &shared), AG_OK);
    for (intptr_t i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, churn, (void *)i);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    ag_scache_free(shared);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("scache");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60); /* the thread tests are slow under sanitizers on a loaded machine */
    tcase_add_test(tc, get_put_invalidate);
    tcase_add_test(tc, stale_read_is_not_stored);
    tcase_add_test(tc, bounded);
    tcase_add_test(tc, threads);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
