/* SPDX-License-Identifier: Apache-2.0
 * base64url and base64 decoding (src/util/b64.c), which reads every cookie, ticket and JWT segment.
 * Oracles: the strict decoder accepts exactly one spelling per value (what it accepts re-encodes to the
 * same text), every option set agrees with the strict decoder where both accept, the output never
 * exceeds its capacity, and encoding any bytes decodes back to them. */
#include "fuzz.h"
#include "util/b64.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *in = (const char *)data;
    size_t cap = size, n = 0, m = 0;
    unsigned char *out = malloc(cap + 1), *out2 = malloc(cap + 1);
    char *text = malloc(AG_B64URL_LEN(size) + 2);
    enum ag_rc rc;

    if (out == NULL || out2 == NULL || text == NULL)
        abort();
    rc = ag_b64url_decode(in, size, out, cap, &n);
    if (rc == AG_OK) {
        FUZZ_CHECK(n <= cap && n == size / 4 * 3 + (size % 4 ? size % 4 - 1 : 0), "decoded %zu of %zu", n,
                   size);
        FUZZ_CHECK(ag_b64url_encode(out, n, text, AG_B64URL_LEN(n) + 1) == size, "re-encoded length");
        FUZZ_CHECK(memcmp(text, in, size) == 0, "strict decoding accepted a second spelling");
        /* every option set reads a strict value the same way */
        for (unsigned flags = 0; flags < 8; flags++) {
            FUZZ_CHECK(ag_b64_decode(in, size, flags, out2, cap, &m) == AG_OK, "flags %u refused", flags);
            FUZZ_CHECK(m == n && memcmp(out, out2, n) == 0, "flags %u read it differently", flags);
        }
        /* one byte less room is too small unless nothing came out */
        if (n > 0)
            FUZZ_CHECK(ag_b64url_decode(in, size, out2, n - 1, &m) == AG_ERR_TOO_LARGE, "capacity ignored");
    }
    for (unsigned flags = 0; flags < 8; flags++) {
        /* exact capacity: the decoder must stay inside it (ASan watches out2) */
        unsigned char *exact;
        size_t want;
        if (ag_b64_decode(in, size, flags, out2, cap, &m) != AG_OK)
            continue;
        want = m;
        exact = malloc(want > 0 ? want : 1);
        if (exact == NULL)
            abort();
        FUZZ_CHECK(ag_b64_decode(in, size, flags, exact, want, &m) == AG_OK && m == want, "exact capacity");
        FUZZ_CHECK(memcmp(exact, out2, want) == 0, "same input, same output");
        free(exact);
    }
    /* the input as bytes: encode, decode, compare */
    n = ag_b64url_encode(data, size, text, AG_B64URL_LEN(size) + 1);
    FUZZ_CHECK(n == AG_B64URL_LEN(size), "encoded length %zu for %zu bytes", n, size);
    FUZZ_CHECK(ag_b64url_decode(text, n, out, cap, &m) == AG_OK && m == size && memcmp(out, data, size) == 0,
               "round trip");
    FUZZ_CHECK(ag_b64url_encode(data, size, text, AG_B64URL_LEN(size)) == 0 && (size == 0 || text[0] == '\0'),
               "a too small output buffer must give 0 and an empty string");
    free(out);
    free(out2);
    free(text);
    return 0;
}
