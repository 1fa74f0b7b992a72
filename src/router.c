/* SPDX-License-Identifier: Apache-2.0
 * The route table. Paths are compared byte for byte; see router.h for why. */
#include <string.h>

#include "handle/handlers.h"
#include "router.h"

/* Where an own endpoint's path comes from. */
enum where { FIXED, PING_PATH, READY_PATH, UNDER_PREFIX };

static const struct {
    enum where where;
    const char *path; /* FIXED: the path; UNDER_PREFIX: the part after --proxy-prefix */
    struct ag_route route;
} table[] = {
    {PING_PATH, NULL, {AG_ROUTE_PING, "ping", ag_handle_ping}},
    {READY_PATH, NULL, {AG_ROUTE_READY, "ready", ag_handle_ready}},
    {FIXED, "/robots.txt", {AG_ROUTE_ROBOTS, "robots", ag_handle_robots}},
    {UNDER_PREFIX, "/start", {AG_ROUTE_START, "start", ag_handle_start}},
    {UNDER_PREFIX, "/callback", {AG_ROUTE_CALLBACK, "callback", ag_handle_callback}},
    {UNDER_PREFIX, "/sign_in", {AG_ROUTE_SIGN_IN, "sign_in", ag_handle_sign_in}},
    {UNDER_PREFIX, "/sign_out", {AG_ROUTE_SIGN_OUT, "sign_out", ag_handle_sign_out}},
    {UNDER_PREFIX, "/auth", {AG_ROUTE_AUTH, "auth", ag_handle_auth}},
    {UNDER_PREFIX, "/userinfo", {AG_ROUTE_USERINFO, "userinfo", ag_handle_userinfo}},
};

static const struct ag_route prefix_unknown = {AG_ROUTE_PREFIX_UNKNOWN, "not-found", ag_handle_not_found};
static const struct ag_route default_route = {AG_ROUTE_DEFAULT, "check", ag_handle_check};

static bool equals(const char *path, size_t len, const char *s)
{
    return s != NULL && strlen(s) == len && memcmp(path, s, len) == 0;
}

const struct ag_route *ag_router_match(const struct ag_config *cfg, const char *path, size_t len)
{
    const char *check = cfg->check_path_prefix;
    size_t clen = check ? strlen(check) : 0;
    bool check_request = false;

    /* A check request (Istio pathPrefix): strip the prefix; then only the login endpoints under
     * --proxy-prefix are ours, and the app's own /ping or /robots.txt are checked like any path. */
    if (clen > 0 && len > clen && memcmp(path, check, clen) == 0 && path[clen] == '/') {
        path += clen;
        len -= clen;
        check_request = true;
    }
    const char *prefix = cfg->proxy_prefix;
    size_t plen = strlen(prefix);
    bool under_prefix = len >= plen && memcmp(path, prefix, plen) == 0 && (len == plen || path[plen] == '/');

    for (size_t i = 0; i < AG_ARRAY_LEN(table); i++) {
        if (check_request && table[i].where != UNDER_PREFIX)
            continue;
        switch (table[i].where) {
        case FIXED:
            if (equals(path, len, table[i].path))
                return &table[i].route;
            break;
        case PING_PATH:
            if (equals(path, len, cfg->ping_path))
                return &table[i].route;
            break;
        case READY_PATH:
            if (equals(path, len, cfg->ready_path))
                return &table[i].route;
            break;
        case UNDER_PREFIX:
            if (under_prefix && equals(path + plen, len - plen, table[i].path))
                return &table[i].route;
            break;
        }
    }
    return under_prefix ? &prefix_unknown : &default_route;
}
