/* SPDX-License-Identifier: Apache-2.0
 * Durations, integers and booleans as the config reads them from flags, the environment and the file
 * (src/config.c: ag_config_parse_duration, _int, _bool). The first byte picks the reading: the rest as
 * text, or as numbers this target writes out as "<integer>.<fraction><unit>", so the fuzzer steers the
 * integer as a binary value (the parser's comparisons against its limits then guide the fuzzer to them).
 * Oracles: no undefined behaviour (UBSan: signed overflow, float-to-integer casts); a duration is never
 * negative; the text ag_config_format_duration() writes reads back as the same value; a written-out
 * duration is accepted when its exact value (computed here in 128 bits) is clearly below Go's limit of
 * 2^63-1 ns, refused when clearly above, and read to within a millisecond; an integer prints back as the
 * text it came from (up to a sign and leading zeros). */
#include <inttypes.h>

#include "config.h"
#include "fuzz.h"

static void text(const char *s)
{
    char buf[64];
    int64_t ms = -1, again = -1, i = 0;
    bool b;

    if (ag_config_parse_duration(s, &ms) == AG_OK) {
        FUZZ_CHECK(ms >= 0, "negative duration %" PRId64 " from \"%s\"", ms, s);
        ag_config_format_duration(ms, buf, sizeof(buf));
        FUZZ_CHECK(ag_config_parse_duration(buf, &again) == AG_OK && again == ms,
                   "\"%s\" is %" PRId64 " ms, written \"%s\", read back as %" PRId64, s, ms, buf, again);
    }
    if (ag_config_parse_int(s, &i) == AG_OK) {
        const char *d = s + (s[0] == '+' || s[0] == '-');
        snprintf(buf, sizeof(buf), "%" PRId64, i);
        while (d[0] == '0' && d[1] != '\0')
            d++;
        FUZZ_CHECK(strcmp(buf + (buf[0] == '-'), d) == 0 && (i >= 0 || s[0] == '-') &&
                       (i <= 0 || s[0] != '-'),
                   "\"%s\" read as %" PRId64, s, i);
    }
    if (ag_config_parse_bool(s, &b) == AG_OK)
        FUZZ_CHECK(strlen(s) <= 5, "bool \"%s\"", s);
}

/* 8 bytes of integer, 2 of fraction, then the fraction's width (leading zeros) and the unit. */
static void numbers(const uint8_t *data, size_t size)
{
    static const struct {
        const char *name;
        uint64_t ns;
    } units[] = {{"ns", 1},         {"us", 1000},       {"ms", 1000000},
                 {"s", 1000000000}, {"m", 60000000000}, {"h", 3600000000000}};
    const unsigned __int128 limit = (unsigned __int128)INT64_MAX, slack = 1u << 12;
    uint64_t v = 0;
    uint16_t f = 0;
    unsigned width, u;
    char s[80], fs[32];
    unsigned __int128 exact, den = 1;
    int64_t ms = -1;
    enum ag_rc rc;

    if (size < 12)
        return;
    memcpy(&v, data, 8);
    memcpy(&f, data + 8, 2);
    width = data[10] % 20 + 1;
    u = data[11] % 6;
    snprintf(fs, sizeof(fs), "%0*u", (int)width, (unsigned)f);
    snprintf(s, sizeof(s), "%" PRIu64 ".%s%s", v, fs, units[u].name);
    for (size_t k = 0; k < strlen(fs); k++)
        den *= 10;
    exact = (unsigned __int128)v * units[u].ns + (unsigned __int128)f * units[u].ns / den;
    rc = ag_config_parse_duration(s, &ms);
    if (exact + slack <= limit && exact >= 1000000)
        FUZZ_CHECK(rc == AG_OK, "\"%s\" refused, exactly %" PRIu64 " ns", s, (uint64_t)exact);
    if (exact > limit + slack)
        FUZZ_CHECK(rc != AG_OK, "\"%s\" accepted as %" PRId64 " ms, beyond 2^63-1 ns", s, ms);
    if (rc == AG_OK) {
        int64_t want = (int64_t)(exact / 1000000);
        FUZZ_CHECK(ms >= want - 1 && ms <= want + 1, "\"%s\" read as %" PRId64 " ms, exactly %" PRId64, s, ms,
                   want);
    }
    text(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 0 && data[0] == 1) {
        numbers(data + 1, size - 1);
        return 0;
    }
    char *s = fuzz_copy(data, size);
    text(s);
    free(s);
    return 0;
}
