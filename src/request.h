/* SPDX-License-Identifier: Apache-2.0
 * The request context: born when libmicrohttpd has parsed the request line (URI log callback),
 * freed when it reports the request completed. Everything a handler needs hangs off it; values
 * borrowed from libmicrohttpd (method, headers) live as long as the request. */
#ifndef AG_REQUEST_H
#define AG_REQUEST_H

#include <microhttpd.h>
#include <stdatomic.h>
#include <time.h>

#include "common.h"
#include "config.h"

#define AG_REQUEST_ID_MAX 128
/* Bodies sent to authgate's own endpoints are not used; past this they are refused (413). */
#define AG_OWN_BODY_MAX (64 * 1024)

/* State shared by every request of one server: the config and the drain flag. */
struct ag_app {
    const struct ag_config *cfg;
    atomic_bool draining; /* SIGTERM seen: /ready fails, responses close the connection */
    atomic_uint inflight; /* requests whose headers arrived and that are not completed */
};

struct ag_request {
    struct ag_app *app;
    struct MHD_Connection *conn;
    char *raw_uri;       /* request-target exactly as received (owned) */
    size_t path_len;     /* length of its path part, before any '?' or '#' */
    const char *method;  /* borrowed from libmicrohttpd */
    const char *version; /* borrowed */
    char client[64];     /* peer address, "unix" for unix sockets */
    char request_id[AG_REQUEST_ID_MAX + 1];
    struct timespec start;
    uint64_t body_bytes; /* request body bytes seen */
    int route_id;        /* enum ag_route_id of the handler that answered, -1 before */
    bool started;        /* first access-handler call done */
    bool counted;        /* included in app->inflight */
    bool answered;       /* a response was queued */
    unsigned status;     /* status sent, for the request log */
    uint64_t resp_size;  /* body bytes sent, for the request log */
};

/* New context for a request whose request-target is `uri` (copied). Returns NULL on ENOMEM. */
struct ag_request *ag_request_new(struct ag_app *app, struct MHD_Connection *conn, const char *uri);

/* Free a context (NULL is fine). */
void ag_request_free(struct ag_request *rq);

/* Value of request header `name` (case-insensitive), borrowed, or NULL. With several copies,
 * the first. */
const char *ag_request_header(const struct ag_request *rq, const char *name);

/* Take the client's request id from `header_value` when it is 1..AG_REQUEST_ID_MAX characters of
 * [A-Za-z0-9._:+/=-], otherwise generate 32 hex characters from RAND_bytes. */
void ag_request_set_id(struct ag_request *rq, const char *header_value);

/* Seconds since the context was created. */
double ag_request_elapsed(const struct ag_request *rq);

#endif
