/* SPDX-License-Identifier: Apache-2.0
 * What a verified token's claims grant beyond the identity: its scopes (RFC 6749 3.3 `scope`, or the
 * `scp` array some issuers use) and the --claim-header map (like Istio's outputClaimToHeaders). Both
 * are read once, when a token is verified or a session is made, and kept with the identity; the
 * request path only compares strings. */
#ifndef AG_TOKEN_CLAIMS_H
#define AG_TOKEN_CLAIMS_H

#include <jansson.h>

#include "config.h"

#define AG_CLAIM_VALUE_MAX 4096 /* a longer claim value is not turned into a header */

/* The claim at `path`: names joined by '.', read as nested objects first; where a name is not a key, a
 * name with the dot in it is tried, so "https://example.com/roles" finds a claim of that name. NULL when
 * absent. Borrowed. */
json_t *ag_claims_get(json_t *claims, const char *path);

/* A claim value as header text into out (cap bytes): strings as they are, integers, reals and
 * booleans in JSON form, arrays of those joined by ','. False for objects, nested arrays, null,
 * values with control bytes (a header must not be split) and values longer than cap - 1. */
bool ag_claims_header_value(json_t *v, char *out, size_t cap);

/* The granted scopes as one space-delimited string (malloc'd) in *out: `scope` when it is a string,
 * else `scp` (an array of strings, or a string). *out is NULL when the token names none. */
enum ag_rc ag_claims_scope(json_t *claims, char **out);

/* Fill out (cleared first) with the header/value pairs of `map` ("Header=claim" entries, checked by the
 * config) that the claims have a usable value for. */
enum ag_rc ag_claims_headers(const struct ag_strlist *map, json_t *claims, struct ag_strlist *out);

/* Whether every scope of the space-delimited `required` is among the space-delimited `granted`
 * (exact, case-sensitive tokens). An empty or NULL `required` holds; a NULL `granted` has none. */
bool ag_scopes_cover(const char *granted, const char *required);

#endif
