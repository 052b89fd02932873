/*
 * url.c -- the request-target: routes, percent-encoding (RFC 3986 §2.1) and
 * UTF-8 validation.
 *
 * Pure helpers with no libmicrohttpd state.  The decoder is strict: MHD's
 * own unescaping is switched off (srv_unescape_none) because it silently
 * keeps malformed escapes, and a key must decode one way or be refused.
 */
#include "server.h"

#include <stdlib.h>
#include <string.h>

enum srv_route srv_route_of(const char *path, const char **key_enc)
{
    if (strncmp(path, "/kv/", 4) == 0) {
        *key_enc = path + 4;
        return path[4] != '\0' ? SRV_ROUTE_KV : SRV_ROUTE_LIST;
    }
    if (strcmp(path, "/kv") == 0)
        return SRV_ROUTE_LIST;
    if (strcmp(path, "/healthz") == 0)
        return SRV_ROUTE_HEALTHZ;
    if (strcmp(path, "/metrics") == 0)
        return SRV_ROUTE_METRICS;
    if (strcmp(path, "/changes") == 0)
        return SRV_ROUTE_CHANGES;
    if (strcmp(path, "/txn") == 0)
        return SRV_ROUTE_TXN;
    if (strcmp(path, "/leases") == 0)
        return SRV_ROUTE_LEASES;
    if (strncmp(path, "/leases/", 8) == 0) {
        *key_enc = path + 8;
        return SRV_ROUTE_LEASE;
    }
    return SRV_ROUTE_NONE;
}

int srv_target_chars_ok(const char *s, size_t len)
{
    size_t i;

    for (i = 0; i < len; i++)
        if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f ||
            s[i] == '#')
            return 0;
    return 1;
}

size_t srv_unescape_none(void *cls, struct MHD_Connection *c, char *s)
{
    (void)cls;
    (void)c;
    return strlen(s);
}

/* Length of the UTF-8 sequence starting at p[0..avail), or 0 if it is not
 * well-formed (RFC 3629 §4 table). */
static size_t utf8_seq_len(const unsigned char *p, size_t avail)
{
    unsigned char lo = 0x80, hi = 0xBF;
    size_t n, i;

    if (p[0] < 0x80)
        return 1;
    if (p[0] >= 0xC2 && p[0] <= 0xDF)
        n = 2;
    else if (p[0] >= 0xE0 && p[0] <= 0xEF)
        n = 3;
    else if (p[0] >= 0xF0 && p[0] <= 0xF4)
        n = 4;
    else
        return 0;
    if (avail < n)
        return 0;
    /* The second byte's range excludes overlongs, surrogates and code
     * points above U+10FFFF. */
    if (p[0] == 0xE0)
        lo = 0xA0;
    else if (p[0] == 0xED)
        hi = 0x9F;
    else if (p[0] == 0xF0)
        lo = 0x90;
    else if (p[0] == 0xF4)
        hi = 0x8F;
    if (p[1] < lo || p[1] > hi)
        return 0;
    for (i = 2; i < n; i++)
        if (p[i] < 0x80 || p[i] > 0xBF)
            return 0;
    return n;
}

int srv_decimal(const char *v, size_t len, uint64_t cap, uint64_t *out)
{
    uint64_t n = 0;
    int above = 0;

    if (len == 0)
        return -1;
    for (size_t i = 0; i < len; i++) {
        unsigned d = (unsigned)(unsigned char)v[i] - '0';

        if (d > 9)
            return -1;
        if (above || d > cap || n > (cap - d) / 10)
            above = 1;
        else
            n = n * 10 + d;
    }
    *out = above ? cap : n;
    return above;
}

size_t srv_field_len(const char *v, size_t len)
{
    while (len > 0 && (v[len - 1] == ' ' || v[len - 1] == '\t'))
        len--;
    return len;
}

char *srv_utf8_text(const void *src, size_t len, size_t max)
{
    static const char replacement[] = "\xEF\xBF\xBD"; /* U+FFFD */
    const unsigned char *p = src;
    char *out = malloc(3 * len + 1), *o = out;

    if (out == NULL)
        return NULL;
    for (size_t i = 0; i < len;) {
        size_t n = utf8_seq_len(p + i, len - i);
        size_t put = n > 0 ? n : sizeof replacement - 1;

        if ((size_t)(o - out) + put > max)
            break;
        memcpy(o, n > 0 ? (const void *)(p + i) : replacement, put);
        o += put;
        i += n > 0 ? n : 1;
    }
    *o = '\0';
    return out;
}

int srv_utf8_valid(const void *src, size_t len)
{
    const unsigned char *p = src;
    size_t i = 0;

    while (i < len) {
        size_t n = utf8_seq_len(p + i, len - i);

        if (n == 0)
            return 0;
        i += n;
    }
    return 1;
}
