/* SPDX-License-Identifier: Apache-2.0
 * authgate: an OAuth2/OpenID Connect authorization proxy. main() loads the configuration, starts
 * the listener (src/server.c, where every request begins), tells systemd it is ready, and waits for
 * a signal: SIGTERM or SIGINT drains in-flight requests and exits 0. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "build-config.h"
#include "app.h"
#include "config.h"
#include "net/http_client.h"
#include "log.h"
#include "server.h"
#include "util/sdnotify.h"

extern char **environ;

static int run(const struct ag_config *cfg)
{
    struct ag_server *server = NULL;
    struct ag_app app;
    char err[512];
    sigset_t set;
    int sig = 0;

    /* Signals are taken synchronously by this thread; the worker threads inherit the mask. */
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    /* after the mask, so the provider's discovery thread inherits it */
    if (ag_app_init(&app, cfg, err, sizeof(err)) != AG_OK) {
        ag_log_error("cannot start: %s", err);
        return 1;
    }
    if (ag_server_start(&app, &server, err, sizeof(err)) != AG_OK) {
        ag_log_error("cannot listen on http_address %s: %s", cfg->http_address, err);
        ag_app_fini(&app);
        return 1;
    }
    ag_log_info("authgate %s listening on %s", PACKAGE_VERSION, ag_server_url(server));
    if (ag_sdnotify("READY=1\nSTATUS=serving") != AG_OK)
        ag_log_warn("could not notify the service manager (NOTIFY_SOCKET)");

    for (;;) {
        if (sigwait(&set, &sig) != 0)
            continue;
        if (sig == SIGHUP) {
            /* Reloading needs every module to swap its state whole; until then a restart does it. */
            ag_log_warn(
                "SIGHUP received: configuration reload is not supported yet, restart authgate instead");
            continue;
        }
        break;
    }
    ag_log_info("received %s, draining requests in flight (up to %lld ms)",
                sig == SIGINT ? "SIGINT" : "SIGTERM", (long long)cfg->shutdown_timeout);
    ag_sdnotify("STOPPING=1");
    unsigned left = ag_server_drain(server, cfg->shutdown_timeout);
    if (left > 0)
        ag_log_warn("shutdown timeout reached with %u request%s in flight; closing them", left,
                    left == 1 ? "" : "s");
    ag_server_free(server);
    ag_app_fini(&app);
    ag_log_info("stopped");
    return 0;
}

int main(int argc, char **argv)
{
    struct ag_config *cfg = NULL;
    enum ag_config_action action = AG_ACTION_RUN;
    int status = 1;

    if (ag_config_load(argc, argv, environ, &cfg, &action, stderr) != AG_OK) {
        fprintf(stderr, "authgate: invalid configuration; see --help\n");
        return 1;
    }
    switch (action) {
    case AG_ACTION_HELP:
        ag_config_print_help(stdout);
        status = 0;
        break;
    case AG_ACTION_VERSION:
        printf("authgate %s\n", PACKAGE_VERSION);
        status = 0;
        break;
    case AG_ACTION_REFERENCE:
        ag_config_print_reference(stdout);
        status = 0;
        break;
    case AG_ACTION_CONFIG_TEST:
        ag_config_print_effective(cfg, stdout);
        printf("configuration OK\n");
        status = 0;
        break;
    case AG_ACTION_RUN: {
        struct ag_log_options lo = {
            .format = strcmp(cfg->logging_format, "json") == 0 ? AG_LOG_FORMAT_JSON : AG_LOG_FORMAT_STANDARD,
            .standard = cfg->standard_logging,
            .request = cfg->request_logging,
            .auth = cfg->auth_logging,
            .fd = 2,
        };
        ag_log_setup(&lo);
        if (ag_http_global_init() != AG_OK) {
            ag_log_error("cannot initialise libcurl");
            break;
        }
        status = run(cfg);
        ag_http_global_cleanup(); /* after run(): every worker thread and its curl handle is gone */
        break;
    }
    }
    fflush(stdout);
    ag_config_free(cfg);
    return status;
}
