/*
 * pct.c -- percent-encoding of keys (RFC 3986 §2.1), the one codec of
 * etagkv-server's /kv/ URLs and of the etagkv tool's --pct and list
 * output.  Pure: no libmicrohttpd, no store; the CLI compiles this file
 * too (cli/CMakeLists.txt), so the two spell keys alike.
 */
#include "pct.h"

#include <stdlib.h>

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

ssize_t srv_pct_decode(const char *src, size_t len, unsigned char *out,
                       size_t cap)
{
    size_t i = 0, n = 0;
    int too_long = 0;

    while (i < len) {
        unsigned char ch = (unsigned char)src[i];

        if (ch == '%') {
            int hi, lo;

            if (len - i < 3)
                return -1;
            hi = hex_value((unsigned char)src[i + 1]);
            lo = hex_value((unsigned char)src[i + 2]);
            if (hi < 0 || lo < 0)
                return -1;
            ch = (unsigned char)(hi << 4 | lo);
            i += 3;
        } else {
            i++;
        }
        /* Keep scanning past cap: an invalid escape later still wins, so
         * the answer does not depend on where the key got too long. */
        if (n < cap)
            out[n] = ch;
        else
            too_long = 1;
        n++;
    }
    return too_long ? -2 : (ssize_t)n;
}

/* RFC 3986 §2.3 unreserved, plus '/' which keys use as a separator. */
static int keep_literal(unsigned char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
           (ch >= '0' && ch <= '9') || ch == '-' || ch == '.' || ch == '_' ||
           ch == '~' || ch == '/';
}

/* 1 if p[i] is a '.' of a segment that is "." or ".." (between '/' or the
 * ends of the key). */
static int in_dot_segment(const unsigned char *p, size_t len, size_t i)
{
    size_t start = i, end = i;

    while (start > 0 && p[start - 1] != '/')
        start--;
    while (end < len && p[end] != '/')
        end++;
    if (end - start == 1)
        return p[start] == '.';
    return end - start == 2 && p[start] == '.' && p[start + 1] == '.';
}

char *srv_pct_encode(const void *src, size_t len)
{
    static const char hex[] = "0123456789ABCDEF";
    const unsigned char *p = src;
    char *out = malloc(len * 3 + 1);
    size_t i, n = 0;

    if (out == NULL)
        return NULL;
    for (i = 0; i < len; i++) {
        /* A "." or ".." segment would be removed by RFC 3986 §5.2.4 when
         * the result is resolved after "/kv/", naming another key (or
         * leaving /kv/): its dots are encoded, which no resolver touches. */
        if (keep_literal(p[i]) && (p[i] != '.' || !in_dot_segment(p, len, i))) {
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
