/*
 * pct.c -- percent-encoding of keys, the server's rules (pct.h).
 */
#include "pct.h"

#include <stdlib.h>
#include <string.h>

/* Value of one hex digit, or -1. */
static int hex_value(unsigned char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

int pct_decode(const char *src, unsigned char **out, size_t *len)
{
    size_t n = 0, src_len = strlen(src);
    unsigned char *buf = malloc(src_len + 1);

    *out = NULL;
    if (buf == NULL)
        return -1;
    for (size_t i = 0; i < src_len; n++) {
        int hi, lo;

        if (src[i] != '%') {
            buf[n] = (unsigned char)src[i++];
            continue;
        }
        /* src is NUL-terminated, and NUL is no hex digit: a short escape
         * stops at the first test that reads past its end. */
        hi = hex_value((unsigned char)src[i + 1]);
        lo = hi >= 0 ? hex_value((unsigned char)src[i + 2]) : -1;
        if (lo < 0) {
            free(buf);
            return -1;
        }
        buf[n] = (unsigned char)(hi << 4 | lo);
        i += 3;
    }
    *out = buf;
    *len = n;
    return 0;
}

/* RFC 3986 §2.3 unreserved, plus '/' which keys use as a separator. */
static int keep_literal(unsigned char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
           (ch >= '0' && ch <= '9') || ch == '-' || ch == '.' || ch == '_' ||
           ch == '~' || ch == '/';
}

char *pct_encode(const void *src, size_t len)
{
    static const char hex[] = "0123456789ABCDEF";
    const unsigned char *p = src;
    char *out = malloc(len * 3 + 1);
    size_t n = 0;

    if (out == NULL)
        return NULL;
    for (size_t i = 0; i < len; i++) {
        if (keep_literal(p[i])) {
            out[n++] = (char)p[i];
        } else {
            out[n++] = '%';
            out[n++] = hex[p[i] >> 4];
            out[n++] = hex[p[i] & 15];
        }
    }
    out[n] = '\0';
    return out;
}
