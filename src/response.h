/* SPDX-License-Identifier: Apache-2.0
 * The one place where results become HTTP responses: handlers fill a struct ag_reply or return an
 * error code, and ag_response_send() adds the headers every response carries (request id,
 * caching, content sniffing, Connection: close while draining) and queues it. */
#ifndef AG_RESPONSE_H
#define AG_RESPONSE_H

#include "request.h"

#define AG_REPLY_MAX_HEADERS 48 /* room for the identity headers and AG_MAX_CLAIM_HEADERS claim headers */

struct ag_reply_header {
    const char *name;
    const char *value;
};

struct ag_reply {
    unsigned status;
    const char *content_type; /* NULL: text/plain; charset=utf-8 */
    const char *body;         /* NULL: empty */
    size_t body_len;
    bool body_static; /* body outlives the response (a literal): sent without a copy */
    bool close;       /* close the connection after this answer (the request could not be read safely) */
    struct ag_reply_header headers[AG_REPLY_MAX_HEADERS]; /* borrowed until ag_response_send() returns */
    size_t nheaders;
};

/* Fill `out` with a static text body. */
void ag_reply_text(struct ag_reply *out, unsigned status, const char *body);

/* Add a header; returns AG_ERR_TOO_LARGE when the reply has no room left. */
enum ag_rc ag_reply_header(struct ag_reply *out, const char *name, const char *value);

/* Whether reply already carries header `name` (any case). */
bool ag_reply_has_header(const struct ag_reply *reply, const char *name);

/* The HTTP status for a result code: INVALID 400, UNAUTHENTICATED 401, DENIED 403, NOT_FOUND 404,
 * TOO_LARGE 413, UNAVAILABLE 503, anything else 500. */
unsigned ag_response_status(enum ag_rc rc);

/* Turn an error result into a reply: the status from ag_response_status() and a short body, as
 * JSON when the client asked for it (Accept: application/json) or the config forces JSON errors. */
void ag_response_error(const struct ag_request *rq, enum ag_rc rc, struct ag_reply *out);

/* Queue `reply` on the request's connection. Returns libmicrohttpd's result. */
enum MHD_Result ag_response_send(struct ag_request *rq, const struct ag_reply *reply);

#endif
