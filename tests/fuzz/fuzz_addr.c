/* SPDX-License-Identifier: Apache-2.0
 * Listen addresses (src/net/addr.c: --http-address, as oauth2-proxy spells them). Oracles: an accepted
 * address is one of the three kinds with its fields in range (a TCP port up to 65535, a host without
 * blanks or brackets, an absolute unix path that fits sun_path, a descriptor of 3 or more), and a refusal
 * always says why. */
#include "fuzz.h"
#include "net/addr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = fuzz_copy(data, size), err[128];
    struct ag_addr a;

    err[0] = '\0';
    if (ag_addr_parse(s, &a, err, sizeof(err)) == AG_OK) {
        switch (a.kind) {
        case AG_ADDR_TCP:
            FUZZ_CHECK(a.port <= 65535, "port %u", a.port);
            FUZZ_CHECK(strlen(a.host) < sizeof(a.host), "host");
            for (const char *p = a.host; *p; p++)
                FUZZ_CHECK((unsigned char)*p > ' ' && *p != 0x7f && *p != '[' && *p != ']' && *p != '/',
                           "host byte 0x%02x", (unsigned char)*p);
            break;
        case AG_ADDR_UNIX:
            FUZZ_CHECK(a.path[0] == '/' && strlen(a.path) < sizeof(a.path), "unix path");
            break;
        case AG_ADDR_FD:
            FUZZ_CHECK(a.fd >= 3 && a.fd <= 65535, "fd %d", a.fd);
            break;
        default:
            FUZZ_CHECK(0, "kind %d", (int)a.kind);
        }
    } else {
        FUZZ_CHECK(err[0] != '\0', "refused without a reason");
    }
    free(s);
    return 0;
}
