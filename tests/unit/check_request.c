/* SPDX-License-Identifier: Apache-2.0
 * Unit tests for the request arena in src/request.c: allocations are aligned, never overlap, survive
 * until the request is freed (AddressSanitizer sees any overrun or leak), and ag_request_printf()
 * gives the same text whether it fits the current block or needs a block of its own. */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "request.h"

static struct ag_request *bare_request(void)
{
    struct ag_request *rq = calloc(1, sizeof(*rq));
    ck_assert_ptr_nonnull(rq);
    return rq;
}

START_TEST(arena_allocations_are_aligned_and_apart)
{
    struct ag_request *rq = bare_request();
    enum { N = 300 };
    unsigned char *p[N];
    size_t len[N];

    for (size_t i = 0; i < N; i++) {
        len[i] = (i * 37) % 700 + (i % 50 == 0 ? 5000 : 0); /* now and then larger than a block */
        p[i] = ag_request_alloc(rq, len[i]);
        ck_assert_ptr_nonnull(p[i]);
        ck_assert_uint_eq((uintptr_t)p[i] % _Alignof(max_align_t), 0);
        memset(p[i], (int)(i & 0xff), len[i]);
    }
    for (size_t i = 0; i < N; i++)
        for (size_t k = 0; k < len[i]; k++)
            ck_assert_msg(p[i][k] == (unsigned char)(i & 0xff), "allocation %zu overwritten at %zu", i, k);
    ag_request_free(rq);
}
END_TEST

START_TEST(printf_fits_or_not)
{
    struct ag_request *rq = bare_request();
    char big[6000];
    const char *a, *b, *c, *d;

    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    a = ag_request_printf(rq, "%s-%d", "first", 1);      /* no block yet: measured */
    b = ag_request_printf(rq, "%s-%d", "second", 2);     /* fits the block */
    ag_request_alloc(rq, 2040);                          /* leaves the block (almost) full */
    c = ag_request_printf(rq, "%s|%s", "third", "tail"); /* does not fit: a new block */
    d = ag_request_printf(rq, "<%s>", big);              /* larger than any block */
    ck_assert_str_eq(a, "first-1");
    ck_assert_str_eq(b, "second-2");
    ck_assert_str_eq(c, "third|tail");
    ck_assert_uint_eq(strlen(d), sizeof(big) + 1);
    ck_assert(d[0] == '<' && d[sizeof(big)] == '>' && d[1] == 'x');
    ck_assert_str_eq(a, "first-1"); /* nothing later wrote over the earlier ones */
    ck_assert_str_eq(b, "second-2");
    ck_assert_str_eq(ag_request_printf(rq, "%s", ""), "");
    ag_request_free(rq);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("request");
    TCase *tc = tcase_create("arena");
    tcase_add_test(tc, arena_allocations_are_aligned_and_apart);
    tcase_add_test(tc, printf_fits_or_not);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
