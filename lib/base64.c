/*
 * base64.c -- base64 (RFC 4648 §4, padded); see base64.h.
 */
#include "base64.h"

#include <stdlib.h>
#include <string.h>

static const char alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *ekv_base64_encode(const void *data, size_t len, size_t *out_len)
{
    const uint8_t *p = data;
    size_t n = (len + 2) / 3 * 4, o = 0;
    char *s = malloc(n + 1);

    if (s == NULL)
        return NULL;
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;

        if (i + 1 < len)
            v |= (uint32_t)p[i + 1] << 8;
        if (i + 2 < len)
            v |= p[i + 2];
        s[o++] = alphabet[v >> 18 & 63];
        s[o++] = alphabet[v >> 12 & 63];
        s[o++] = i + 1 < len ? alphabet[v >> 6 & 63] : '=';
        s[o++] = i + 2 < len ? alphabet[v & 63] : '=';
    }
    s[o] = '\0';
    if (out_len != NULL)
        *out_len = n;
    return s;
}

static int digit(unsigned char c)
{
    const char *at = c != '\0' ? strchr(alphabet, c) : NULL;

    return at != NULL ? (int)(at - alphabet) : -1;
}

int ekv_base64_decode(const char *s, size_t len, uint8_t **out, size_t *out_len)
{
    uint8_t *d;
    size_t n = 0;

    if (len % 4 != 0)
        return -1;
    d = malloc(len / 4 * 3 + 1); /* one byte more: never malloc(0) */
    if (d == NULL)
        return -2;
    for (size_t i = 0; i < len; i += 4) {
        int v[4], pad = 0;

        for (int j = 0; j < 4; j++) {
            /* '=' only at the end: one or two of the last group. */
            if (s[i + j] == '=' && i + 4 == len && j >= 2 &&
                (j == 3 || s[i + 3] == '=')) {
                v[j] = 0;
                pad++;
                continue;
            }
            v[j] = digit((unsigned char)s[i + j]);
            if (v[j] < 0) {
                free(d);
                return -1;
            }
        }
        /* Canonical (RFC 4648 §3.5): the bits a padded group leaves over
         * are zero, so that one byte string has one spelling ("YR==" is
         * not "a"). */
        if ((pad == 2 && (v[1] & 15) != 0) || (pad == 1 && (v[2] & 3) != 0)) {
            free(d);
            return -1;
        }
        d[n++] = (uint8_t)(v[0] << 2 | v[1] >> 4);
        if (pad < 2)
            d[n++] = (uint8_t)((v[1] & 15) << 4 | v[2] >> 2);
        if (pad < 1)
            d[n++] = (uint8_t)((v[2] & 3) << 6 | v[3]);
    }
    *out = d;
    *out_len = n;
    return 0;
}
