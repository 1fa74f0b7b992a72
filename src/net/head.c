/* SPDX-License-Identifier: Apache-2.0
 * Request head validation (net/head.h). */
#include <string.h>
#include <strings.h>

#include "net/head.h"

/* Longest run of whitespace between a header's colon and its value that we accept: beyond it the
 * layout check below would have to read further than a real header line reaches. */
#define MAX_OWS 256

bool ag_head_token(const char *s, size_t len)
{
    /* tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." / "^" / "_" / "`" / "|" / "~"
     *       / DIGIT / ALPHA */
    static const char extra[] = "!#$%&'*+-.^_`|~";
    if (len == 0)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              (c != '\0' && strchr(extra, c) != NULL)))
            return false;
    }
    return true;
}

/* field-value = *( VCHAR / obs-text / SP / HTAB ): no control character but HTAB. */
static bool clean_value(const char *v, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)v[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return false;
    }
    return true;
}

/* libmicrohttpd parses a header line in place: the name starts the line, the colon becomes a NUL, and
 * the value starts after the whitespace that follows. A folded continuation line makes it move the
 * name to fresh memory (after the read buffer, so after the value) and append the continuation to it.
 * So a field whose value does not follow its own name across ":" and whitespace was folded. */
static bool in_one_line(const struct ag_head_field *f)
{
    const char *end = f->name + f->name_len;
    if (f->value <= end || (size_t)(f->value - end) > MAX_OWS + 1 || *end != '\0')
        return false;
    for (const char *p = end + 1; p < f->value; p++)
        if (*p != ' ' && *p != '\t')
            return false;
    return true;
}

static bool named(const struct ag_head_field *f, const char *name)
{
    return f->name_len == strlen(name) && strncasecmp(f->name, name, f->name_len) == 0;
}

static bool all_digits(const char *s, size_t len)
{
    if (len == 0 || len > 18) /* 18 digits: under 2^63, and far beyond any body we take */
        return false;
    for (size_t i = 0; i < len; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return true;
}

const char *ag_head_refusal(const char *method, const char *target, const char *version,
                            const struct ag_head_field *f, size_t n)
{
    unsigned hosts = 0, lengths = 0, encodings = 0;
    bool http10 = version != NULL && strcmp(version, "HTTP/1.0") == 0;

    if (method == NULL || !ag_head_token(method, strlen(method)))
        return "the method is not a token";
    if (target == NULL || target[0] == '\0')
        return "no request-target";
    for (const unsigned char *p = (const unsigned char *)target; *p != '\0'; p++)
        if (*p <= 0x20 || *p == 0x7f || *p == '#')
            return "the request-target holds a space, a control character or '#'";
    for (size_t i = 0; i < n; i++) {
        if (!ag_head_token(f[i].name, f[i].name_len))
            return "a header name is not a token (a space before the colon, a folded line?)";
        if (!in_one_line(&f[i]))
            return "a folded header line (obs-fold)";
        if (!clean_value(f[i].value, f[i].value_len))
            return "a header value holds a control character (a bare CR or LF?)";
        if (named(&f[i], "Host")) {
            hosts++;
        } else if (named(&f[i], "Content-Length")) {
            if (++lengths > 1)
                return "several Content-Length headers";
            if (!all_digits(f[i].value, f[i].value_len))
                return "a Content-Length that is not a number";
        } else if (named(&f[i], "Transfer-Encoding")) {
            if (++encodings > 1)
                return "several Transfer-Encoding headers";
            if (f[i].value_len != 7 || strncasecmp(f[i].value, "chunked", 7) != 0)
                return "a Transfer-Encoding other than chunked";
        }
    }
    if (hosts > 1)
        return "several Host headers";
    if (hosts == 0 && !http10)
        return "no Host header";
    if (encodings > 0 && lengths > 0)
        return "both Transfer-Encoding and Content-Length";
    if (encodings > 0 && http10)
        return "Transfer-Encoding in an HTTP/1.0 request";
    return NULL;
}
