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
};

static const struct ag_route prefix_unknown = {AG_ROUTE_PREFIX_UNKNOWN, "not-found", ag_handle_not_found};
static const struct ag_route default_route = {AG_ROUTE_DEFAULT, "check", ag_handle_check};

static bool equals(const char *path, size_t len, const char *s)
{
    return s != NULL && strlen(s) == len && memcmp(path, s, len) == 0;
}

const struct ag_route *ag_router_match(const struct ag_config *cfg, const char *path, size_t len)
{
    const char *prefix = cfg->proxy_prefix;
    size_t plen = strlen(prefix);
    bool under_prefix = len >= plen && memcmp(path, prefix, plen) == 0 && (len == plen || path[plen] == '/');

    for (size_t i = 0; i < AG_ARRAY_LEN(table); i++) {
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
