/* SPDX-License-Identifier: Apache-2.0
 * Unit tests for src/token/claims.c: nested claim paths (and names with dots), claim values as header
 * text (never a control byte, never an object), scopes from `scope` or `scp`, and the scope check. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "token/claims.h"

static json_t *claims(void)
{
    json_t *o =
        json_loads("{\"sub\":\"u1\",\"org\":{\"tenant\":\"acme\",\"id\":42,\"deep\":{\"x\":true}},"
                   "\"https://example.com/roles\":[\"admin\",\"dev\"],"
                   "\"a.b\":{\"c\":\"other\"},\"x.y\":{\"z\":\"dotted\"},\"a\":{\"b\":{\"c\":\"nested\"}},"
                   "\"ratio\":0.5,\"nul\":null,\"empty\":[],\"mixed\":[\"a\",1,false],"
                   "\"nested\":[[\"x\"]],\"crlf\":\"a\\r\\nX-Injected: 1\",\"nulbyte\":\"a\\u0000b\","
                   "\"tab\":\"a\\tb\",\"del\":\"a\\u007fb\",\"utf8\":\"J\\u00fcrgen\"}",
                   JSON_ALLOW_NUL, NULL);
    ck_assert_ptr_nonnull(o);
    return o;
}

START_TEST(paths)
{
    json_t *c = claims();
    ck_assert_str_eq(json_string_value(ag_claims_get(c, "sub")), "u1");
    ck_assert_str_eq(json_string_value(ag_claims_get(c, "org.tenant")), "acme");
    ck_assert_int_eq(json_integer_value(ag_claims_get(c, "org.id")), 42);
    ck_assert(json_is_true(ag_claims_get(c, "org.deep.x")));
    /* nested objects first; a name with dots is found whole where the nested reading finds nothing */
    ck_assert(json_is_array(ag_claims_get(c, "https://example.com/roles")));
    ck_assert_str_eq(json_string_value(ag_claims_get(c, "a.b.c")), "nested");
    ck_assert_str_eq(json_string_value(ag_claims_get(c, "x.y.z")), "dotted");
    /* absent, a path through a non-object, empty input */
    ck_assert_ptr_null(ag_claims_get(c, "org.missing"));
    ck_assert_ptr_null(ag_claims_get(c, "sub.x"));
    ck_assert_ptr_null(ag_claims_get(c, "org.tenant.x"));
    ck_assert_ptr_null(ag_claims_get(c, ""));
    ck_assert_ptr_null(ag_claims_get(c, NULL));
    ck_assert_ptr_null(ag_claims_get(NULL, "sub"));
    json_decref(c);
}
END_TEST

START_TEST(many_dots_bounded)
{
    /* a path of many dots through nested objects: found within the lookup budget, or not at all, but fast */
    char path[256];
    json_t *o = json_object(), *cur = o;
    size_t n = 0;
    for (int i = 0; i < 20; i++) {
        json_t *next = json_object();
        json_object_set_new(cur, "k", next);
        cur = next;
        n += (size_t)snprintf(path + n, sizeof(path) - n, i ? ".k" : "k");
    }
    ck_assert_ptr_nonnull(ag_claims_get(o, path));
    memset(path, '.', 200);
    path[0] = 'k';
    path[200] = '\0';
    ck_assert_ptr_null(ag_claims_get(o, path));
    json_decref(o);
}
END_TEST

START_TEST(values)
{
    json_t *c = claims();
    char buf[64];
    ck_assert(ag_claims_header_value(ag_claims_get(c, "org.tenant"), buf, sizeof(buf)));
    ck_assert_str_eq(buf, "acme");
    ck_assert(ag_claims_header_value(ag_claims_get(c, "org.id"), buf, sizeof(buf)));
    ck_assert_str_eq(buf, "42");
    ck_assert(ag_claims_header_value(ag_claims_get(c, "org.deep.x"), buf, sizeof(buf)));
    ck_assert_str_eq(buf, "true");
    ck_assert(ag_claims_header_value(ag_claims_get(c, "ratio"), buf, sizeof(buf)));
    ck_assert_str_eq(buf, "0.5");
    ck_assert(ag_claims_header_value(ag_claims_get(c, "https://example.com/roles"), buf, sizeof(buf)));
    ck_assert_str_eq(buf, "admin,dev");
    ck_assert(ag_claims_header_value(ag_claims_get(c, "mixed"), buf, sizeof(buf)));
    ck_assert_str_eq(buf, "a,1,false");
    ck_assert(ag_claims_header_value(ag_claims_get(c, "tab"), buf, sizeof(buf)));
    ck_assert(ag_claims_header_value(ag_claims_get(c, "utf8"), buf, sizeof(buf)));
    ck_assert_str_eq(buf, "J\xc3\xbcrgen");
    /* never a header: objects, null, empty and nested arrays, control bytes, absent, too long */
    ck_assert(!ag_claims_header_value(ag_claims_get(c, "org"), buf, sizeof(buf)));
    ck_assert(!ag_claims_header_value(ag_claims_get(c, "nul"), buf, sizeof(buf)));
    ck_assert(!ag_claims_header_value(ag_claims_get(c, "empty"), buf, sizeof(buf)));
    ck_assert(!ag_claims_header_value(ag_claims_get(c, "nested"), buf, sizeof(buf)));
    ck_assert(!ag_claims_header_value(ag_claims_get(c, "crlf"), buf, sizeof(buf)));
    ck_assert(!ag_claims_header_value(ag_claims_get(c, "nulbyte"), buf, sizeof(buf)));
    ck_assert(!ag_claims_header_value(ag_claims_get(c, "del"), buf, sizeof(buf)));
    ck_assert(!ag_claims_header_value(NULL, buf, sizeof(buf)));
    ck_assert(!ag_claims_header_value(ag_claims_get(c, "org.tenant"), buf, 4)); /* "acme" needs 5 */
    ck_assert(ag_claims_header_value(ag_claims_get(c, "org.tenant"), buf, 5));
    ck_assert(!ag_claims_header_value(ag_claims_get(c, "https://example.com/roles"), buf, 9));
    json_decref(c);
}
END_TEST

START_TEST(headers_map)
{
    json_t *c = claims();
    char *entries[] = {"X-Tenant=org.tenant", "X-Roles=https://example.com/roles", "X-Missing=nope",
                       "X-Evil=crlf"};
    struct ag_strlist map = {4, entries}, out = {0, NULL};
    ck_assert_int_eq(ag_claims_headers(&map, c, &out), AG_OK);
    ck_assert_uint_eq(out.n, 4); /* two pairs: the absent and the unsafe claim give no header */
    ck_assert_str_eq(out.v[0], "X-Tenant");
    ck_assert_str_eq(out.v[1], "acme");
    ck_assert_str_eq(out.v[2], "X-Roles");
    ck_assert_str_eq(out.v[3], "admin,dev");
    ag_strlist_clear(&out);
    json_decref(c);
}
END_TEST

static char *scope_of(const char *json)
{
    json_t *o = json_loads(json, 0, NULL);
    char *s = NULL;
    ck_assert_ptr_nonnull(o);
    ck_assert_int_eq(ag_claims_scope(o, &s), AG_OK);
    json_decref(o);
    return s;
}

START_TEST(scopes)
{
    char *s = scope_of("{\"scope\":\"api:read api:write\"}");
    ck_assert_str_eq(s, "api:read api:write");
    free(s);
    s = scope_of("{\"scp\":[\"api:read\",\"api:write\"]}");
    ck_assert_str_eq(s, "api:read api:write");
    free(s);
    s = scope_of("{\"scp\":\"api:read\"}");
    ck_assert_str_eq(s, "api:read");
    free(s);
    /* an scp element with a space does not grant two scopes; non-strings are ignored */
    s = scope_of("{\"scp\":[\"api:read api:admin\",7,\"api:write\",\"\"]}");
    ck_assert_str_eq(s, "api:write");
    free(s);
    ck_assert_ptr_null(scope_of("{\"sub\":\"x\"}"));
    ck_assert_ptr_null(scope_of("{\"scope\":7}"));
    s = scope_of("{\"scope\":7,\"scp\":[\"a\"]}");
    ck_assert_str_eq(s, "a");
    free(s);
}
END_TEST

START_TEST(cover)
{
    ck_assert(ag_scopes_cover("api:read api:write", "api:read"));
    ck_assert(ag_scopes_cover("api:read api:write", "api:write api:read"));
    ck_assert(ag_scopes_cover("api:read", ""));
    ck_assert(ag_scopes_cover(NULL, NULL));
    ck_assert(ag_scopes_cover(NULL, ""));
    ck_assert(!ag_scopes_cover(NULL, "api:read"));
    ck_assert(!ag_scopes_cover("", "api:read"));
    ck_assert(!ag_scopes_cover("api:read", "api:read api:admin"));
    /* whole tokens only, case-sensitive */
    ck_assert(!ag_scopes_cover("api:readwrite", "api:read"));
    ck_assert(!ag_scopes_cover("api:read", "api:rea"));
    ck_assert(!ag_scopes_cover("API:READ", "api:read"));
    ck_assert(ag_scopes_cover("  a   b ", "b a"));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("claims");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, paths);
    tcase_add_test(tc, many_dots_bounded);
    tcase_add_test(tc, values);
    tcase_add_test(tc, headers_map);
    tcase_add_test(tc, scopes);
    tcase_add_test(tc, cover);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
