/* SPDX-License-Identifier: Apache-2.0
 * Unit tests for src/handle/identity.c: the list of identity header spellings that Envoy is told to
 * remove names every '-'/'_' spelling of every identity and claim header. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "handle/identity.h"

/* Whether the comma-separated list holds `name` as one whole entry. */
static bool listed(const char *list, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = list; (p = strstr(p, name)) != NULL; p += n)
        if ((p == list || p[-1] == ' ') && (p[n] == ',' || p[n] == '\0'))
            return true;
    return false;
}

static size_t entries(const char *list)
{
    size_t n = list[0] != '\0';
    for (const char *p = list; *p; p++)
        n += *p == ',';
    return n;
}

START_TEST(every_spelling)
{
    char *claims[] = {"X-Tenant=org.tenant", "X_Roles_Here=roles"};
    struct ag_config cfg;
    struct ag_identity_strip st;

    memset(&cfg, 0, sizeof(cfg));
    cfg.claim_headers.v = claims;
    cfg.claim_headers.n = 2;
    ck_assert_int_eq(ag_identity_strip_init(&st, &cfg), AG_OK);
    /* X-Auth-Request-{User,Email,Groups}: 3 separators, 7 spellings with a '_' each; Preferred-Username and
     * Access-Token: 4, 15; X-Forwarded-{User,Email,Groups}: 3 each; -Preferred-Username, -Access-Token: 7;
     * X-Tenant: 1; X-Roles-Here: 3 */
    ck_assert_uint_eq(entries(st.spelled), 3 * 7 + 2 * 15 + 3 * 3 + 2 * 7 + 1 + 3);
    ck_assert_uint_eq(entries(st.all), entries(st.spelled) + 12);
    ck_assert_uint_eq(st.nplain, 12);
    ck_assert_uint_eq(st.spelled_len, strlen(st.spelled));
    static const char *const want[] = {
        "x_auth_request_user",
        "x-auth_request-user",
        "x_auth-request-user",
        "x-auth-request_user",
        "x_auth_request_preferred_username",
        "x-auth-request-preferred_username",
        "x_forwarded_email",
        "x-forwarded_access-token",
        "x_tenant",
        "x_roles_here",
        "x-roles_here",
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        ck_assert_msg(listed(st.spelled, want[i]), "%s not in the list", want[i]);
        ck_assert_msg(listed(st.all, want[i]), "%s not in the full list", want[i]);
    }
    /* the plain names are not in the always-removed list (an answer that sets them replaces them) */
    static const char *const plain[] = {"x-auth-request-user", "x-forwarded-email", "x-tenant",
                                        "x-roles-here"};
    for (size_t i = 0; i < sizeof(plain) / sizeof(plain[0]); i++) {
        ck_assert_msg(!listed(st.spelled, plain[i]), "%s in the always list", plain[i]);
        ck_assert_msg(listed(st.all, plain[i]), "%s not in the full list", plain[i]);
    }
    ck_assert(!listed(st.all, "x-forwarded-for") && !listed(st.all, "x_forwarded_for"));
    ck_assert_ptr_null(strstr(st.all, ", ,"));
    ck_assert(st.all[strlen(st.all) - 1] != ' ' && st.all[strlen(st.all) - 1] != ',');
    ag_identity_strip_clear(&st);
    ag_identity_strip_clear(&st); /* twice is fine */
}
END_TEST

int main(void)
{
    Suite *s = suite_create("identity");
    TCase *tc = tcase_create("identity");
    tcase_add_test(tc, every_spelling);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
