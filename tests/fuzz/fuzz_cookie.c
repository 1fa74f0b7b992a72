/* SPDX-License-Identifier: Apache-2.0
 * The Cookie header reader (src/net/cookie.c). Oracles: every pair lies inside the header, holds no
 * ';', has no whitespace at either end of its name or value; and a reference reading written here,
 * which splits on both ';' and ',' as some servers do, never finds one of authgate's cookies in a pair
 * that authgate would forward (ag_cookie_is_ours with hidden ones) - so no server behind authgate can
 * read a session ticket that authgate let through. */
#include <stdbool.h>

#include "fuzz.h"
#include "net/cookie.h"

#define OURS "_oauth2_proxy"

static bool ows(char c)
{
    return c == ' ' || c == '\t';
}

/* Whether text[0..len) holds, split on ';' and ',' and trimmed, a piece named like authgate's cookies. */
static bool reference_has_ours(const char *text, size_t len)
{
    size_t i = 0;
    while (i <= len) {
        size_t j = i;
        while (j < len && text[j] != ';' && text[j] != ',')
            j++;
        size_t a = i, b = j;
        while (a < b && ows(text[a]))
            a++;
        const char *eq = memchr(text + a, '=', b - a);
        size_t ne = eq != NULL ? (size_t)(eq - text) : b;
        while (ne > a && ows(text[ne - 1]))
            ne--;
        size_t nl = ne - a, ol = strlen(OURS);
        if (nl >= ol && memcmp(text + a, OURS, ol) == 0 &&
            (nl == ol || (nl >= ol + 5 && memcmp(text + a + ol, "_csrf", 5) == 0)))
            return true;
        i = j + 1;
    }
    return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *header = (const char *)data, *pos = header, *end = header + size;
    struct ag_cookie_pair pair;
    size_t pairs = 0;

    while (ag_cookie_next(&pos, end, &pair)) {
        FUZZ_CHECK(++pairs <= size, "more pairs than bytes");
        FUZZ_CHECK(pair.text >= header && pair.text + pair.text_len <= end, "a pair outside the header");
        FUZZ_CHECK(pair.name >= pair.text && pair.name + pair.name_len <= pair.text + pair.text_len, "name");
        FUZZ_CHECK(pair.value >= pair.text && pair.value + pair.value_len <= pair.text + pair.text_len,
                   "value");
        FUZZ_CHECK(pair.text_len > 0 && memchr(pair.text, ';', pair.text_len) == NULL, "a ';' inside a pair");
        FUZZ_CHECK(!ows(pair.text[0]) && !ows(pair.text[pair.text_len - 1]), "an untrimmed pair");
        FUZZ_CHECK(memchr(pair.name, '=', pair.name_len) == NULL, "a '=' in a name");
        if (pair.name_len > 0)
            FUZZ_CHECK(!ows(pair.name[0]) && !ows(pair.name[pair.name_len - 1]), "an untrimmed name");
        if (pair.value_len > 0)
            FUZZ_CHECK(!ows(pair.value[0]) && !ows(pair.value[pair.value_len - 1]), "an untrimmed value");
        bool strict = ag_cookie_is_ours(&pair, OURS, false), hidden = ag_cookie_is_ours(&pair, OURS, true);
        FUZZ_CHECK(!strict || hidden, "ours, but not when hidden ones count");
        if (!hidden)
            FUZZ_CHECK(!reference_has_ours(pair.text, pair.text_len),
                       "a pair with one of ours would be forwarded: %.*s", (int)pair.text_len, pair.text);
    }
    FUZZ_CHECK(pos == end, "the reader stopped early");
    return 0;
}
