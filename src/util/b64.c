/* SPDX-License-Identifier: Apache-2.0
 * base64url (RFC 4648 section 5) without padding, strict on decode: one encoding per value, so a
 * MAC over the text and a MAC over the bytes can never disagree. The same decoder also reads the standard
 * alphabet and padding where the input is not ours (Basic auth, a configured secret). */
#include "util/b64.h"

static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

size_t ag_b64url_encode(const void *in, size_t n, char *out, size_t cap)
{
    const unsigned char *p = in;
    size_t o = 0, i = 0;

    if (cap == 0)
        return 0;
    if (AG_B64URL_LEN(n) + 1 > cap) {
        out[0] = '\0';
        return 0;
    }
    for (; i + 3 <= n; i += 3) {
        unsigned v = (unsigned)p[i] << 16 | (unsigned)p[i + 1] << 8 | p[i + 2];
        out[o++] = alphabet[v >> 18];
        out[o++] = alphabet[(v >> 12) & 63];
        out[o++] = alphabet[(v >> 6) & 63];
        out[o++] = alphabet[v & 63];
    }
    if (n - i == 1) {
        unsigned v = (unsigned)p[i] << 16;
        out[o++] = alphabet[v >> 18];
        out[o++] = alphabet[(v >> 12) & 63];
    } else if (n - i == 2) {
        unsigned v = (unsigned)p[i] << 16 | (unsigned)p[i + 1] << 8;
        out[o++] = alphabet[v >> 18];
        out[o++] = alphabet[(v >> 12) & 63];
        out[o++] = alphabet[(v >> 6) & 63];
    }
    out[o] = '\0';
    return o;
}

static int value(unsigned char c, unsigned flags)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-' || (c == '+' && (flags & AG_B64_STANDARD)))
        return 62;
    if (c == '_' || (c == '/' && (flags & AG_B64_STANDARD)))
        return 63;
    return -1;
}

enum ag_rc ag_b64url_decode(const char *in, size_t len, unsigned char *out, size_t cap, size_t *outlen)
{
    return ag_b64_decode(in, len, 0, out, cap, outlen);
}

enum ag_rc ag_b64_decode(const char *in, size_t len, unsigned flags, unsigned char *out, size_t cap,
                         size_t *outlen)
{
    size_t o = 0, need;
    unsigned acc = 0;
    int bits = 0;

    while ((flags & AG_B64_PADDING) && len > 0 && in[len - 1] == '=')
        len--;
    if (len % 4 == 1)
        return AG_ERR_INVALID;
    need = len / 4 * 3 + (len % 4 ? len % 4 - 1 : 0);
    if (need > cap)
        return AG_ERR_TOO_LARGE;
    for (size_t i = 0; i < len; i++) {
        int v = value((unsigned char)in[i], flags);
        if (v < 0)
            return AG_ERR_INVALID;
        acc = (acc << 6) | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    if (acc != 0 && !(flags & AG_B64_LAX_TAIL)) /* leftover bits must be zero: one spelling per value */
        return AG_ERR_INVALID;
    *outlen = o;
    return AG_OK;
}
