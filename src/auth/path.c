/* SPDX-License-Identifier: Apache-2.0
 * Request paths: ambiguous or not, and the two readings of one that is not (auth/path.h). */
#include <string.h>

#include "auth/path.h"

/* A byte that some reader of the path treats as structure: a separator (/ \ ;), a dot that may
 * form a dot segment, the start of a query or fragment, an escape, or a control character. */
static bool structural(unsigned char c)
{
    return c == '/' || c == '\\' || c == '.' || c == ';' || c == '?' || c == '#' || c == '%' || c < 0x20 ||
           c == 0x7f;
}

void ag_path_read(const char *target, struct ag_path *p)
{
    size_t n = 0, seg = 0; /* seg: where the current segment starts in raw */

    p->ambiguous = true;
    p->raw[0] = p->decoded[0] = '\0';
    if (target == NULL || target[0] != '/')
        return;
    n = strcspn(target, "?");
    if (n >= AG_PATH_MAX)
        return;
    memcpy(p->raw, target, n);
    p->raw[n] = '\0';

    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p->raw[i];
        if (c == '/') {
            /* the segment that ends here: empty (other than the leading one's "before"), "." or ".." */
            size_t len = i - seg;
            if (i > 0 && (len == 0 || (len == 1 && p->raw[seg] == '.') ||
                          (len == 2 && p->raw[seg] == '.' && p->raw[seg + 1] == '.')))
                return;
            seg = i + 1;
        } else if (c == ';' || c == '\\' || c == '#' || c == ' ' || c < 0x20 || c == 0x7f) {
            return;
        } else if (c == '%') {
            int h = i + 2 < n ? ag_hex_digit((unsigned char)p->raw[i + 1]) : -1;
            int l = h < 0 ? -1 : ag_hex_digit((unsigned char)p->raw[i + 2]);
            if (l < 0 || structural((unsigned char)(h * 16 + l)))
                return;
            c = (unsigned char)(h * 16 + l);
            i += 2;
        }
        p->decoded[o++] = (char)c;
    }
    /* the last segment may be empty (a trailing slash names a directory), but not "." or ".." */
    size_t len = n - seg;
    if ((len == 1 && p->raw[seg] == '.') || (len == 2 && p->raw[seg] == '.' && p->raw[seg + 1] == '.'))
        return;
    p->decoded[o] = '\0';
    p->ambiguous = false;
}
