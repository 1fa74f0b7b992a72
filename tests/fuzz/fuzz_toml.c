/* SPDX-License-Identifier: Apache-2.0
 * The config file reader (src/config.c: the TOML subset, then every value's own parser and the cross
 * checks), fed as the file named by --config. Oracles: no crash, leak or undefined behaviour, whatever
 * the bytes; an accepted config prints its effective settings; and no error line ever shows the value of
 * a secret (client_secret, cookie_secret, redis_password) written in the file. */
#include <sys/mman.h>
#include <unistd.h>

#include "config.h"
#include "fuzz.h"

static int fd = -1;
static char path[64];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fd = memfd_create("authgate-fuzz.cfg", 0);
    if (fd < 0)
        abort();
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    return 0;
}

/* The value of `key = "value"` when the file sets a secret that way, it is 8 bytes or more (so it is
 * unlikely to occur in other text by chance) and occurs only once in the file; else NULL. */
static char *secret_value(const char *text, size_t len, const char *key)
{
    size_t klen = strlen(key);
    for (const char *p = text; p != NULL && p < text + len; p = memchr(p, '\n', (size_t)(text + len - p))) {
        const char *q, *v, *e;
        if (*p == '\n')
            p++;
        q = p;
        while (q < text + len && (*q == ' ' || *q == '\t'))
            q++;
        if ((size_t)(text + len - q) <= klen || memcmp(q, key, klen) != 0)
            continue;
        q += klen;
        while (q < text + len && (*q == ' ' || *q == '\t'))
            q++;
        if (q >= text + len || *q != '=')
            continue;
        q++;
        while (q < text + len && (*q == ' ' || *q == '\t'))
            q++;
        if (q >= text + len || *q != '"')
            continue;
        v = q + 1;
        for (e = v; e < text + len && *e != '"' && *e != '\\' && (unsigned char)*e >= 0x20; e++)
            ;
        if (e >= text + len || *e != '"' || e - v < 8)
            continue;
        if (memmem(text, len, v, (size_t)(e - v)) != v ||
            memmem(e, (size_t)(text + len - e), v, (size_t)(e - v)) != NULL)
            return NULL;
        return fuzz_copy((const uint8_t *)v, (size_t)(e - v));
    }
    return NULL;
}

/* Load the config file `data` and return what went to the error stream (caller frees). */
static char *load(const uint8_t *data, size_t size)
{
    char *argv[] = {"authgate", "--config", path, NULL};
    char *errors = NULL;
    size_t errlen = 0;
    FILE *errf = open_memstream(&errors, &errlen);
    struct ag_config *cfg = NULL;
    enum ag_config_action action;

    if (errf == NULL || ftruncate(fd, 0) != 0 || pwrite(fd, data, size, 0) != (ssize_t)size)
        abort();
    if (ag_config_load(3, argv, NULL, &cfg, &action, errf) == AG_OK) {
        FUZZ_CHECK(cfg != NULL, "AG_OK without a config");
        ag_config_print_effective(cfg, errf);
    } else {
        FUZZ_CHECK(cfg == NULL, "a config with an error");
    }
    ag_config_free(cfg);
    fclose(errf);
    return errors;
}

static size_t count(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *p = strstr(hay, needle); p != NULL; p = strstr(p + 1, needle))
        n++;
    return n;
}

/* A secret shows in the output when it occurs there more often than after changing it in the file to
 * other text of the same length: occurrences in the fixed text of the messages count on both sides. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const secret_keys[] = {"client_secret", "cookie_secret", "redis_password"};
    char *errors;

    errors = load(data, size);

    for (size_t i = 0; i < sizeof(secret_keys) / sizeof(secret_keys[0]); i++) {
        char *v = secret_value((const char *)data, size, secret_keys[i]);
        if (v != NULL) {
            size_t vl = strlen(v);
            uint8_t *other = malloc(size);
            const char *at = memmem(data, size, v, vl);
            char *errors2;
            if (other == NULL)
                abort();
            memcpy(other, data, size);
            for (size_t k = 0; k < vl; k++)
                other[(size_t)(at - (const char *)data) + k] = (uint8_t)(v[k] == 'Q' ? 'R' : 'Q');
            errors2 = load(other, size);
            FUZZ_CHECK(count(errors, v) <= count(errors2, v), "the %s value \"%s\" appears in: %s",
                       secret_keys[i], v, errors);
            free(errors2);
            free(other);
        }
        free(v);
    }
    free(errors);
    return 0;
}
