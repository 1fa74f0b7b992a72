/* SPDX-License-Identifier: Apache-2.0
 * --upstream URLs (src/net/upstream.c) and the routing of a request to one. Oracles: LeakSanitizer on
 * every refused URL (each error path must free what it allocated), and for an accepted one: its routing
 * path starts with '/', path_len is its length, the origin is the URL's start, a host prefix is lower
 * case; a request for exactly its path (and host) is routed to it when it is the only upstream. */
#include "fuzz.h"
#include "net/upstream.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_in in = fuzz_in(data, size);
    char *url = fuzz_field(&in, '\n', NULL), *host = fuzz_field(&in, '\n', NULL);
    char *path = fuzz_rest(&in, NULL), err[160];
    struct ag_upstream u;

    err[0] = '\0';
    if (ag_upstream_parse(url, &u, err, sizeof(err)) == AG_OK) {
        struct ag_upstreams one = {&u, 1};
        FUZZ_CHECK(u.path != NULL && u.path[0] == '/' && u.path_len == strlen(u.path), "path");
        FUZZ_CHECK(u.origin != NULL && u.authority != NULL, "origin");
        FUZZ_CHECK(u.exact == (u.path[u.path_len - 1] != '/'), "exact");
        for (const char *p = u.host; p != NULL && *p; p++)
            FUZZ_CHECK(!(*p >= 'A' && *p <= 'Z'), "host not lower case");
        if (u.unix_path == NULL && u.file_dir == NULL)
            FUZZ_CHECK(strstr(url, u.origin) != NULL && strstr(u.origin, u.authority) != NULL, "origin");
        FUZZ_CHECK(ag_upstreams_match(&one, u.host, u.path, u.path_len) == &u, "its own path is not routed");
        (void)ag_upstreams_match(&one, host, path, strcspn(path, "?"));
        ag_upstream_clear(&u);
    } else {
        FUZZ_CHECK(err[0] != '\0', "refused without a reason");
    }
    free(url);
    free(host);
    free(path);
    return 0;
}
