/* SPDX-License-Identifier: Apache-2.0
 * Tests for src/session/redis.c against a real redis-server started on a free loopback port (a
 * missing redis-server is a failure, not a skip): binary-safe values, TTLs, locks, AUTH, databases,
 * an outage answered as "unavailable" and the recovery after Redis returns. */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "session/redis.h"

static pid_t redis_pid = -1;
static int redis_port;
static char err[256];

static int free_port(void)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM, 0), port;
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    port = ntohs(sa.sin_port);
    close(fd);
    return port;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

/* Start redis-server on redis_port (extra: e.g. "--requirepass" "pw"), wait until it answers. */
static void start_redis(const char *extra1, const char *extra2)
{
    char port[16];
    snprintf(port, sizeof(port), "%d", redis_port);
    redis_pid = fork();
    ck_assert_int_ge(redis_pid, 0);
    if (redis_pid == 0) {
        freopen("/dev/null", "w", stdout);
        execlp("redis-server", "redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "",
               "--appendonly", "no", extra1 ? extra1 : "--loglevel", extra2 ? extra2 : "warning",
               (char *)NULL);
        fprintf(stderr, "check_redis: cannot run redis-server (apt-get install redis-server)\n");
        _exit(127);
    }
    for (int i = 0; i < 200; i++) {
        struct sockaddr_in sa = {.sin_family = AF_INET,
                                 .sin_port = htons((uint16_t)redis_port),
                                 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        int ok = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
        close(fd);
        if (ok)
            return;
        int status;
        ck_assert_msg(waitpid(redis_pid, &status, WNOHANG) == 0, "redis-server exited (is it installed?)");
        sleep_ms(25);
    }
    ck_abort_msg("redis-server did not start on port %d", redis_port);
}

static void stop_redis(void)
{
    if (redis_pid > 0) {
        kill(redis_pid, SIGKILL);
        waitpid(redis_pid, NULL, 0);
    }
    redis_pid = -1;
}

static struct ag_redis *client(const char *password)
{
    char url[64];
    struct ag_redis *r = NULL;
    snprintf(url, sizeof(url), "redis://127.0.0.1:%d/0", redis_port);
    ck_assert_int_eq(ag_redis_new(url, password, 1000, &r, err, sizeof(err)), AG_OK);
    return r;
}

static void setup(void)
{
    redis_port = free_port();
    start_redis(NULL, NULL);
}

START_TEST(set_get_del_binary)
{
    struct ag_redis *r = client(NULL);
    unsigned char *v = NULL;
    size_t n = 0;
    static const char bin[] = "a\0b\r\n*1\r\n$3\r\nDEL%s%n";
    ck_assert_int_eq(ag_redis_ping(r), AG_OK);
    ck_assert_int_eq(ag_redis_set(r, "k 1 %s", bin, sizeof(bin), 10000), AG_OK);
    ck_assert_int_eq(ag_redis_get(r, "k 1 %s", &v, &n), AG_OK);
    ck_assert_uint_eq(n, sizeof(bin));
    ck_assert(memcmp(v, bin, n) == 0);
    free(v);
    ck_assert_int_eq(ag_redis_get(r, "k", &v, &n), AG_ERR_NOT_FOUND);
    ck_assert_ptr_null(v);
    ck_assert_int_eq(ag_redis_del(r, "k 1 %s"), AG_OK);
    ck_assert_int_eq(ag_redis_get(r, "k 1 %s", &v, &n), AG_ERR_NOT_FOUND);
    ck_assert_int_eq(ag_redis_del(r, "never-there"), AG_OK);
    ag_redis_free(r);
}
END_TEST

START_TEST(ttl_expires)
{
    struct ag_redis *r = client(NULL);
    unsigned char *v = NULL;
    size_t n;
    ck_assert_int_eq(ag_redis_set(r, "short", "x", 1, 50), AG_OK);
    ck_assert_int_eq(ag_redis_get(r, "short", &v, &n), AG_OK);
    free(v);
    sleep_ms(150);
    ck_assert_int_eq(ag_redis_get(r, "short", &v, &n), AG_ERR_NOT_FOUND);
    ag_redis_free(r);
}
END_TEST

START_TEST(lock_single_holder)
{
    struct ag_redis *r = client(NULL);
    bool got = false;
    ck_assert_int_eq(ag_redis_lock(r, "lock", "tok-a", 5000, &got), AG_OK);
    ck_assert(got);
    ck_assert_int_eq(ag_redis_lock(r, "lock", "tok-b", 5000, &got), AG_OK);
    ck_assert(!got);
    /* someone else's token cannot release it */
    ck_assert_int_eq(ag_redis_unlock(r, "lock", "tok-b"), AG_OK);
    ck_assert_int_eq(ag_redis_lock(r, "lock", "tok-b", 5000, &got), AG_OK);
    ck_assert(!got);
    ck_assert_int_eq(ag_redis_unlock(r, "lock", "tok-a"), AG_OK);
    ck_assert_int_eq(ag_redis_lock(r, "lock", "tok-b", 50, &got), AG_OK);
    ck_assert(got);
    sleep_ms(120); /* a crashed holder's lock expires */
    ck_assert_int_eq(ag_redis_lock(r, "lock", "tok-c", 5000, &got), AG_OK);
    ck_assert(got);
    ag_redis_free(r);
}
END_TEST

START_TEST(outage_and_recovery)
{
    struct ag_redis *r = client(NULL);
    unsigned char *v = NULL;
    size_t n;
    ck_assert_int_eq(ag_redis_set(r, "a", "1", 1, 60000), AG_OK);
    stop_redis();
    ck_assert_int_eq(ag_redis_get(r, "a", &v, &n), AG_ERR_UNAVAILABLE);
    ck_assert_int_eq(ag_redis_ping(r), AG_ERR_UNAVAILABLE);
    ck_assert_int_eq(ag_redis_set(r, "a", "1", 1, 60000), AG_ERR_UNAVAILABLE);
    start_redis(NULL, NULL);
    sleep_ms(300); /* past the reconnect back-off */
    ck_assert_int_eq(ag_redis_ping(r), AG_OK);
    ck_assert_int_eq(ag_redis_get(r, "a", &v, &n), AG_ERR_NOT_FOUND); /* fresh server, no data */
    ag_redis_free(r);
}
END_TEST

START_TEST(auth_and_db)
{
    stop_redis();
    start_redis("--requirepass", "s3cret");
    struct ag_redis *r = client(NULL), *good = client("s3cret"), *wrong = client("nope");
    char url[96];
    struct ag_redis *db5 = NULL;
    unsigned char *v = NULL;
    size_t n;
    ck_assert_int_eq(ag_redis_ping(r), AG_ERR_UNAVAILABLE);
    ck_assert_int_eq(ag_redis_ping(wrong), AG_ERR_UNAVAILABLE);
    ck_assert_int_eq(ag_redis_set(good, "x", "0", 1, 60000), AG_OK);
    snprintf(url, sizeof(url), "redis://:s3cret@127.0.0.1:%d/5", redis_port);
    ck_assert_int_eq(ag_redis_new(url, NULL, 1000, &db5, err, sizeof(err)), AG_OK);
    ck_assert_int_eq(ag_redis_get(db5, "x", &v, &n), AG_ERR_NOT_FOUND); /* another database */
    ck_assert_int_eq(ag_redis_set(db5, "x", "5", 1, 60000), AG_OK);
    ck_assert_int_eq(ag_redis_get(good, "x", &v, &n), AG_OK);
    ck_assert_int_eq(v[0], '0');
    free(v);
    ag_redis_free(r);
    ag_redis_free(good);
    ag_redis_free(wrong);
    ag_redis_free(db5);
}
END_TEST

START_TEST(bad_urls)
{
    static const char *const bad[] = {"",
                                      "http://x:6379",
                                      "rediss://x:6379",
                                      "redis://",
                                      "redis://:6379",
                                      "redis://h:0",
                                      "redis://h:70000",
                                      "redis://h:12x",
                                      "redis://h:6379/db",
                                      "unix://relative"};
    struct ag_redis *r = NULL;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        ck_assert_msg(ag_redis_new(bad[i], NULL, 100, &r, err, sizeof(err)) == AG_ERR_INVALID, "accepted %s",
                      bad[i]);
        ck_assert_ptr_null(r);
        ck_assert(err[0] != '\0');
    }
    ck_assert_int_eq(ag_redis_new("redis://user:pw@host.example:6380/2", NULL, 100, &r, err, sizeof(err)),
                     AG_OK);
    ag_redis_free(r);
    ck_assert_int_eq(ag_redis_new("unix:///run/redis.sock", NULL, 100, &r, err, sizeof(err)), AG_OK);
    ag_redis_free(r);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("redis");
    TCase *tc = tcase_create("redis");
    tcase_add_checked_fixture(tc, setup, stop_redis);
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, set_get_del_binary);
    tcase_add_test(tc, ttl_expires);
    tcase_add_test(tc, lock_single_holder);
    tcase_add_test(tc, outage_and_recovery);
    tcase_add_test(tc, auth_and_db);
    tcase_add_test(tc, bad_urls);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
