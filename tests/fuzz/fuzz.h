/* SPDX-License-Identifier: Apache-2.0
 * What every fuzz target shares: an oracle failure that libFuzzer reports as a crash (with the reason),
 * and a reader that cuts the input into fields, so one input can drive a parser with several arguments.
 * A target is tests/fuzz/fuzz_<name>.c defining LLVMFuzzerTestOneInput; see tests/fuzz/fuzz.mk. */
#ifndef AG_FUZZ_H
#define AG_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* An oracle said no: print why and abort, which libFuzzer records as a crash with this input. */
#define FUZZ_CHECK(cond, ...)                                                                                \
    do {                                                                                                     \
        if (!(cond)) {                                                                                       \
            fprintf(stderr, "fuzz oracle failed at %s:%d: %s: ", __FILE__, __LINE__, #cond);                 \
            fprintf(stderr, __VA_ARGS__);                                                                    \
            fputc('\n', stderr);                                                                             \
            abort();                                                                                         \
        }                                                                                                    \
    } while (0)

/* The input as a sequence of fields separated by one byte (usually '\n'). */
struct fuzz_in {
    const uint8_t *p, *end;
    int done; /* the last field has been taken */
};

static inline struct fuzz_in fuzz_in(const uint8_t *data, size_t size)
{
    struct fuzz_in in = {data, data + size, 0};
    return in;
}

static inline char *fuzz_copy(const uint8_t *p, size_t n)
{
    char *s = malloc(n + 1);
    if (s == NULL)
        abort();
    if (n > 0)
        memcpy(s, p, n);
    s[n] = '\0';
    return s;
}

/* n bytes in a buffer of exactly that size, without a terminator (caller frees): for parsers that take a
 * length, so AddressSanitizer reports any read past the end. */
static inline char *fuzz_exact(const uint8_t *p, size_t n)
{
    char *s = malloc(n > 0 ? n : 1);
    if (s == NULL)
        abort();
    if (n > 0)
        memcpy(s, p, n);
    return s;
}

/* Whether fields are left to take (an input of N separators has N + 1 fields). */
static inline int fuzz_left(const struct fuzz_in *in)
{
    return !in->done;
}

/* The next field up to `sep` (or the end) as a new NUL-terminated string (caller frees; *len_out, when
 * not NULL, is its length); "" once every field has been taken. A field may hold NUL bytes: C string
 * parsers then see its first part only. */
static inline char *fuzz_field(struct fuzz_in *in, uint8_t sep, size_t *len_out)
{
    const uint8_t *e;
    size_t n;

    if (in->done) {
        if (len_out != NULL)
            *len_out = 0;
        return fuzz_copy(in->p, 0);
    }
    e = in->p < in->end ? memchr(in->p, sep, (size_t)(in->end - in->p)) : NULL;
    n = e != NULL ? (size_t)(e - in->p) : (size_t)(in->end - in->p);
    if (len_out != NULL)
        *len_out = n;
    char *s = fuzz_copy(in->p, n);
    if (e != NULL) {
        in->p = e + 1;
    } else {
        in->p = in->end;
        in->done = 1;
    }
    return s;
}

/* The rest of the input as a new NUL-terminated string (caller frees); "" when nothing is left. */
static inline char *fuzz_rest(struct fuzz_in *in, size_t *len_out)
{
    size_t n = in->done ? 0 : (size_t)(in->end - in->p);
    if (len_out != NULL)
        *len_out = n;
    char *s = fuzz_copy(in->p, n);
    in->p = in->end;
    in->done = 1;
    return s;
}

/* One byte of the input (0 when none is left): for choosing a mode or a flag. */
static inline uint8_t fuzz_byte(struct fuzz_in *in)
{
    return !in->done && in->p < in->end ? *in->p++ : 0;
}

#endif
