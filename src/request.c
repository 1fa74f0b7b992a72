/* SPDX-License-Identifier: Apache-2.0
 * Request context life cycle and small accessors. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "request.h"

static void client_address(struct ag_request *rq)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(rq->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    const struct sockaddr *sa = ci ? ci->client_addr : NULL;

    snprintf(rq->client, sizeof(rq->client), "-");
    if (sa == NULL)
        return;
    if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, rq->client, sizeof(rq->client));
    else if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, rq->client, sizeof(rq->client));
    else if (sa->sa_family == AF_UNIX)
        snprintf(rq->client, sizeof(rq->client), "unix");
}

struct ag_request *ag_request_new(struct ag_app *app, struct MHD_Connection *conn, const char *uri)
{
    struct ag_request *rq = calloc(1, sizeof(*rq));
    if (rq == NULL)
        return NULL;
    rq->app = app;
    rq->conn = conn;
    rq->route_id = -1;
    rq->raw_uri = strdup(uri ? uri : "");
    if (rq->raw_uri == NULL) {
        free(rq);
        return NULL;
    }
    rq->path_len = strcspn(rq->raw_uri, "?#");
    clock_gettime(CLOCK_MONOTONIC, &rq->start);
    client_address(rq);
    return rq;
}

void ag_request_free(struct ag_request *rq)
{
    if (rq == NULL)
        return;
    free(rq->raw_uri);
    free(rq);
}

const char *ag_request_header(const struct ag_request *rq, const char *name)
{
    return MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, name);
}

static bool id_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == ':' || c == '+' || c == '/' || c == '=' || c == '-';
}

void ag_request_set_id(struct ag_request *rq, const char *v)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char raw[16];
    size_t n = 0;

    if (v != NULL) {
        while (n <= AG_REQUEST_ID_MAX && v[n] != '\0' && id_char((unsigned char)v[n]))
            n++;
        if (n > 0 && n <= AG_REQUEST_ID_MAX && v[n] == '\0') {
            memcpy(rq->request_id, v, n + 1);
            return;
        }
    }
    if (RAND_bytes(raw, sizeof(raw)) != 1) {
        /* The DRBG failing is near impossible; an id is for correlation, not security. */
        static atomic_ulong counter;
        snprintf(rq->request_id, sizeof(rq->request_id), "%032lx",
                 (unsigned long)atomic_fetch_add(&counter, 1));
        return;
    }
    for (size_t i = 0; i < sizeof(raw); i++) {
        rq->request_id[2 * i] = hex[raw[i] >> 4];
        rq->request_id[2 * i + 1] = hex[raw[i] & 15];
    }
    rq->request_id[2 * sizeof(raw)] = '\0';
}

double ag_request_elapsed(const struct ag_request *rq)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - rq->start.tv_sec) + (double)(now.tv_nsec - rq->start.tv_nsec) / 1e9;
}
