/* SPDX-License-Identifier: Apache-2.0
 * base64url without padding (RFC 4648 section 5), as used in cookies and JWTs. */
#ifndef AG_UTIL_B64_H
#define AG_UTIL_B64_H

#include "common.h"

/* Characters needed to encode n bytes, without the NUL. */
#define AG_B64URL_LEN(n) (((n) / 3) * 4 + ((n) % 3 ? (n) % 3 + 1 : 0))

/* Encode n bytes into out (cap bytes including the NUL). Returns the length written, or 0 when
 * out is too small (out is then the empty string if cap > 0). */
size_t ag_b64url_encode(const void *in, size_t n, char *out, size_t cap);

/* Decode len characters of unpadded base64url. Any other character (including '=', '+', '/'),
 * an impossible length or non-zero trailing bits is AG_ERR_INVALID; more than cap bytes of
 * output is AG_ERR_TOO_LARGE. On AG_OK *outlen is the decoded length. */
enum ag_rc ag_b64url_decode(const char *in, size_t len, unsigned char *out, size_t cap, size_t *outlen);

/* ag_b64url_decode() with options (0 is exactly ag_b64url_decode()): */
#define AG_B64_STANDARD 0x1u /* '+' and '/' too (RFC 4648 section 4) */
#define AG_B64_PADDING  0x2u /* trailing '=' are dropped first */
#define AG_B64_LAX_TAIL 0x4u /* non-zero leftover bits are ignored */
enum ag_rc ag_b64_decode(const char *in, size_t len, unsigned flags, unsigned char *out, size_t cap,
                         size_t *outlen);

#endif
