/* SPDX-License-Identifier: Apache-2.0
 * Benchmark probe, not part of authgate: bench/run.sh builds it into its temporary directory and preloads
 * it into authgate (LD_PRELOAD) to count signature verifications, so the table can show how many requests
 * verified a signature instead of arguing it. It wraps libcrypto's EVP_DigestVerify(), the one call
 * through which authgate verifies a JWS signature (src/token/jwt.c), and adds to two 64-bit counters in
 * the file named by AG_BENCH_VERIFY_COUNTER (16 zero bytes made by run.sh): calls, and calls that
 * answered 1 (valid). Every call goes on to libcrypto unchanged; the cost is two relaxed atomic adds. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

typedef struct evp_md_ctx_st EVP_MD_CTX;
typedef int (*digest_verify_fn)(EVP_MD_CTX *, const unsigned char *, size_t, const unsigned char *, size_t);

static uint64_t *counters; /* [0] calls, [1] calls that answered 1 */

__attribute__((constructor)) static void open_counters(void)
{
    const char *path = getenv("AG_BENCH_VERIFY_COUNTER");
    void *p;
    int fd;

    if (path == NULL || (fd = open(path, O_RDWR | O_CLOEXEC)) < 0)
        return;
    p = mmap(NULL, 2 * sizeof(uint64_t), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (p != MAP_FAILED)
        counters = p;
}

int EVP_DigestVerify(EVP_MD_CTX *ctx, const unsigned char *sig, size_t siglen, const unsigned char *tbs,
                     size_t tbslen)
{
    static digest_verify_fn next;
    digest_verify_fn f = __atomic_load_n(&next, __ATOMIC_ACQUIRE);
    int rc;

    if (f == NULL) {
        f = (digest_verify_fn)dlsym(RTLD_NEXT, "EVP_DigestVerify");
        if (f == NULL)
            abort(); /* no libcrypto behind us: nothing sensible to answer */
        __atomic_store_n(&next, f, __ATOMIC_RELEASE);
    }
    rc = f(ctx, sig, siglen, tbs, tbslen);
    if (counters != NULL) {
        __atomic_add_fetch(&counters[0], 1, __ATOMIC_RELAXED);
        if (rc == 1)
            __atomic_add_fetch(&counters[1], 1, __ATOMIC_RELAXED);
    }
    return rc;
}
