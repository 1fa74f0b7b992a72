/* SPDX-License-Identifier: Apache-2.0
 * Unit tests for src/net/addr.c: listen address syntax, and listening on each kind. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net/addr.h"

static struct ag_addr a;
static char err[256];

START_TEST(parse_host_port)
{
    ck_assert_int_eq(ag_addr_parse("127.0.0.1:4180", &a, err, sizeof(err)), AG_OK);
    ck_assert_int_eq(a.kind, AG_ADDR_TCP);
    ck_assert_str_eq(a.host, "127.0.0.1");
    ck_assert_uint_eq(a.port, 4180);
    ck_assert_int_eq(ag_addr_parse("http://localhost:80", &a, err, sizeof(err)), AG_OK);
    ck_assert_str_eq(a.host, "localhost");
    ck_assert_uint_eq(a.port, 80);
    ck_assert_int_eq(ag_addr_parse(":4180", &a, err, sizeof(err)), AG_OK);
    ck_assert_str_eq(a.host, "");
    ck_assert_int_eq(ag_addr_parse("0.0.0.0:0", &a, err, sizeof(err)), AG_OK);
    ck_assert_uint_eq(a.port, 0);
}
END_TEST

START_TEST(parse_v6)
{
    ck_assert_int_eq(ag_addr_parse("[::1]:8080", &a, err, sizeof(err)), AG_OK);
    ck_assert_str_eq(a.host, "::1");
    ck_assert_uint_eq(a.port, 8080);
    ck_assert_int_eq(ag_addr_parse("::1:8080", &a, err, sizeof(err)), AG_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(err, "brackets"));
    ck_assert_int_eq(ag_addr_parse("[::1]8080", &a, err, sizeof(err)), AG_ERR_INVALID);
    ck_assert_int_eq(ag_addr_parse("[]:80", &a, err, sizeof(err)), AG_ERR_INVALID);
    ck_assert_int_eq(ag_addr_parse("[127.0.0.1]:80", &a, err, sizeof(err)), AG_ERR_INVALID);
}
END_TEST

START_TEST(parse_unix_fd)
{
    ck_assert_int_eq(ag_addr_parse("unix:///run/authgate.sock", &a, err, sizeof(err)), AG_OK);
    ck_assert_int_eq(a.kind, AG_ADDR_UNIX);
    ck_assert_str_eq(a.path, "/run/authgate.sock");
    ck_assert_int_eq(ag_addr_parse("unix://relative.sock", &a, err, sizeof(err)), AG_ERR_INVALID);
    char longpath[300] = "unix:///";
    memset(longpath + 8, 'x', 200);
    longpath[208] = '\0';
    ck_assert_int_eq(ag_addr_parse(longpath, &a, err, sizeof(err)), AG_ERR_INVALID);
    ck_assert_int_eq(ag_addr_parse("fd:3", &a, err, sizeof(err)), AG_OK);
    ck_assert_int_eq(a.kind, AG_ADDR_FD);
    ck_assert_int_eq(a.fd, 3);
    ck_assert_int_eq(ag_addr_parse("fd:2", &a, err, sizeof(err)), AG_ERR_INVALID);
    ck_assert_int_eq(ag_addr_parse("fd:", &a, err, sizeof(err)), AG_ERR_INVALID);
    ck_assert_int_eq(ag_addr_parse("fd:3x", &a, err, sizeof(err)), AG_ERR_INVALID);
}
END_TEST

START_TEST(parse_bad)
{
    static const char *const bad[] = {
        "",         "nohost",           "127.0.0.1:",  "127.0.0.1:65536", "host:-1",     "host:80 ",
        "ho st:80", "host:99999999999", "https://x:1", "a/b:80",          "host:\r\n80", "host\n:80"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        ck_assert_msg(ag_addr_parse(bad[i], &a, err, sizeof(err)) == AG_ERR_INVALID, "accepted '%s'", bad[i]);
        ck_assert_msg(err[0] != '\0', "no reason for '%s'", bad[i]);
    }
    ck_assert_int_eq(ag_addr_parse(NULL, &a, err, sizeof(err)), AG_ERR_INVALID);
}
END_TEST

START_TEST(listen_tcp_and_describe)
{
    int fd = -1;
    char desc[128];
    ck_assert_int_eq(ag_addr_parse("127.0.0.1:0", &a, err, sizeof(err)), AG_OK);
    ck_assert_int_eq(ag_addr_listen(&a, 16, &fd, err, sizeof(err)), AG_OK);
    ck_assert_int_ge(fd, 0);
    ag_addr_describe(fd, &a, desc, sizeof(desc));
    ck_assert_msg(strncmp(desc, "http://127.0.0.1:", 17) == 0 && atoi(desc + 17) > 0, "got %s", desc);
    close(fd);
}
END_TEST

START_TEST(listen_unix_replaces_stale_socket_only)
{
    char dir[] = "/tmp/ag-addr-XXXXXX", spec[200], path[160];
    int fd = -1, fd2 = -1;
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/s.sock", dir);
    snprintf(spec, sizeof(spec), "unix://%s", path);
    ck_assert_int_eq(ag_addr_parse(spec, &a, err, sizeof(err)), AG_OK);
    ck_assert_int_eq(ag_addr_listen(&a, 16, &fd, err, sizeof(err)), AG_OK);
    close(fd);
    /* the socket file is left behind: a second start replaces it */
    ck_assert_int_eq(ag_addr_listen(&a, 16, &fd2, err, sizeof(err)), AG_OK);
    close(fd2);
    unlink(path);
    /* a regular file at the path is never removed */
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fclose(f);
    ck_assert_int_eq(ag_addr_listen(&a, 16, &fd, err, sizeof(err)), AG_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(err, "not a socket"));
    ck_assert_int_eq(access(path, F_OK), 0);
    unlink(path);
    rmdir(dir);
}
END_TEST

START_TEST(listen_fd_checks_socket)
{
    int lfd, out = -1;
    char spec[32];
    /* an fd that is not a socket */
    int pipefd[2];
    ck_assert_int_eq(pipe(pipefd), 0);
    snprintf(spec, sizeof(spec), "fd:%d", pipefd[0]);
    ck_assert_int_eq(ag_addr_parse(spec, &a, err, sizeof(err)), AG_OK);
    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDS");
    ck_assert_int_ne(ag_addr_listen(&a, 16, &out, err, sizeof(err)), AG_OK);
    close(pipefd[0]);
    close(pipefd[1]);
    /* a listening socket, with LISTEN_PID naming us */
    struct ag_addr tcp;
    ck_assert_int_eq(ag_addr_parse("127.0.0.1:0", &tcp, err, sizeof(err)), AG_OK);
    ck_assert_int_eq(ag_addr_listen(&tcp, 16, &lfd, err, sizeof(err)), AG_OK);
    snprintf(spec, sizeof(spec), "fd:%d", lfd);
    ck_assert_int_eq(ag_addr_parse(spec, &a, err, sizeof(err)), AG_OK);
    char pid[32], n[32];
    snprintf(pid, sizeof(pid), "%d", (int)getpid());
    snprintf(n, sizeof(n), "%d", lfd - 3 + 1);
    setenv("LISTEN_PID", pid, 1);
    setenv("LISTEN_FDS", n, 1);
    ck_assert_int_eq(ag_addr_listen(&a, 16, &out, err, sizeof(err)), AG_OK);
    ck_assert_int_eq(out, lfd);
    ck_assert_ptr_null(getenv("LISTEN_FDS")); /* not passed on to children */
    /* outside the range the service manager passed */
    setenv("LISTEN_PID", pid, 1);
    setenv("LISTEN_FDS", "1", 1);
    snprintf(spec, sizeof(spec), "fd:%d", lfd + 5);
    ck_assert_int_eq(ag_addr_parse(spec, &a, err, sizeof(err)), AG_OK);
    ck_assert_int_eq(ag_addr_listen(&a, 16, &out, err, sizeof(err)), AG_ERR_INVALID);
    close(lfd);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("addr");
    TCase *tc = tcase_create("addr");
    tcase_add_test(tc, parse_host_port);
    tcase_add_test(tc, parse_v6);
    tcase_add_test(tc, parse_unix_fd);
    tcase_add_test(tc, parse_bad);
    tcase_add_test(tc, listen_tcp_and_describe);
    tcase_add_test(tc, listen_unix_replaces_stale_socket_only);
    tcase_add_test(tc, listen_fd_checks_socket);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
